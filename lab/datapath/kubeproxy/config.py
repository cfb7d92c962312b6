"""A legacy node's `kube_proxy:` section: checked when the topology loads, every error at its
place in the file, before anything touches the kernel.

    nodes:
      node1:
        role: node
        pods:
          count: 2
          ipv6: "fd00:10:244:1::10"
          routing: legacy
          kube_proxy:
            mode: iptables          # iptables | nftables
            backend: nft            # iptables only: nft (Debian's iptables) | legacy
            services: 1000          # synthetic Services
            endpoints: 2            # endpoints of each
            expose:                 # Services whose endpoints are this node's pods
              - {name: rr, cluster_ip: "fd00:10:96::a", ports: [12865, 12866],
                 endpoints: [node1-pod1]}

Beyond the schema: the CIDRs are IPv6 networks (the node's proxier is IPv6; its IPv4
proxier writes the skeleton of an IPv6 single-stack cluster), exposed ClusterIPs lie in the
Service CIDR and are distinct, exposed endpoints are pods of this node, and the services fit
the Service CIDR, the endpoint CIDR and this machine's memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import IPv6Network, ip_address, ip_network
from typing import Any

from lab.datapath.kubeproxy.node import ExposedService, KubeProxyConfig
from lab.datapath.kubeproxy.services import capacity

# Memory kube-proxy's rules take while they are loaded, per rule line (the restore tool's own
# memory and the kernel's; measured here with iptables-nft-restore, iptables-legacy-restore
# and nft 1.0.6 at 10000 services, rounded up), and the share of the machine's available
# memory a lab may plan to use for them.
BYTES_PER_RULE = {"iptables": 4096, "nftables": 8192}
MEMORY_SHARE = 0.5


class ConfigError(ValueError):
    """A bad value of the section, at PATH below the node's `pods.kube_proxy`."""

    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.message, self.path = message, path


@dataclass(frozen=True)
class NodeSetup:
    node: str
    config: KubeProxyConfig
    exposed: tuple[ExposedService, ...]
    node_ips: tuple[str, ...]


def legacy_nodes(topo: Any) -> list[str]:
    return [n.name for n in topo.nodes.values() if n.pods.get("routing") == "legacy"]


def section_path(node: str) -> tuple:
    return ("nodes", node, "pods", "kube_proxy")


def _network(text: str, path: tuple) -> IPv6Network:
    try:
        net = ip_network(text, strict=True)
    except ValueError as e:
        raise ConfigError(f"'{text}' is not a network: {e}", path) from None
    if net.version != 6:
        raise ConfigError(f"{text} is IPv4: the lab's nodes and pods are IPv6-only, so is "
                          "the node's kube-proxy (its IPv4 side writes no services)", path)
    return net


def memory_needed(mode: str, services: int, endpoints: int) -> int:
    """Bytes kube-proxy's rules for SERVICES take while being loaded, roughly."""
    lines = services * (3 + 3 * endpoints)  # KUBE-SERVICES, KUBE-SVC, per endpoint SVC+SEP*2
    return lines * BYTES_PER_RULE[mode]


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def setup_for(topo: Any, node: str, memory: int | None = None) -> NodeSetup:
    """The node's kube-proxy, from its section (defaults filled in); ConfigError if wrong."""
    spec = topo.nodes[node].pods.get("kube_proxy", {})
    kw = {k: spec[k] for k in ("mode", "backend", "services", "endpoints", "node_ports",
                               "port", "service_cidr", "cluster_cidr", "endpoint_cidr")
          if k in spec}
    config = KubeProxyConfig(**kw)
    nets = {}
    for key in ("service_cidr", "cluster_cidr", "endpoint_cidr"):
        nets[key] = _network(getattr(config, key), (key,))
    if nets["service_cidr"].overlaps(nets["cluster_cidr"]):
        raise ConfigError(f"the Service CIDR {config.service_cidr} overlaps the cluster CIDR "
                          f"{config.cluster_cidr}",
                          ("cluster_cidr",) if "cluster_cidr" in spec else ("service_cidr",))
    pods = {p.name: p for p in topo.pods(node)}
    exposed, seen = [], {}
    for i, item in enumerate(spec.get("expose", [])):
        path = ("expose", i)
        try:
            vip = ip_address(item["cluster_ip"])
        except ValueError:
            raise ConfigError(f"'{item['cluster_ip']}' is not an address",
                              path + ("cluster_ip",)) from None
        if vip not in nets["service_cidr"]:
            raise ConfigError(f"{vip} is outside the Service CIDR {config.service_cidr}",
                              path + ("cluster_ip",))
        if str(vip) in seen:
            raise ConfigError(f"{vip} is already the ClusterIP of expose[{seen[str(vip)]}]",
                              path + ("cluster_ip",))
        seen[str(vip)] = i
        if len(set(item["ports"])) != len(item["ports"]):
            raise ConfigError("a port is listed twice", path + ("ports",))
        addresses = []
        for j, pod in enumerate(item["endpoints"]):
            if pod not in pods:
                raise ConfigError(f"'{pod}' is not a pod of node {node} (its pods: "
                                  f"{', '.join(pods)})", path + ("endpoints", j))
            addresses.append(str(pods[pod].addresses(6)[0].ip))
        exposed.append(ExposedService(item["name"], str(vip), tuple(item["ports"]),
                                      tuple(addresses)))
    if config.services + len(exposed) > capacity(config.service_cidr):
        raise ConfigError(f"{config.services} services (and {len(exposed)} exposed) do not "
                          f"fit the Service CIDR {config.service_cidr} "
                          f"({capacity(config.service_cidr)} ClusterIPs)", ("services",))
    if config.services * config.endpoints > capacity(config.endpoint_cidr):
        raise ConfigError(f"{config.services} x {config.endpoints} endpoints do not fit the "
                          f"endpoint CIDR {config.endpoint_cidr}", ("endpoints",))
    need = memory_needed(config.mode, config.services, config.endpoints)
    have = available_memory() if memory is None else memory
    if need > have * MEMORY_SHARE:
        most = int(have * MEMORY_SHARE / memory_needed(config.mode, 1, config.endpoints))
        raise ConfigError(
            f"{config.services} services of {config.endpoints} endpoints would take about "
            f"{need / 2**30:.1f} GiB while kube-proxy's {config.mode} rules load; this "
            f"machine has {have / 2**30:.1f} GiB available, so at most about {most} services "
            "fit", ("services",))
    node_ips = tuple(str(a.ip) for a in topo.nodes[node].addresses(6)
                     if not a.ip.is_link_local)
    return NodeSetup(node, config, tuple(exposed), node_ips)


def check(doc: Any, topo: Any) -> None:
    """Refuse a wrong `kube_proxy:` section at the bad value's line and column."""
    for node in legacy_nodes(topo):
        try:
            setup_for(topo, node)
        except ConfigError as e:
            raise doc.error(section_path(node) + e.path, e.message) from None
