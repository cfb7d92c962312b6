"""RFC 7915 4.3, ICMPv4 error messages into ICMPv6: the quoted packet is translated too (its
addresses through the same mapping, its transport checksum and ICMP type with them), one
level deep, and the result is cut to the IPv6 minimum MTU of 1280 bytes."""

import pytest
from scapy.layers.inet import ICMP, IP, IPOption_RR, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6TimeExceeded, \
    IPv6, IPv6ExtHdrFragment
from scapy.packet import Raw

from xlate_helpers import CLIENT4, CLIENT6, ETH, ROUTER4, ROUTER6, SERVER4, SERVER6, assert_valid

pytestmark = pytest.mark.root


def test_time_exceeded_about_udp(xlat):
    """The quoted packet went pod -> client; it is translated back to how the pod sent it:
    same ports, TTL kept (no decrement inside a quote), UDP checksum for its IPv6
    addresses, and the ICMPv6 checksum over all of it."""
    quoted6 = IPv6(src=SERVER6, dst=CLIENT6, hlim=1) / UDP(sport=33434, dport=33435) / b"trace"
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4, ttl=61) / ICMP(type=11, code=0) /
               IP(src=SERVER4, dst=CLIENT4, ttl=1) / UDP(sport=33434, dport=33435) / b"trace")
    assert out.raw == bytes(ETH / IPv6(src=ROUTER6, dst=SERVER6, hlim=61) /
                            ICMPv6TimeExceeded(code=0) / quoted6)


def test_port_unreachable_about_tcp(xlat):
    quoted6 = IPv6(src=SERVER6, dst=CLIENT6) / TCP(sport=80, dport=40000, flags="SA") / b"x"
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / ICMP(type=3, code=3) /
               IP(src=SERVER4, dst=CLIENT4) / TCP(sport=80, dport=40000, flags="SA") / b"x")
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) /
                            ICMPv6DestUnreach(code=4) / quoted6)


def test_quoted_echo_request_is_translated(xlat):
    quoted6 = IPv6(src=SERVER6, dst=CLIENT6, hlim=1) / ICMPv6EchoRequest(id=9, seq=1) / b"ab"
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=11) /
               IP(src=SERVER4, dst=CLIENT4, ttl=1) / ICMP(type=8, id=9, seq=1) / b"ab")
    assert out.raw == bytes(ETH / IPv6(src=ROUTER6, dst=SERVER6, hlim=64) /
                            ICMPv6TimeExceeded() / quoted6)


def test_only_the_first_eight_bytes_quoted(xlat):
    """RFC 792 routers quote the header and 8 bytes: a TCP checksum is not among them, the
    ports are."""
    full = bytes(IP(src=SERVER4, dst=CLIENT4) / TCP(sport=80, dport=40000))
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=3, code=1) / Raw(full[:28]))
    assert out.outcome == "done46"
    assert_valid(out.raw)
    inner = bytes(out.packet[ICMPv6DestUnreach].payload)
    assert inner[40:48] == full[20:28]
    assert IPv6(inner[:40]).src == SERVER6 and IPv6(inner[:40]).plen == 20


def test_quoted_options_are_removed(xlat):
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=11) /
               IP(src=SERVER4, dst=CLIENT4, options=[IPOption_RR()]) / UDP() / b"q")
    assert out.raw == bytes(ETH / IPv6(src=ROUTER6, dst=SERVER6, hlim=64) /
                            ICMPv6TimeExceeded() / IPv6(src=SERVER6, dst=CLIENT6) / UDP() /
                            b"q")


def test_quoted_fragment_gets_a_fragment_header(xlat):
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=11, code=1) /
               IP(src=SERVER4, dst=CLIENT4, id=0x4321, flags="MF", proto=17) / Raw(bytes(24)))
    inner = IPv6(bytes(out.packet[ICMPv6TimeExceeded].payload))
    fh = inner[IPv6ExtHdrFragment]
    assert (fh.id, fh.m, fh.offset, fh.nh) == (0x4321, 1, 0, 17)
    assert inner.plen == 8 + 24
    assert_valid(out.raw)


def test_truncated_to_1280_bytes(xlat):
    """The translated error grows by 40 bytes (two headers) and is cut to 1280."""
    body = bytes(range(256)) * 6
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=3, code=4, nexthopmtu=1400) /
               IP(src=SERVER4, dst=CLIENT4, len=1500) / UDP(sport=1, dport=2, len=1480) /
               body[:1420])
    assert len(out.raw) == 14 + 1280
    assert out.packet[IPv6].plen == 1240
    assert_valid(out.raw)
    quoted = bytes(out.packet[IPv6].payload)[8:]
    assert IPv6(quoted[:40]).plen == 1480          # the quoted packet's own length stays
    assert quoted[48:] == body[:1280 - 48 - 48]


def test_errors_longer_than_1536_bytes_are_cut_not_dropped(xlat):
    """An error of a jumbo-frame IPv4 link (2500 bytes here) is checked whole and cut to
    1280 like any (RFC 4443 2.4 c)."""
    body = bytes(range(256)) * 10
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=11) /
               IP(src=SERVER4, dst=CLIENT4) / UDP(sport=1, dport=2) / body[:2444])
    assert (out.outcome, len(out.raw)) == ("done46", 14 + 1280)
    assert_valid(out.raw)
    assert bytes(out.packet[IPv6].payload)[8 + 48:] == body[:1280 - 48 - 48]


def test_short_enough_errors_are_not_cut(xlat):
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=11) /
               IP(src=SERVER4, dst=CLIENT4) / UDP() / bytes(1000))
    assert out.packet[IPv6].plen == 8 + 40 + 8 + 1000


@pytest.mark.parametrize("inner_type", [3, 11, 12, 5, 4])
def test_error_about_an_error_is_dropped(xlat, inner_type):
    """Translation stops at the first embedded header: an ICMP error quoting an ICMP error
    is dropped."""
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=3, code=1) /
               IP(src=SERVER4, dst=CLIENT4) / ICMP(type=inner_type) / bytes(28))
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_inner")


@pytest.mark.parametrize("quoted,what", [
    (b"\x45\x00\x00", "IPv4 header cut"),
    (bytes(IP(src=SERVER4, dst=CLIENT4) / UDP())[:19], "one byte short"),
    (b"\x65" + bytes(27), "version 6 in an ICMPv4 error"),
    (b"\x43" + bytes(27), "IHL 3"),
    (b"\x4f" + bytes(27), "IHL 15, 20 bytes there"),
    (bytes(IP(src=SERVER4, dst=CLIENT4, proto=44) / Raw(bytes(8))), "protocol 44"),
])
def test_garbage_quote_is_dropped(xlat, quoted, what):
    out = xlat(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=3, code=1) / Raw(quoted))
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_inner"), what


def test_quote_with_an_untranslatable_address_is_dropped(xlat):
    xlat.configure(prefix=None)
    out = xlat(ETH / IP(src=SERVER4, dst=SERVER4) / ICMP(type=11) /
               IP(src=SERVER4, dst=CLIENT4) / UDP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_inner")


def test_error_with_a_bad_checksum_is_dropped(xlat):
    """The message is rebuilt with a fresh checksum, so it must have arrived intact."""
    pkt = ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=11, chksum=0x1234) / \
        IP(src=SERVER4, dst=CLIENT4) / UDP()
    out = xlat(pkt)
    assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_csum")


def test_fragmented_icmp_is_dropped(xlat):
    """The ICMPv6 pseudo-header holds the whole message's length, which a fragment does not
    tell."""
    for frag in ({"flags": "MF"}, {"frag": 10}):
        out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, id=3, **frag) / ICMP() / bytes(64))
        assert (out.verdict, out.outcome) == ("dropped", "drop_icmp_frag")
