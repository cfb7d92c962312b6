"""`lab bigtcp`: BIG TCP on a running lab: show or set the GSO/GRO limits along a path, and
count the packets above 64 KB that cross its links for a while."""

from __future__ import annotations

import json
import time

from lab import features
from lab.datapath import bigtcp
from lab.digits import parse_int, real_arg
from lab.errors import UsageError
from lab.lab import Lab


def register(sub) -> None:
    p = sub.add_parser(
        "bigtcp", help="show or set BIG TCP (GSO/GRO limits) along a path of a running lab",
        description="Show the GSO/GRO limits of every link end along a path of a running lab, "
                    "set them per address family (bytes up to each device's tso_max_size, "
                    "`max` for that, `off` for the legacy 65536), and with --count attach "
                    "the big packet counter to the links of the path's other nodes and "
                    "print what crossed them. New limits apply to connections opened after.")
    p.add_argument("lab", help="name of a running lab (see `lab status`)")
    p.add_argument("--path", default=",".join(bigtcp.DEFAULT_PATH), metavar="NODES",
                   help="nodes along the path, comma-separated (default: %(default)s)")
    p.add_argument("--ipv6", metavar="SIZE", help="IPv6 GSO/GRO limit: bytes, max or off")
    p.add_argument("--ipv4", metavar="SIZE", help="IPv4 GSO/GRO limit: bytes, max or off")
    p.add_argument("--count", metavar="SECONDS", type=real_arg(0.1),
                   help="count packets on the links for SECONDS (run traffic meanwhile)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_bigtcp)


def parse_size(text: str, option: str) -> bigtcp.Size:
    if text == "off":
        return None
    if text == bigtcp.DEVICE_MAX:
        return text
    try:
        return parse_int(text)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not a size (decimal bytes, max or off)"
                         ) from None


def cmd_bigtcp(args) -> int:
    features.require_privileges()
    lab = Lab.running(args.lab)
    path = bigtcp.path(lab, *[n for n in args.path.split(",") if n])
    for family, text in ((6, args.ipv6), (4, args.ipv4)):
        if text is not None:
            bigtcp.set_sizes(lab, path.ends, family, parse_size(text, f"--ipv{family}"))
    reading = None
    if args.count is not None:
        if args.count <= 0:
            raise UsageError("--count: give a number of seconds above 0")
        with bigtcp.BigPacketCounter(lab, path.ends_on(*path.nodes[1:])) as counter:
            time.sleep(args.count)
            reading = counter.read()
    states = bigtcp.state(path)
    if args.json:
        out = {"path": list(path.nodes), "ends": [s.to_dict() for s in states]}
        if reading is not None:
            out["counts"] = reading.to_dict()["counts"]
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'link end':<22} {'mtu':>5} {'tso_max':>8} {'IPv6 gso/gro':>15} "
          f"{'IPv4 gso/gro':>15}")
    for s in states:
        print(f"{s.end:<22} {s.mtu:>5} {s.tso_max_size:>8} "
              f"{f'{s.gso[6]}/{s.gro[6]}':>15} {f'{s.gso[4]}/{s.gro[4]}':>15}")
    if reading is not None:
        print()
        print(reading.table())
    return 0
