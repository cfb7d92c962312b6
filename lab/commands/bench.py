"""`lab bench`: every benchmark kind, registered here. The core's: `build` (how fast the lab
builds a node with N pods, next to an `ip` script) and `prog` (ns/packet of a BPF program over
a packet mix, for the cases of the packet counter and of every datapath feature); then each
feature's own kinds (`lab bench gateway`)."""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Sequence

from lab import features
from lab.bpf import bench, pktcount
from lab.cli import AddCommands, SubParsers, add_group
from lab.datapath.contract import Datapath
from lab.datapath.registry import DATAPATHS
from lab.digits import int_arg

HELP = "benchmarks (medians of repeats, side by side)"


def registrar(datapaths: Sequence[Datapath]) -> AddCommands:
    """`lab bench` with the kinds and `prog` cases of DATAPATHS."""
    return functools.partial(_register, datapaths=tuple(datapaths))


def _register(sub: SubParsers, datapaths: Sequence[Datapath]) -> None:
    group = add_group(sub, "bench", HELP)
    p = group.add_parser("build", help="lab up+down of N pods vs an equivalent `ip` script")
    p.add_argument("--pods", type=int_arg(1, 4096), default=100)
    p.add_argument("--repeat", type=int_arg(1), default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_build)

    prog = group.add_parser(
        "prog", help="ns/packet of a BPF program over a fixed packet mix",
        description="Time a program with BPF_PROG_TEST_RUN over its packet mix: the median "
                    "of several runs, next to an empty program measured the same way. NAME "
                    "is a registered case (--list) or OBJECT:PROGRAM with the default mix.")
    prog.add_argument("name", metavar="NAME", nargs="?")
    prog.add_argument("--list", action="store_true", help="list the registered cases")
    prog.add_argument("--runs", type=int_arg(1), default=7, help="passes over the mix (7)")
    prog.add_argument("--repeat", type=int_arg(1), help="runs per packet and pass")
    prog.add_argument("--loop", action="store_true",
                      help="time programs that rewrite their packet in the kernel's loop too "
                           "(hot caches; a translator flips its packet between its two forms)")
    prog.add_argument("--json", action="store_true", help="machine-readable result")
    prog.set_defaults(handler=functools.partial(cmd_prog, datapaths=datapaths))

    for d in datapaths:
        for add in d.bench_kinds():
            add(group)


def prog_cases(datapaths: Sequence[Datapath] = DATAPATHS) -> dict[str, bench.BenchCase]:
    """Every case `lab bench prog` knows by name: the packet counter's, then the features'."""
    return bench.by_name(pktcount.BENCH_CASES, *(d.bench_cases() for d in datapaths))


def cmd_build(args) -> int:
    from lab.benchmarks import build

    features.require_privileges()
    result = build.run(args.pods, args.repeat)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(f"{args.pods} pods on veth, up + down, median of {args.repeat}:")
        print(f"  lab (batched netlink): {result.lab_median:7.3f} s")
        print(f"  ip script:             {result.ip_median:7.3f} s")
        print(f"  speedup:               {result.speedup:7.1f}x")
    return 0


def cmd_prog(args: argparse.Namespace, datapaths: Sequence[Datapath] = DATAPATHS) -> int:
    cases = prog_cases(datapaths)
    if args.list or not args.name:
        if args.json:
            print(json.dumps({n: {"object": c.object, "program": c.program,
                                  "description": c.description} for n, c in cases.items()},
                             indent=2))
        else:
            for n, c in sorted(cases.items()):
                print(f"{n:<20} {c.object}:{c.program}  {c.description}")
        return 0
    case = bench.case_for(args.name, cases)
    features.require_bpf_privileges("lab bench prog")
    result = bench.measure(case, runs=args.runs, repeat=args.repeat, loop=args.loop)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.text())
    return 0
