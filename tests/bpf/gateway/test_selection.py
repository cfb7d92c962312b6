"""Backend selection over many flows, through BPF_PROG_TEST_RUN: 100k synthetic flows land on
each backend in proportion to its weight (Maglev and random), removing one of N backends
moves few of the other flows (Maglev's minimal disruption), and connections already in
conntrack keep their backend whatever the tables become."""

import struct
from collections import Counter
from ipaddress import IPv6Address

import pytest
from scapy.layers.inet import IP, TCP

from lab.bpf import testrun
from lab.bpf.object import BpfObject

from gw_helpers import COMBOS, ETH, GatewayUnderTest, ip4_checksum_fix, service

pytestmark = [pytest.mark.root, pytest.mark.heavy]

CLIENT, VIP, _, SNAT = COMBOS["46"]
FLOWS = 100_000
BACKENDS = [f"2001:db8:2::{i + 1:x}" for i in range(10)]


@pytest.fixture
def big_gateway(bpf_build):
    """The gateway with a conntrack table that holds 2 x FLOWS entries without evicting."""
    obj = BpfObject(bpf_build / "gateway.o")
    obj.set_max_entries("gw_ct", 1 << 19)
    obj.load()
    yield GatewayUnderTest(obj, "tc")
    obj.close()


def flows(n, flags="S", salt=0):
    """N distinct client flows to VIP:80: frames with correct IPv4 header checksums."""
    base = bytearray(bytes(ETH / IP(src=CLIENT, dst=VIP) / TCP(sport=1, dport=80, flags=flags)))
    for i in range(n):
        f = bytearray(base)
        struct.pack_into("!I", f, 26, 0x0A000000 + (i // 50) + salt * 65536)  # 10.x.y.z
        struct.pack_into("!H", f, 34, 1024 + (i % 50) * 997 % 64000)
        ip4_checksum_fix(f)
        yield bytes(f)


def backend_of(frame_out: bytes) -> str:
    """The destination of a frame the gateway turned into IPv6."""
    assert frame_out[12:14] == b"\x86\xdd"
    return str(IPv6Address(frame_out[38:54]))


def run_flows(gut, frames):
    out = []
    for f in frames:
        r = testrun.run(gut.prog, f)
        assert r.retval == 0, r.code       # TC_ACT_OK: rewritten
        out.append(backend_of(r.data))
    return out


@pytest.mark.parametrize("selection", ["maglev", "random"])
def test_shares_follow_weights(big_gateway, selection):
    weights = [1, 2, 3, 4]
    big_gateway.add(service(VIP, BACKENDS[:4], weights=weights, selection=selection))
    counts = Counter(run_flows(big_gateway, flows(FLOWS)))
    total = sum(weights)
    for b, w in zip(BACKENDS, weights):
        share = counts[b] / FLOWS
        assert abs(share - w / total) <= 0.02, (b, share, w / total, counts)
    assert big_gateway.gw.statistics()["outcomes"]["new"] == FLOWS


def test_maglev_removing_one_backend_moves_few_other_flows(big_gateway):
    n = len(BACKENDS)
    svc = big_gateway.add(service(VIP, BACKENDS))
    frames = list(flows(FLOWS))
    before = run_flows(big_gateway, frames)
    assert set(before) == set(BACKENDS)
    gone = svc.backends[3]
    big_gateway.gw.delete_backend(svc.id, gone.id)
    big_gateway.gw.flush_connections()       # every flow chooses again
    after = run_flows(big_gateway, frames)
    assert str(gone.address) not in after
    others = [(a, b) for a, b in zip(before, after) if a != str(gone.address)]
    moved = sum(a != b for a, b in others) / len(others)
    assert moved <= 1 / n + 0.02, moved
    # and the flows of the removed backend spread over the others
    orphans = Counter(b for a, b in zip(before, after) if a == str(gone.address))
    assert len(orphans) >= n - 2


def test_connections_keep_their_backend_across_table_changes(big_gateway):
    svc = big_gateway.add(service(VIP, BACKENDS[:5]))
    n = 20_000
    first = run_flows(big_gateway, flows(n))
    # a new table: one backend leaves, the others' weights change, one joins
    gone = svc.backends[0]
    spec = [b for b in svc.backends if b.id != gone.id]
    from dataclasses import replace
    spec = [replace(b, weight=1 + i * 3) for i, b in enumerate(spec)]
    from lab.datapath.gateway import Backend
    spec.append(Backend(IPv6Address(BACKENDS[7]), 8080, weight=5))
    big_gateway.gw.replace_service(svc.id, svc.with_backends(spec))
    before = big_gateway.gw.statistics()["outcomes"]
    later = run_flows(big_gateway, flows(n, flags="A"))
    assert later == first
    after = big_gateway.gw.statistics()["outcomes"]
    assert after["forward"] - before["forward"] == n and after["new"] == before["new"]
    assert str(gone.address) in first        # ... including the removed backend's flows
    fresh = Counter(run_flows(big_gateway, flows(n, salt=1)))
    assert str(gone.address) not in fresh and BACKENDS[7] in fresh
