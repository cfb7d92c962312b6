"""RFC 7915 4.4 and 5.4, ICMP errors the translator sends itself about packets it discards
(when configured to): wrapped in place and sent back out of the device they came in on
(tc: redirect to the ingress device, XDP: XDP_TX)."""

import pytest
from scapy.layers.inet import ICMP, IP, IPOption_LSRR, IPerror, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6ParamProblem, \
    IPerror6, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.l2 import Ether

from xlate_helpers import CLIENT4, CLIENT6, ETH, SERVER4, SERVER6, assert_valid

pytestmark = pytest.mark.root

GW4, GW6 = "192.0.2.1", "2001:db8:6::1"
ERRORS = {"icmp_errors": True, "icmp_source4": GW4, "icmp_source6": GW6}


def bounced(out, want_l3):
    """The error goes back where the packet came from: MACs swapped."""
    assert out.verdict == "redirected" and out.outcome == "bounce"
    assert out.code in ("TC_ACT_REDIRECT", "XDP_TX")
    assert (out.packet.src, out.packet.dst) == (ETH.dst, ETH.src)
    assert_valid(out.raw)
    assert bytes(out.packet.payload) == bytes(want_l3)


def test_source_route_failed(xlat):
    """4.1: an unexpired source route is not translated; the sender gets Destination
    Unreachable, Source Route Failed (type 3, code 5)."""
    xlat.configure(**ERRORS)
    orig = IP(src=CLIENT4, dst=SERVER4, options=[IPOption_LSRR(routers=["192.0.2.7"])]) / \
        TCP(dport=80) / b"data"
    out = xlat(ETH / orig)
    bounced(out, IP(src=GW4, dst=CLIENT4, ttl=64, id=0) / ICMP(type=3, code=5) / bytes(orig))


def test_allow_list_refusal_is_administratively_prohibited(xlat):
    """4.4: a discarded packet gets type 3 code 13 (communication administratively
    prohibited)."""
    xlat.configure(allow=["203.0.113.0/24"], **ERRORS)
    orig = IP(src=CLIENT4, dst=SERVER4) / UDP(sport=1, dport=2) / b"q"
    bounced(xlat(ETH / orig), IP(src=GW4, dst=CLIENT4, ttl=64, id=0) /
            ICMP(type=3, code=13) / bytes(orig))


def test_quote_is_cut_to_576_bytes(xlat):
    xlat.configure(allow=["203.0.113.0/24"], **ERRORS)
    orig = IP(src=CLIENT4, dst=SERVER4) / UDP(sport=1, dport=2) / (bytes(range(256)) * 5)
    out = xlat(ETH / orig)
    assert len(out.raw) == 14 + 576
    bounced(out, IP(src=GW4, dst=CLIENT4, ttl=64, id=0) / ICMP(type=3, code=13) /
            bytes(orig)[:576 - 28])


@pytest.mark.parametrize("pkt,why", [
    (IP(src=CLIENT4, dst=SERVER4) / ICMP(type=3, code=1) / IP(src=SERVER4, dst=CLIENT4) / UDP(),
     "an ICMP error"),
    (IP(src=CLIENT4, dst=SERVER4, frag=20, proto=17) / bytes(16), "a later fragment"),
    (IP(src="0.0.0.0", dst=SERVER4) / UDP(), "from 0.0.0.0"),
])
def test_no_error_about(xlat, pkt, why):
    xlat.configure(allow=["203.0.113.0/24"], **ERRORS)
    out = xlat(ETH / pkt)
    # a special-use source is dropped before the allow-list is asked (RFC 7915 4.1)
    reason = "drop_special" if pkt[IP].src == "0.0.0.0" else "drop_allow4"
    assert (out.verdict, out.outcome) == ("dropped", reason), why


def test_echo_request_refusal_is_answered(xlat):
    """Only errors are never answered; a refused echo request is."""
    xlat.configure(allow=["203.0.113.0/24"], **ERRORS)
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / ICMP(type=8) / b"x")
    assert out.outcome == "bounce"


def test_errors_are_off_by_default(xlat):
    xlat.configure(allow=["203.0.113.0/24"])
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_allow4")


def test_routing_header_with_segments_left(xlat):
    """5.1: a Routing header with Segments Left not zero: not translated; the sender gets
    Parameter Problem code 0 pointing at the Segments Left field."""
    xlat.configure(**ERRORS)
    orig = IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrDestOpt() / \
        IPv6ExtHdrRouting(addresses=["2001:db8::99"], segleft=1) / UDP() / b"r"
    out = xlat(ETH / orig)
    bounced(out, IPv6(src=GW6, dst=SERVER6, hlim=64) / ICMPv6ParamProblem(code=0, ptr=40 + 8 + 3) /
            bytes(orig))


def test_routing_header_without_segments_left_is_skipped(xlat):
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) /
               IPv6ExtHdrRouting(addresses=["2001:db8::99"], segleft=0) / UDP() / b"r")
    assert out.outcome == "done64"
    assert_valid(out.raw)


def test_untranslatable_ipv6_source(xlat):
    """5.4: type 1 code 1 (communication with destination administratively prohibited)."""
    xlat.configure(**ERRORS)
    orig = IPv6(src="2001:db8:99::1", dst=CLIENT6) / TCP(dport=443, flags="S")
    bounced(xlat(ETH / orig), IPv6(src=GW6, dst="2001:db8:99::1", hlim=64) /
            ICMPv6DestUnreach(code=1) / bytes(orig))


def test_ipv6_quote_is_cut_to_1280_bytes(xlat):
    xlat.configure(**ERRORS)
    orig = IPv6(src="2001:db8:99::1", dst=CLIENT6) / UDP() / bytes(1400)
    out = xlat(ETH / orig)
    assert len(out.raw) == 14 + 1280
    bounced(out, IPv6(src=GW6, dst="2001:db8:99::1", hlim=64) / ICMPv6DestUnreach(code=1) /
            bytes(orig)[:1280 - 48])


def test_no_ipv6_error_about_an_error(xlat):
    """(The error itself is dropped: from an unmapped router it gets the translator's own
    IPv4 address, RFC 6791, but what it quotes went to that unmapped address.)"""
    xlat.configure(**ERRORS)
    out = xlat(ETH / IPv6(src="2001:db8:99::1", dst=CLIENT6) / ICMPv6DestUnreach() /
               IPv6(src=CLIENT6, dst="2001:db8:99::1") / UDP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_inner")


def test_no_ipv6_error_about_any_icmpv6_message(xlat):
    """RFC 7915 5.4: "unless the discarded packet is itself an ICMPv6 message" (not only an
    error, as RFC 4443 2.4 e has it): a refused echo request is dropped unanswered."""
    xlat.configure(**ERRORS)
    out = xlat(ETH / IPv6(src="2001:db8:99::1", dst=CLIENT6) / ICMPv6EchoRequest())
    assert (out.verdict, out.outcome) == ("dropped", "drop_src")


def test_extension_header_after_a_fragment_header(xlat):
    """RFC 7915 5.1 says drop ("SHOULD be dropped and logged") and specifies no error, so
    5.4's default answers: Destination Unreachable, code 1, from the configured source."""
    xlat.configure(**ERRORS)
    orig = IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrFragment(m=1, id=9) / \
        IPv6ExtHdrDestOpt() / UDP() / b"x"
    out = xlat(ETH / orig)
    assert out.outcome == "bounce"
    bounced(out, IPv6(src=GW6, dst=SERVER6, hlim=64) / ICMPv6DestUnreach(code=1) / orig)


def test_too_many_extension_headers(xlat):
    xlat.configure(**ERRORS)
    chain = IPv6ExtHdrDestOpt()
    for _ in range(7):
        chain = chain / IPv6ExtHdrDestOpt()
    orig = IPv6(src=SERVER6, dst=CLIENT6) / chain / UDP()
    bounced(xlat(ETH / orig), IPv6(src=GW6, dst=SERVER6, hlim=64) /
            ICMPv6DestUnreach(code=1) / orig)


def test_misplaced_hop_by_hop_header(xlat):
    """RFC 8200 4.3 asks for Parameter Problem code 1 ("unrecognized Next Header type"),
    its pointer at the Next Header field that names the misplaced header: here that of the
    Destination Options header at offset 40."""
    xlat.configure(**ERRORS)
    orig = IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP()
    bounced(xlat(ETH / orig), IPv6(src=GW6, dst=SERVER6, hlim=64) /
            ICMPv6ParamProblem(code=1, ptr=40) / orig)


def test_no_ipv6_error_to_multicast(xlat):
    xlat.configure(**ERRORS)
    out = xlat(ETH / IPv6(src="ff02::1", dst=CLIENT6) / ICMPv6EchoRequest())
    assert (out.verdict, out.outcome) == ("dropped", "drop_src")
