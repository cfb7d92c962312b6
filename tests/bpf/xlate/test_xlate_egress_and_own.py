"""The egress programs (for the kernel's own packets toward the other family) translate one
direction only and leave everything else alone; the translator host's own addresses are
passed at ingress but translate as sources."""

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6TimeExceeded, IPv6, ICMPv6ND_NA
from scapy.layers.l2 import ARP

from lab.bpf.testing import run_packet
from lab.datapath.translator import EGRESS_46, EGRESS_64, TranslatorConfig

from xlate_helpers import BASE_CONFIG, CLIENT4, CLIENT6, ETH, SERVER4, SERVER6, Translator, \
    assert_valid

pytestmark = pytest.mark.root

GW4, GW6 = "192.0.2.1", "2001:db8:6::1"
OWN = {"own": [{"ipv4": GW4, "ipv6": GW6}]}


@pytest.fixture
def egress(xlate_object):
    TranslatorConfig.from_dict({**BASE_CONFIG, **OWN}).apply(xlate_object)
    return {"46": xlate_object.program(EGRESS_46), "64": xlate_object.program(EGRESS_64)}


@pytest.mark.parametrize("pkt", [
    ETH / IPv6(src=SERVER6, dst=CLIENT6) / UDP(),                   # would translate 6->4
    ETH / IPv6(src="fe80::1", dst="ff02::1:ff00:5") / ICMPv6ND_NA(),
    ETH / ARP(),
], ids=["ipv6", "neighbour-discovery", "arp"])
def test_46_egress_leaves_non_ipv4_alone(egress, pkt):
    out = run_packet(egress["46"], pkt)
    assert (out.code, out.raw) == ("TC_ACT_UNSPEC", bytes(pkt))


@pytest.mark.parametrize("pkt", [
    ETH / IP(src=CLIENT4, dst=SERVER4) / UDP(),                     # would translate 4->6
    ETH / ARP(),
], ids=["ipv4", "arp"])
def test_64_egress_leaves_non_ipv6_alone(egress, pkt):
    out = run_packet(egress["64"], pkt)
    assert (out.code, out.raw) == ("TC_ACT_UNSPEC", bytes(pkt))


def test_64_egress_translates_the_kernels_time_exceeded(egress):
    """What the gateway's IPv6 stack sends a translated client: from its own IPv6 address
    to the client's. Translated, then routed anew (in this test's namespace, without a
    route to the client, the route lookup fails and the packet is dropped; the namespace
    tests see it delivered)."""
    quoted = IPv6(src=CLIENT6, dst=SERVER6, hlim=1) / UDP(sport=33434, dport=33435)
    out = run_packet(egress["64"], ETH / IPv6(src=GW6, dst=CLIENT6) / ICMPv6TimeExceeded() /
                     quoted)
    ip = IP(out.raw[14:])
    assert (ip.src, ip.dst, ip[ICMP].type) == (GW4, CLIENT4, 11)
    assert_valid(out.raw)


def test_own_addresses_are_not_translated_as_destinations(xlate_object):
    TranslatorConfig.from_dict({**BASE_CONFIG, **OWN}).apply(xlate_object)
    for hook in ("tc", "xdp"):
        xlat = Translator(xlate_object, hook)
        xlat.configure(**OWN)
        to4 = bytes(ETH / IP(src=CLIENT4, dst=GW4) / ICMP())
        out = xlat(to4)
        assert (out.outcome, out.raw) == ("pass", to4)
        to6 = bytes(ETH / IPv6(src=SERVER6, dst=GW6) / ICMPv6EchoRequest())
        out = xlat(to6)
        assert (out.outcome, out.raw) == ("pass", to6)
        # ...but as sources they map to each other
        out = xlat(ETH / IPv6(src=GW6, dst=CLIENT6) / ICMPv6EchoRequest())
        assert (out.outcome, out.packet[IP].src) == ("done64", GW4)
        out = xlat(ETH / IP(src=GW4, dst=SERVER4) / ICMP())
        assert (out.outcome, out.packet[IPv6].src) == ("done46", GW6)


def test_46_egress_carries_icmpv6_the_ingress_prepared(egress):
    """The ingress made an ICMP echo too big for lowest-ipv6-mtu its ICMPv6 self in IPv4
    protocol 58 and the kernel fragmented it (test_xlate_rfc7915_4_1.py): each fragment
    translates with Next Header 58 and its bytes as they are, and the reassembled message's
    checksum is the one the ingress computed."""
    from scapy.layers.inet6 import IPv6ExtHdrFragment, ICMPv6EchoRequest
    message = bytes(IPv6(src=CLIENT6, dst=SERVER6) / ICMPv6EchoRequest(id=1, data=bytes(1500)))[40:]
    got = b""
    for off, part, mf in ((0, message[:1232], "MF"), (154, message[1232:], 0)):
        out = run_packet(egress["46"], ETH / IP(src=CLIENT4, dst=SERVER4, proto=58, id=7,
                                                flags=mf, frag=off) / part)
        ip6 = IPv6(out.raw[14:])
        fh = ip6[IPv6ExtHdrFragment]
        assert (ip6.src, ip6.dst, fh.nh, fh.offset, fh.id) == (CLIENT6, SERVER6, 58, off, 7)
        got += bytes(fh.payload)
    assert got == message


def test_ingress_refuses_ipv4_protocol_58(xlate_object):
    """...which nothing else makes IPv4 carry: at ingress it is refused (an IPv4 sender's
    ICMPv6 checksum cannot cover the IPv6 pseudo-header)."""
    TranslatorConfig.from_dict(BASE_CONFIG).apply(xlate_object)
    out = Translator(xlate_object, "tc")(ETH / IP(src=CLIENT4, dst=SERVER4, proto=58) /
                                         bytes(16))
    assert (out.verdict, out.outcome) == ("dropped", "drop_proto")
