"""RFC 7757 4.2 (and Appendix B), hairpinning with explicit address mappings: IPv6 node A
(EAM A6 <-> A4) sends to the prefix-embedded address of IPv6 node B's EAM address B4. The
packet must come out toward B6 from A's address *through the prefix*, <prefix>::A4, which
B answers and which leads back through the translator, so that A sees the reply come from
the address it sent to. Translated twice the plain way it would reach B from A6, B would
answer A6 natively, and A would get a reply from B6, an address it never contacted.

The translator does both halves in one pass (IPv6 -> IPv4, then back with the hairpin
rules: source through the prefix; in a quoted packet, the destination), outcome "hairpin";
the kernel then forwards the IPv6 packet (hop limit down once)."""

from dataclasses import replace
from ipaddress import IPv4Network

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, \
    ICMPv6TimeExceeded, IPv6, IPv6ExtHdrFragment

from lab.bpf.testing import run_packet
from lab.datapath.translator import EGRESS_64

from xlate_helpers import EAM4, ETH, assert_valid, v6

pytestmark = pytest.mark.root

A6, A4 = "2001:db8:6::5", "198.51.100.5"     # EAM 2001:db8:6::/120 <-> 198.51.100.0/24
B6, B4 = "2001:db8:6::7", "198.51.100.7"


@pytest.mark.parametrize("l4,back", [
    (TCP(sport=40000, dport=80, flags="S", seq=9), TCP(sport=80, dport=40000, flags="SA")),
    (UDP(sport=5353, dport=53), UDP(sport=53, dport=5353)),
    (ICMPv6EchoRequest(id=4, seq=1), ICMPv6EchoReply(id=4, seq=1)),
], ids=["tcp", "udp", "echo"])
def test_hairpinned_flow_both_ways(xlat, l4, back):
    """A -> <prefix>::B4 comes out <prefix>::A4 -> B6; B's answer to <prefix>::A4 comes out
    <prefix>::B4 -> A6: each end sees the other at the address it uses."""
    out = xlat(ETH / IPv6(src=A6, dst=v6(B4), hlim=30, tc=0x20) / l4 / b"hairpin")
    assert (out.verdict, out.outcome) == ("passed", "hairpin")
    assert out.raw == bytes(ETH / IPv6(src=v6(A4), dst=B6, hlim=30, tc=0x20) / l4 / b"hairpin")
    reply = xlat(ETH / IPv6(src=B6, dst=v6(A4), hlim=64) / back / b"back")
    assert (reply.verdict, reply.outcome) == ("passed", "hairpin")
    assert reply.raw == bytes(ETH / IPv6(src=v6(B4), dst=A6, hlim=64) / back / b"back")


def test_not_hairpinned_to_ipv4_hosts(xlat):
    """An EAM entry whose IPv4 side holds the hosts (the topology tells; eam_ipv4_hosts) is
    not an IPv6 node's address: the packet goes to IPv4 as any."""
    cfg = replace(xlat.configure(), eam_ipv4_hosts=(IPv4Network(EAM4),))
    cfg.apply(xlat.obj)
    out = xlat(ETH / IPv6(src="2001:db8:99::1", dst=v6(B4)) / UDP())
    assert out.outcome == "drop_src"           # an unmapped source: what 6->4 says, no hairpin
    out = xlat(ETH / IPv6(src=v6("192.0.2.10"), dst=v6(B4)) / UDP())
    assert (out.outcome, out.packet[IP].dst) == ("done64", B4)


def test_hairpinned_fragment_keeps_its_identification(xlat):
    """Both halves keep a fragment a fragment: the Fragment header's identification (its low
    16 bits, as IPv4 carried them), offset and M."""
    out = xlat(ETH / IPv6(src=A6, dst=v6(B4)) / IPv6ExtHdrFragment(nh=17, m=1, id=0x10009) /
               UDP(sport=1, dport=2, len=200) / bytes(64))
    fh = out.packet[IPv6ExtHdrFragment]
    assert (out.outcome, fh.id, fh.m, fh.offset) == ("hairpin", 9, 1, 0)
    assert (out.packet[IPv6].src, out.packet[IPv6].dst) == (v6(A4), B6)


def test_hairpinned_icmp_error(xlat):
    """An error from an IPv6 router without an IPv4 address about a hairpinned packet
    (Jool's graybox case 6791v66): the reporter gets the RFC 6791 pool address, through the
    prefix since it is hairpinned; the quoted packet reads as A sent it, <prefix>::B4."""
    xlat.configure(pool4="203.0.113.8")
    quoted = IPv6(src=v6(A4), dst=B6, hlim=1) / UDP(sport=7, dport=8) / b"q"
    out = xlat(ETH / IPv6(src="2001:db8:ff::5", dst=v6(A4), hlim=60) /
               ICMPv6TimeExceeded() / quoted)
    assert out.outcome == "hairpin"
    assert_valid(out.raw)
    assert (out.packet[IPv6].src, out.packet[IPv6].dst) == (v6("203.0.113.8"), A6)
    inner = IPv6(bytes(out.packet[ICMPv6TimeExceeded].payload))
    assert (inner.src, inner.dst, inner[UDP].sport) == (A6, v6(B4), 7)


def test_hairpinned_error_from_a_pod(xlat):
    """B itself answers A's datagram with Port Unreachable."""
    quoted = IPv6(src=v6(A4), dst=B6) / UDP(sport=7, dport=8)
    out = xlat(ETH / IPv6(src=B6, dst=v6(A4)) / ICMPv6DestUnreach(code=4) / quoted)
    assert out.outcome == "hairpin"
    assert_valid(out.raw)
    assert (out.packet[IPv6].src, out.packet[IPv6].dst) == (v6(B4), A6)
    inner = IPv6(bytes(out.packet[ICMPv6DestUnreach].payload))
    assert (inner.src, inner.dst) == (A6, v6(B4))


def test_kernels_own_packet_hairpins_at_egress(xlate_object, xlat):
    """The gateway's own IPv6 packet to <prefix>::B4 (routed to the IPv4-side egress) comes
    out the same way and is routed anew as IPv6 (here the route lookup finds nothing: the
    namespace tests see it delivered)."""
    out = run_packet(xlate_object.program(EGRESS_64),
                     ETH / IPv6(src=A6, dst=v6(B4)) / UDP(sport=1, dport=2))
    ip = IPv6(out.raw[14:])
    assert (ip.src, ip.dst) == (v6(A4), B6)


def test_prefix_traffic_to_ipv4_hosts_does_not_look_up_hairpins(xlat):
    """The hairpin check is two compares for addresses outside every EAM IPv4 range of IPv6
    hosts: traffic to IPv4 hosts is translated as before."""
    out = xlat(ETH / IPv6(src=A6, dst=v6("203.0.113.80")) / ICMPv6EchoRequest())
    assert (out.outcome, out.packet[IP].dst, out.packet[ICMP].type) == \
        ("done64", "203.0.113.80", 8)
