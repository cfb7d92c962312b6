"""How the packet counter reads the IP length field, packet by packet through
BPF_PROG_TEST_RUN: BIG TCP packets are the ones whose length the 16-bit field cannot hold,
marked by IPv4 with tot_len 0, by IPv6 either with a hop-by-hop Jumbo Payload option
(RFC 2675) or, since 2026's kernels, with payload length 0 alone."""

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import HBHOptUnknown, IPv6, IPv6ExtHdrHopByHop, Jumbo
from scapy.layers.l2 import Ether

from lab.bpf import pktcount
from lab.bpf.testing import run_packet

pytestmark = pytest.mark.root

ETH = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
SRC6, DST6 = "2001:db8:1::2", "2001:db8:2::2"


def _rows(load_bpf, program, *packets):
    obj = load_bpf("pktcount")
    for pkt in packets:
        out = run_packet(obj.program(program), pkt)
        assert out.passed and bytes(out.packet) == bytes(pkt)  # an observer: unchanged
    return pktcount.read(obj.map(pktcount.MAP))


@pytest.mark.parametrize("packet, family, lenfield", [
    (ETH / IP(dst="203.0.113.2") / TCP(), 4, pktcount.LEN_HEADER),
    (ETH / IP(dst="203.0.113.2", len=0) / TCP(), 4, pktcount.LEN_ZERO),
    (ETH / IPv6(src=SRC6, dst=DST6) / TCP(), 6, pktcount.LEN_HEADER),
    (ETH / IPv6(src=SRC6, dst=DST6, plen=0) / IPv6ExtHdrHopByHop(
        options=[Jumbo(jumboplen=150_000)]) / TCP(), 6, pktcount.LEN_JUMBO_HBH),
    (ETH / IPv6(src=SRC6, dst=DST6, plen=0) / TCP(), 6, pktcount.LEN_ZERO),
    # A hop-by-hop header that is not a jumbogram's (router alert) leaves the length alone.
    (ETH / IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrHopByHop(
        options=[HBHOptUnknown(otype=5, optdata=b"\0\0")]) / TCP(), 6, pktcount.LEN_HEADER),
])
@pytest.mark.parametrize("program", ["pktcount_tc", "pktcount_xdp"])
def test_length_field_is_classified_at_tc_and_xdp(load_bpf, program, packet, family, lenfield):
    rows = _rows(load_bpf, program, packet)
    assert [(r.family, r.l4proto, r.lenfield) for r in rows] == [(family, 6, lenfield)]
    assert rows[0].jumbo == (lenfield != pktcount.LEN_HEADER)
    assert pktcount.lenfields(rows, family) == ({lenfield} - {pktcount.LEN_HEADER})


def test_directional_programs_say_where_they_counted(load_bpf):
    obj = load_bpf(pktcount.DIR_OBJECT)
    pkt = ETH / IP(dst="203.0.113.2") / TCP()
    run_packet(obj.program(pktcount.INGRESS_PROGRAM), pkt)
    run_packet(obj.program(pktcount.EGRESS_PROGRAM), pkt)
    run_packet(obj.program(pktcount.EGRESS_PROGRAM), pkt)
    rows = pktcount.read(obj.map(pktcount.MAP))
    assert {r.hook: r.packets for r in rows} == {"ingress": 1, "egress": 2}


def test_largest_packet_is_the_maximum_not_a_sum(load_bpf):
    sizes = [100, 900, 300]
    rows = _rows(load_bpf, "pktcount_tc",
                 *[ETH / IP(dst="203.0.113.2") / TCP() / bytes(n - 54) for n in sizes])
    assert [(r.bucket, r.packets, r.max_len) for r in rows] == [(6, 1, 100), (8, 1, 300),
                                                               (9, 1, 900)]
