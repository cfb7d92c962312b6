"""BIG TCP step kinds: set the GSO/GRO limits of one address family along a path of a running
lab (`bigtcp_sizes`), and prove from the big packet counter what crossed the router and
server links since (`big_packet_proof`). The control itself is lab.datapath.bigtcp.

    steps:
      - {kind: bigtcp_sizes, with: {family: "${family}", size: "${size}"}}
      - {kind: iperf3, ...}           # fresh connections: the new limit applies to them
      - {kind: big_packet_proof, with: {family: "${family}"}}

`bigtcp_sizes` attaches the counter the first time (once per lab: it stays for the scenario
and goes with the lab) and zeroes it at every size change, so the proof covers exactly the
traffic measured at that size. The proof fails the scenario when BIG TCP is on along the
whole path and no packet above 64 KiB crossed a counted link end, or when it is off and one
did; the check says which link end and how many.
"""

from __future__ import annotations

import platform

from lab.datapath import bigtcp
from lab.scenarios.context import StepContext
from lab.scenarios.registry import Metric, step
from lab.topology import Topology

DEFAULT_PATH = list(bigtcp.DEFAULT_PATH)
DEFAULT_COUNTED = DEFAULT_PATH[1:]
OFF = "off"

FAMILY = {"enum": [4, 6], "description": "the address family whose limits change"}
NODES = {"type": "array", "minItems": 2, "items": {"type": "string"},
         "description": "the nodes of the path, in order (consecutive ones share a link)"}
SIZE = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": bigtcp.GRO_MAX_SIZE},
                  {"enum": [bigtcp.DEVICE_MAX, OFF]}],
        "description": "GSO/GRO limit in bytes; `max`: each device's tso_max_size; `off`: "
                       "the legacy 65536"}


def _check_path(p: dict, topo: Topology) -> tuple[str, str] | None:
    """The path's nodes exist and consecutive ones share a link; counted nodes are on it."""
    nodes = p.get("path", DEFAULT_PATH)
    for n in nodes:
        if n not in topo.nodes:
            return "path", f"no node '{n}' in topology {topo.file} (nodes: " \
                           f"{', '.join(topo.nodes)})"
    for a, b in zip(nodes, nodes[1:]):
        if not any(i.peer_node == b for i in topo.nodes[a].interfaces.values()):
            return "path", f"no link joins {a} and {b} in topology {topo.file}"
    for n in p.get("counted", DEFAULT_COUNTED):
        if n not in nodes:
            return "counted", f"node '{n}' is not on the path {' -- '.join(nodes)}"
    return None


def _size(value: int | str) -> int | str | None:
    return None if value == OFF else value


def _counter(ctx: StepContext, p: dict) -> bigtcp.BigPacketCounter:
    path = bigtcp.path(ctx.lab, *p["path"])
    ends = path.ends_on(*p["counted"])
    key = ("big-packet-counter", tuple(p["path"]), tuple(p["counted"]))
    return ctx.service(key, lambda: bigtcp.BigPacketCounter(ctx.lab, ends).attach())


PATH_PARAMS = {"path": {**NODES, "default": DEFAULT_PATH},
               "counted": {"type": "array", "minItems": 1, "items": {"type": "string"},
                           "default": DEFAULT_COUNTED,
                           "description": "the nodes whose path links the counter watches"}}


@step("bigtcp_sizes", check=_check_path,
      schema={"type": "object", "additionalProperties": False, "required": ["family", "size"],
              "properties": {"family": FAMILY, "size": SIZE, **PATH_PARAMS}},
      metrics={"gso_size": Metric("bytes", "none", "GSO limit set on the path (smallest end)"),
               "gro_size": Metric("bytes", "none", "GRO limit set on the path (smallest end)")})
def bigtcp_sizes(ctx: StepContext, p: dict) -> None:
    """Set one family's GSO/GRO limits on every link end of a path; start counting afresh."""
    path = bigtcp.path(ctx.lab, *p["path"])
    counter = _counter(ctx, p)
    ctx.status(f"IPv{p['family']} GSO/GRO {p['size']}")
    settings = bigtcp.set_sizes(ctx.lab, path.ends, p["family"], _size(p["size"]))
    counter.reset()
    gso_attr, gro_attr = bigtcp.FAMILY_ATTRS[p["family"]]
    ctx.record("gso_size", min(s[gso_attr] for s in settings.values()))
    ctx.record("gro_size", min(s[gro_attr] for s in settings.values()))
    ctx.fact("link_settings", settings)


@step("big_packet_proof", check=_check_path,
      schema={"type": "object", "additionalProperties": False, "required": ["family"],
              "properties": {
                  "family": FAMILY, **PATH_PARAMS,
                  "expect": {"enum": ["auto", "big", "none"], "default": "auto",
                             "description": "`auto`: packets above 64 KiB on every counted "
                                            "link end if BIG TCP is on along the whole path, "
                                            "none if it is off everywhere"}}},
      metrics={"big_packets": Metric("packets", "none",
                                     "IP packets above 64 KiB on the counted link ends"),
               "largest": Metric("bytes", "none", "largest packet seen (Ethernet included)"),
               "packets": Metric("packets", "none", "packets seen on the counted link ends")})
def big_packet_proof(ctx: StepContext, p: dict) -> None:
    """Packets above 64 KiB on the router and server links since the last size change: present
    with BIG TCP on, absent with it off; and how the kernel marked them."""
    family = p["family"]
    counter = _counter(ctx, p)
    reading = counter.read()
    state = bigtcp.state(bigtcp.path(ctx.lab, *p["path"]))
    on = [s.big_tcp(family) for s in state]
    expect = p["expect"]
    if expect == "auto":
        expect = "big" if all(on) else "none" if not any(on) else "unknown"
    big = reading.big_packets(family=family)
    ctx.record("big_packets", big)
    ctx.record("largest", reading.largest(family=family))
    ctx.record("packets", reading.packets(family=family))
    ctx.fact("counts", reading.to_dict()["counts"])
    if big:
        # How this kernel marks them: IPv6 changed from a hop-by-hop jumbo option to a bare
        # zero payload length in 2026, so the kernel release goes with it.
        ctx.fact(f"ipv{family}_above_64k", {"kernel": platform.release(),
                                            "marked_as": reading.lenfields(family)})
    if expect == "big":
        for end in (e.label for e in counter.ends):
            n = reading.big_packets(family=family, end=end)
            ctx.check(n > 0, f"IPv{family} packets above 64 KiB crossed {end} with BIG TCP on "
                      f"({reading.summary(family)})", measured=n, expected="> 0")
    elif expect == "none":
        ctx.check(big == 0, f"no IPv{family} packet above 64 KiB crossed the counted links "
                  f"with BIG TCP off ({reading.summary(family)})", measured=big, expected=0)
    else:
        ctx.fact("expectation", f"BIG TCP for IPv{family} is on at only some link ends: "
                                "nothing to assert")


STEP_KINDS = (bigtcp_sizes, big_packet_proof)
