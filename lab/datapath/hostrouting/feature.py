"""BPF host routing as a datapath feature: `pods: {routing: bpf}` on a node puts
bpf/hostrouting.c's programs on its pod devices and uplinks, and `lab up` fills each node's
pod table when it loads the object (control.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lab.bpf.topology import ObjectSetup
from lab.datapath.contract import Datapath
from lab.datapath.hostrouting.control import FROM_POD, OBJECT, TO_POD, after_load
from lab.topology.model import BpfAttach

if TYPE_CHECKING:
    from lab.topology import Topology


class HostRoutingDatapath(Datapath):
    name = "host routing"

    def derive(self, topo: Topology) -> None:
        for node in topo.nodes.values():
            if node.pods.get("routing") != "bpf":
                continue
            pods = {p.name for p in topo.pods(node.name)}
            from_pod = FROM_POD[node.pods["device"]]
            for iface in node.interfaces.values():
                if iface.peer_node in pods:
                    iface.bpf.append(BpfAttach(OBJECT, *from_pod))
                    # bpf_fib_lookup refuses to route for a device without IPv6 forwarding,
                    # even where the node's stack itself forwards nothing (all.forwarding 0).
                    node.sysctls[f"net.ipv6.conf.{iface.ifname}.forwarding"] = "1"
                else:
                    iface.bpf.append(BpfAttach(OBJECT, *TO_POD))

    def object_setups(self) -> Mapping[str, ObjectSetup]:
        return {OBJECT: ObjectSetup(after_load=after_load)}
