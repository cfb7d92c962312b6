"""`lab reach`: ping between every pair of nodes that share an address family."""

from __future__ import annotations

import json
from dataclasses import asdict

from lab.datapath.registry import DATAPATHS
from lab.lab import Lab
from lab.reach import reachability


def register(sub) -> None:
    p = sub.add_parser("reach", help="ping every node pair sharing an address family",
                       description="Within a family every pair must reach; exit 1 otherwise. "
                                   "Give a running lab's name, or a topology file to bring up, "
                                   "check and tear down.")
    p.add_argument("lab", help="lab name, or a topology file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_reach)


def cmd_reach(args) -> int:
    if args.lab.endswith((".yaml", ".yml")):
        with Lab.from_file(args.lab, datapaths=DATAPATHS) as lab:
            probes = reachability(lab)
    else:
        probes = reachability(Lab.running(args.lab))
    failed = [p for p in probes if not p.ok]
    if args.json:
        print(json.dumps([asdict(p) for p in probes], indent=2))
    else:
        for p in probes:
            rtt = f"{p.rtt_ms:.3f} ms" if p.rtt_ms is not None else "unreachable"
            print(f"  {p.src:>14} -> {p.dst:<14} {p.address:<22} {rtt}")
        print(f"{len(probes) - len(failed)}/{len(probes)} pairs reach each other")
    return 1 if failed else 0
