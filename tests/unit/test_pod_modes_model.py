"""Pod modes in the topology: device x routing x netkit policies, what each puts on the
devices, and the combinations refused at their line and column."""

from __future__ import annotations

import json

import pytest

from lab import topology
from lab.datapath.hostrouting import OBJECT as HOST_ROUTING_OBJECT
from lab.datapath.registry import DATAPATHS
from lab.topology import Topology

from pod_node import error_of, topo_of


def programs(topo: Topology, node: str, ifname: str) -> list[tuple[str, str, str]]:
    return [(b.object, b.program, b.hook) for b in topo.interface(node, ifname).bpf]


def test_default_is_veth_with_host_routing_and_no_programs():
    topo = topo_of("")
    assert topo.node("node1").pods == {"device": "veth", "routing": "host", "netkit": {}}
    assert all(not i.bpf for i in topo.node("node1").interfaces.values())
    assert {link.kind for link in topo.links} == {"veth"}
    assert topo.node("node1").sysctls["net.ipv6.conf.all.forwarding"] == "1"


def test_bpf_routing_on_veth_puts_the_programs_on_pod_devices_and_uplinks():
    topo = topo_of("routing: bpf")
    for ifname in ("lxc0", "lxc1"):
        assert programs(topo, "node1", ifname) == [(HOST_ROUTING_OBJECT, "hr_from_pod",
                                                    "ingress")]
        # bpf_fib_lookup needs forwarding on the device the packet came in on
        assert topo.node("node1").sysctls[f"net.ipv6.conf.{ifname}.forwarding"] == "1"
    assert programs(topo, "node1", "eth0") == [(HOST_ROUTING_OBJECT, "hr_to_pod", "ingress")]
    assert not programs(topo, "gw", "eth-node")  # only the pods' node routes with BPF
    assert all(not i.bpf for p in topo.pods() for i in p.interfaces.values())


@pytest.mark.parametrize("device", ["netkit", "netkit-l2"])
def test_bpf_routing_on_netkit_uses_the_peer_hook_of_the_primary(device):
    topo = topo_of(f"device: {device}\nrouting: bpf\nnetkit: {{peer_policy: blackhole}}")
    pod_links = [link for link in topo.links if link.b.node.startswith("node1-pod")]
    assert {link.kind for link in pod_links} == {device}
    assert all(link.a.node == "node1" for link in pod_links)  # the node side is the primary
    assert all(link.netkit == {"peer_policy": "blackhole"} for link in pod_links)
    assert programs(topo, "node1", "lxc0") == [(HOST_ROUTING_OBJECT, "hr_from_netkit_pod",
                                                "netkit-peer")]
    assert programs(topo, "node1", "eth0") == [(HOST_ROUTING_OBJECT, "hr_to_pod", "ingress")]


def test_own_programs_stay_beside_host_routing():
    topo = topo_of("""\
        routing: bpf
        bpf:
          host: [{object: pktcount, program: pktcount_tc, hook: tcx-ingress}]
        """)
    assert programs(topo, "node1", "lxc1") == [
        ("pktcount", "pktcount_tc", "tcx-ingress"),
        (HOST_ROUTING_OBJECT, "hr_from_pod", "ingress")]


def test_modes_survive_the_state_record():
    topo = topo_of("device: netkit-l2\nrouting: bpf\nnetkit: {policy: forward}")
    again = Topology.from_json(json.loads(json.dumps(topo.to_json())))
    assert again.node("node1").pods == topo.node("node1").pods
    assert programs(again, "node1", "eth0") == programs(topo, "node1", "eth0")


def test_netkit_options_need_a_netkit_device():
    err = error_of("device: veth\nnetkit: {peer_policy: forward}")
    assert (err.line, err.col) == (10, 7)
    assert "netkit options for pods on device 'veth'" in err.message


def test_peer_blackhole_without_a_peer_program_is_refused():
    err = error_of("device: netkit\nnetkit: {peer_policy: blackhole}")
    assert (err.line, err.col) == (10, 29) and "pods could send nothing" in err.message


def test_peer_blackhole_with_an_own_peer_program_loads():
    topo = topo_of("""\
        device: netkit
        netkit: {peer_policy: blackhole}
        bpf:
          host: [{object: pktcount, program: pktcount_tc, hook: netkit-peer}]
        """)
    assert programs(topo, "node1", "lxc0") == [("pktcount", "pktcount_tc", "netkit-peer")]


def test_primary_blackhole_without_a_primary_program_is_refused():
    err = error_of("device: netkit\nrouting: bpf\nnetkit: {policy: blackhole}")
    assert (err.line, err.col) == (11, 24) and "node could send nothing to its pods" in err.message


def test_tc_ingress_program_beside_bpf_routing_is_refused():
    err = error_of("""\
        routing: bpf
        bpf:
          host: [{object: pktcount, program: pktcount_tc, hook: tc-ingress}]
        """)
    assert (err.line, err.col) == (11, 63) and "tc priority" in err.message


def test_unknown_routing_is_a_schema_error():
    err = error_of("routing: ebpf")
    assert err.line == 9 and "'ebpf' is not one of" in err.message


def test_reference_pod_topology_loads():
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    topo = topology.load(root / "topologies/pods.yaml", datapaths=DATAPATHS)
    assert [p.name for p in topo.pods("node1")] == ["node1-pod0", "node1-pod1"]
