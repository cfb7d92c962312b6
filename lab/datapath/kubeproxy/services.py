"""Kubernetes Services as kube-proxy sees them, and the names kube-proxy derives from them.

A `ServicePort` is one port of one Service with its ready endpoints (kube-proxy's
ServicePortName plus what it needs to write rules). `ClusterConfig` holds what kube-proxy is
started with on a node: the IP family of the proxier, the cluster CIDR (its local-traffic
detector: traffic from outside it to a ClusterIP is masqueraded), the Service CIDR, the node's
own addresses (NodePorts in nftables mode) and the masquerade bit.

The chain names follow kube-proxy's own scheme, so what `iptables-save` and `nft list
ruleset` show in a lab is what users see on a node: iptables chains are a prefix and the first
16 characters of the base32 SHA-256 of the service port name and protocol (plus the endpoint
for KUBE-SEP-); nftables chains keep the readable name behind an 8-character hash.

`synthesize()` makes N services of M endpoints each, numbered like `lab/svc-00042:p7100`, with
ClusterIPs counted up from the Service CIDR: the sweeps of scenarios/legacy-*.yaml.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

PROTOCOLS = ("tcp", "udp", "sctp")
# kube-proxy's defaults: --masquerade-bit 14, the NodePort range 30000-32767.
MASQUERADE_BIT = 14
NODEPORT_RANGE = (30000, 32767)
# nftables names may be 256 bytes; kube-proxy keeps 16 for its prefixes ("endpoint-", ...).
NFT_NAME_MAX = 256
_NFT_BASE_MAX = NFT_NAME_MAX - 16


class ServiceError(ValueError):
    """Services or a cluster configuration that kube-proxy could not program."""


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        # net.JoinHostPort: IPv6 in brackets. kube-proxy hashes and writes this form.
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str
    cluster_ip: str
    port: int
    endpoints: tuple[Endpoint, ...] = ()
    node_port: int | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ServiceError(f"{self.name_string}: protocol {self.protocol!r}, expected one "
                               f"of {', '.join(PROTOCOLS)}")
        fam = ip_address(self.cluster_ip).version
        for ep in self.endpoints:
            if ip_address(ep.ip).version != fam:
                raise ServiceError(f"{self.name_string}: endpoint {ep} is not IPv{fam} like "
                                   f"the ClusterIP {self.cluster_ip}")

    @property
    def name_string(self) -> str:
        """kube-proxy's ServicePortName.String(): namespace/name:port."""
        return f"{self.namespace}/{self.name}:{self.port_name}"

    @property
    def family(self) -> int:
        return ip_address(self.cluster_ip).version

    # -- iptables names -----------------------------------------------------------------------

    def _iptables_hash(self, extra: str = "") -> str:
        digest = hashlib.sha256((self.name_string + self.protocol + extra).encode()).digest()
        return base64.b32encode(digest).decode()[:16]

    @property
    def svc_chain(self) -> str:
        return "KUBE-SVC-" + self._iptables_hash()

    @property
    def ext_chain(self) -> str:
        return "KUBE-EXT-" + self._iptables_hash()

    def sep_chain(self, ep: Endpoint) -> str:
        return "KUBE-SEP-" + self._iptables_hash(str(ep))

    # -- nftables names -----------------------------------------------------------------------

    @property
    def _nft_base(self) -> str:
        return _hash_and_truncate(f"{self.namespace}/{self.name}/{self.protocol}/"
                                  f"{self.port_name}")

    @property
    def nft_service_chain(self) -> str:
        return "service-" + self._nft_base

    @property
    def nft_external_chain(self) -> str:
        return "external-" + self._nft_base

    def nft_endpoint_chain(self, ep: Endpoint) -> str:
        ip = ep.ip.replace(":", ".")  # colons are not allowed in chain names
        return "endpoint-" + _hash_and_truncate(f"{self.namespace}/{self.name}/{self.protocol}/"
                                                f"{self.port_name}__{ip}/{ep.port}")


def _hash_and_truncate(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    name = base64.b32encode(digest).decode()[:8] + "-" + name
    return name if len(name) <= _NFT_BASE_MAX else name[:_NFT_BASE_MAX - 3] + "..."


@dataclass(frozen=True)
class ClusterConfig:
    """How kube-proxy runs on the node, for one IP family."""

    family: int
    cluster_cidr: str | None = None  # --cluster-cidr: None, no local-traffic detector
    service_cidr: str | None = None  # the ServiceCIDR (nftables drops unallocated ClusterIPs)
    node_ips: tuple[str, ...] = ()  # NodePort addresses in nftables mode (the node's primary)
    masquerade_bit: int = MASQUERADE_BIT

    def __post_init__(self) -> None:
        if self.family not in (4, 6):
            raise ServiceError(f"IP family {self.family!r}, expected 4 or 6")
        for cidr in (self.cluster_cidr, self.service_cidr):
            if cidr is not None and ip_network(cidr).version != self.family:
                raise ServiceError(f"{cidr} is not an IPv{self.family} network")
        for ip in self.node_ips:
            if ip_address(ip).version != self.family:
                raise ServiceError(f"node address {ip} is not IPv{self.family}")
        if not 0 <= self.masquerade_bit <= 31:
            raise ServiceError(f"masquerade bit {self.masquerade_bit}: expected 0..31")

    @property
    def masquerade_mark(self) -> str:
        # Go's %#08x, as kube-proxy formats it: 0x004000.
        return f"{1 << self.masquerade_bit:#08x}"


def check_family(services: Sequence[ServicePort], config: ClusterConfig) -> None:
    for svc in services:
        if svc.family != config.family:
            raise ServiceError(f"{svc.name_string}: ClusterIP {svc.cluster_ip} is not IPv"
                               f"{config.family}, the proxier's family")


@dataclass(frozen=True)
class Sweep:
    """N synthetic services of M endpoints each, as a sweep programs them."""

    count: int
    endpoints: int
    service_cidr: str
    endpoint_cidr: str  # endpoint i of service s: the (s * endpoints + i + 1)th address
    port: int = 80
    target_port: int | None = None  # the endpoints' port (default: PORT)
    node_ports: int = 0  # how many of the services (the first ones) are type NodePort
    namespace: str = "lab"
    protocol: str = "tcp"
    names: dict[int, str] = field(default_factory=dict)  # index -> a name instead of svc-N

    def services(self) -> list[ServicePort]:
        return synthesize(self)


def capacity(service_cidr: str) -> int:
    """ClusterIPs a Service CIDR has (network and, for IPv4, broadcast left out)."""
    net = ip_network(service_cidr)
    return net.num_addresses - (2 if net.version == 4 else 1)


def synthesize(sweep: Sweep) -> list[ServicePort]:
    """The sweep's services: ClusterIPs from the Service CIDR's first address on (+1), and
    endpoints of their own (as pods of a Deployment are its own), counted up in the endpoint
    CIDR: every service has distinct KUBE-SEP chains, as on a real node."""
    if sweep.count < 0 or sweep.endpoints < 0:
        raise ServiceError("service and endpoint counts cannot be negative")
    net: IPv4Network | IPv6Network = ip_network(sweep.service_cidr)
    if sweep.count > capacity(sweep.service_cidr):
        raise ServiceError(f"{sweep.count} services do not fit the Service CIDR "
                           f"{sweep.service_cidr} ({capacity(sweep.service_cidr)} ClusterIPs)")
    eps: IPv4Network | IPv6Network = ip_network(sweep.endpoint_cidr)
    if eps.version != net.version:
        raise ServiceError(f"endpoint CIDR {sweep.endpoint_cidr} and Service CIDR "
                           f"{sweep.service_cidr} are of different families")
    if sweep.count * sweep.endpoints > capacity(sweep.endpoint_cidr):
        raise ServiceError(f"{sweep.count} x {sweep.endpoints} endpoints do not fit "
                           f"{sweep.endpoint_cidr}")
    low, high = NODEPORT_RANGE
    if sweep.node_ports > high - low + 1:
        raise ServiceError(f"{sweep.node_ports} NodePorts do not fit the NodePort range "
                           f"{low}-{high}")
    target = sweep.target_port or sweep.port
    width = max(5, len(str(sweep.count)))
    out = []
    base, ep_base = int(net.network_address), int(eps.network_address)
    for s in range(sweep.count):
        endpoints = tuple(Endpoint(str(ipaddress.ip_address(ep_base + s * sweep.endpoints + i
                                                            + 1)), target)
                          for i in range(sweep.endpoints))
        out.append(ServicePort(
            namespace=sweep.namespace, name=sweep.names.get(s, f"svc-{s:0{width}d}"),
            port_name=f"p{sweep.port}", protocol=sweep.protocol,
            cluster_ip=str(ipaddress.ip_address(base + s + 1)), port=sweep.port,
            endpoints=endpoints, node_port=low + s if s < sweep.node_ports else None))
    return out
