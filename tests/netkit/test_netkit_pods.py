"""netkit pods (marker netkit: natively where the kernel has netkit, and in every kernel VM
tests/vm/test_bpf_in_vm.py boots): L3 and L2 netkit pods carry ping and TCP to each other and
to the gateway, with host and with BPF routing; the peer's blackhole policy drops what the
pods send until the host routing program is attached at the peer hook, and detaching it
brings the policy back (blackhole: dead again; forward: the node's stack carries it)."""

from __future__ import annotations

import pytest
from pod_traffic import make_lab, paths, pings, tcp_echoes  # noqa: F401 (fixture)

from lab import features
from lab.bpf import attach
from lab.bpf.object import BpfObject
from lab.bpf.topology import node_pin_dir, recorded_attachments
from lab.datapath import hostrouting as hr

pytestmark = [pytest.mark.root, pytest.mark.netkit]


@pytest.fixture(autouse=True)
def netkit_kernel():
    ok, why = features.netkit()
    if not ok:
        pytest.skip(f"{why}: tests/vm/test_bpf_in_vm.py runs this in the kernel VMs")


def peer_attachments(lab):
    return [rec for node, rec in recorded_attachments(lab.record) if rec.hook == "netkit-peer"]


@pytest.mark.parametrize("routing", ["host", "bpf"])
@pytest.mark.parametrize("device", ["netkit", "netkit-l2"])
def test_netkit_pods_reach_each_other_and_the_gateway(make_lab, device, routing):
    lab = make_lab(device=device, routing=routing)
    kinds = {link.kind for link in lab.topology.links if link.b.node.startswith("node1-pod")}
    assert kinds == {device}
    for client, server, address in paths(lab):
        assert pings(client, address), f"{device}/{routing}: {client.name} -> {server.name}"
        assert tcp_echoes(client, server, address), \
            f"{device}/{routing}: {client.name} -> {server.name} TCP"
    if routing == "bpf":
        rows = hr.stats(lab.pin_dir, "node1")
        assert hr.packets(rows, hr.Outcome.TO_POD_DEV) > 0  # pod -> pod out the primary
        assert hr.packets(rows, hr.Outcome.TO_POD_PEER) > 0  # uplink -> pod
        assert hr.packets(rows, hr.Outcome.FIB_DIRECT, hr.Outcome.FIB_NEIGH) > 0


@pytest.mark.parametrize("device", ["netkit", "netkit-l2"])
def test_peer_blackhole_drops_until_a_program_is_attached(make_lab, device):
    lab = make_lab(device=device, routing="bpf", netkit={"peer_policy": "blackhole"})
    for client, server, address in paths(lab):
        assert pings(client, address), f"program attached: {client.name} -> {server.name}"
    recs = peer_attachments(lab)
    assert len(recs) == 2 and all(rec.program == "hr_from_netkit_pod" for rec in recs)
    for rec in recs:
        assert attach.detach(rec)
    pod0, pod1 = lab.pods("node1")
    gw = lab.node("gw")
    # Without the program the peer's default policy is back: blackhole, nothing leaves a pod.
    assert not pings(pod0, pod1.address(6), count=1)
    assert not pings(pod0, gw.address(6), count=1)
    assert not pings(gw, pod1.address(6), count=1)  # in, yes; the answer never leaves
    # Attached again (a fresh load, as another agent would), the pods talk again.
    with BpfObject(hr.OBJECT) as obj:
        obj.load()
        hr.fill_pods(obj.map(hr.PODS_MAP), lab.topology, "node1")
        for rec in recs:
            attach.attach(obj.program("hr_from_netkit_pod"), "netkit-peer", rec.ifname,
                          pin_dir=str(node_pin_dir(lab.pin_dir, "node1")),
                          pin_name=f"again-{rec.ifname}", netns=rec.netns)
    assert pings(pod0, pod1.address(6)) and pings(pod0, gw.address(6))


def test_peer_forward_policy_is_back_after_detaching(make_lab):
    lab = make_lab(device="netkit", routing="bpf", netkit={"peer_policy": "forward"})
    for rec in peer_attachments(lab):
        assert attach.detach(rec)
    # forward: the pods' packets reach the node's stack, which routes them (forwarding is on)
    for client, server, address in paths(lab):
        assert pings(client, address), f"after detaching: {client.name} -> {server.name}"
        assert tcp_echoes(client, server, address)
