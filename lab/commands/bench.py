"""`lab bench build`: how fast the lab builds a node with N pods, next to an `ip` script."""

from __future__ import annotations

import json

from lab import features
from lab.cli import subcommand_group


def register(sub) -> None:
    group = subcommand_group(sub, "bench", "benchmarks (medians of repeats, side by side)")
    p = group.add_parser("build", help="lab up+down of N pods vs an equivalent `ip` script")
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_build)


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
