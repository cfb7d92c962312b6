"""Pod modes natively (veth with host routing, veth with BPF host routing): two pods of one
node talk (ping, TCP) and reach the gateway; BPF host routing is shown to carry the traffic
itself: its counters name the devices, and with IPv6 forwarding off on the node, traffic flows
with the programs and stops once they are detached, where host routing carries nothing."""

from __future__ import annotations

import pytest
from pod_traffic import TRANSFER, make_lab, paths, pings, tcp_echoes  # noqa: F401 (fixture)

from lab.bpf import attach
from lab.bpf.topology import recorded_attachments
from lab.datapath import hostrouting as hr

pytestmark = pytest.mark.root

NO_FORWARDING = {"net.ipv6.conf.all.forwarding": 0}


@pytest.mark.parametrize("routing", ["host", "bpf"])
def test_pods_reach_each_other_and_the_gateway(make_lab, routing):
    lab = make_lab(device="veth", routing=routing)
    for client, server, address in paths(lab):
        assert pings(client, address), f"{routing}: {client.name} -> {server.name} ping"
        assert tcp_echoes(client, server, address), f"{routing}: {client.name} -> {server.name}"


def test_bpf_routing_counts_what_it_carried(make_lab):
    lab = make_lab(device="veth", routing="bpf")
    node = lab.node("node1")
    lxc = {i.ifname: i.ifindex for i in node.interfaces.values()}
    hr.clear_stats(lab.pin_dir, "node1")
    pod0, pod1 = lab.pods("node1")
    assert tcp_echoes(pod0, pod1, pod1.address(6))
    assert tcp_echoes(pod0, lab.node("gw"), lab.node("gw").address(6))
    rows = hr.stats(lab.pin_dir, "node1")

    def carried(src, dst, *outcomes):
        return sum(r.bytes for r in rows if (r.in_ifindex, r.out_ifindex) == (lxc[src], lxc[dst])
                   and r.outcome in outcomes)

    # pod0 -> pod1 and back: straight into the other pod's namespace, every byte
    assert carried("lxc0", "lxc1", hr.Outcome.TO_POD_PEER) >= TRANSFER
    assert carried("lxc1", "lxc0", hr.Outcome.TO_POD_PEER) >= TRANSFER
    # pod0 -> gateway by the FIB out of eth0; the answers from eth0 into pod0
    assert carried("lxc0", "eth0", hr.Outcome.FIB_DIRECT, hr.Outcome.FIB_NEIGH) >= TRANSFER
    assert carried("eth0", "lxc0", hr.Outcome.TO_POD_PEER) >= TRANSFER
    # what went to the stack: neighbour discovery and the like, a handful of packets
    passed = [r for r in rows if not r.outcome.forwarded]
    assert sum(r.packets for r in passed) < 20, passed
    assert {r.outcome for r in passed} <= {hr.Outcome.PASS_LINK_SCOPE,
                                           hr.Outcome.PASS_NOT_LOCAL}, passed


def test_without_forwarding_only_bpf_routing_carries_traffic(make_lab):
    bpf = make_lab(device="veth", routing="bpf", node_sysctls=NO_FORWARDING)
    host = make_lab(device="veth", routing="host", node_sysctls=NO_FORWARDING)
    for lab in (bpf, host):
        assert all_forwarding(lab) == "0"  # the node's stack forwards nothing
    for client, server, address in paths(bpf):
        assert pings(client, address) and tcp_echoes(client, server, address), \
            f"bpf routing without forwarding: {client.name} -> {server.name}"
    for client, server, address in paths(host):
        assert not pings(client, address, count=1), \
            f"host routing without forwarding: {client.name} -> {server.name} got through"
    # The programs are what carried it: detached, the bpf lab is as dead as the host one.
    for node, rec in recorded_attachments(bpf.record):
        assert node == "node1" and rec.program.startswith("hr_")
        assert attach.detach(rec)
    for client, server, address in paths(bpf):
        assert not pings(client, address, count=1), \
            f"programs detached: {client.name} -> {server.name} still got through"


def all_forwarding(lab) -> str:
    with lab.node("node1").entered(), open("/proc/sys/net/ipv6/conf/all/forwarding") as f:
        return f.read().strip()
