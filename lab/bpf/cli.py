"""`lab bpf run` (a program over a pcap, offline) and `lab bench prog` (ns/packet)."""

from __future__ import annotations

import argparse
import json
import os

from lab.cli import subcommand_group
from lab.errors import InputError, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    bpf = subcommand_group(subparsers, "bpf", "eBPF objects: offline runs")
    run = bpf.add_parser(
        "run", help="run each packet of a pcap through a program (BPF_PROG_TEST_RUN)",
        description="Run every packet of IN.pcap through PROGRAM of OBJECT and write the "
                    "packets it passes or redirects to OUT.pcap. OBJECT is a path or a name "
                    "under build/bpf; without :PROGRAM, its only tc (or with --xdp, XDP) "
                    "program.")
    run.add_argument("target", metavar="OBJECT[:PROGRAM]")
    add_pcap_arguments(run)
    run.set_defaults(handler=_run)

    bench = subcommand_group(subparsers, "bench",
                             "benchmarks (medians of repeats, side by side)")
    prog = bench.add_parser(
        "prog", help="ns/packet of a BPF program over a fixed packet mix",
        description="Time a program with BPF_PROG_TEST_RUN over its packet mix: the median "
                    "of several runs, next to an empty program measured the same way. NAME "
                    "is a registered case (--list) or OBJECT:PROGRAM with the default mix.")
    prog.add_argument("name", metavar="NAME", nargs="?")
    prog.add_argument("--list", action="store_true", help="list the registered cases")
    prog.add_argument("--runs", type=_positive, default=7, help="passes over the mix (7)")
    prog.add_argument("--repeat", type=_positive, help="runs per packet and pass")
    prog.add_argument("--loop", action="store_true",
                      help="time programs that rewrite their packet in the kernel's loop too "
                           "(hot caches; a translator flips its packet between its two forms)")
    prog.add_argument("--json", action="store_true", help="machine-readable result")
    prog.set_defaults(handler=_bench_prog)


def add_pcap_arguments(parser: argparse.ArgumentParser) -> None:
    """--in/--out/--xdp/--json, shared by every offline runner (`lab bpf run`, `lab xlate`)."""
    parser.add_argument("--in", dest="input", required=True, metavar="IN.pcap",
                        help="pcap or pcapng, Ethernet (1) or raw IP (101, 228, 229)")
    parser.add_argument("--out", dest="output", required=True, metavar="OUT.pcap")
    parser.add_argument("--xdp", action="store_true", help="run the XDP program")
    parser.add_argument("--json", action="store_true", help="print a verdict per packet")


CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF = 12, 21, 39


def require_bpf_privileges(what: str) -> None:
    """Loading programs needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: say so up front."""
    with open("/proc/self/status") as f:
        caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    if caps >> CAP_NET_ADMIN & 1 and (caps >> CAP_BPF & 1 or caps >> CAP_SYS_ADMIN & 1):
        return
    raise UsageError(f"{what} loads BPF programs, which needs root (CAP_BPF and CAP_NET_ADMIN)")


def _positive(s: str) -> int:
    n = int(s)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


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


def _bench_prog(args: argparse.Namespace) -> int:
    from lab.bpf import bench

    if args.list or not args.name:
        cases = bench.cases()
        if args.json:
            print(json.dumps({n: {"object": c.object, "program": c.program,
                                  "description": c.description} for n, c in cases.items()},
                             indent=2))
        else:
            for n, c in sorted(cases.items()):
                print(f"{n:<20} {c.object}:{c.program}  {c.description}")
        return 0
    case = bench.case_for(args.name)
    require_bpf_privileges("lab bench prog")
    result = bench.measure(case, runs=args.runs, repeat=args.repeat, loop=args.loop)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.text())
    return 0
