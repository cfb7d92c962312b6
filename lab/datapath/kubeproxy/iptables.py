"""kube-proxy's iptables mode: the iptables-restore input it writes for a set of services.

Layout (what kube-proxy 1.28+ writes, per IP family; `iptables-save` shows it back):

    filter: INPUT/FORWARD/OUTPUT -> KUBE-PROXY-FIREWALL, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES,
            KUBE-SERVICES (REJECT for services without endpoints), KUBE-FORWARD (drop
            INVALID, accept marked and RELATED,ESTABLISHED)
    nat:    PREROUTING/OUTPUT -> KUBE-SERVICES: one rule per ClusterIP:port, in order, jumping
            to KUBE-SVC-<hash>; last, KUBE-NODEPORTS for local destinations
            KUBE-SVC-*: mark off-cluster sources for masquerade, then `-m statistic --mode
            random --probability 1/n` over the endpoints -> KUBE-SEP-<hash>
            KUBE-SEP-*: hairpin masquerade mark, DNAT --to-destination ip:port
            KUBE-NODEPORTS -> KUBE-EXT-* (mark for masquerade) -> KUBE-SVC-*
            POSTROUTING -> KUBE-POSTROUTING: MASQUERADE what KUBE-MARK-MASQ marked

The jumps from the built-in chains, which kube-proxy ensures one `iptables -I` at a time at
start-up, are here part of the one restore batch of `initial()` (the lab never writes a rule
per command). `sync()` is a full resync (kube-proxy's first sync and its hourly one), and
`partial_sync()` what kube-proxy writes when one service changed (since 1.26, Minimize-
IPTablesRestore): every top-level chain is still flushed and rewritten, so KUBE-SERVICES gets
all N rules again, but only the changed service's own chains.

Both go to `iptables-restore --noflush --counters` (ip6tables-restore for IPv6), as kube-proxy
runs it: its chains are replaced, anything else in the tables is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lab.datapath.kubeproxy.services import (ClusterConfig, Endpoint, ServicePort,
                                             check_family)
from lab.netfilter import IPTABLES_BACKENDS, iptables_program

# Above this many endpoints in total kube-proxy drops the per-endpoint comments ("large
# cluster mode"): the ruleset shrinks by 40% and restores faster.
LARGE_CLUSTER_ENDPOINTS = 1000

FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS",
                 "KUBE-PROXY-FIREWALL")
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")

CT_NEW = "-m conntrack --ctstate NEW"
# (table, built-in chain, extra match, comment, kube-proxy's chain), in kube-proxy's order.
JUMPS = (
    ("filter", "INPUT", CT_NEW, "kubernetes externally-visible service portals",
     "KUBE-EXTERNAL-SERVICES"),
    ("filter", "FORWARD", CT_NEW, "kubernetes externally-visible service portals",
     "KUBE-EXTERNAL-SERVICES"),
    ("filter", "INPUT", "", "kubernetes health check service ports", "KUBE-NODEPORTS"),
    ("filter", "FORWARD", CT_NEW, "kubernetes service portals", "KUBE-SERVICES"),
    ("filter", "OUTPUT", CT_NEW, "kubernetes service portals", "KUBE-SERVICES"),
    ("filter", "FORWARD", "", "kubernetes forwarding rules", "KUBE-FORWARD"),
    ("filter", "INPUT", CT_NEW, "kubernetes load balancer firewall", "KUBE-PROXY-FIREWALL"),
    ("filter", "OUTPUT", CT_NEW, "kubernetes load balancer firewall", "KUBE-PROXY-FIREWALL"),
    ("filter", "FORWARD", CT_NEW, "kubernetes load balancer firewall", "KUBE-PROXY-FIREWALL"),
    ("nat", "OUTPUT", "", "kubernetes service portals", "KUBE-SERVICES"),
    ("nat", "PREROUTING", "", "kubernetes service portals", "KUBE-SERVICES"),
    ("nat", "POSTROUTING", "", "kubernetes postrouting rules", "KUBE-POSTROUTING"),
)


def probability(n: int) -> str:
    """The --probability of the first of N remaining endpoints, as kube-proxy prints it."""
    return f"{1.0 / n:0.10f}"


def _comment(text: str) -> str:
    return f'"{text}"' if " " in text else text


def _chain_line(name: str) -> str:
    return f":{name} - [0:0]"


# kube-proxy's image uses whichever iptables backend (nft or legacy, lab/netfilter.py) the
# node's own iptables uses.
BACKENDS = IPTABLES_BACKENDS


def restore_command(family: int, backend: str = "nft") -> list[str]:
    """The command kube-proxy feeds its batches to (-w: wait for the xtables lock)."""
    return [iptables_program("restore", family, backend), "-w", "5", "--noflush", "--counters"]


def save_command(family: int, backend: str = "nft", table: str = "nat") -> list[str]:
    return [iptables_program("save", family, backend), "-c", "-t", table]


def tables(family: int) -> tuple[str, ...]:
    """The tables kube-proxy's iptables mode writes in FAMILY, as "family name"."""
    fam = "ip" if family == 4 else "ip6"
    return (f"{fam} filter", f"{fam} nat")


class Ruleset:
    """The restore input kube-proxy writes for SERVICES on a node configured as CONFIG."""

    def __init__(self, services: Sequence[ServicePort], config: ClusterConfig):
        check_family(services, config)
        self.services = list(services)
        self.config = config
        total = sum(len(s.endpoints) for s in self.services)
        self.large_cluster = total > LARGE_CLUSTER_ENDPOINTS

    # -- the batches ------------------------------------------------------------------------------

    def initial(self) -> str:
        """Chains, the built-in chains' jumps to them, and a full sync: one batch."""
        return self.sync(jumps=True)

    def sync(self, jumps: bool = False) -> str:
        """A full sync: every chain of every service."""
        return self._text(self.services, jumps=jumps)

    def partial_sync(self, changed: Iterable[str], stale: Iterable[str] = ()) -> str:
        """What kube-proxy writes when only the services named CHANGED (name_string) changed:
        the top-level chains in full, their own chains only; STALE chains (an endpoint that
        went away) are flushed and deleted, unless in large cluster mode (kube-proxy then
        leaves them for its periodic cleanup)."""
        names = set(changed)
        return self._text([s for s in self.services if s.name_string in names],
                          stale=() if self.large_cluster else tuple(stale))

    # -- building ---------------------------------------------------------------------------------

    def _text(self, own: list[ServicePort], jumps: bool = False,
              stale: Sequence[str] = ()) -> str:
        filter_chains = [_chain_line(c) for c in FILTER_CHAINS]
        filter_rules = []
        nat_chains = [_chain_line(c) for c in NAT_CHAINS]
        nat_rules = self._postrouting()
        if jumps:
            filter_rules += self._jumps("filter")
            nat_rules = self._jumps("nat") + nat_rules
        own_names = {s.name_string for s in own}
        for svc in self.services:
            nat_rules += self._capture(svc)
            filter_rules += self._reject(svc)
            if svc.name_string in own_names:
                chains, rules = self._service_chains(svc)
                nat_chains += chains
                nat_rules += rules
        for chain in stale:
            nat_chains.append(_chain_line(chain))
            nat_rules.append(f"-X {chain}")
        nat_rules.append(self._nodeports_jump())
        filter_rules += self._forward()
        return "\n".join(["*filter", *filter_chains, *filter_rules, "COMMIT",
                          "*nat", *nat_chains, *nat_rules, "COMMIT", ""])

    def _jumps(self, table: str) -> list[str]:
        out = []
        for t, builtin, extra, comment, chain in JUMPS:
            if t == table:
                match = f"{extra} " if extra else ""
                out.append(f"-I {builtin} {match}-m comment --comment {_comment(comment)} "
                           f"-j {chain}")
        return out

    def _postrouting(self) -> list[str]:
        mark = self.config.masquerade_mark
        return [
            f"-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN",
            f"-A KUBE-POSTROUTING -j MARK --xor-mark {mark}",
            '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring '
            'SNAT" -j MASQUERADE --random-fully',
            f"-A KUBE-MARK-MASQ -j MARK --or-mark {mark}",
        ]

    def _match(self, svc: ServicePort) -> str:
        return (f"-m {svc.protocol} -p {svc.protocol} -d {svc.cluster_ip} "
                f"--dport {svc.port}")

    def _capture(self, svc: ServicePort) -> list[str]:
        """KUBE-SERVICES and KUBE-NODEPORTS rules of a service with endpoints."""
        if not svc.endpoints:
            return []
        out = [f"-A KUBE-SERVICES -m comment --comment \"{svc.name_string} cluster IP\" "
               f"{self._match(svc)} -j {svc.svc_chain}"]
        if svc.node_port is not None:
            out.append(f"-A KUBE-NODEPORTS -m comment --comment {svc.name_string} "
                       f"-m {svc.protocol} -p {svc.protocol} --dport {svc.node_port} "
                       f"-j {svc.ext_chain}")
        return out

    def _reject(self, svc: ServicePort) -> list[str]:
        """Filter rules of a service without endpoints: connections are refused."""
        if svc.endpoints:
            return []
        comment = f'"{svc.name_string} has no endpoints"'
        out = [f"-A KUBE-SERVICES -m comment --comment {comment} {self._match(svc)} "
               "-j REJECT"]
        if svc.node_port is not None:
            out.append(f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} "
                       f"-m addrtype --dst-type LOCAL -m {svc.protocol} -p {svc.protocol} "
                       f"--dport {svc.node_port} -j REJECT")
        return out

    def _service_chains(self, svc: ServicePort) -> tuple[list[str], list[str]]:
        """KUBE-EXT, KUBE-SVC and KUBE-SEP chains of one service (none without endpoints)."""
        if not svc.endpoints:
            return [], []
        chains, rules = [], []
        if self.config.cluster_cidr:
            rules.append(f"-A {svc.svc_chain} -m comment --comment \"{svc.name_string} "
                         f"cluster IP\" {self._match(svc)} ! -s {self.config.cluster_cidr} "
                         "-j KUBE-MARK-MASQ")
        if svc.node_port is not None:
            chains.append(_chain_line(svc.ext_chain))
            rules.append(f"-A {svc.ext_chain} -m comment --comment \"masquerade traffic for "
                         f"{svc.name_string} external destinations\" -j KUBE-MARK-MASQ")
            rules.append(f"-A {svc.ext_chain} -j {svc.svc_chain}")
        chains.append(_chain_line(svc.svc_chain))
        n = len(svc.endpoints)
        for i, ep in enumerate(svc.endpoints):
            rule = f"-A {svc.svc_chain}"
            if not self.large_cluster:
                rule += f" -m comment --comment \"{svc.name_string} -> {ep}\""
            if i < n - 1:
                rule += f" -m statistic --mode random --probability {probability(n - i)}"
            rules.append(f"{rule} -j {svc.sep_chain(ep)}")
        for ep in svc.endpoints:
            chains.append(_chain_line(svc.sep_chain(ep)))
            rules += self._endpoint_rules(svc, ep)
        return chains, rules

    def _endpoint_rules(self, svc: ServicePort, ep: Endpoint) -> list[str]:
        head = f"-A {svc.sep_chain(ep)}"
        if not self.large_cluster:
            head += f" -m comment --comment {svc.name_string}"
        return [f"{head} -s {ep.ip} -j KUBE-MARK-MASQ",
                f"{head} -m {svc.protocol} -p {svc.protocol} -j DNAT --to-destination {ep}"]

    def _nodeports_jump(self) -> str:
        # NodePorts on every local address (kube-proxy's default in iptables mode); IPv6 never
        # on ::1, IPv4 not on 127/8 (localhost NodePorts are off: route_localnet stays 0).
        local = "! -d ::1/128" if self.config.family == 6 else "! -d 127.0.0.0/8"
        return ('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: '
                f'this must be the last rule in this chain" -m addrtype --dst-type LOCAL '
                f'{local} -j KUBE-NODEPORTS')

    def _forward(self) -> list[str]:
        mark = self.config.masquerade_mark
        return [
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
            f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark '
            f"--mark {mark}/{mark} -j ACCEPT",
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ]

    # -- sizes ------------------------------------------------------------------------------------

    def rule_count(self) -> dict[str, int]:
        """Rules per table of a full sync (what kube-proxy's sync_proxy_rules_iptables_total
        metric reports), without the built-in chains' jumps."""
        text = self.sync()
        counts, table = {"filter": 0, "nat": 0}, None
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A") and table is not None:
                counts[table] += 1
        return counts
