"""`lab xlate`: run a pcap through the stateless translator offline (BPF_PROG_TEST_RUN), with
the translator configured from the command line."""

from __future__ import annotations

import argparse
import json
import os

from lab.cli import SubParsers, add_pcap_arguments
from lab.errors import InputError, UsageError


def register(subparsers: SubParsers) -> None:
    p = subparsers.add_parser(
        "xlate", help="translate a pcap IPv4 <-> IPv6 with the stateless translator",
        description="Run every packet of IN.pcap through the stateless NAT46/NAT64 "
                    "translator (bpf/xlate.c, its tc program, or with --xdp its XDP program) "
                    "and write what it passes or sends back to OUT.pcap. IPv4 packets whose "
                    "destination the configuration maps become IPv6 and the other way "
                    "round; others pass untouched.",
        epilog="example: lab xlate --prefix 64:ff9b:1::/48 --eam "
               "2001:db8:6::/120=198.51.100.0/24 --in v4.pcap --out v6.pcap")
    p.add_argument("--prefix", metavar="P",
                   help="RFC 6052 prefix: 64:ff9b::/96 or a network-specific /32, /40, /48, "
                        "/56, /64 or /96")
    p.add_argument("--eam", action="append", default=[], metavar="V6PFX=V4PFX",
                   help="explicit address mapping (RFC 7757), repeatable; wins over the prefix")
    p.add_argument("--allow", action="append", default=[], metavar="V4PFX",
                   help="IPv4 source allowed to IPv6, repeatable (default: all)")
    add_pcap_arguments(p)
    p.set_defaults(handler=_xlate)


def _xlate(args: argparse.Namespace) -> int:
    from lab.bpf import pcap
    from lab.bpf.object import BpfObject
    from lab.datapath.translator import config as translator
    from lab.features import require_bpf_privileges

    cfg = translator.TranslatorConfig.from_args(args.prefix, args.eam, args.allow)
    if os.path.abspath(args.input) == os.path.abspath(args.output):
        raise UsageError("--in and --out name the same file")
    name = translator.INGRESS_XDP if args.xdp else translator.INGRESS_TC
    require_bpf_privileges("lab xlate")
    with BpfObject(translator.OBJECT) as obj:
        obj.load(only=[name])
        cfg.apply(obj)
        try:
            result = pcap.run(obj.program(name), args.input, args.output)
        except OSError as e:
            if e.filename == args.output or not e.filename:
                raise InputError(f"cannot write: {e.strerror}", args.output) from None
            raise
        outcomes = {k: v for k, v in translator.statistics(obj).items() if v}
    if args.json:
        print(json.dumps({**result.to_dict(), "config": cfg.to_dict(), "outcomes": outcomes},
                         indent=2))
    else:
        print(result.summary())
        print("translator: " + (", ".join(f"{v} {k}" for k, v in outcomes.items()) or
                                "no packets"))
    return 0
