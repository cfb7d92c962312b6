"""BIG TCP on a running lab: the GSO/GRO limits of the links along a path, per address family,
and the proof that packets above 64 KiB crossed them.

    path = bigtcp.path(lab, "client", "router", "server")
    bigtcp.enable(path, 6, 185000)              # IPv6 BIG TCP at 185000 bytes on every end
    bigtcp.enable(path, 4, bigtcp.DEVICE_MAX)   # IPv4 up to each device's tso_max_size
    bigtcp.disable(path, 6)                     # back to the legacy 64 KiB
    with bigtcp.BigPacketCounter(lab, path.ends_on("router", "server")) as counter:
        ...  # traffic on connections opened after the sizes were set
        reading = counter.read()
        reading.big_packets(family=6), reading.lenfields(6), print(reading.table())

Kernel facts this module is built around:
- IPv6 BIG TCP takes gso_max_size/gro_max_size (kernel 5.19+), IPv4 takes
  gso_ipv4_max_size/gro_ipv4_max_size (6.3+), each at most the device's tso_max_size (GSO) or
  GRO_MAX_SIZE. Setting an IPv6 size of 64 KiB or less also sets the IPv4 one to it, so
  changing IPv6 re-asserts the IPv4 sizes (NodeHandle.set_link orders IPv6 first).
- A socket takes its GSO limit when it connects: new limits apply to connections opened
  afterwards.
- An IPv4 packet above 64 KiB has tot_len 0. An IPv6 one had payload length 0 and a
  hop-by-hop Jumbo Payload option (RFC 2675) up to 2025's kernels; 2026's dropped the option
  and leave payload length 0 alone. The counter (bpf/pktcount_dir.c) tells these apart.
- With the hop-by-hop option, a router's MTU check for forwarded GSO packets counts the 8
  option bytes as if every segment carried them (skb_gso_validate_network_len), so super-
  packets from a sender whose MTU equals the router's egress MTU are answered with ICMPv6
  Packet Too Big. topologies/bigtcp.yaml gives the end hosts FORWARDING_HEADROOM bytes less
  MTU for that reason (the kernel's selftest big_tcp.sh does the same, with 1442).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.bpf import attach, pktcount
from lab.bpf.object import BpfObject
from lab.bpf.topology import maps_pin_dir, node_pin_dir
from lab.errors import LabError, UsageError
from lab.features import GSO_LEGACY_MAX_SIZE
from lab.journal import PinDir
from lab.lab import Lab

log = logging.getLogger("lab.bigtcp")

GRO_MAX_SIZE = 8 * 65535       # the kernel's GRO_MAX_SIZE (and GSO_MAX_SIZE): 524280
DEVICE_MAX = "max"             # a size meaning "each device's tso_max_size"
FORWARDING_HEADROOM = 8        # the hop-by-hop jumbo header a router's MTU check counts
FAMILY_ATTRS = {6: ("gso_max_size", "gro_max_size"),
                4: ("gso_ipv4_max_size", "gro_ipv4_max_size")}
FAMILIES = (6, 4)
DEFAULT_PATH = ("client", "router", "server")   # the nodes of topologies/bigtcp.yaml
DIRECTIONS = ("ingress", "egress")

Size = int | str | None        # bytes, DEVICE_MAX, or None for the legacy 64 KiB


# -- the links of a path ------------------------------------------------------------------------

@dataclass(frozen=True)
class End:
    """One end of a link: a device in a node."""
    node: str
    ifname: str

    @property
    def label(self) -> str:
        return f"{self.node}:{self.ifname}"


@dataclass(frozen=True)
class LinkPath:
    """The links joining consecutive nodes, each as its two ends (a towards the first node)."""
    lab: Lab
    nodes: tuple[str, ...]
    hops: tuple[tuple[End, End], ...]

    @property
    def ends(self) -> list[End]:
        return [end for hop in self.hops for end in hop]

    def ends_on(self, *nodes: str) -> list[End]:
        """The ends of the path's links that sit in NODES (e.g. the router's and the server's)."""
        unknown = set(nodes) - set(self.nodes)
        if unknown:
            raise UsageError(f"node(s) {', '.join(sorted(unknown))} not on the path "
                             f"{' -- '.join(self.nodes)}")
        return [e for e in self.ends if e.node in nodes]

    def __str__(self) -> str:
        return ", ".join(f"{a.label}--{b.label}" for a, b in self.hops)


def path(lab: Lab, *nodes: str) -> LinkPath:
    """The path through NODES of LAB (consecutive nodes must share a link)."""
    if len(nodes) < 2:
        raise UsageError("a path needs at least two nodes")
    hops = []
    for a, b in zip(nodes, nodes[1:]):
        ifaces = [i for i in lab.node(a).interfaces.values() if i.peer_node == b]
        if not ifaces:
            raise UsageError(f"lab '{lab.name}': no link joins {a} and {b}")
        hops.append((End(a, ifaces[0].ifname), End(b, ifaces[0].peer_ifname)))
    return LinkPath(lab, tuple(nodes), tuple(hops))


# -- GSO/GRO sizes --------------------------------------------------------------------------------

def _family(family: int) -> int:
    if family not in FAMILY_ATTRS:
        raise UsageError(f"BIG TCP is per address family 4 or 6, not {family!r}")
    return family


def resolve_size(size: Size, end: End, tso_max_size: int) -> tuple[int, int]:
    """(GSO size, GRO size) for SIZE on a device whose tso_max_size is TSO_MAX_SIZE; a size the
    device cannot take is refused with the device, the size and its limit."""
    if size is None:
        return GSO_LEGACY_MAX_SIZE, GSO_LEGACY_MAX_SIZE
    if size == DEVICE_MAX:
        return tso_max_size, min(tso_max_size, GRO_MAX_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise UsageError(f"{end.label}: a GSO/GRO size is a positive number of bytes or "
                         f"'{DEVICE_MAX}', not {size!r}")
    if size > tso_max_size:
        raise UsageError(f"{end.label}: size {size} is above the device's tso_max_size "
                         f"{tso_max_size} (the largest GSO packet it takes); use at most "
                         f"{tso_max_size} or '{DEVICE_MAX}'")
    if size > GRO_MAX_SIZE:
        raise UsageError(f"{end.label}: size {size} is above the kernel's GRO_MAX_SIZE "
                         f"{GRO_MAX_SIZE}")
    return size, size


def set_sizes(lab: Lab, ends: Iterable[End], family: int, size: Size) -> dict[str, dict]:
    """Set FAMILY's GSO and GRO limits on ENDS (None: the legacy 64 KiB); return every end's
    settings as the kernel has them afterwards, by end label.

    Sizes are checked against every device before any is changed, so a refusal leaves the
    path as it was."""
    family = _family(family)
    gso_attr, gro_attr = FAMILY_ATTRS[family]
    plan = []
    for end in ends:
        node = lab.node(end.node)
        now = node.link_settings(end.ifname)
        gso, gro = resolve_size(size, end, now["tso_max_size"])
        wanted = {gso_attr: gso, gro_attr: gro}
        if family == 6:
            # The kernel copies an IPv6 size of 64 KiB or less into the IPv4 one: keep IPv4's.
            wanted.update({a: now[a] for a in FAMILY_ATTRS[4]})
        plan.append((node, end, wanted))
    out = {}
    for node, end, wanted in plan:
        node.set_link(end.ifname, **wanted)
        out[end.label] = node.link_settings(end.ifname)
        log.info("%s: IPv%d GSO/GRO %d/%d", end.label, family, wanted[gso_attr],
                 wanted[gro_attr])
    return out


def enable(p: LinkPath, family: int, size: Size = DEVICE_MAX) -> dict[str, dict]:
    """BIG TCP for FAMILY on every end of path P at SIZE bytes (default: each device's max)."""
    if size is None:
        raise UsageError("enable() needs a size; disable() goes back to 64 KiB")
    return set_sizes(p.lab, p.ends, family, size)


def disable(p: LinkPath, family: int) -> dict[str, dict]:
    """FAMILY back to the legacy 64 KiB GSO/GRO limits on every end of path P."""
    return set_sizes(p.lab, p.ends, family, None)


@dataclass(frozen=True)
class EndState:
    end: str
    gso: dict[int, int]        # family -> GSO limit
    gro: dict[int, int]
    tso_max_size: int
    mtu: int

    def big_tcp(self, family: int) -> bool:
        return self.gso[family] > GSO_LEGACY_MAX_SIZE or self.gro[family] > GSO_LEGACY_MAX_SIZE

    def to_dict(self) -> dict:
        return asdict(self)


def state(p: LinkPath) -> list[EndState]:
    """The GSO/GRO limits of every end of P as the kernel has them."""
    out = []
    for end in p.ends:
        s = p.lab.node(end.node).link_settings(end.ifname)
        out.append(EndState(end.label, {f: s[FAMILY_ATTRS[f][0]] for f in FAMILIES},
                            {f: s[FAMILY_ATTRS[f][1]] for f in FAMILIES}, s["tso_max_size"],
                            s["mtu"]))
    return out


# -- the proof: packets above 64 KiB per link -----------------------------------------------------

@dataclass(frozen=True)
class LinkCount:
    """What crossed one end in one direction, for one IP version."""
    end: str               # node:ifname
    direction: str         # ingress | egress
    family: int
    packets: int
    big_packets: int       # IP packets above 64 KiB (too long for their 16-bit length field)
    largest: int           # bytes, Ethernet header included
    segments: int          # wire segments the packets stand for
    lenfields: tuple[str, ...] = ()  # how the big ones were marked (pktcount.LEN_*)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reading:
    """One read of the counters: a LinkCount per end, direction and IP version."""
    counts: list[LinkCount] = field(default_factory=list)

    def select(self, family: int | None = None, end: str | None = None,
               direction: str | None = None) -> list[LinkCount]:
        return [c for c in self.counts if (family is None or c.family == family)
                and (end is None or c.end == end)
                and (direction is None or c.direction == direction)]

    def big_packets(self, **where: Any) -> int:
        return sum(c.big_packets for c in self.select(**where))

    def packets(self, **where: Any) -> int:
        return sum(c.packets for c in self.select(**where))

    def largest(self, **where: Any) -> int:
        return max((c.largest for c in self.select(**where)), default=0)

    def lenfields(self, family: int) -> list[str]:
        """How FAMILY's packets above 64 KiB were marked (sorted; empty if none crossed)."""
        return sorted({lf for c in self.select(family=family) for lf in c.lenfields})

    def summary(self, family: int | None = None) -> str:
        """One line per end and direction: the largest packet and how many were above 64 KiB."""
        return "; ".join(f"{c.end} {c.direction} IPv{c.family}: largest {c.largest} B, "
                         f"{c.big_packets} of {c.packets} above 64 KiB"
                         for c in self.select(family=family))

    def table(self) -> str:
        head = (f"{'link end':<22} {'dir':<7} {'ip':>2} {'packets':>9} {'>64KiB':>8} "
                f"{'largest':>8} {'segments':>9}  marked as")
        lines = [head]
        for c in self.counts:
            lines.append(f"{c.end:<22} {c.direction:<7} {c.family:>2} {c.packets:>9} "
                         f"{c.big_packets:>8} {c.largest:>8} {c.segments:>9}  "
                         f"{','.join(c.lenfields) or '-'}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"counts": [c.to_dict() for c in self.counts]}


class BigPacketCounter:
    """pktcount_dir on both directions of ENDS, one object per node through the lab's BPF
    loader: maps pinned under <lab pin dir>/<node>/pktcount_dir/, links under
    <lab pin dir>/<node>/. The lab's pin directory is journaled before anything is pinned,
    so `lab down` removes whatever a crashed run left; close() detaches and unpins at once."""

    def __init__(self, lab: Lab, ends: Iterable[End]):
        self.lab = lab
        self.ends = list(ends)
        if not self.ends:
            raise UsageError("the big packet counter needs at least one link end")
        self._objects: dict[str, BpfObject] = {}
        self._attachments: list[tuple[End, attach.Attachment]] = []
        self._ifindex: dict[tuple[str, int], End] = {}

    # -- attach and detach ---------------------------------------------------------------------

    def attach(self) -> BigPacketCounter:
        if self._objects:
            return self
        if str(self.lab.pin_dir) not in self.lab.record.inventory().pin_dirs:
            self.lab.record.append(PinDir(str(self.lab.pin_dir)))
        try:
            for end in self.ends:
                node = self.lab.node(end.node)
                obj = self._object(end.node)
                self._ifindex[(end.node, node.interfaces[end.ifname].ifindex)] = end
                for direction in DIRECTIONS:
                    prog = obj.program(pktcount.INGRESS_PROGRAM if direction == "ingress"
                                       else pktcount.EGRESS_PROGRAM)
                    rec = attach.attach(prog, direction, end.ifname,
                                        pin_dir=str(node_pin_dir(self.lab.pin_dir, end.node)),
                                        pin_name=f"{end.ifname}:{direction}:{prog.name}",
                                        netns=node.netns)
                    self._attachments.append((end, rec))
        except BaseException:
            self.close()
            raise
        log.info("big packet counter on %s", ", ".join(e.label for e in self.ends))
        return self

    def _object(self, node: str) -> BpfObject:
        obj = self._objects.get(node)
        if obj is None:
            obj = BpfObject(pktcount.DIR_OBJECT, str(maps_pin_dir(self.lab.pin_dir, node,
                                                                  pktcount.DIR_OBJECT)))
            try:
                obj.load()
                obj.map(pktcount.MAP).clear()  # a pinned map left by an earlier counter
            except BaseException:
                obj.close()
                raise
            self._objects[node] = obj
        return obj

    def close(self) -> None:
        """Detach every program and remove the pins this counter made."""
        errors = []
        for end, rec in reversed(self._attachments):
            try:
                attach.detach(rec)
            except LabError as e:
                errors.append(f"{end.label}: {e}")
        self._attachments.clear()
        for node, obj in self._objects.items():
            with contextlib.suppress(OSError):
                obj.unpin_maps()
            obj.close()
            # Directories only if empty: programs a topology attached may share them.
            for d in (maps_pin_dir(self.lab.pin_dir, node, pktcount.DIR_OBJECT),
                      node_pin_dir(self.lab.pin_dir, node)):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
        self._objects.clear()
        if errors:
            raise LabError("detaching the big packet counter: " + "; ".join(errors))

    def __enter__(self) -> BigPacketCounter:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- counts ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start counting afresh (e.g. between two measurements)."""
        for obj in self._objects.values():
            obj.map(pktcount.MAP).clear()

    def rows(self) -> dict[str, list[pktcount.Count]]:
        """The raw counter rows, by node."""
        if not self._objects:
            raise LabError("the big packet counter is not attached")
        return {node: pktcount.read(obj.map(pktcount.MAP))
                for node, obj in self._objects.items()}

    def read(self) -> Reading:
        acc: dict[tuple[str, str, int], dict] = defaultdict(
            lambda: {"packets": 0, "big": 0, "largest": 0, "segments": 0, "lenfields": set()})
        for node, rows in self.rows().items():
            for row in rows:
                end = self._ifindex.get((node, row.ifindex))
                if end is None or row.family not in FAMILIES or row.hook not in DIRECTIONS:
                    continue
                a = acc[(end.label, row.hook, row.family)]
                a["packets"] += row.packets
                a["segments"] += row.segments
                a["largest"] = max(a["largest"], row.max_len)
                if row.jumbo:
                    a["big"] += row.packets
                    a["lenfields"].add(row.lenfield)
        order = {e.label: i for i, e in enumerate(self.ends)}
        counts = [LinkCount(end, direction, family, a["packets"], a["big"], a["largest"],
                            a["segments"], tuple(sorted(a["lenfields"])))
                  for (end, direction, family), a in acc.items()]
        counts.sort(key=lambda c: (order[c.end], DIRECTIONS.index(c.direction), -c.family))
        return Reading(counts)

