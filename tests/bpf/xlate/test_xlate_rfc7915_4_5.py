"""RFC 7915 4.5 and 5.5, transport-layer checksums: adjusted for the new pseudo-header,
computed for IPv4 UDP without one, never turned into "no checksum", and never turned from
wrong into right."""

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment
from scapy.packet import Raw

from xlate_helpers import CLIENT4, CLIENT6, ETH, SERVER4, SERVER6, assert_valid, problems

pytestmark = pytest.mark.root


def test_ipv4_udp_without_checksum_gets_one(xlat):
    """IPv6 requires a UDP checksum; an IPv4 datagram with none gets it computed (the
    default of the policy, udp_zero: calculate)."""
    xlat.configure(lowest_ipv6_mtu=1500)        # translated whole, not left to fragment
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP(sport=9, dport=9, chksum=0) /
               (bytes(range(256)) * 5))
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) /
                            UDP(sport=9, dport=9) / (bytes(range(256)) * 5))


@pytest.mark.parametrize("odd", [1, 3, 63, 65, 1471, 2999])
def test_computed_udp_checksum_with_odd_lengths(xlat, odd):
    """Any length an IPv4 datagram has, past the 1536 bytes of the summing loop's first
    design too (with a larger lowest-ipv6-mtu: a jumbo-frame IPv6 side)."""
    xlat.configure(lowest_ipv6_mtu=9000)
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP(chksum=0) / (bytes([0xA5]) * odd))
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) / UDP() /
                            (bytes([0xA5]) * odd))


def test_first_fragment_of_udp_without_checksum_is_dropped(xlat):
    """A stateless translator cannot sum a datagram it sees in pieces (RFC 7915 4.5)."""
    first = bytes(UDP(sport=9, dport=9, len=208, chksum=0) / bytes(200))[:64]
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, flags="MF", id=1, proto=17) / Raw(first))
    assert (out.verdict, out.outcome) == ("dropped", "drop_udp_zero")


ZERO_SUM_WHOLE = ETH / IP(src=CLIENT4, dst=SERVER4) / UDP(sport=9, dport=9, chksum=0) / b"data"
ZERO_SUM_FIRST = ETH / IP(src=CLIENT4, dst=SERVER4, flags="MF", id=7, proto=17) / Raw(
    bytes(UDP(sport=9, dport=9, len=208, chksum=0) / bytes(200))[:64])


def test_udp_zero_policy_drop(xlat):
    """RFC 7915 4.5 option 1, udp_zero: drop: no datagram without checksum goes through;
    with icmp_errors the sender hears 4.4's Destination Unreachable, code 13."""
    xlat.configure(udp_zero="drop")
    for pkt in (ZERO_SUM_WHOLE, ZERO_SUM_FIRST):
        assert (xlat(pkt).verdict, xlat(pkt).outcome) == ("dropped", "drop_udp_zero")
    xlat.configure(udp_zero="drop", icmp_errors=True, icmp_source4="203.0.113.254",
                   icmp_source6="2001:db8:6::1")
    out = xlat(ZERO_SUM_WHOLE)
    assert out.outcome == "bounce"
    assert (out.packet[ICMP].type, out.packet[ICMP].code) == (3, 13)
    assert_valid(out.raw)


def test_udp_zero_policy_forward(xlat):
    """udp_zero: forward: whole datagrams still get their checksum computed, but a first
    fragment goes on with its zero (RFC 7915 1.2: "when the translator is configured to
    forward the packet without a UDP checksum, the fragmented IPv4 UDP packets will be
    translated")."""
    xlat.configure(udp_zero="forward")
    whole = xlat(ZERO_SUM_WHOLE)
    assert whole.outcome == "done46" and whole.packet[UDP].chksum != 0
    assert_valid(whole.raw)
    first = xlat(ZERO_SUM_FIRST)
    assert first.outcome == "done46"
    assert bytes(first.packet[IPv6ExtHdrFragment].payload)[:64] == \
        bytes(ZERO_SUM_FIRST[IP].payload)


def _udp_payload_summing_to_zero(v6_src, v6_dst):
    """A payload whose IPv6 UDP checksum computes to 0, which goes on the wire as 0xffff."""
    base = bytes(40)
    c0 = IPv6(bytes(IPv6(src=v6_src, dst=v6_dst) / UDP(sport=1, dport=2) / base))[UDP].chksum
    payload = base[:-2] + c0.to_bytes(2, "big")
    assert IPv6(bytes(IPv6(src=v6_src, dst=v6_dst) / UDP(sport=1, dport=2) /
                      payload))[UDP].chksum == 0xFFFF
    return payload


def test_udp_checksum_never_becomes_zero(xlat):
    payload = _udp_payload_summing_to_zero(CLIENT6, SERVER6)
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP(sport=1, dport=2) / payload)
    assert out.packet[UDP].chksum == 0xFFFF
    assert_valid(out.raw)


def test_ipv6_udp_checksum_ffff_stays_valid_in_ipv4(xlat):
    """...and the other way: 0xffff is a computed zero, not a missing checksum."""
    v4 = IP(bytes(IP(src=SERVER4, dst=CLIENT4) / UDP(sport=1, dport=2) / bytes(40)))
    c0 = v4[UDP].chksum
    payload = bytes(38) + c0.to_bytes(2, "big")      # IPv4 checksum of this one is 0xffff
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / UDP(sport=1, dport=2) / payload)
    assert out.packet[UDP].chksum == 0xFFFF
    assert_valid(out.raw)


@pytest.mark.parametrize("layer", [TCP(sport=1, dport=2), UDP(sport=1, dport=2),
                                   ICMP(type=8, id=1)], ids=["tcp", "udp", "icmp"])
def test_a_corrupted_segment_stays_corrupted(xlat, layer):
    """Checksums are adjusted, not recomputed: a segment corrupted on the way is not
    laundered into a valid one, the receiver still drops it. Undoing the corruption in the
    output gives exactly the translation of the intact segment."""
    good = bytes(ETH / IP(src=CLIENT4, dst=SERVER4) / layer / b"payload")
    bad = bytearray(good)
    bad[-1] ^= 0x40
    out = xlat(bytes(bad))
    assert out.outcome == "done46"
    assert problems(out.raw) != []
    repaired = bytearray(out.raw)
    repaired[-1] ^= 0x40
    assert bytes(repaired) == xlat(good).raw
    assert_valid(bytes(repaired))


def test_dccp_checksum_follows_the_addresses(xlat):
    """DCCP (protocol 33) has a pseudo-header checksum at offset 6 like UDP."""
    hdr = bytearray(16)
    hdr[0:4] = (5000).to_bytes(2, "big") + (5001).to_bytes(2, "big")
    hdr[4] = 4                              # data offset: 4 words
    body = bytes(hdr) + b"dccp-data"
    v4 = IP(src=CLIENT4, dst=SERVER4, proto=33) / Raw(body)
    from scapy.layers.inet import in4_chksum
    from scapy.layers.inet6 import in6_chksum
    c4 = in4_chksum(33, IP(bytes(v4)), body)
    body4 = body[:6] + c4.to_bytes(2, "big") + body[8:]
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, proto=33) / Raw(body4))
    l4 = bytes(out.packet[IPv6].payload)
    assert in6_chksum(33, out.packet[IPv6], l4) == 0
    assert l4[:6] == body[:6] and l4[8:] == body[8:]


def test_tcp_over_fragments_sums_right_when_reassembled(xlat):
    whole = bytes(IPv6(src=SERVER6, dst=CLIENT6) / TCP(sport=80, dport=4000) / bytes(300))[40:]
    parts = [(whole[:160], 0, "MF"), (whole[160:], 20, 0)]
    got = b""
    for data, off, flags in parts:
        out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) /
                   IPv6ExtHdrFragment(nh=6, offset=off, m=bool(flags), id=77) / Raw(data))
        assert out.outcome == "done64"
        ip = out.packet[IP]
        assert (ip.id, ip.frag, bool(ip.flags.MF), bool(ip.flags.DF)) == (77, off, bool(flags),
                                                                         False)
        got += bytes(ip.payload)
    assert got == bytes(IP(src=SERVER4, dst=CLIENT4) / TCP(sport=80, dport=4000) /
                        bytes(300))[20:]


def test_all_zero_icmpv4_message_gets_ffff_not_zero(xlat):
    """An all-zero echo reply (id 0, seq 0, no data) sums to +0, so its checksum is 0xffff;
    an incremental update would give 0x0000, which does not verify (RFC 1624 3)."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / ICMPv6EchoReply(id=0, seq=0))
    assert bytes(out.packet[ICMP]) == b"\x00\x00\xff\xff\x00\x00\x00\x00"
    assert_valid(out.raw)


def test_atomic_fragment_icmpv6_is_translated(xlat):
    """A Fragment header with offset 0 and M 0 holds the whole message (RFC 6946)."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrFragment(id=0x10203, m=0) /
               ICMPv6EchoRequest(id=1, seq=2) / b"abc")
    assert out.raw == bytes(ETH / IP(src=SERVER4, dst=CLIENT4, id=0x0203, flags=0) /
                            ICMP(type=8, id=1, seq=2) / b"abc")
