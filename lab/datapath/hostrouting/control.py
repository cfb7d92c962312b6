"""BPF host routing's control plane (`pods: {routing: bpf}`, bpf/hostrouting.c).

The feature (feature.py) puts the programs on the pod devices and the node's uplinks of the
topology model; when `lab up` loads the object for a node, this fills its pod table
(hr_pods): each pod's address -> the node side of its device, with the MAC addresses the
programs write (both read from the kernel: veth and netkit-l2 pick random ones). The same
table is what `lab.datapath.hostrouting.pod_table()` returns for tests and tools, and
`stats()` reads the programs' counters from the pinned map.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from pyroute2 import IPRoute

from lab import netns
from lab.bpf import maps
from lab.bpf.object import BpfObject
from lab.bpf.topology import maps_pin_dir
from lab.build import netns_name
from lab.errors import LabError
from lab.topology import Topology
from lab.topology.model import POD_IFNAME

OBJECT = "hostrouting"
PODS_MAP, STATS_MAP = "hr_pods", "hr_stats"

# The programs of bpf/hostrouting.c and where each goes. On a pod's device, the node side's
# ingress for veth; for netkit the peer hook, which is attached through the primary and runs
# as the pod transmits. On every other interface of the node (its uplinks), ingress: packets
# for the node's pods.
FROM_POD = {
    "veth": ("hr_from_pod", "ingress"),
    "netkit": ("hr_from_netkit_pod", "netkit-peer"),
    "netkit-l2": ("hr_from_netkit_pod", "netkit-peer"),
}
TO_POD = ("hr_to_pod", "ingress")


class Outcome(enum.IntEnum):
    """enum hr_outcome of bpf/hostrouting.c."""
    TO_POD_PEER = 1
    TO_POD_DEV = 2
    FIB_DIRECT = 3
    FIB_NEIGH = 4
    PASS_NOT_IPV6 = 5
    PASS_LINK_SCOPE = 6
    PASS_HOP_LIMIT = 7
    PASS_NOT_LOCAL = 8
    PASS_FIB = 9

    @property
    def forwarded(self) -> bool:
        return self <= Outcome.FIB_NEIGH


@dataclass(frozen=True)
class PodEntry:
    pod: str
    address: str          # the pod's IPv6 address
    host_ifname: str      # the node side of its device (lxcN)
    host_ifindex: int


def pod_table(topo: Topology, node: str) -> list[PodEntry]:
    """The pods of NODE as the programs see them."""
    out = []
    for pod in topo.pods(node):
        eth = pod.interfaces[POD_IFNAME]
        host = topo.interface(eth.peer_node, eth.peer_ifname)
        out.append(PodEntry(pod.name, str(eth.addresses[0].ip), host.ifname, host.ifindex))
    return out


def _netns(topo: Topology, node: str) -> str:
    return netns_name(topo.name, node)


def _macs(ns: str) -> dict[int, bytes]:
    """ifindex -> link-layer address of every device in NS, one dump (six zero bytes for
    netkit L3, which has none)."""
    with netns.entered(ns), IPRoute() as ipr:
        return {link["index"]: bytes.fromhex(
                    (link.get_attr("IFLA_ADDRESS") or "00:00:00:00:00:00").replace(":", ""))
                for link in ipr.get_links()}


def _mac(macs: dict[int, bytes], ns: str, ifindex: int) -> bytes:
    try:
        return macs[ifindex]
    except KeyError:
        raise LabError(f"{ns}: no device with ifindex {ifindex}") from None


def _key(address: str) -> bytes:
    return ipaddress.IPv6Address(address).packed


def fill_pods(pods_map: maps.Map, topo: Topology, node: str) -> int:
    """Write NODE's pods into the program's table; return how many."""
    value_type = pods_map.value_type
    node_ns = _netns(topo, node)
    node_macs = _macs(node_ns)
    entries = pod_table(topo, node)
    for entry in entries:
        value = value_type()
        value.ifindex = entry.host_ifindex
        pod_ns = _netns(topo, entry.pod)
        pod_ifindex = topo.node(entry.pod).interfaces[POD_IFNAME].ifindex
        value.pod_mac[:] = list(_mac(_macs(pod_ns), pod_ns, pod_ifindex))
        value.node_mac[:] = list(_mac(node_macs, node_ns, entry.host_ifindex))
        pods_map.update(_key(entry.address), value)
    return len(entries)


def check_outcomes(obj: BpfObject) -> None:
    """Outcome must be the object's `enum hr_outcome` (its BTF): a mismatch would misname
    every counter, so it is an error at load time."""
    btf = obj.btf
    in_c = {name.removeprefix("HR_"): value
            for name, value in btf.type(btf.find("hr_outcome", "enum")).enumerators}
    in_python = {o.name: o.value for o in Outcome}
    if in_c != in_python:
        raise LabError(f"{OBJECT}: enum hr_outcome of bpf/hostrouting.c is {in_c}, "
                       f"lab/datapath/hostrouting.py's Outcome is {in_python}: make them agree")


def after_load(obj: BpfObject, topo: Topology, node: str) -> None:
    """`lab up` loaded the object for NODE: check its outcomes, fill its pod table."""
    check_outcomes(obj)
    fill_pods(obj.map(PODS_MAP), topo, node)


@dataclass(frozen=True)
class StatsEntry:
    in_ifindex: int
    out_ifindex: int
    outcome: Outcome
    detail: int
    packets: int
    bytes: int


def read_stats(stats_map: maps.Map) -> list[StatsEntry]:
    """The rows of an hr_stats map, summed over CPUs."""
    return [StatsEntry(k.in_ifindex, k.out_ifindex, Outcome(k.outcome), k.detail,
                       v.packets, v.bytes)
            for k, v in ((k, stats_map.lookup_sum(k)) for k in stats_map.keys())
            if v is not None]


def stats(pin_dir: str | Path, node: str) -> list[StatsEntry]:
    """What the node's host routing programs did so far (summed over CPUs)."""
    path = maps_pin_dir(pin_dir, node, OBJECT) / STATS_MAP
    with maps.open_pinned(str(path)) as m:
        return read_stats(m)


def packets(entries: list[StatsEntry], *outcomes: Outcome) -> int:
    return sum(e.packets for e in entries if e.outcome in outcomes)


def clear_stats(pin_dir: str | Path, node: str) -> None:
    path = maps_pin_dir(pin_dir, node, OBJECT) / STATS_MAP
    with maps.open_pinned(str(path)) as m:
        m.clear()


__all__ = ["FROM_POD", "OBJECT", "TO_POD", "Outcome", "PodEntry", "StatsEntry", "after_load",
           "check_outcomes", "clear_stats", "fill_pods", "packets", "pod_table", "read_stats",
           "stats"]
