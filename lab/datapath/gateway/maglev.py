"""Maglev lookup tables: consistent hashing with minimal disruption for the gateway's backends.

From "Maglev: A Fast and Reliable Software Network Load Balancer" (Eisenbud et al., NSDI 2016,
section 3.4). Every backend has its own permutation of the M table slots, from two hashes of
its name: slot j of its preference list is (offset + j * skip) mod M, which visits every slot
once because M is prime. Backends take turns; in its turn a backend claims the first slot of
its list that is still free. The table maps every slot to a backend; a flow goes to
table[hash(flow) mod M]. When a backend leaves, the others' preference lists are unchanged,
so most slots keep their backend (the paper's minimal disruption).

Weights, as Cilium's weighted Maglev applies them: the turns still go round the backends, but
a backend whose weight share says it has claimed enough slots for the table filled so far
passes its turn. Backend i may claim the n-th slot (n = 0, 1, ...) only while it holds no
more than (n + 1) * w_i / W slots, so each ends with M * w_i / W slots, within one.

The datapath indexes these tables (bpf/include/gw/lb.h); the control plane builds them here
and swaps them in whole (lab/datapath/gateway.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_TABLE_SIZE = 16381   # Cilium's default M; M should be well above 100 x backends
MAX_TABLE_SIZE = 131071      # the largest prime Cilium offers


@dataclass(frozen=True)
class Entry:
    """A backend as Maglev sees it: a stable name (its permutation), the id the table holds,
    and a weight (0: not in the table)."""
    name: str
    id: int
    weight: int = 1


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def check_table_size(m: int) -> int:
    if not isinstance(m, int) or isinstance(m, bool) or not 3 <= m <= MAX_TABLE_SIZE:
        raise ValueError(f"Maglev table size {m!r}: expected a prime from 3 to {MAX_TABLE_SIZE}")
    if not is_prime(m):
        raise ValueError(f"Maglev table size {m} is not a prime (Maglev's permutations need "
                         "one: e.g. 251, 1021, 4093, 16381, 65521)")
    return m


def permutation(name: str, m: int, seed: int = 0) -> tuple[int, int]:
    """(offset, skip) of NAME's preference list in a table of M slots: two independent 64-bit
    hashes of the name (BLAKE2b, keyed by the seed, so gateways with one seed agree)."""
    digest = hashlib.blake2b(name.encode(), digest_size=16,
                             key=seed.to_bytes(8, "little")).digest()
    h1 = int.from_bytes(digest[:8], "little")
    h2 = int.from_bytes(digest[8:], "little")
    return h1 % m, h2 % (m - 1) + 1


def build(entries: Sequence[Entry], m: int = DEFAULT_TABLE_SIZE, seed: int = 0) -> list[int]:
    """The lookup table: M backend ids. Entries are ordered by name first, so the table
    depends on the set of backends, not on the order they were given in. No entry with a
    positive weight: an empty list."""
    check_table_size(m)
    live = sorted((e for e in entries if e.weight > 0), key=lambda e: e.name)
    if len({e.name for e in live}) != len(live):
        raise ValueError("Maglev entries need distinct names")
    n = len(live)
    if n == 0:
        return []
    if n == 1:  # every preference list fills the table with its one backend
        return [live[0].id] * m
    if n > m:
        raise ValueError(f"{n} backends do not fit a Maglev table of {m} slots")
    offsets, skips = [], []
    for e in live:
        offset, skip = permutation(e.name, m, seed)
        offsets.append(offset)
        skips.append(skip)
    weights = [e.weight for e in live]
    total = sum(weights)
    equal = len(set(weights)) == 1
    nxt = [0] * n          # position in each backend's preference list
    claimed = [0] * n
    table = [-1] * m
    for slot_no in range(m):
        i = slot_no % n
        if not equal:
            # pass the turn on while backend i holds its share of slot_no + 1 slots
            while (slot_no + 1) * weights[i] < claimed[i] * total:
                i = (i + 1) % n
        offset, skip, j = offsets[i], skips[i], nxt[i]
        c = (offset + j * skip) % m
        while table[c] >= 0:
            j += 1
            c = (offset + j * skip) % m
        table[c] = live[i].id
        nxt[i] = j + 1
        claimed[i] += 1
    return table


def shares(table: Sequence[int]) -> dict[int, float]:
    """Fraction of the table each backend id holds."""
    out: dict[int, float] = {}
    for b in table:
        out[b] = out.get(b, 0) + 1
    return {b: c / len(table) for b, c in out.items()} if table else {}
