"""The packet counter (bpf/pktcount.c) from Python: its counts as rows, the BIG TCP proof
(packets of 64 KiB or more crossed a device), and its bench cases.

Key and value types come from the object's BTF, so nothing here repeats the C structs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from lab.bpf import bench
from lab.bpf.maps import Map

OBJECT = "pktcount"
TC_PROGRAM = "pktcount_tc"
XDP_PROGRAM = "pktcount_xdp"
MAP = "pktcount"
HOOKS = {1: "tc", 2: "xdp"}  # enum pktcount_hook
BIG_BUCKET = 16              # bucket N holds lengths in [2^N, 2^(N+1)): 16 is 64 KiB and up


@dataclass(frozen=True)
class Count:
    ifindex: int
    family: int          # 4, 6, or 0 (not IP)
    l4proto: int
    bucket: int
    hook: str
    packets: int
    bytes: int
    segments: int

    @property
    def lengths(self) -> tuple[int, int]:
        """The packet lengths this bucket holds (inclusive)."""
        return 1 << self.bucket, (1 << (self.bucket + 1)) - 1

    def to_dict(self) -> dict:
        return asdict(self)


def read(counts: Map) -> list[Count]:
    """Every row of the counter map, per-CPU values added up, sorted by device and bucket."""
    rows = []
    for key, per_cpu in counts.items():
        total = counts.lookup_sum(key) if counts.percpu else per_cpu
        rows.append(Count(key.ifindex, key.family, key.l4proto, key.bucket,
                          HOOKS.get(key.hook, str(key.hook)), total.packets, total.bytes,
                          total.segments))
    return sorted(rows, key=lambda c: (c.ifindex, c.hook, c.family, c.l4proto, c.bucket))


def big_packets(rows: Iterable[Count], ifindex: int | None = None) -> int:
    """Packets of 64 KiB or more (only BIG TCP makes those), on IFINDEX or anywhere."""
    return sum(c.packets for c in rows
               if c.bucket >= BIG_BUCKET and (ifindex is None or c.ifindex == ifindex))


def table(rows: Iterable[Count]) -> str:
    lines = [f"{'ifindex':>7} {'hook':<4} {'ip':>2} {'proto':>5} {'length':>17} "
             f"{'packets':>10} {'bytes':>14} {'segments':>10}"]
    for c in rows:
        lo, hi = c.lengths
        lines.append(f"{c.ifindex:>7} {c.hook:<4} {c.family or '-':>2} {c.l4proto:>5} "
                     f"{f'{lo}-{hi}':>17} {c.packets:>10} {c.bytes:>14} {c.segments:>10}")
    return "\n".join(lines)


bench.register(bench.BenchCase(
    "pktcount-tc", OBJECT, TC_PROGRAM, bench.default_mix,
    description="packet counter at tc (per-CPU hash update per packet)"))
bench.register(bench.BenchCase(
    "pktcount-xdp", OBJECT, XDP_PROGRAM, bench.default_mix,
    description="packet counter at XDP (per-CPU hash update per packet)"))
