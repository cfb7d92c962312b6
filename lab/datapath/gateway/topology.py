"""A topology file's `datapath.gateway` section: checked when the file loads, errors at their
line and column, and applied when `lab up` loads the gateway object on a node (the gateway
feature's ObjectSetup, feature.py).

    datapath:
      gateway:
        settings: {snat6: "fd00:0:0:1::1", table_size: 16381}
        conntrack_entries: 524288
        max_services: 10240   # service and selection table slots (the object has 1024)
        services:
          - frontend: {address: 203.0.113.80, port: 80}
            backends:
              - {address: "fd00:10:244:1::10", port: 8080, weight: 2}

The section applies to every node whose interfaces attach the `gateway` object. Settings it
leaves out take defaults from that node: the SNAT addresses are the node's first global
IPv4 and IPv6 addresses.
"""

from __future__ import annotations

from lab.bpf.object import BpfObject
from lab.datapath.gateway.control import OBJECT, Gateway
from lab.datapath.gateway.model import GatewayConfig
from lab.errors import InputError
from lab.topology import Topology
from lab.yamlfile import Document

SECTION = "gateway"


def gateway_nodes(topo: Topology) -> list[str]:
    """Nodes that attach the gateway object somewhere."""
    return [n.name for n in topo.nodes.values()
            if any(p.object == OBJECT for i in n.interfaces.values() for p in i.bpf)]


def node_defaults(topo: Topology, node: str) -> dict[str, str]:
    """Settings a node gives the gateway it runs: its own addresses for SNAT."""
    out = {}
    for version in (4, 6):
        addrs = [a.ip for a in topo.nodes[node].addresses(version)
                 if not a.ip.is_link_local and not a.ip.is_loopback]
        if addrs:
            out[f"snat{version}"] = str(addrs[0])
    return out


def config_for(topo: Topology, node: str) -> GatewayConfig:
    return GatewayConfig.from_dict(topo.datapath.get(SECTION, {}), ("datapath", SECTION),
                                   node_defaults(topo, node))


def check_section(doc: Document, path: tuple, topo: Topology) -> None:
    """Refuse a bad section at the position of the bad value."""
    nodes = gateway_nodes(topo)
    if not nodes:
        raise doc.error(path, f"datapath.{SECTION} is set, but no interface attaches the "
                              f"'{OBJECT}' object (add it to an interface's bpf: list)",
                        key=True)
    for node in nodes:
        try:
            config_for(topo, node)
        except InputError as e:
            where = f" (for node {node})" if len(nodes) > 1 else ""
            raise doc.error(e.path, e.message + where, key=e.at_key) from None


def before_load(obj: BpfObject, topo: Topology, node: str) -> None:
    cfg = config_for(topo, node)
    if cfg.conntrack_entries is not None:
        obj.set_max_entries("gw_ct", cfg.conntrack_entries)
    if cfg.max_services is not None:
        obj.set_max_entries("gw_services", cfg.max_services)
        obj.set_max_entries("gw_tables", cfg.max_services)


def after_load(obj: BpfObject, topo: Topology, node: str) -> None:
    cfg = config_for(topo, node)
    with Gateway.from_object(obj) as gw:
        gw.configure(cfg.settings)
        for svc in cfg.services:
            gw.add_service(svc)

