"""BPF host routing (bpf/hostrouting.c) packet by packet through BPF_PROG_TEST_RUN: the verdict,
where the packet was sent (from the pod table, or the FIB of a real namespace), the hop limit
a router must decrement, MAC rewriting, and that everything else reaches the stack untouched.
The redirect target is what the program counted in hr_stats (BPF_PROG_TEST_RUN does not
perform the redirect)."""

from __future__ import annotations

import enum
import ipaddress

import pytest
from pyroute2 import IPRoute
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from lab import netns
from lab.datapath.hostrouting import control as hr
from lab.errors import LabError
from lab.bpf.testing import run_packet

pytestmark = pytest.mark.root

POD_A, POD_B = "fd00:10:244:1::10", "fd00:10:244:1::11"
REMOTE = "2001:db8:99::1"
LXC_A, LXC_B = 41, 42  # ifindexes the table names (the test run never sends there)
POD_B_MAC, LXC_B_MAC = "02:00:00:00:0b:01", "02:00:00:00:0b:02"
FROM_POD_A = Ether(src="02:00:00:00:0a:01", dst="02:00:00:00:0a:02")
BPF_FIB_LKUP_RET_NOT_FWDED, BPF_FIB_LKUP_RET_FWD_DISABLED = 4, 5


@pytest.fixture
def obj(load_bpf):
    o = load_bpf(hr.OBJECT)
    pods = o.map(hr.PODS_MAP)
    for addr, ifindex, pod_mac, node_mac in ((POD_A, LXC_A, "02:00:00:00:0a:01",
                                              "02:00:00:00:0a:02"),
                                             (POD_B, LXC_B, POD_B_MAC, LXC_B_MAC)):
        v = pods.value_type()
        v.ifindex = ifindex
        v.pod_mac[:] = list(bytes.fromhex(pod_mac.replace(":", "")))
        v.node_mac[:] = list(bytes.fromhex(node_mac.replace(":", "")))
        pods.update(ipaddress.IPv6Address(addr).packed, v)
    return o


def stats(obj) -> list[tuple[int, int, hr.Outcome, int, int]]:
    return sorted((e.in_ifindex, e.out_ifindex, e.outcome, e.detail, e.packets)
                  for e in hr.read_stats(obj.map(hr.STATS_MAP)))


def run(obj, program, pkt, ifindex=1):
    return run_packet(obj.program(program), pkt, {"ifindex": ifindex})


@pytest.mark.parametrize("program, outcome", [("hr_from_pod", hr.Outcome.TO_POD_PEER),
                                              ("hr_from_netkit_pod", hr.Outcome.TO_POD_DEV),
                                              ("hr_to_pod", hr.Outcome.TO_POD_PEER)])
def test_a_local_pod_gets_the_packet_with_hop_limit_and_macs_rewritten(obj, program, outcome):
    pkt = FROM_POD_A / IPv6(src=POD_A, dst=POD_B, hlim=64) / TCP(dport=80)
    out = run(obj, program, pkt)
    assert out.redirected and out.code == "TC_ACT_REDIRECT"
    assert out.packet[IPv6].hlim == 63
    assert (out.packet.src, out.packet.dst) == (LXC_B_MAC, POD_B_MAC)
    assert bytes(out.packet[TCP]) == bytes(pkt[TCP])
    assert stats(obj) == [(1, LXC_B, outcome, 0, 1)]  # sent to pod B's device, by the table


def test_the_table_decides_the_target(obj):
    """Pod A's packets to itself go to its own device: the target is the table's, not fixed."""
    out = run(obj, "hr_to_pod", FROM_POD_A / IPv6(src=REMOTE, dst=POD_A) / TCP())
    assert out.redirected and stats(obj) == [(1, LXC_A, hr.Outcome.TO_POD_PEER, 0, 1)]
    obj.map(hr.PODS_MAP).delete(ipaddress.IPv6Address(POD_A).packed)
    out = run(obj, "hr_to_pod", FROM_POD_A / IPv6(src=REMOTE, dst=POD_A) / TCP())
    assert out.passed  # the pod is gone from the table: the stack's business


@pytest.mark.parametrize("program", ["hr_from_pod", "hr_from_netkit_pod", "hr_to_pod"])
def test_ipv4_and_arp_pass_untouched(obj, program):
    for pkt in (Ether(src="02:00:00:00:0a:01", dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\0" * 28),
                FROM_POD_A / IP(src="10.0.0.1", dst="10.0.0.2") / TCP()):
        out = run(obj, program, pkt)
        assert out.passed and out.code == "TC_ACT_UNSPEC" and out.raw == bytes(pkt)
    assert [s[2] for s in stats(obj)] == [hr.Outcome.PASS_NOT_IPV6]


@pytest.mark.parametrize("program", ["hr_from_pod", "hr_from_netkit_pod", "hr_to_pod"])
def test_hop_limit_1_is_left_to_the_stack(obj, program):
    pkt = FROM_POD_A / IPv6(src=POD_A, dst=POD_B, hlim=1) / TCP()
    out = run(obj, program, pkt)
    assert out.passed and out.raw == bytes(pkt)
    assert stats(obj) == [(1, 0, hr.Outcome.PASS_HOP_LIMIT, 0, 1)]


@pytest.mark.parametrize("dst", ["ff02::1:ff00:1", "fe80::1"])
def test_neighbour_discovery_and_link_local_go_to_the_stack(obj, dst):
    pkt = FROM_POD_A / IPv6(src="fe80::2", dst=dst, hlim=255) / ICMPv6ND_NS(tgt="fe80::1")
    out = run(obj, "hr_from_pod", pkt)
    assert out.passed and out.raw == bytes(pkt)
    assert stats(obj) == [(1, 0, hr.Outcome.PASS_LINK_SCOPE, 0, 1)]


def test_uplink_passes_what_is_not_for_a_local_pod(obj):
    pkt = FROM_POD_A / IPv6(src=REMOTE, dst="fd00:0:0:1::2") / ICMPv6EchoRequest()
    out = run(obj, "hr_to_pod", pkt)
    assert out.passed and out.raw == bytes(pkt)
    assert stats(obj) == [(1, 0, hr.Outcome.PASS_NOT_LOCAL, 0, 1)]


# -- the FIB of a real namespace (veth_pair's namespace a: veth-a with fd77::1/64) --------------

NEIGH_MAC = "02:00:00:00:77:02"


def _forwarding(ns: str, ifname: str, on: bool) -> None:
    with netns.entered(ns), open(f"/proc/sys/net/ipv6/conf/{ifname}/forwarding", "w") as f:
        f.write("1" if on else "0")


@pytest.fixture
def fib_ns(veth_pair):
    """Namespace a with forwarding on veth-a and a known neighbour fd77::2."""
    _forwarding(veth_pair.a, veth_pair.a_if, True)
    with netns.entered(veth_pair.a), IPRoute() as ipr:
        ipr.neigh("add", dst=veth_pair.b_ip6, lladdr=NEIGH_MAC,
                  ifindex=veth_pair.ifindex("a"), state=0x80)  # NUD_PERMANENT
    return veth_pair


def _mac_of(ns: str, ifindex: int) -> str:
    with netns.entered(ns), IPRoute() as ipr:
        return ipr.get_links(ifindex)[0].get_attr("IFLA_ADDRESS")


def test_fib_route_with_a_known_neighbour_is_sent_with_its_macs(obj, fib_ns):
    idx = fib_ns.ifindex("a")
    pkt = FROM_POD_A / IPv6(src=POD_A, dst=fib_ns.b_ip6, hlim=64) / TCP()
    with netns.entered(fib_ns.a):
        out = run(obj, "hr_from_pod", pkt, ifindex=idx)
    assert out.redirected and out.packet[IPv6].hlim == 63
    assert (out.packet.src, out.packet.dst) == (_mac_of(fib_ns.a, idx), NEIGH_MAC)
    assert stats(obj) == [(idx, idx, hr.Outcome.FIB_DIRECT, 0, 1)]


def test_fib_route_without_a_neighbour_goes_to_redirect_neigh(obj, fib_ns):
    idx = fib_ns.ifindex("a")
    pkt = FROM_POD_A / IPv6(src=POD_A, dst="fd77::3", hlim=64) / TCP()
    with netns.entered(fib_ns.a):
        out = run(obj, "hr_from_netkit_pod", pkt, ifindex=idx)
    assert out.redirected and out.packet[IPv6].hlim == 63
    assert out.packet.dst == FROM_POD_A.dst  # the kernel writes the MACs when it sends
    assert stats(obj) == [(idx, idx, hr.Outcome.FIB_NEIGH, 0, 1)]


def test_fib_refusals_pass_to_the_stack(obj, fib_ns):
    idx = fib_ns.ifindex("a")
    local = FROM_POD_A / IPv6(src=POD_A, dst=fib_ns.a_ip6) / TCP()  # the node's own address
    with netns.entered(fib_ns.a):
        assert run(obj, "hr_from_pod", local, ifindex=idx).passed
    _forwarding(fib_ns.a, fib_ns.a_if, False)
    away = FROM_POD_A / IPv6(src=POD_A, dst=fib_ns.b_ip6) / TCP()
    with netns.entered(fib_ns.a):
        out = run(obj, "hr_from_pod", away, ifindex=idx)
    assert out.passed and out.raw == bytes(away)  # not even the hop limit touched
    assert stats(obj) == [(idx, 0, hr.Outcome.PASS_FIB, BPF_FIB_LKUP_RET_NOT_FWDED, 1),
                          (idx, 0, hr.Outcome.PASS_FIB, BPF_FIB_LKUP_RET_FWD_DISABLED, 1)]


def test_python_outcomes_are_the_programs_enum(obj, monkeypatch):
    hr.check_outcomes(obj)                       # as shipped: they agree
    drifted = enum.IntEnum("Outcome", {**{o.name: o.value for o in hr.Outcome},
                                       "PASS_FIB": 10})
    monkeypatch.setattr(hr, "Outcome", drifted)
    with pytest.raises(LabError, match="enum hr_outcome"):
        hr.check_outcomes(obj)
