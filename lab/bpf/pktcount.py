"""The packet counter (bpf/pktcount.c; bpf/pktcount_dir.c per direction) from Python: its
counts as rows, the BIG TCP proof (IP packets too long for their header's 16-bit length field
crossed a device, and how the kernel marked them), and its bench cases.

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
DIR_OBJECT = "pktcount_dir"  # the same counter with the direction in the key
INGRESS_PROGRAM = "pktcount_ingress"
EGRESS_PROGRAM = "pktcount_egress"
MAP = "pktcount"
HOOKS = {1: "tc", 2: "xdp", 3: "ingress", 4: "egress"}  # enum pktcount_hook
BIG_BUCKET = 16              # bucket N holds lengths in [2^N, 2^(N+1)): 16 is 64 KiB and up

# enum pktcount_lenfield: how the IP header gives the length.
LEN_HEADER = "header"        # in its length field, as usual
LEN_JUMBO_HBH = "hbh-jumbo"  # IPv6 payload length 0 + hop-by-hop Jumbo Payload option (RFC 2675)
LEN_ZERO = "zero"            # length field 0, nothing else: the packet's own length counts
LENFIELDS = {0: LEN_HEADER, 1: LEN_JUMBO_HBH, 2: LEN_ZERO}


@dataclass(frozen=True)
class Count:
    ifindex: int
    family: int          # 4, 6, or 0 (not IP)
    l4proto: int
    bucket: int
    hook: str
    lenfield: str        # LEN_HEADER, LEN_JUMBO_HBH or LEN_ZERO
    packets: int
    bytes: int
    segments: int
    max_len: int         # the longest packet (L2 header included, like `bytes`)

    @property
    def jumbo(self) -> bool:
        """IP packets longer than their 16-bit length field can say: only BIG TCP makes them."""
        return self.family in (4, 6) and self.lenfield != LEN_HEADER

    @property
    def lengths(self) -> tuple[int, int]:
        """The packet lengths this bucket holds (inclusive)."""
        return 1 << self.bucket, (1 << (self.bucket + 1)) - 1

    def to_dict(self) -> dict:
        return asdict(self)


def read(counts: Map) -> list[Count]:
    """Every row of the counter map, per-CPU values added up (the maximum taken for max_len),
    sorted by device and bucket."""
    rows = []
    for key, value in counts.items():
        per_cpu = value if counts.percpu else [value]
        rows.append(Count(key.ifindex, key.family, key.l4proto, key.bucket,
                          HOOKS.get(key.hook, str(key.hook)),
                          LENFIELDS.get(key.lenfield, str(key.lenfield)),
                          sum(v.packets for v in per_cpu), sum(v.bytes for v in per_cpu),
                          sum(v.segments for v in per_cpu), max(v.max_len for v in per_cpu)))
    return sorted(rows, key=lambda c: (c.ifindex, c.hook, c.family, c.l4proto, c.bucket,
                                       c.lenfield))


def big_packets(rows: Iterable[Count], ifindex: int | None = None,
                hook: str | None = None) -> int:
    """IP packets above 64 KiB (too long for their header's length field: only BIG TCP makes
    those), on IFINDEX (and HOOK) or anywhere."""
    return sum(c.packets for c in rows if c.jumbo and (ifindex is None or c.ifindex == ifindex)
               and (hook is None or c.hook == hook))


def lenfields(rows: Iterable[Count], family: int) -> set[str]:
    """How the kernel marked FAMILY's packets above 64 KiB (empty if there were none)."""
    return {c.lenfield for c in rows if c.jumbo and c.family == family}


def table(rows: Iterable[Count]) -> str:
    lines = [f"{'ifindex':>7} {'hook':<7} {'ip':>2} {'proto':>5} {'length':>17} "
             f"{'lenfield':<9} {'packets':>10} {'bytes':>14} {'segments':>10} {'largest':>8}"]
    for c in rows:
        lo, hi = c.lengths
        lines.append(f"{c.ifindex:>7} {c.hook:<7} {c.family or '-':>2} {c.l4proto:>5} "
                     f"{f'{lo}-{hi}':>17} {c.lenfield:<9} {c.packets:>10} {c.bytes:>14} "
                     f"{c.segments:>10} {c.max_len:>8}")
    return "\n".join(lines)


# `lab bench prog` cases of the counter itself.
BENCH_CASES = (
    bench.BenchCase("pktcount-tc", OBJECT, TC_PROGRAM, bench.default_mix,
                    description="packet counter at tc (per-CPU hash update per packet)"),
    bench.BenchCase("pktcount-xdp", OBJECT, XDP_PROGRAM, bench.default_mix,
                    description="packet counter at XDP (per-CPU hash update per packet)"),
)
