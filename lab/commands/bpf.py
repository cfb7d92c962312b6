"""`lab bpf run`: a program over a pcap, offline."""

from __future__ import annotations

import argparse
import os

from lab.cli import SubParsers, add_group, add_pcap_arguments
from lab.errors import InputError, UsageError
from lab.features import require_bpf_privileges


def register(subparsers: SubParsers) -> None:
    bpf = add_group(subparsers, "bpf", "eBPF objects: offline runs")
    run = bpf.add_parser(
        "run", help="run each packet of a pcap through a program (BPF_PROG_TEST_RUN)",
        description="Run every packet of IN.pcap through PROGRAM of OBJECT and write the "
                    "packets it passes or redirects to OUT.pcap. OBJECT is a path or a name "
                    "under build/bpf; without :PROGRAM, its only tc (or with --xdp, XDP) "
                    "program.")
    run.add_argument("target", metavar="OBJECT[:PROGRAM]")
    add_pcap_arguments(run)
    run.set_defaults(handler=_run)


def run_offline(prog: object, args: argparse.Namespace) -> int:
    """Run ARGS.input through PROG, write ARGS.output, report as ARGS.json says."""
    from lab.bpf import pcap

    if os.path.abspath(args.input) == os.path.abspath(args.output):
        raise UsageError("--in and --out name the same file")
    try:
        result = pcap.run(prog, args.input, args.output)
    except OSError as e:
        if e.filename == args.output or not e.filename:
            raise InputError(f"cannot write: {e.strerror}", args.output) from None
        raise
    return pcap.report(result, args.json)


def _run(args: argparse.Namespace) -> int:
    from lab.bpf.object import BpfObject

    path, _, name = args.target.partition(":")
    require_bpf_privileges("lab bpf run")
    with BpfObject(path) as obj:
        prog = obj.program(name or None, xdp=args.xdp)
        if args.xdp and not prog.is_xdp:
            raise UsageError(f"--xdp, but {prog.name} is a {prog.type_name} program")
        obj.load(only=[prog.name])
        return run_offline(prog, args)
