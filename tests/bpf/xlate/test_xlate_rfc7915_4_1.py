"""RFC 7915 4.1, translating IPv4 headers into IPv6 headers (and 4.5's TCP/UDP checksums on
the way), at tc and at XDP. Expected packets are written out field by field; scapy computes
their checksums, so comparing bytes also checks every checksum."""

import pytest
from scapy.layers.inet import ICMP, IP, IPOption_LSRR, IPOption_NOP, IPOption_RR, \
    IPOption_SSRR, IPOption_Timestamp, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.packet import Raw

from xlate_helpers import CLIENT4, CLIENT6, ETH, SERVER4, SERVER6, assert_valid, v6

pytestmark = pytest.mark.root

PAYLOAD = bytes(range(200))


def test_tcp_header_fields(xlat):
    """Version 6, traffic class = TOS, flow label 0, payload length = total length - header,
    next header = protocol, hop limit = TTL (the kernel decrements it when it forwards),
    addresses mapped (source by the prefix, destination by the EAM)."""
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, tos=0xB8, ttl=33, id=4242, flags="DF") /
               TCP(sport=40000, dport=80, flags="S", seq=1) / PAYLOAD)
    want = ETH / IPv6(src=CLIENT6, dst=SERVER6, tc=0xB8, fl=0, hlim=33) / \
        TCP(sport=40000, dport=80, flags="S", seq=1) / PAYLOAD
    assert (out.verdict, out.outcome) == ("passed", "done46")
    assert out.raw == bytes(want)


def test_udp(xlat):
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, ttl=64) / UDP(sport=5353, dport=53) / PAYLOAD)
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) /
                            UDP(sport=5353, dport=53) / PAYLOAD)


def test_zero_tos_option_clears_the_traffic_class(xlat):
    xlat.configure(zero_tos=True)
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, tos=0xFF) / UDP() / b"x")
    assert out.packet[IPv6].tc == 0
    assert_valid(out.raw)


@pytest.mark.parametrize("options", [
    [IPOption_NOP(), IPOption_RR(routers=["192.0.2.99"])],
    [IPOption_Timestamp(flg=0, oflw=0, length=8, pointer=5, timestamp=[0])],
    # a source route used up: the pointer is past the last address, the destination is it
    [IPOption_LSRR(routers=[SERVER4], pointer=8)],
], ids=["record-route", "timestamp", "expired-lsrr"])
def test_options_are_ignored(xlat, options):
    """IPv4 options are dropped, the packet translated as without them."""
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, options=options) / TCP(dport=22) / b"hi")
    assert out.outcome == "done46"
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) / TCP(dport=22) /
                            b"hi")


def test_options_at_their_maximum_length(xlat):
    opts = [IPOption_RR(routers=["192.0.2.1"] * 9)]            # 3 + 36 = 39 bytes, padded to 40
    pkt = ETH / IP(src=CLIENT4, dst=SERVER4, options=opts) / UDP() / b"payload"
    assert bytes(pkt)[14] & 0xF == 15
    out = xlat(pkt)
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) / UDP() / b"payload")


@pytest.mark.parametrize("option", [IPOption_LSRR, IPOption_SSRR], ids=["lsrr", "ssrr"])
def test_unexpired_source_route_is_dropped(xlat, option):
    """A source route with addresses left is not translated."""
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4,
                        options=[option(routers=["192.0.2.7", "192.0.2.8"])]) / TCP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_srcroute")


def test_df_without_fragmentation_adds_no_fragment_header(xlat):
    for flags in ("DF", 0):
        out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, flags=flags, id=99) / UDP() / b"x")
        assert IPv6ExtHdrFragment not in out.packet and out.packet[IPv6].nh == 17


def test_first_fragment_gets_a_fragment_header_with_the_identification(xlat):
    """IPv4 fragments: a Fragment header with the identification (zero-extended to 32 bits),
    offset and M; the payload length counts the Fragment header; the transport checksum of
    the first fragment is adjusted for the new pseudo-header."""
    whole = bytes(IP(src=CLIENT4, dst=SERVER4) / UDP(sport=1, dport=2) / PAYLOAD)[20:]
    first, rest = whole[:104], whole[104:]
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, id=0xBEEF, flags="MF", proto=17, ttl=9) /
               Raw(first))
    fh = out.packet[IPv6ExtHdrFragment]
    assert (fh.id, fh.offset, fh.m, fh.nh) == (0xBEEF, 0, 1, 17)
    assert out.packet[IPv6].plen == 8 + len(first) and out.packet[IPv6].hlim == 9
    # the fragment's UDP checksum covers the whole datagram: check it on the reassembly
    later = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, id=0xBEEF, frag=len(first) // 8, proto=17) /
                 Raw(rest))
    lfh = later.packet[IPv6ExtHdrFragment]
    assert (lfh.id, lfh.offset, lfh.m, lfh.nh) == (0xBEEF, len(first) // 8, 0, 17)
    reassembled = bytes(fh.payload) + bytes(lfh.payload)
    assert reassembled[:6] == whole[:6]   # ports and length untouched
    want = bytes(IPv6(src=CLIENT6, dst=SERVER6) / UDP(sport=1, dport=2) / PAYLOAD)[40:]
    assert reassembled == want


def test_later_fragment_carries_the_payload_untouched(xlat):
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, id=7, frag=100, proto=6) / Raw(PAYLOAD[:64]))
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) /
                            IPv6ExtHdrFragment(nh=6, offset=100, m=0, id=7) / PAYLOAD[:64])


@pytest.mark.parametrize("proto", [0, 43, 44, 60, 58])
def test_protocols_without_a_translation_are_dropped(xlat, proto):
    """IPv6 extension header numbers, and ICMPv6 inside IPv4 (its checksum cannot cover the
    IPv6 pseudo-header)."""
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, proto=proto) / Raw(bytes(16)))
    assert (out.verdict, out.outcome) == ("dropped", "drop_proto")


@pytest.mark.parametrize("proto", [47, 50, 132, 254])
def test_other_protocols_are_forwarded_with_the_protocol_copied(xlat, proto):
    """Translators MUST forward all transport protocols (RFC 7915 4.5)."""
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, proto=proto) / Raw(PAYLOAD[:40]))
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, nh=proto, hlim=64) /
                            PAYLOAD[:40])


def test_ethernet_padding_is_not_translated(xlat):
    """A short packet arrives padded to the Ethernet minimum; the translation ends where the
    IPv4 total length says."""
    pkt = bytes(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP() / b"a") + bytes(17)
    out = xlat(pkt)
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) / UDP() / b"a")


def test_prefix_maps_both_addresses_without_eam(xlat):
    """IPv4-translatable IPv6 hosts (RFC 6144): both addresses through the prefix."""
    out = xlat(ETH / IP(src=CLIENT4, dst="203.0.113.50") / TCP())
    assert (out.packet[IPv6].src, out.packet[IPv6].dst) == (CLIENT6, v6("203.0.113.50"))
    assert_valid(out.raw)


def test_untranslatable_destination_is_passed_untouched(xlat):
    xlat.configure(prefix=None)                 # only the EAM range is translated
    pkt = bytes(ETH / IP(src=CLIENT4, dst="203.0.113.50") / TCP())
    out = xlat(pkt)
    assert (out.verdict, out.outcome, out.raw) == ("passed", "pass", pkt)


def test_untranslatable_source_is_dropped(xlat):
    xlat.configure(prefix=None)
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / TCP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_src")


def test_other_ethertypes_pass(xlat):
    from scapy.layers.l2 import ARP
    pkt = bytes(ETH / ARP(psrc=CLIENT4, pdst=SERVER4))
    out = xlat(pkt)
    assert (out.verdict, out.raw) == ("passed", pkt)


@pytest.mark.parametrize("mangle,what", [
    (lambda b: b[:14] + bytes([0x44]) + b[15:], "IHL 4"),
    (lambda b: b[:14] + bytes([0x46]) + b[15:], "IHL 6 without options"),
    (lambda b: b[:16] + (200).to_bytes(2, "big") + b[18:], "total length past the frame"),
    (lambda b: b[:16] + (10).to_bytes(2, "big") + b[18:], "total length below the header"),
    (lambda b: b[:24] + bytes([b[24] ^ 1]) + b[25:], "header checksum"),
    (lambda b: b[:34 + 4], "TCP header cut"),
])
def test_malformed_ipv4_is_dropped(xlat, mangle, what):
    pkt = bytes(ETH / IP(src=CLIENT4, dst=SERVER4) / TCP())
    out = xlat(mangle(pkt))
    assert (out.verdict, out.outcome) == ("dropped", "drop_malformed"), what


def test_ttl_is_not_decremented_by_the_translator(xlat):
    """The gateway forwards as a router after translation: the kernel decrements (and sends
    Time Exceeded from the translated packet); the program copies TTL as it is."""
    for ttl in (0, 1, 255):
        out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, ttl=ttl) / UDP())
        assert out.packet[IPv6].hlim == ttl


# --- special-use IPv4 addresses ---------------------------------------------------------------

SPECIAL4 = ["0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.255.254", "169.254.10.20",
            "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255"]


@pytest.mark.parametrize("addr", SPECIAL4)
def test_special_use_source_is_never_translated(xlat, addr):
    """RFC 7915 4.1: "If the translator gets an illegal source address (e.g., 0.0.0.0,
    127.0.0.1, etc.), the translator SHOULD silently drop the packet". A spoofed loopback
    source from the IPv4 side would otherwise reach a pod as <prefix>::7f00:1 (tc ingress
    runs before the kernel's martian checks). Silently: no error, even when configured."""
    xlat.configure(icmp_errors=True, icmp_source4="203.0.113.254",
                   icmp_source6="2001:db8:6::1")
    for l4 in (UDP(sport=1, dport=53), TCP(flags="S"), ICMP(type=8)):
        out = xlat(ETH / IP(src=addr, dst=SERVER4) / l4)
        assert (out.verdict, out.outcome) == ("dropped", "drop_special")


@pytest.mark.parametrize("addr", SPECIAL4)
def test_special_use_destination_is_not_the_translators(xlat, addr):
    """A special-use destination does not name a host on the IPv6 side: the packet is left
    to the kernel (which drops martians and keeps multicast and broadcast local), never
    made into <prefix>::e000:1."""
    pkt = bytes(ETH / IP(src=CLIENT4, dst=addr) / UDP())
    out = xlat(pkt)
    assert (out.verdict, out.outcome, out.raw) == ("passed", "pass", pkt)


def test_special_use_source_of_an_icmp_error_is_translated(xlat):
    """...the exception in the same paragraph: "when translating ICMPv4 Error Messages into
    ICMPv6, the 'illegal' source address will be translated for the purpose of trouble
    shooting" (a router numbered from 127/8 reporting on a pod's packet)."""
    out = xlat(ETH / IP(src="127.0.0.1", dst=SERVER4) / ICMP(type=11) /
               IP(src=SERVER4, dst=CLIENT4, ttl=1) / UDP(sport=5, dport=6))
    assert out.outcome == "done46" and out.packet[IPv6].src == v6("127.0.0.1")
    assert_valid(out.raw)


def test_special_use_address_quoted_in_an_error_is_not_translated(xlat):
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / ICMP(type=3, code=3) /
               IP(src=SERVER4, dst="224.0.0.9") / UDP(sport=5, dport=6))
    assert (out.verdict, out.outcome) == ("dropped", "drop_special")


# --- fragmentation ------------------------------------------------------------------------------

def test_df_clear_packet_too_big_for_lowest_ipv6_mtu_is_left_to_the_kernel(xlat):
    """RFC 7915 4.1: "If the DF flag is not set and the IPv4 packet will result in an IPv6
    packet larger than ... lowest-ipv6-mtu ... the packet SHOULD be fragmented". A BPF
    program cannot turn one packet into several, but the kernel's IPv4 forwarding can: the
    packet goes on untranslated, the kernel fragments it by the route's MTU (lowest-ipv6-mtu
    - 28, which the topology section sets) and the egress translator translates each
    fragment (test_xlate_namespaces.py and the end-to-end tests show it arrive)."""
    for size, df, want in ((1260, 0, "done46"), (1261, 0, "frag_kernel"), (1400, "DF", "done46"),
                           (1400, 0, "frag_kernel")):
        pkt = bytes(ETH / IP(src=CLIENT4, dst=SERVER4, flags=df) / TCP() / bytes(size - 40))
        out = xlat(pkt)
        assert out.outcome == want, (size, df)
        if want == "frag_kernel":
            assert (out.verdict, out.code, out.raw) == ("passed", out.code, pkt)
            assert out.code in ("TC_ACT_UNSPEC", "XDP_PASS")


def test_lowest_ipv6_mtu_is_configurable(xlat):
    """"The translator MUST provide a configuration function for the network administrator
    to adjust the threshold of the minimum IPv6 MTU"."""
    xlat.configure(lowest_ipv6_mtu=1500)
    assert xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP() / bytes(1452)).outcome == "done46"
    assert xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP() / bytes(1453)).outcome == \
        "frag_kernel"


def test_fragment_too_big_is_fragmented_further(xlat):
    """A fragment (with its Fragment header, 28 bytes more) above lowest-ipv6-mtu too."""
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, flags="MF", id=3, proto=47) / bytes(1240))
    assert out.outcome == "frag_kernel"
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, flags="MF", id=3, proto=47) / bytes(1232))
    assert out.outcome == "done46" and len(out.raw) == 14 + 1280


def test_udp_without_checksum_gets_it_before_the_kernel_fragments(xlat):
    """Its first fragment could not be summed afterwards (4.5): the IPv4 checksum is
    computed in place, and the fragments translate like any."""
    data = bytes(range(256)) * 6
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP(sport=7, dport=9, chksum=0) / data)
    assert out.outcome == "frag_kernel"
    assert out.raw == bytes(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP(sport=7, dport=9) / data)


def test_icmp_echo_becomes_icmpv6_before_the_kernel_fragments(xlat):
    """ICMP fragments cannot be translated one by one (1.2: the ICMPv6 checksum covers the
    whole message's length): an echo the kernel is to fragment is made its ICMPv6 self
    first, type and checksum, in IPv4 protocol 58. The egress translator carries such
    fragments over untouched (test_xlate_egress_and_own.py)."""
    data = bytes(range(256)) * 6
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4, id=77) / ICMP(type=8, id=5, seq=6) / data)
    assert out.outcome == "frag_kernel"
    ip = out.packet[IP]
    assert ip.proto == 58 and IP(bytes(ip)).chksum == ip.chksum      # header checksum valid
    from scapy.layers.inet6 import ICMPv6EchoRequest
    want = ICMPv6EchoRequest(id=5, seq=6, data=data)
    assert bytes(ip.payload) == bytes(IPv6(src=CLIENT6, dst=SERVER6) / want)[40:]
