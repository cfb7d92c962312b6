"""RFC 7915 4.2 and 5.2, "ICMP Error Payload": ICMP errors with RFC 4884 extensions. The
quoted packet changes size in translation, so "the ICMPv6 [ICMPv4] Extension length
attribute MUST be adjusted accordingly"; the extension itself passes as an opaque string.

RFC 4884: the "original datagram" field is at least 128 bytes, zero-padded to 32-bit words
(ICMPv4, length in byte 5) or 64-bit words (ICMPv6, length in byte 4), and the extension
structure follows it. Translated errors are cut to 1280 bytes (IPv6) or 576 (IPv4): the
quote gives way first, down to 128 bytes; an extension that still does not fit is removed
whole with its length attribute (a cut one would fail its own checksum, RFC 4884 7)."""

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.utils import checksum

from xlate_helpers import CLIENT4, CLIENT6, ETH, ROUTER4, ROUTER6, SERVER4, SERVER6, \
    assert_valid

pytestmark = pytest.mark.root


def extension(n: int) -> bytes:
    """An RFC 4884 extension structure of N bytes: version 2 header and one object, its
    checksum right (the translator must not need to know)."""
    obj = (n - 4).to_bytes(2, "big") + bytes([2, 1]) + bytes(i % 251 for i in range(n - 8))
    raw = bytearray(bytes([0x20, 0, 0, 0]) + obj)
    raw[2:4] = checksum(bytes(raw)).to_bytes(2, "big")
    return bytes(raw)


def icmp_with_extension(type_, code, field: bytes, unit: int, ext: bytes, v6: bool) -> bytes:
    """An ICMP error message: the original datagram FIELD (padded here to the RFC's
    minimum and word size), then EXT; checksum left 0 for the caller's."""
    padded = field + bytes(-len(field) % unit)
    padded += bytes(max(0, 128 - len(padded)))
    head = bytearray([type_, code, 0, 0, 0, 0, 0, 0])
    head[4 if v6 else 5] = len(padded) // unit
    return bytes(head) + padded + ext


def error4(type_, code, quoted, ext) -> bytes:
    body = bytearray(icmp_with_extension(type_, code, bytes(quoted), 4, ext, v6=False))
    body[2:4] = checksum(bytes(body)).to_bytes(2, "big")
    return bytes(ETH / IP(src=ROUTER4, dst=SERVER4, ttl=50) / ICMP(bytes(body)))


def error6(type_, code, quoted, ext) -> bytes:
    body = icmp_with_extension(type_, code, bytes(quoted), 8, ext, v6=True)
    return bytes(ETH / IPv6(src=SERVER6, dst=CLIENT6, hlim=50, nh=58) / Raw(body))


def fix_csum6(pkt: bytes) -> bytes:
    """PKT (Ether/IPv6/ICMPv6 raw) with its ICMPv6 checksum computed."""
    from scapy.layers.inet6 import in6_chksum
    ip = IPv6(pkt[14:])
    body = bytearray(bytes(ip.payload))
    body[2:4] = b"\0\0"
    body[2:4] = in6_chksum(58, ip, bytes(body)).to_bytes(2, "big")
    return pkt[:54] + bytes(body)


def quoted4(n):
    """What a pod sent the client, as IPv4 routers see it."""
    return IP(src=SERVER4, dst=CLIENT4, ttl=1) / UDP(sport=3000, dport=53) / bytes(n)


def quoted6(n):
    return IPv6(src=SERVER6, dst=CLIENT6, hlim=1) / UDP(sport=3000, dport=53) / bytes(n)


# --- ICMPv4 -> ICMPv6 (4.2) --------------------------------------------------------------------

@pytest.mark.parametrize("type_,code,type6,code6", [(11, 0, 3, 0), (3, 3, 1, 4), (3, 1, 1, 0)])
def test_extension_follows_the_translated_quote(xlat, type_, code, type6, code6):
    """A 128-byte field (IPv4/UDP, 100 bytes of data) and a 20-byte extension: the quote
    grows to 148 bytes, padded to 152 (19 64-bit words), the extension after it intact."""
    ext = extension(20)
    out = xlat(error4(type_, code, quoted4(100), ext))
    assert out.outcome == "done46"
    assert_valid(out.raw)
    icmp6 = bytes(out.packet[IPv6].payload)
    assert (icmp6[0], icmp6[1], icmp6[4]) == (type6, code6, 152 // 8)
    assert icmp6[8:8 + 148] == bytes(quoted6(100))
    assert icmp6[8 + 148:8 + 152] == bytes(4)
    assert icmp6[8 + 152:] == ext


def test_short_quote_is_padded_to_128_bytes(xlat):
    """An RFC 792 router quotes the header and 8 bytes: 48 bytes translated, zero-padded
    to the 128 an extension needs before it (RFC 4884 4.1)."""
    ext = extension(12)
    full = bytes(quoted4(0))[:28]
    out = xlat(error4(11, 0, Raw(full), ext))
    assert_valid(out.raw)
    icmp6 = bytes(out.packet[IPv6].payload)
    assert icmp6[4] == 128 // 8 and len(icmp6) == 8 + 128 + 12
    assert icmp6[8 + 48:8 + 128] == bytes(80) and icmp6[8 + 128:] == ext


def test_quote_gives_way_to_the_extension(xlat):
    """A 1020-byte quote and a 200-byte extension would be 1308 bytes: the quote is cut to
    1032 (1280 in all), the extension kept whole (the length: 129 words)."""
    ext = extension(200)
    out = xlat(error4(11, 0, quoted4(992), ext))
    assert_valid(out.raw)
    assert len(out.raw) == 14 + 1280
    icmp6 = bytes(out.packet[IPv6].payload)
    assert icmp6[4] == 1032 // 8
    assert icmp6[8:8 + 1032] == bytes(quoted6(992))[:1032]
    assert icmp6[8 + 1032:] == ext


def test_extension_that_cannot_fit_is_removed(xlat):
    """1108 bytes of extension do not fit beside even a 128-byte quote: removed, with its
    length attribute; the quote then has the room to itself."""
    out = xlat(error4(3, 3, quoted4(100), extension(1108)))
    assert_valid(out.raw)
    icmp6 = bytes(out.packet[IPv6].payload)
    assert icmp6[4] == 0 and icmp6[8:] == bytes(quoted6(100))


def test_types_without_a_length_attribute_lose_the_extension(xlat):
    """Packet Too Big and Parameter Problem have no length attribute in ICMPv6: their
    translations carry the quote alone."""
    for type_, code in ((3, 4), (12, 0), (3, 2)):
        out = xlat(error4(type_, code, quoted4(100), extension(20)))
        assert out.outcome == "done46", (type_, code)
        assert_valid(out.raw)
        assert bytes(out.packet[IPv6].payload)[8:] == bytes(quoted6(100))


def test_non_compliant_length_keeps_only_the_field(xlat):
    """A length attribute of less than 128 bytes is not RFC 4884 (4.1): the quote is what it
    says and nothing after it is taken for an extension."""
    quoted = bytes(quoted4(100))
    body = bytearray([11, 0, 0, 0, 0, 64 // 4, 0, 0]) + quoted[:64] + extension(20)
    body[2:4] = checksum(bytes(body)).to_bytes(2, "big")
    out = xlat(bytes(ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(bytes(body))))
    assert_valid(out.raw)
    icmp6 = bytes(out.packet[IPv6].payload)
    assert icmp6[4] == 0 and len(icmp6) == 8 + 40 + 44


# --- ICMPv6 -> ICMPv4 (5.2) --------------------------------------------------------------------

@pytest.mark.parametrize("type6,code6,type4,code4", [(1, 4, 3, 3), (3, 0, 11, 0)])
def test_extension_follows_the_translated_quote_6to4(xlat, type6, code6, type4, code4):
    """A 128-byte field (IPv6/UDP, 80 bytes of data): 108 bytes translated, padded to 128
    (32 32-bit words), the extension after it."""
    ext = extension(20)
    out = xlat(fix_csum6(error6(type6, code6, quoted6(80), ext)))
    assert out.outcome == "done64"
    assert_valid(out.raw)
    icmp4 = bytes(out.packet[ICMP])
    assert (icmp4[0], icmp4[1], icmp4[5]) == (type4, code4, 128 // 4)
    quote = bytes(IP(src=SERVER4, dst=CLIENT4, ttl=1, id=0) / UDP(sport=3000, dport=53) /
                  bytes(80))
    assert icmp4[8:8 + 108] == quote
    assert icmp4[8 + 108:8 + 128] == bytes(20) and icmp4[8 + 128:] == ext


@pytest.mark.parametrize("ext_len,kept", [(420, True), (424, False)])
def test_576_bytes_at_most_6to4(xlat, ext_len, kept):
    """128 bytes of quote and 420 of extension make exactly 576 with the headers; 424 do
    not fit and the extension goes."""
    out = xlat(fix_csum6(error6(1, 4, quoted6(80), extension(ext_len))))
    assert_valid(out.raw)
    icmp4 = bytes(out.packet[ICMP])
    if kept:
        assert len(out.raw) == 14 + 576 and icmp4[5] == 32
        assert icmp4[8 + 128:] == extension(ext_len)
    else:
        assert icmp4[5] == 0 and len(icmp4) == 8 + 108


def test_tcp_quote_and_extension_6to4(xlat):
    """Jool's graybox case "ia": a 128-byte IPv6/TCP quote (68 bytes of data)."""
    quoted = IPv6(src=CLIENT6, dst=SERVER6, hlim=1) / TCP(sport=1, dport=2) / bytes(68)
    out = xlat(fix_csum6(bytes(ETH / IPv6(src=SERVER6, dst=CLIENT6, hlim=50, nh=58) /
                               Raw(icmp_with_extension(1, 4, bytes(quoted), 8, extension(20),
                                                       v6=True)))))
    assert_valid(out.raw)
    icmp4 = bytes(out.packet[ICMP])
    assert icmp4[5] == 32 and len(icmp4) == 8 + 128 + 20
