"""`lab doctor`: what this machine can do for the lab, each answer with its reason."""

from __future__ import annotations

import json
import platform

from lab import features


def register(sub) -> None:
    p = sub.add_parser("doctor", help="kernel and tool capabilities, privileges",
                       description="Check privileges, kernel features (netns, veth, netkit, "
                                   "tcx, XDP, BIG TCP, BPF helpers) and tools.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args) -> int:
    caps = features.collect()
    if args.json:
        print(json.dumps({"kernel": platform.release(),
                          "capabilities": [c.as_dict() for c in caps]}, indent=2))
    else:
        print(f"kernel {platform.release()}")
        width = max(len(c.name) for c in caps)
        for c in caps:
            print(f"  {c.name:<{width}}  {'yes' if c.ok else 'no ':<3}  {c.detail}")
    return 0 if caps[0].ok else 2
