"""kube-proxy's nftables mode: the `nft -f` transaction it runs for a set of services.

One table per family, `ip kube-proxy` or `ip6 kube-proxy` (kube-proxy 1.31+):

    base chains  filter-{prerouting,input,forward,output} at dstnat-10, filter-output-post-dnat
                 at dstnat+10, nat-{prerouting,output} at dstnat, nat-postrouting at srcnat
    services     ip6 daddr . meta l4proto . th dport vmap @service-ips: one hash lookup for
                 every ClusterIP:port, however many services; then NodePorts on the node's
                 addresses through @service-nodeports
    service-<hash>-ns/name/proto/port   off-cluster sources marked for masquerade, then
                 `numgen random mod n vmap { 0 : goto endpoint-..., ... }`
    endpoint-<hash>-...__ip/port        hairpin masquerade mark, `dnat to`
    masquerading masquerade fully-random what mark-for-masquerade marked

`full_sync()` is kube-proxy's first transaction (the table, base chains re-created, every
service); `partial_sync()` what it runs when one service changed: that service's chains
flushed and refilled, elements added or replaced, stale endpoint chains flushed (kube-proxy
deletes them a second later, `delete_stale()`). Fed to `nft -f -`, one transaction, atomic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lab.datapath.kubeproxy.services import ClusterConfig, ServicePort, check_family

TABLE = "kube-proxy"

# (name, type, hook, priority): kube-proxy's base chains, in its order. kube-proxy names the
# priorities relative to dstnat (-100) and srcnat (100); nft before 1.0.7 accepts those names
# only at some hooks, so they are written as the numbers they stand for.
DSTNAT, SRCNAT = -100, 100
BASE_CHAINS = (
    ("filter-prerouting", "filter", "prerouting", DSTNAT - 10),
    ("filter-input", "filter", "input", DSTNAT - 10),
    ("filter-forward", "filter", "forward", DSTNAT - 10),
    ("filter-output", "filter", "output", DSTNAT - 10),
    ("filter-output-post-dnat", "filter", "output", DSTNAT + 10),
    ("nat-prerouting", "nat", "prerouting", DSTNAT),
    ("nat-output", "nat", "output", DSTNAT),
    ("nat-postrouting", "nat", "postrouting", SRCNAT),
)
# (chain jumped to, from which base chain, condition)
JUMPS = (
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-prerouting", "ct state new"),
    ("firewall-check", "filter-output", "ct state new"),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-output-post-dnat", "ct state new"),
)


def command() -> list[str]:
    return ["nft", "-f", "-"]


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


class Transaction:
    """`nft -f` lines of one table, prefixed with the family and table."""

    def __init__(self, family: str):
        self.family = family
        self.lines: list[str] = []

    def _obj(self, verb: str, kind: str, name: str = "", body: str = "") -> None:
        where = f"{self.family} {TABLE}" + (f" {name}" if name else "")
        self.lines.append(f"{verb} {kind} {where}" + (f" {{ {body} ; }}" if body else ""))

    def add(self, kind: str, name: str = "", body: str = "") -> None:
        self._obj("add", kind, name, body)

    def flush(self, kind: str, name: str) -> None:
        self._obj("flush", kind, name)

    def delete(self, kind: str, name: str) -> None:
        self._obj("delete", kind, name)

    def rule(self, chain: str, rule: str, comment: str | None = None) -> None:
        tail = f" comment {_quote(comment)}" if comment else ""
        self.lines.append(f"add rule {self.family} {TABLE} {chain} {rule}{tail}")

    def element(self, kind_name: str, element: str, verb: str = "add") -> None:
        self.lines.append(f"{verb} element {self.family} {TABLE} {kind_name} {{ {element} }}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class Ruleset:
    """The nftables transactions kube-proxy runs for SERVICES on a node configured as CONFIG."""

    def __init__(self, services: Sequence[ServicePort], config: ClusterConfig):
        check_family(services, config)
        self.services = list(services)
        self.config = config
        self.ip = "ip" if config.family == 4 else "ip6"
        self.addr_type = "ipv4_addr" if config.family == 4 else "ipv6_addr"
        self.no_localhost = "ip daddr != 127.0.0.0/8" if config.family == 4 \
            else "ip6 daddr != ::1"

    # -- the transactions -------------------------------------------------------------------------

    def full_sync(self, first: bool = True) -> str:
        """The table and every service; FIRST: kube-proxy's first sync, which also re-creates
        the base chains (add + delete), so their hooks and priorities are its own."""
        tx = Transaction(self.ip)
        self._setup(tx, first)
        for svc in self.services:
            self._service(tx, svc, elements=True)
        return tx.text()

    initial = full_sync

    def partial_sync(self, changed: Iterable[str], added: Iterable[str] = (),
                     removed: Sequence[ServicePort] = (), stale: Iterable[str] = ()) -> str:
        """What kube-proxy runs when only some services changed: the chains of CHANGED
        services (name_string) flushed and refilled (their map elements point at the same
        chain names, so they stay), elements of ADDED services added and of REMOVED ones
        deleted, STALE chains (endpoints that went away) flushed."""
        names, new = set(changed) | set(added), set(added)
        tx = Transaction(self.ip)
        for svc in removed:
            for kind, name, key in self._element_keys(svc):
                tx.element(name, key, verb="delete")
        for svc in self.services:
            if svc.name_string in names:
                self._service(tx, svc, elements=svc.name_string in new)
        for chain in stale:
            tx.flush("chain", chain)
        return tx.text()

    def delete_stale(self, chains: Iterable[str]) -> str:
        tx = Transaction(self.ip)
        for chain in chains:
            tx.delete("chain", chain)
        return tx.text()

    # -- building ---------------------------------------------------------------------------------

    def _chain(self, tx: Transaction, name: str, comment: str | None = None) -> None:
        tx.add("chain", name, f"comment {_quote(comment)}" if comment else "")
        tx.flush("chain", name)

    def _setup(self, tx: Transaction, first: bool) -> None:
        ip, mark = self.ip, self.config.masquerade_mark
        tx.add("table", "", f"comment {_quote('rules for kube-proxy')}")
        if first:
            for name, *_ in BASE_CHAINS:
                tx.add("chain", name)
                tx.delete("chain", name)
        for name, kind, hook, prio in BASE_CHAINS:
            tx.add("chain", name, f"type {kind} hook {hook} priority {prio}")
            tx.flush("chain", name)
        made = set()
        for dst, src, cond in JUMPS:
            if dst not in made:
                self._chain(tx, dst)
                made.add(dst)
            tx.rule(src, f"{cond} jump {dst}".strip())
        for name in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
            if name not in made:
                self._chain(tx, name)
                made.add(name)
        tx.rule("mark-for-masquerade", f"mark set mark or {mark}")
        tx.rule("masquerading", f"mark and {mark} == 0 return")
        tx.rule("masquerading", f"mark set mark xor {mark}")
        tx.rule("masquerading", "masquerade fully-random")
        tx.add("set", "cluster-ips", f"type {self.addr_type} ; comment "
                                     f"{_quote('Active ClusterIPs')}")
        tx.rule("cluster-ips-check", f"{ip} daddr @cluster-ips reject",
                "Reject traffic to invalid ports of ClusterIPs")
        if self.config.service_cidr:
            tx.rule("cluster-ips-check", f"{ip} daddr {{ {self.config.service_cidr} }} drop",
                    "Drop traffic to unallocated ClusterIPs")
        # NodePorts on the node's primary addresses (kube-proxy's nftables default), or on
        # every local address when it has none configured.
        tx.add("set", "nodeport-ips", f"type {self.addr_type} ; comment "
                                      f"{_quote('IPs that accept NodePort traffic')}")
        if self.config.node_ips:
            tx.flush("set", "nodeport-ips")
            for addr in self.config.node_ips:
                tx.element("nodeport-ips", addr)
        else:
            tx.delete("set", "nodeport-ips")
        tx.add("map", "no-endpoint-services",
               f"type {self.addr_type} . inet_proto . inet_service : verdict ; comment "
               f"{_quote('vmap to drop or reject packets to services with no endpoints')}")
        tx.add("map", "no-endpoint-nodeports",
               "type inet_proto . inet_service : verdict ; comment " + _quote(
                   "vmap to drop or reject packets to service nodeports with no endpoints"))
        self._chain(tx, "reject-chain", "helper for @no-endpoint-services / "
                                        "@no-endpoint-nodeports")
        tx.rule("reject-chain", "reject")
        tx.rule("service-endpoints-check",
                f"{ip} daddr . meta l4proto . th dport vmap @no-endpoint-services")
        nodeport_dst = f"{ip} daddr @nodeport-ips" if self.config.node_ips \
            else self.no_localhost
        tx.rule("nodeport-endpoints-check",
                f"{nodeport_dst} meta l4proto . th dport vmap @no-endpoint-nodeports")
        tx.add("map", "firewall-ips",
               f"type {self.addr_type} . inet_proto . inet_service : verdict ; comment "
               f"{_quote('destinations that are subject to LoadBalancerSourceRanges')}")
        tx.rule("firewall-check", f"{ip} daddr . meta l4proto . th dport vmap @firewall-ips")
        tx.add("map", "service-ips",
               f"type {self.addr_type} . inet_proto . inet_service : verdict ; comment "
               f"{_quote('ClusterIP, ExternalIP and LoadBalancer IP traffic')}")
        tx.add("map", "service-nodeports",
               "type inet_proto . inet_service : verdict ; comment " + _quote(
                   "NodePort traffic"))
        tx.rule("services", f"{ip} daddr . meta l4proto . th dport vmap @service-ips")
        if self.config.node_ips:
            tx.rule("services", f"{ip} daddr @nodeport-ips meta l4proto . th dport vmap "
                                "@service-nodeports")
        else:
            tx.rule("services", f"fib daddr type local {self.no_localhost} meta l4proto . "
                                "th dport vmap @service-nodeports")
        for name in ("cluster-ips", "service-ips", "firewall-ips", "no-endpoint-services",
                     "no-endpoint-nodeports", "service-nodeports"):
            tx.flush("set" if name == "cluster-ips" else "map", name)

    def _element_keys(self, svc: ServicePort) -> list[tuple[str, str, str]]:
        keys = [("set", "cluster-ips", svc.cluster_ip)]
        vip = f"{svc.cluster_ip} . {svc.protocol} . {svc.port}"
        keys.append(("map", "service-ips" if svc.endpoints else "no-endpoint-services", vip))
        if svc.node_port is not None:
            keys.append(("map", "service-nodeports" if svc.endpoints
                         else "no-endpoint-nodeports", f"{svc.protocol} . {svc.node_port}"))
        return keys

    def _elements(self, tx: Transaction, svc: ServicePort) -> None:
        vip = f"{svc.cluster_ip} . {svc.protocol} . {svc.port}"
        tx.element("cluster-ips", svc.cluster_ip)
        if svc.endpoints:
            tx.element("service-ips", f"{vip} : goto {svc.nft_service_chain}")
            if svc.node_port is not None:
                tx.element("service-nodeports", f"{svc.protocol} . {svc.node_port} : goto "
                                                f"{svc.nft_external_chain}")
        else:
            tx.element("no-endpoint-services",
                       f"{vip} comment {_quote(svc.name_string)} : goto reject-chain")
            if svc.node_port is not None:
                tx.element("no-endpoint-nodeports",
                           f"{svc.protocol} . {svc.node_port} comment "
                           f"{_quote(svc.name_string)} : goto reject-chain")

    def _service(self, tx: Transaction, svc: ServicePort, elements: bool) -> None:
        """One service in kube-proxy's order: its chains, the map elements that point at
        them (ELEMENTS: a new service), then the chains' rules."""
        ip = self.ip
        for ep in svc.endpoints:
            self._chain(tx, svc.nft_endpoint_chain(ep))
        if svc.endpoints:
            self._chain(tx, svc.nft_service_chain)
            if svc.node_port is not None:
                self._chain(tx, svc.nft_external_chain)
        if elements:
            self._elements(tx, svc)
        if not svc.endpoints:
            return
        if self.config.cluster_cidr:
            tx.rule(svc.nft_service_chain,
                    f"{ip} daddr {svc.cluster_ip} {svc.protocol} dport {svc.port} "
                    f"{ip} saddr != {self.config.cluster_cidr} jump mark-for-masquerade")
        if svc.node_port is not None:
            tx.rule(svc.nft_external_chain, "jump mark-for-masquerade")
            tx.rule(svc.nft_external_chain, f"goto {svc.nft_service_chain}")
        verdicts = ", ".join(f"{i} : goto {svc.nft_endpoint_chain(ep)}"
                             for i, ep in enumerate(svc.endpoints))
        tx.rule(svc.nft_service_chain,
                f"numgen random mod {len(svc.endpoints)} vmap {{ {verdicts} }}")
        for ep in svc.endpoints:
            chain = svc.nft_endpoint_chain(ep)
            tx.rule(chain, f"{ip} saddr {ep.ip} jump mark-for-masquerade")
            tx.rule(chain, f"meta l4proto {svc.protocol} dnat to {ep}")
