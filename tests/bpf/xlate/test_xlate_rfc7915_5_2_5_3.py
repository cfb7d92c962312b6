"""RFC 7915 5.2 and 5.3, ICMPv6 -> ICMPv4: every type and code of the RFC's list, the pointer
table (Figure 6), Packet Too Big -> Fragmentation Needed MTUs, the quoted IPv6 packet
translated and cut to 576 bytes, and RFC 6791 sources for errors from untranslatable
routers."""

import pytest
from scapy.layers.inet import ICMP, IP, IPerror, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, \
    ICMPv6PacketTooBig, ICMPv6ParamProblem, ICMPv6TimeExceeded, IPv6, IPv6ExtHdrDestOpt, \
    IPv6ExtHdrFragment
from scapy.packet import Raw

from xlate_helpers import CLIENT4, CLIENT6, ETH, ROUTER4, ROUTER6, ROUTER6_UNMAPPED, SERVER4, \
    SERVER6, assert_valid, expect4

pytestmark = pytest.mark.root


def quoted6(n=64):
    """The packet an IPv6 node reports on: one the client sent, as translated to IPv6."""
    return IPv6(src=CLIENT6, dst=SERVER6, hlim=7) / UDP(sport=5353, dport=53) / bytes(n)


def quoted4(n=64):
    return IP(src=CLIENT4, dst=SERVER4, ttl=7, id=0) / UDP(sport=5353, dport=53) / bytes(n)


def error6(icmp, n=64, src=SERVER6):
    return ETH / IPv6(src=src, dst=CLIENT6, hlim=60) / icmp / quoted6(n)


def test_echo_request_and_reply(xlat):
    for req, type4 in ((ICMPv6EchoRequest, 8), (ICMPv6EchoReply, 0)):
        out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, hlim=44) / req(id=3, seq=4, data=b"p"))
        assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, ttl=44) /
                                  ICMP(type=type4, id=3, seq=4) / b"p")


@pytest.mark.parametrize("type_", [130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 143, 200,
                                   5, 100, 127])
def test_single_hop_and_unknown_types_are_dropped(xlat, type_):
    """MLD, neighbour discovery, redirect, node information, unknown informational and error
    types: silently dropped."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, nh=58) / Raw(bytes([type_, 0, 0, 0]) + bytes(60)))
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_type")


UNREACH = {0: (3, 1), 1: (3, 10), 2: (3, 1), 3: (3, 1), 4: (3, 3), 5: None, 6: None, 9: None}


@pytest.mark.parametrize("code", sorted(UNREACH))
def test_destination_unreachable_codes(xlat, code):
    out = xlat(error6(ICMPv6DestUnreach(code=code)))
    if UNREACH[code] is None:
        assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_type")
        return
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, ttl=60) /
                              ICMP(type=UNREACH[code][0], code=UNREACH[code][1]) / quoted4())


@pytest.mark.parametrize("code", [0, 1])
def test_time_exceeded(xlat, code):
    out = xlat(error6(ICMPv6TimeExceeded(code=code)))
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, ttl=60) /
                              ICMP(type=11, code=code) / quoted4())


def test_unrecognized_next_header_is_protocol_unreachable(xlat):
    out = xlat(error6(ICMPv6ParamProblem(code=1, ptr=6)))
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, ttl=60) /
                              ICMP(type=3, code=2) / quoted4())


# RFC 7915 Figure 6: IPv6 pointer -> IPv4 pointer, None for n/a.
POINTERS = {0: 0, 1: 1, 2: None, 3: None, 4: 2, 5: 2, 6: 9, 7: 8, 8: 12, 15: 12, 23: 12,
            24: 16, 31: 16, 39: 16, 40: None, 1000: None}


@pytest.mark.parametrize("ptr", sorted(POINTERS))
def test_parameter_problem_pointer(xlat, ptr):
    out = xlat(error6(ICMPv6ParamProblem(code=0, ptr=ptr)))
    if POINTERS[ptr] is None:
        assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_type")
        return
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, ttl=60) /
                              ICMP(type=12, code=0, ptr=POINTERS[ptr]) / quoted4())


@pytest.mark.parametrize("code", [2, 3, 10])
def test_parameter_problem_other_codes_are_dropped(xlat, code):
    out = xlat(error6(ICMPv6ParamProblem(code=code, ptr=0)))
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_type")


@pytest.mark.parametrize("advertised,want", [(1280, 1260), (1500, 1480), (9000, 8980),
                                             (100000, 65535), (10, 68)])
def test_packet_too_big_mtu(xlat, advertised, want):
    """min(advertised - 20, ...), 16 bits wide, never below the IPv4 minimum of 68."""
    out = xlat(error6(ICMPv6PacketTooBig(mtu=advertised)))
    icmp = bytes(out.packet[ICMP])
    assert (icmp[0], icmp[1], icmp[4:6], int.from_bytes(icmp[6:8], "big")) == (3, 4, bytes(2),
                                                                               want)
    assert_valid(out.raw)


def test_packet_too_big_about_a_fragment_takes_28(xlat):
    q = IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrFragment(nh=17, m=1, id=9) / UDP() / \
        bytes(64)
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / ICMPv6PacketTooBig(mtu=1400) / q)
    assert out.packet[ICMP].nexthopmtu == 1372
    inner = out.packet[IPerror]
    assert (inner.id, bool(inner.flags.MF)) == (9, True)
    assert_valid(out.raw)


def test_packet_too_big_capped_by_configured_mtus(xlat):
    xlat.configure(mtu4=1400)
    assert xlat(error6(ICMPv6PacketTooBig(mtu=1500))).packet[ICMP].nexthopmtu == 1400
    xlat.configure(mtu6=1400)
    assert xlat(error6(ICMPv6PacketTooBig(mtu=1500))).packet[ICMP].nexthopmtu == 1380


def test_quoted_extension_headers_are_skipped(xlat):
    q = IPv6(src=CLIENT6, dst=SERVER6, hlim=7) / IPv6ExtHdrDestOpt() / UDP(sport=5353,
                                                                          dport=53) / bytes(64)
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, hlim=60) / ICMPv6DestUnreach(code=4) / q)
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, ttl=60) /
                              ICMP(type=3, code=3) / quoted4())


def test_quoted_echo_is_translated(xlat):
    q = IPv6(src=CLIENT6, dst=SERVER6, hlim=1) / ICMPv6EchoRequest(id=5, seq=6) / b"xy"
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / ICMPv6TimeExceeded() / q)
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4) / ICMP(type=11) /
                              IP(src=CLIENT4, dst=SERVER4, ttl=1, id=0) /
                              ICMP(type=8, id=5, seq=6) / b"xy")


def test_cut_to_576_bytes(xlat):
    out = xlat(error6(ICMPv6DestUnreach(code=4), n=1200))
    assert len(out.raw) == 14 + 576
    assert_valid(out.raw)
    assert out.packet[IPerror].len == 20 + 8 + 1200      # the quoted packet's own length
    assert bytes(out.packet[ICMP])[8:] == bytes(quoted4(1200))[:576 - 28]


def test_quoted_packet_with_payload_length_zero(xlat):
    """An error about a packet with nothing after its header (payload length 0, No Next
    Header) quotes a valid packet, not a jumbogram: translated."""
    quoted = IPv6(src=CLIENT6, dst=SERVER6, nh=59, plen=0, hlim=3)
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, hlim=60) / ICMPv6DestUnreach(code=0) /
               quoted)
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, ttl=60) /
                              ICMP(type=3, code=1) /
                              IP(src=CLIENT4, dst=SERVER4, ttl=3, proto=59, id=0))


def test_errors_longer_than_1536_bytes_are_cut_not_dropped(xlat):
    """A 2500-byte ICMPv6 error (a jumbo-frame IPv6 link) is checked whole and cut to 576
    bytes (RFC 1812 4.3.2.3) instead of dropped."""
    out = xlat(error6(ICMPv6DestUnreach(code=4), n=2400))
    assert (out.outcome, len(out.raw)) == ("done64", 14 + 576)
    assert_valid(out.raw)
    quoted = IP(src=CLIENT4, dst=SERVER4, ttl=7, id=0, flags="DF") / UDP(sport=5353, dport=53)
    assert bytes(out.packet[ICMP])[8:] == bytes(quoted / bytes(2400))[:576 - 28]


def test_error_from_an_unmapped_router_uses_the_rfc6791_pool(xlat):
    xlat.configure(pool4="192.0.2.254")
    out = xlat(error6(ICMPv6TimeExceeded(), src=ROUTER6_UNMAPPED))
    assert out.raw == expect4(out, ETH / IP(src="192.0.2.254", dst=CLIENT4, ttl=60) /
                              ICMP(type=11) / quoted4())


def test_error_from_an_unmapped_router_without_a_pool_comes_from_the_translator(xlat):
    """RFC 6791 with an empty pool, as RFC 7915 5.1 lets a translator do: the translator's
    own IPv4 address (icmp_source4, which a topology takes from its first own pair) is the
    source, instead of the error being lost."""
    xlat.configure(icmp_source4="203.0.113.254", icmp_source6="2001:db8:6::1")
    out = xlat(error6(ICMPv6TimeExceeded(), src=ROUTER6_UNMAPPED))
    assert out.raw == expect4(out, ETH / IP(src="203.0.113.254", dst=CLIENT4, ttl=60) /
                              ICMP(type=11) / quoted4())


def test_error_from_an_unmapped_router_without_any_ipv4_source_is_dropped(xlat):
    out = xlat(error6(ICMPv6TimeExceeded(), src=ROUTER6_UNMAPPED))
    assert (out.verdict, out.outcome) == ("dropped", "drop_src")


def test_rfc6791_pool_of_several_addresses(xlat):
    """A pool prefix: each router gets one of its addresses, always the same one (a
    traceroute shows distinct routers as distinct hops, RFC 6791 4), never outside it."""
    from ipaddress import IPv4Address, IPv4Network
    pool = IPv4Network("192.0.2.240/28")
    xlat.configure(pool4=str(pool))
    seen = {}
    for i in range(1, 40):
        router = f"2001:db8:ff::{i:x}"
        srcs = {xlat(error6(ICMPv6TimeExceeded(), src=router)).packet[IP].src
                for _ in range(2)}
        assert len(srcs) == 1 and IPv4Address(srcs.pop()) in pool
        seen[router] = xlat(error6(ICMPv6TimeExceeded(), src=router)).packet[IP].src
    assert len(set(seen.values())) > 4


def test_error_from_a_special_use_source_uses_the_pool(xlat):
    """An IPv6 source under the prefix that would be 127.0.0.1 has no IPv4 address either
    (RFC 7915 5.1): its errors take the pool's."""
    from xlate_helpers import v6
    xlat.configure(pool4="192.0.2.254")
    out = xlat(error6(ICMPv6TimeExceeded(), src=v6("127.0.0.1")))
    assert out.packet[IP].src == "192.0.2.254"


def test_non_error_from_an_unmapped_source_does_not_use_the_pool(xlat):
    xlat.configure(pool4="192.0.2.254")
    out = xlat(ETH / IPv6(src=ROUTER6_UNMAPPED, dst=CLIENT6) / ICMPv6EchoRequest())
    assert (out.verdict, out.outcome) == ("dropped", "drop_src")


def test_error_about_an_error_is_dropped(xlat):
    q = IPv6(src=CLIENT6, dst=SERVER6) / ICMPv6DestUnreach() / bytes(40)
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / ICMPv6TimeExceeded() / q)
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_inner")


def test_error_with_a_bad_checksum_is_dropped(xlat):
    out = xlat(error6(ICMPv6TimeExceeded(cksum=0x4242)))
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_csum")


def test_fragmented_icmpv6_is_dropped(xlat):
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrFragment(nh=58, m=1) /
               ICMPv6EchoRequest() / bytes(100))
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_frag")
