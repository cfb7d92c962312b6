"""RFC 7915 5.1, translating IPv6 headers into IPv4 headers, at tc and at XDP."""

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, \
    IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.packet import Raw

from xlate_helpers import CLIENT4, CLIENT6, ETH, SERVER4, SERVER6, assert_valid, expect4, v6

pytestmark = pytest.mark.root


def test_tcp_header_fields(xlat):
    """Version 4, IHL 5, TOS = traffic class, total length = payload length + 20,
    identification generated (below), DF clear up to 1260 bytes, TTL = hop limit, protocol =
    next header, header checksum, addresses mapped."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, tc=0x28, fl=0xABCDE, hlim=17) /
               TCP(sport=80, dport=40000, flags="SA") / b"hello")
    assert (out.verdict, out.outcome) == ("passed", "done64")
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, tos=0x28, ttl=17, id=0,
                                     flags=0) / TCP(sport=80, dport=40000, flags="SA") /
                              b"hello")


@pytest.mark.parametrize("size,df", [(1260, False), (1261, True), (1500, True), (100, False)])
def test_df_is_set_above_1260_bytes(xlat, size, df):
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / UDP() / bytes(size - 28))
    ip = out.packet[IP]
    assert ip.len == size and bool(ip.flags.DF) == df and not ip.flags.MF
    if df:
        assert ip.id == 0       # an atomic datagram: any value will do (RFC 6864 4.1)
    assert_valid(out.raw)


@pytest.fixture
def one_cpu():
    """The generator counts per CPU: keep the test on one."""
    import os
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield
    os.sched_setaffinity(0, before)


def test_identification_is_generated_for_packets_ipv4_may_fragment(xlat, one_cpu):
    """RFC 7915 5.1: "Identification: Set according to a Fragment Identification generator
    at the translator"; RFC 6864 4.1: a non-atomic (DF clear) datagram's Identification must
    not repeat for its source, destination and protocol while its fragments may live, or
    reassembly mixes up datagrams. A per-CPU counter offset by a keyed hash of the three:
    packets of a flow count up, and flows start at unrelated points."""
    flows = [ETH / IPv6(src=SERVER6, dst=dst) / proto() / b"x"
             for dst, proto in ((CLIENT6, UDP), (v6("203.0.113.9"), UDP), (CLIENT6, TCP))]
    xlat.check_complete = False     # one run per packet: each run takes an Identification
    ids = [[], [], []]
    for _ in range(300):
        for i, pkt in enumerate(flows):
            ids[i].append(xlat(pkt).packet[IP].id)
    for seq in ids:
        assert len(set(seq)) == 300                              # none repeats
        assert {(y - x) % 65536 for x, y in zip(seq, seq[1:])} == {3}
    offsets = {(ids[i][0] - i) % 65536 for i in range(3)}
    assert len(offsets) > 1                                      # not one shared sequence


def test_identification_of_a_fragment_comes_from_its_fragment_header(xlat):
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrFragment(nh=17, m=1, id=0xA1B2C3) /
               UDP() / bytes(64))
    assert out.packet[IP].id == 0xB2C3


def test_zero_tos_option(xlat):
    xlat.configure(zero_tos=True)
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, tc=0xFF) / UDP())
    assert out.packet[IP].tos == 0


@pytest.mark.parametrize("ext", [
    IPv6ExtHdrHopByHop(),
    IPv6ExtHdrDestOpt(),
    IPv6ExtHdrRouting(addresses=["2001:db8::7"], segleft=0),
    IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(segleft=0) /
    IPv6ExtHdrDestOpt(),
], ids=["hop-by-hop", "destination", "routing-done", "four"])
def test_extension_headers_are_skipped(xlat, ext):
    """Hop-by-Hop, Destination Options and spent Routing headers are not translated; total
    length and protocol skip them."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, hlim=5) / ext / UDP(sport=7) / b"abc")
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, ttl=5) / UDP(sport=7) /
                              b"abc")


def test_hop_by_hop_not_first_is_not_translated(xlat):
    """RFC 8200 4.3: Hop-by-Hop only right after the IPv6 header (the error that answers it,
    with icmp_errors: test_xlate_rfc7915_4_4_5_4.py)."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrDestOpt() /
               IPv6ExtHdrHopByHop() / UDP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_ext_chain")


def test_too_many_extension_headers_are_not_translated(xlat):
    chain = IPv6ExtHdrDestOpt()
    for _ in range(7):
        chain = chain / IPv6ExtHdrDestOpt()
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / chain / UDP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_ext_chain")


def test_fragment_header_becomes_ipv4_fragment_fields(xlat):
    """Identification: the low 16 bits of the Fragment header's; MF from M; offset copied;
    DF clear so IPv4 routers may fragment further; total length without the Fragment
    header."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, hlim=30) /
               IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0x12345678) /
               UDP(sport=1, dport=2, len=400) / bytes(200))
    ip = out.packet[IP]
    assert (ip.id, ip.frag, bool(ip.flags.MF), bool(ip.flags.DF)) == (0x5678, 0, True, False)
    assert (ip.len, ip.proto, ip.ttl) == (20 + 208, 17, 30)
    assert_valid(out.raw)


def test_later_fragment(xlat):
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) /
               IPv6ExtHdrFragment(nh=6, offset=185, m=0, id=0xFFFF0001) / Raw(bytes(48)))
    assert out.raw == bytes(ETH / IP(src=SERVER4, dst=CLIENT4, id=1, frag=185, proto=6) /
                            bytes(48))


@pytest.mark.parametrize("after", [IPv6ExtHdrDestOpt(), IPv6ExtHdrHopByHop(),
                                   IPv6ExtHdrRouting(segleft=0), IPv6ExtHdrFragment(nh=17)],
                         ids=["destination", "hop-by-hop", "routing", "fragment"])
def test_extension_headers_after_a_fragment_header_are_not_translated(xlat, after):
    """RFC 7915 5.1: "If the Next Header field of the Fragment Header is an extension
    header (except ESP, but including the Authentication Header (AH)), then the packet
    SHOULD be dropped and logged": such a header is in the fragmentable part, which later
    fragments' offsets count, so it cannot be removed."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrFragment(m=1) / after /
               UDP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_ext_chain")


@pytest.mark.parametrize("nh", [59, 17, 6])
def test_payload_length_zero_is_a_packet_with_nothing_after_its_headers(xlat, nh):
    """Payload length 0 is a jumbogram only with a Jumbo Payload option (RFC 2675) or as a
    BIG TCP GSO packet (test_xlate_big_tcp.py): anywhere else it is what it says, and No
    Next Header (59) with nothing after it is a valid packet (RFC 8200 4.7)."""
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, nh=nh, plen=0, hlim=9))
    if nh == 59:
        assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, proto=59, ttl=9))
    else:       # TCP and UDP need their headers
        assert (out.verdict, out.outcome) == ("dropped", "drop_malformed")


def test_payload_length_zero_after_a_hop_by_hop_header_is_malformed(xlat):
    """...whereas a Hop-by-Hop header that does not fit in payload length 0 is cut."""
    out = xlat(bytes(ETH / IPv6(src=SERVER6, dst=CLIENT6, nh=0, plen=0) /
                     IPv6ExtHdrHopByHop(nh=59)))
    assert (out.verdict, out.outcome) == ("dropped", "drop_malformed")


@pytest.mark.parametrize("nh", [50, 47, 132, 59])
def test_other_protocols_are_copied(xlat, nh):
    out = xlat(ETH / IPv6(src=SERVER6, dst=CLIENT6, nh=nh) / Raw(bytes(range(32))))
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, proto=nh) /
                              bytes(range(32)))


def test_padding_after_the_payload_is_not_translated(xlat):
    pkt = bytes(ETH / IPv6(src=SERVER6, dst=CLIENT6) / UDP() / b"z") + bytes(30)
    out = xlat(pkt)
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4) / UDP() / b"z")


@pytest.mark.parametrize("mangle,what", [
    (lambda b: b[:18] + (0).to_bytes(2, "big") + b[20:], "payload length 0 before UDP"),
    (lambda b: b[:18] + (500).to_bytes(2, "big") + b[20:], "payload length past the frame"),
    (lambda b: b[:54 + 4], "UDP header cut"),
])
def test_malformed_ipv6_is_dropped(xlat, mangle, what):
    pkt = bytes(ETH / IPv6(src=SERVER6, dst=CLIENT6) / UDP() / b"data")
    out = xlat(mangle(pkt))
    assert (out.verdict, out.outcome) == ("dropped", "drop_malformed"), what


def test_destination_outside_prefix_and_eam_passes_untouched(xlat):
    pkt = bytes(ETH / IPv6(src=SERVER6, dst="2001:db8:77::1") / UDP())
    out = xlat(pkt)
    assert (out.verdict, out.outcome, out.raw) == ("passed", "pass", pkt)


def test_address_under_the_prefix_with_a_suffix_is_not_translated(xlat):
    """Only addresses the prefix embedding produces map back (u octet and suffix zero)."""
    dst = v6(CLIENT4).replace("::", "::1")
    out = xlat(ETH / IPv6(src=SERVER6, dst=dst) / UDP())
    assert (out.verdict, out.outcome) == ("passed", "pass")


def test_untranslatable_source_is_dropped(xlat):
    out = xlat(ETH / IPv6(src="2001:db8:99::1", dst=CLIENT6) / UDP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_src")


# --- special-use IPv4 addresses ---------------------------------------------------------------

@pytest.mark.parametrize("addr", ["0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.1",
                                  "239.1.2.3", "240.0.0.1", "255.255.255.255"])
def test_special_use_destination_is_never_translated(xlat, addr):
    """A pod sending to <prefix>::e000:1 would reach 224.0.0.1 (or the loopback, or the
    limited broadcast) of the IPv4 side: never translated (RFC 7915 5.1 and 4.1 on
    addresses that cannot be translated); dropped, and answered with RFC 7915 5.4's
    Destination Unreachable (code 1) when errors are on."""
    pkt = ETH / IPv6(src=SERVER6, dst=v6(addr)) / UDP(sport=5, dport=6)
    assert (xlat(pkt).verdict, xlat(pkt).outcome) == ("dropped", "drop_special")
    xlat.configure(icmp_errors=True, icmp_source4="203.0.113.254",
                   icmp_source6="2001:db8:6::1")
    out = xlat(pkt)
    assert out.outcome == "bounce"
    assert (out.packet[IPv6].src, out.packet[IPv6].dst) == ("2001:db8:6::1", SERVER6)
    assert (out.packet[IPv6].payload.type, out.packet[IPv6].payload.code) == (1, 1)


@pytest.mark.parametrize("addr", ["127.0.0.1", "0.0.0.1", "224.0.0.5"])
def test_special_use_source_is_silently_dropped(xlat, addr):
    """RFC 7915 5.1: an illegal source, "the translator SHOULD silently drop the packet"."""
    xlat.configure(icmp_errors=True, icmp_source4="203.0.113.254",
                   icmp_source6="2001:db8:6::1")
    out = xlat(ETH / IPv6(src=v6(addr), dst=CLIENT6) / UDP())
    assert (out.verdict, out.outcome) == ("dropped", "drop_special")
