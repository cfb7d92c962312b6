"""RFC 7915 4.2, ICMPv4 -> ICMPv6: every type and code of the RFC's list, the pointer table
(Figure 3), the Packet Too Big MTU arithmetic, and the messages to drop."""

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, \
    ICMPv6PacketTooBig, ICMPv6ParamProblem, ICMPv6TimeExceeded, IPv6

from xlate_helpers import CLIENT4, CLIENT6, ETH, ROUTER4, ROUTER6, SERVER4, SERVER6, assert_valid

pytestmark = pytest.mark.root


def error4(type_, code, quoted_len=100, **fields):
    """An ICMPv4 error from an IPv4 router about a packet a pod sent to the client."""
    return (ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=type_, code=code, **fields) /
            IP(src=SERVER4, dst=CLIENT4, ttl=3) / UDP(sport=53, dport=5353) /
            bytes(quoted_len))


def test_echo_request_and_reply(xlat):
    """Echo (8) and Echo Reply (0) become 128 and 129; the checksum now covers the IPv6
    pseudo-header."""
    for type4, want in ((8, ICMPv6EchoRequest), (0, ICMPv6EchoReply)):
        out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, ttl=50) / ICMP(type=type4, id=0x1234,
                                                                       seq=7) / b"ping data")
        assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=50) /
                                want(id=0x1234, seq=7, data=b"ping data"))


@pytest.mark.parametrize("type_", [13, 14, 15, 16, 17, 18, 9, 10, 5, 6, 4, 1, 2, 7, 19, 30, 42,
                                   253])
def test_single_hop_obsolete_and_unknown_types_are_dropped(xlat, type_):
    """Timestamp, Information, Address Mask, Router Advertisement/Solicitation, Redirect,
    Alternate Host Address, Source Quench and unknown types: silently dropped."""
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / ICMP(type=type_, code=0) / bytes(40))
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_type")


# Destination Unreachable codes -> (ICMPv6 type, code), None: dropped.
UNREACH = {
    0: (1, 0), 1: (1, 0),              # net, host unreachable -> no route
    2: (4, 1),                         # protocol unreachable -> parameter problem, next header
    3: (1, 4),                         # port unreachable
    4: (2, 0),                         # fragmentation needed -> packet too big
    5: (1, 0),                         # source route failed
    6: (1, 0), 7: (1, 0), 8: (1, 0),   # unknown network/host, source host isolated
    9: (1, 1), 10: (1, 1),             # administratively prohibited
    11: (1, 0), 12: (1, 0),            # unreachable for TOS
    13: (1, 1),                        # communication administratively prohibited
    14: None,                          # host precedence violation
    15: (1, 1),                        # precedence cutoff in effect
    16: None, 99: None,                # unknown codes
}


@pytest.mark.parametrize("code", sorted(UNREACH))
def test_destination_unreachable_codes(xlat, code):
    out = xlat(error4(3, code, nexthopmtu=1400 if code == 4 else 0))
    if UNREACH[code] is None:
        assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_type")
        return
    assert out.outcome == "done46"
    assert_valid(out.raw)
    icmp6 = out.packet[IPv6].payload
    assert (icmp6.type, icmp6.code) == UNREACH[code]
    if code == 2:
        assert icmp6.ptr == 6          # the Next Header field of the IPv6 header
    elif code != 4:
        assert bytes(icmp6)[4:8] == bytes(4)


@pytest.mark.parametrize("code", [0, 1])
def test_time_exceeded_keeps_its_code(xlat, code):
    out = xlat(error4(11, code))
    assert isinstance(out.packet[IPv6].payload, ICMPv6TimeExceeded)
    assert out.packet[ICMPv6TimeExceeded].code == code
    assert_valid(out.raw)


# RFC 7915 Figure 3: IPv4 pointer -> IPv6 pointer, None for n/a.
POINTERS = {0: 0, 1: 1, 2: 4, 3: 4, 4: None, 5: None, 6: None, 7: None, 8: 7, 9: 6,
            10: None, 11: None, 12: 8, 13: 8, 14: 8, 15: 8, 16: 24, 17: 24, 18: 24, 19: 24,
            20: None, 33: None}


@pytest.mark.parametrize("ptr", sorted(POINTERS))
@pytest.mark.parametrize("code", [0, 2])
def test_parameter_problem_pointer(xlat, ptr, code):
    """Codes 0 (pointer indicates the error) and 2 (bad length) become type 4 code 0 with the
    pointer moved to the same field of the IPv6 header; fields IPv6 lacks: dropped."""
    out = xlat(error4(12, code, ptr=ptr))
    if POINTERS[ptr] is None:
        assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_type")
        return
    pp = out.packet[ICMPv6ParamProblem]
    assert (pp.type, pp.code, pp.ptr) == (4, 0, POINTERS[ptr])
    assert_valid(out.raw)


@pytest.mark.parametrize("code", [1, 3, 200])
def test_parameter_problem_other_codes_are_dropped(xlat, code):
    out = xlat(error4(12, code, ptr=0))
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_type")


# --- Fragmentation Needed -> Packet Too Big ---------------------------------------------------

def too_big(xlat, mtu, quoted_len=1200, quoted=None):
    out = xlat(quoted if quoted is not None else error4(3, 4, quoted_len, nexthopmtu=mtu))
    assert out.outcome == "done46"
    assert_valid(out.raw)
    return out.packet[ICMPv6PacketTooBig].mtu


def test_mtu_grows_by_the_header_difference(xlat):
    """RFC 7915 4.2: "minimum(advertised MTU+20, MTU_of_IPv6_nexthop,
    (MTU_of_IPv4_nexthop)+20)"."""
    assert too_big(xlat, 1400) == 1420
    assert too_big(xlat, 1261) == 1281
    assert too_big(xlat, 1260) == 1280


@pytest.mark.parametrize("advertised", [1259, 1024, 576, 68])
def test_mtu_is_never_below_1280(xlat, advertised):
    """RFC 7915 5: "the indicated MTU in the resulting ICMPv6 'Packet Too Big' will never be
    set to a value lower than 1280" (IPv6 hosts need not handle smaller path MTUs; they
    fragment, or IPv4 routers do, DF being clear below 1260 bytes)."""
    assert too_big(xlat, advertised) == 1280


def test_mtu_of_a_fragment_is_the_same_arithmetic(xlat):
    """The quoted IPv4 packet is a fragment (its IPv6 original had a Fragment header): still
    advertised + 20, as 4.2 says; 28 would let an unfragmented packet of that size past."""
    pkt = (ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=3, code=4, nexthopmtu=1400) /
           IP(src=SERVER4, dst=CLIENT4, flags="MF", id=5) / UDP() / bytes(1300))
    assert too_big(xlat, 0, quoted=pkt) == 1420


@pytest.mark.parametrize("tot_len,mtu", [(9000, 8166 + 20), (4000, 2002 + 20),
                                         (1500, 1492 + 20), (1492, 1280), (1100, 1280),
                                         (1006, 1280), (300, 1280)])
def test_zero_mtu_uses_the_rfc1191_plateaus(xlat, tot_len, mtu):
    """A router that reports MTU 0 (pre-RFC 1191): "Use the greatest plateau value that is
    less than the returned Total Length field, but that is larger than or equal to 1280"
    (the 1100-byte packet of a 1006-byte path: 1280, not 1026)."""
    pkt = (ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=3, code=4, nexthopmtu=0) /
           IP(src=SERVER4, dst=CLIENT4, len=tot_len) / UDP() / bytes(200))
    assert too_big(xlat, 0, quoted=pkt) == mtu


def test_mtu_is_capped_by_the_configured_next_hop_mtus(xlat):
    """min(advertised + 20, IPv6 next-hop MTU, IPv4 next-hop MTU + 20)."""
    xlat.configure(mtu6=1400)
    assert too_big(xlat, 1450) == 1400
    xlat.configure(mtu4=1300)
    assert too_big(xlat, 1450) == 1320
    xlat.configure(mtu4=1500, mtu6=1500)
    assert too_big(xlat, 1300) == 1320
    xlat.configure(mtu4=1000)
    assert too_big(xlat, 1450) == 1280         # and still never below 1280
