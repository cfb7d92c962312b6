"""kube-proxy on a node of a running lab: its rules programmed into the node's namespace, timed,
changed, read back, and removed.

    kp = KubeProxy(lab.node("node1"), config, exposed)
    kp.start()                        # both families' rules, as kube-proxy's first sync
    t = kp.program(1000, endpoints=2)  # a full sync of 1000 services: seconds
    t = kp.change_one()               # one endpoint of one service replaced: seconds
    kp.counters(), kp.conntrack()     # what the rules and conntrack saw
    kp.stop()                         # nothing of it left in the namespace

Every batch runs inside the node's namespace (iptables-restore, ip6tables-restore, nft -f:
one process per batch, never one per rule), so the host's own tables are never touched;
they go with the namespace at `lab down` as well. The times are the tools' wall time for the
batch, the rule text having been prepared beforehand (kube-proxy's own Go code that builds
it is not what is compared).

The services are the EXPOSED ones (real servers in the lab's pods, at fixed ClusterIPs) and
N synthetic ones; the exposed services sit in the middle of KUBE-SERVICES, where a service
is on average in kube-proxy's (map-ordered, so random) chain.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

from lab import netfilter
from lab.datapath.kubeproxy import iptables, nftables
from lab.datapath.kubeproxy.services import (ClusterConfig, Endpoint, ServiceError,
                                             ServicePort, Sweep, capacity, synthesize)
from lab.errors import LabError
from lab.journal import NetfilterTables

MODES = ("iptables", "nftables")
# IPv4 side of the node: kube-proxy runs a proxier per family; the lab's nodes are IPv6-only,
# so the IPv4 proxier writes its skeleton (no services), as on an IPv6 single-stack cluster.
IPV4_CLUSTER = ClusterConfig(4, cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16")


@dataclass(frozen=True)
class KubeProxyConfig:
    """A node's `kube_proxy:` section, checked."""

    mode: str = "iptables"
    backend: str = "nft"  # iptables mode: nft | legacy
    services: int = 0
    endpoints: int = 1
    node_ports: int = 0
    service_cidr: str = "fd00:10:96::/108"
    cluster_cidr: str = "fd00:10:244::/56"
    # the synthetic services' pods: addresses no pod of the lab has (nothing sends to them)
    endpoint_cidr: str = "fd00:10:244:ff00::/64"
    port: int = 80  # the synthetic services' port

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ServiceError(f"kube_proxy mode {self.mode!r}: expected one of "
                               f"{', '.join(MODES)}")
        if self.backend not in iptables.BACKENDS:
            raise ServiceError(f"iptables backend {self.backend!r}: expected one of "
                               f"{', '.join(iptables.BACKENDS)}")


@dataclass(frozen=True)
class ExposedService:
    """A Service whose endpoints are pods of the lab that serve (lab-rr, netperf)."""

    name: str
    cluster_ip: str
    ports: tuple[int, ...]
    endpoints: tuple[str, ...]  # pod addresses

    def ports_of(self) -> list[ServicePort]:
        return [ServicePort("lab", self.name, f"p{p}", "tcp", self.cluster_ip, p,
                            tuple(Endpoint(a, p) for a in self.endpoints))
                for p in self.ports]


@dataclass
class Programmed:
    """What the node has now."""

    services: list[ServicePort] = field(default_factory=list)
    synthetic: int = 0
    endpoints: int = 0
    changes: int = 0


class KubeProxy:
    def __init__(self, node, config: KubeProxyConfig, exposed: Sequence[ExposedService],
                 node_ips: Sequence[str] = ()):
        self.node, self.config = node, config
        self.exposed = list(exposed)
        self.cluster = ClusterConfig(6, cluster_cidr=config.cluster_cidr,
                                     service_cidr=config.service_cidr,
                                     node_ips=tuple(node_ips))
        self.now = Programmed()
        self.programmed = False  # anything written since start() or the last reset
        self._matched: dict[str, int] = {}

    # -- the services -----------------------------------------------------------------------------

    def _reserved(self) -> set[str]:
        return {s.cluster_ip for s in self.exposed}

    def services_for(self, count: int, endpoints: int) -> list[ServicePort]:
        """COUNT synthetic services of ENDPOINTS endpoints each (on the exposed services'
        pods), the exposed services in the middle."""
        reserved = self._reserved()
        sweep = Sweep(count + len(reserved), endpoints, self.config.service_cidr,
                      self.config.endpoint_cidr, port=self.config.port,
                      node_ports=self.config.node_ports)
        synthetic = [s for s in synthesize(sweep) if s.cluster_ip not in reserved][:count]
        middle = len(synthetic) // 2
        own = [p for s in self.exposed for p in s.ports_of()]
        return synthetic[:middle] + own + synthetic[middle:]

    # -- programming ------------------------------------------------------------------------------

    def _run(self, argv: list[str], text: str) -> float:
        started = time.perf_counter()
        out = self.node.run(argv, input=text, check=False, timeout=600)
        seconds = time.perf_counter() - started
        if out.returncode != 0:
            err = (out.stderr or out.stdout).strip().splitlines()
            raise LabError(f"{self.node.name}: {argv[0]} refused kube-proxy's rules: "
                           + " | ".join(err[:3]))
        return seconds

    def _ruleset(self, services: list[ServicePort]):
        cls = iptables.Ruleset if self.config.mode == "iptables" else nftables.Ruleset
        return cls(services, self.cluster)

    def _apply(self, family: int, text: str) -> float:
        if self.config.mode == "iptables":
            return self._run(iptables.restore_command(family, self.config.backend), text)
        return self._run(nftables.command(), text)

    def _reset(self) -> None:
        """Empty the node's tables (only kube-proxy's rules live there): untimed."""
        if self.config.mode == "iptables":
            empty = "*filter\nCOMMIT\n*nat\nCOMMIT\n"
            for family in (4, 6):
                self._run(iptables.restore_command(family, self.config.backend)[:3], empty)
        else:
            self._run(nftables.command(), "".join(
                f"add table {fam} {nftables.TABLE}\ndelete table {fam} {nftables.TABLE}\n"
                for fam in ("ip", "ip6")))

    def _skeleton(self) -> str:
        if self.config.mode == "iptables":
            return iptables.Ruleset([], IPV4_CLUSTER).initial()
        return nftables.Ruleset([], IPV4_CLUSTER).full_sync()

    def start(self) -> float:
        """kube-proxy's first sync for both families (the IPv4 one without services)."""
        self._apply(4, self._skeleton())
        return self.program(self.config.services, self.config.endpoints)

    def program(self, count: int, endpoints: int | None = None) -> float:
        """Replace everything by a full sync of COUNT services: the batch's seconds."""
        endpoints = self.config.endpoints if endpoints is None else endpoints
        if count + len(self.exposed) > capacity(self.config.service_cidr):
            raise ServiceError(f"{count} services do not fit the Service CIDR "
                               f"{self.config.service_cidr}")
        services = self.services_for(count, endpoints)
        rs = self._ruleset(services)
        text = rs.initial()
        if self.programmed:  # kube-proxy starting afresh: empty tables, the IPv4 skeleton
            self._reset()
            self._apply(4, self._skeleton())
            self._matched.clear()  # the counters start again at zero
        seconds = self._apply(6, text)
        self.now = Programmed(services, count, endpoints)
        self.programmed = True
        return seconds

    def change_one(self) -> float:
        """One synthetic service's endpoint replaced by another pod (a pod restarted with a
        new address): kube-proxy's partial sync of that one change, timed."""
        synthetic = [i for i, s in enumerate(self.now.services)
                     if s.namespace == "lab" and s.name.startswith("svc-") and s.endpoints]
        if not synthetic:
            raise LabError(f"{self.node.name}: no synthetic service with endpoints to change")
        i = synthetic[len(synthetic) // 2]
        old = self.now.services[i]
        # a pod address after the sweep's: the end of the endpoint CIDR, counting down
        last = int(ip_network(self.config.endpoint_cidr).broadcast_address)
        fresh = Endpoint(str(ip_address(last - 1 - self.now.changes)), old.endpoints[0].port)
        new = dataclasses.replace(old, endpoints=(fresh, *old.endpoints[1:]))
        services = list(self.now.services)
        services[i] = new
        rs = self._ruleset(services)
        if self.config.mode == "iptables":
            text = rs.partial_sync([new.name_string], stale=[old.sep_chain(old.endpoints[0])])
            seconds = self._apply(6, text)
        else:
            stale = old.nft_endpoint_chain(old.endpoints[0])
            seconds = self._apply(6, rs.partial_sync([new.name_string], stale=[stale]))
            self._apply(6, rs.delete_stale([stale]))  # kube-proxy: a second later, untimed
        self.now.services = services
        self.now.changes += 1
        return seconds

    def journal_record(self) -> NetfilterTables:
        """What `lab down` must empty in the node's namespace, written before the rules."""
        if self.config.mode == "nftables":
            nft = (f"ip {nftables.TABLE}", f"ip6 {nftables.TABLE}")
        else:
            nft = iptables.tables(4) + iptables.tables(6)
        legacy = nft if self.config.mode == "iptables" and self.config.backend == "legacy" \
            else ()
        return NetfilterTables(self.node.netns, self.node.name,
                               () if legacy else nft, legacy)

    def stop(self) -> None:
        """Remove every rule kube-proxy's mode wrote (both families) and forget conntrack."""
        self._reset()
        self.now = Programmed()
        self.programmed = False
        flush_conntrack(self.node)

    # -- reading back -----------------------------------------------------------------------------

    def size(self) -> int:
        """Rules (iptables: both tables; nftables: rules and map elements) of the last full
        sync: what the kernel holds for the services."""
        rs = self._ruleset(self.now.services)
        if self.config.mode == "iptables":
            return sum(rs.rule_count().values())
        return sum(1 for ln in rs.full_sync().splitlines()
                   if ln.startswith(("add rule", "add element")))

    def matched(self, address: str) -> int:
        """Packets kube-proxy's rules for the exposed service at ADDRESS matched since the
        previous call (iptables mode: its KUBE-SERVICES, KUBE-SVC and KUBE-SEP rules)."""
        service = next((s for s in self.exposed if s.cluster_ip == address), None)
        if service is None:
            raise LabError(f"{self.node.name}: no exposed service at {address} (exposed: "
                           f"{', '.join(s.cluster_ip for s in self.exposed) or 'none'})")
        total = sum(self.counters(service).values())
        since = total - self._matched.get(address, 0)
        self._matched[address] = total
        return since

    def counters(self, service: ExposedService) -> dict[str, int]:
        """Packets that matched the exposed service's rules (iptables mode: per rule
        counters from ip6tables-save -c): its KUBE-SERVICES rule, its KUBE-SVC chain's jumps
        and its KUBE-SEP DNAT rules, summed over its ports."""
        if self.config.mode != "iptables":
            raise LabError("nftables mode: kube-proxy's nftables rules have no counters "
                           "(use conntrack())")
        out = self.node.run(iptables.save_command(6, self.config.backend), timeout=120)
        counts = {"services": 0, "svc": 0, "dnat": 0}
        own = service.ports_of()
        svc_chains = {p.svc_chain for p in own}
        sep_chains = {p.sep_chain(e) for p in own for e in p.endpoints}
        for line in out.stdout.splitlines():
            if not line.startswith("["):
                continue
            packets = int(line[1:line.index(":")])
            rule = line[line.index("]") + 2:]
            parts = rule.split()
            chain, target = parts[1], parts[parts.index("-j") + 1] if "-j" in parts else ""
            if chain == "KUBE-SERVICES" and target in svc_chains:
                counts["services"] += packets
            elif chain in svc_chains and target in sep_chains:
                counts["svc"] += packets
            elif chain in sep_chains and target == "DNAT":
                counts["dnat"] += packets
        return counts


# -- the instances of running labs --------------------------------------------------------------

_instances: dict[tuple[str, str], KubeProxy] = {}


def _key(lab, node: str) -> tuple[str, str]:
    return (lab.instance or lab.name, node)


def register(lab, kp: KubeProxy) -> None:
    _instances[_key(lab, kp.node.name)] = kp


def unregister(lab, node: str) -> KubeProxy | None:
    return _instances.pop(_key(lab, node), None)


def instance(lab, node: str) -> KubeProxy | None:
    """kube-proxy of NODE in LAB, if this process brought the lab up with a legacy node."""
    return _instances.get(_key(lab, node))


# -- conntrack ------------------------------------------------------------------------------------

def conntrack(node) -> list[netfilter.Connection]:
    """NODE's conntrack table."""
    return netfilter.conntrack(node.netns)


def flush_conntrack(node) -> None:
    netfilter.flush_conntrack(node.netns)
