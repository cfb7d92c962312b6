"""Step kinds of the legacy node's scenarios (scenarios/legacy-*.yaml).

  services         program N services on the lab's service datapath, as a sweep point
                   needs them: kube-proxy's full sync on a legacy node (iptables-restore or
                   nft -f), or the stateful gateway's map updates; then one change (an
                   endpoint of one service replaced); records how long each took
  path_proof       what carried the traffic since the previous such step: a legacy node's
                   conntrack entries (for a ClusterIP: DNATed to a pod) and, in iptables
                   mode, the packets kube-proxy's rules matched; none on any other node (the
                   baseline without netfilter); the gateway's new connections for a VIP it
                   serves
"""

from __future__ import annotations

from lab.datapath.kubeproxy import node as kp_node
from lab.errors import LabError
from lab.scenarios.context import StepContext
from lab.scenarios.registry import Metric, step
from lab.scenarios.steps import NODE
from lab.topology import Topology


def _node_check(p: dict, topo: Topology) -> tuple[str, str] | None:
    if p.get("node") is not None and p["node"] not in topo.nodes:
        return "node", f"no node '{p['node']}' in topology {topo.file}"
    return None


@step("services", check=_node_check,
      schema={"type": "object", "additionalProperties": False, "required": ["count"],
              "properties": {
                  "count": {"type": "integer", "minimum": 0, "maximum": 1000000,
                            "description": "services besides the exposed ones"},
                  "endpoints": {"type": "integer", "minimum": 1, "maximum": 1000,
                                "description": "endpoints per service (default: the "
                                               "topology's)"},
                  "change": {"type": "boolean", "default": True,
                             "description": "also time one service's change"},
                  "node": {**NODE, "description": "the node whose service datapath to "
                                                  "program (default: the lab's only one)"}}},
      metrics={"program_s": Metric("s", "lower", "a full sync of N services"),
               "change_s": Metric("s", "lower", "one endpoint of one service replaced"),
               "objects": Metric("entries", "none", "rules (iptables, nftables) or map "
                                                    "entries (gateway) the services take")})
def services_step(ctx: StepContext, p: dict) -> None:
    """Program N services (kube-proxy's full sync, or the gateway's maps) and time it."""
    target = service_datapath(ctx, p.get("node"))
    ctx.status(f"programming {p['count']} services")
    seconds = target.program(p["count"], p.get("endpoints"))
    ctx.record("program_s", seconds)
    ctx.record("objects", target.size())
    if p["change"]:
        ctx.record("change_s", target.change_one())


def service_datapath(ctx: StepContext, node: str | None):
    """What programs services in this lab: kube-proxy on a legacy node, else the gateway."""
    from lab.datapath.kubeproxy.sweep import service_datapaths

    found = service_datapaths(ctx.lab)
    if node is not None:
        found = {k: v for k, v in found.items() if k == node}
    if len(found) != 1:
        raise LabError("the services step needs exactly one node programming services "
                       f"(a legacy node's kube-proxy, or the gateway); found "
                       f"{', '.join(found) or 'none'}" + ("" if node is None else
                                                         f" named {node}"))
    return next(iter(found.values()))


@step("path_proof", check=_node_check,
      schema={"type": "object", "additionalProperties": False, "required": ["node"],
              "properties": {
                  "node": {**NODE, "description": "the node whose netfilter to look at"},
                  "address": {"type": "string", "description": "a ClusterIP (VIP): count "
                              "the connections to it, check how they were translated"}}},
      metrics={"conntrack": Metric("entries", "none", "connections NODE's netfilter "
                                                      "tracked since the previous proof"),
               "dnat": Metric("entries", "none", "of those, to ADDRESS and DNATed"),
               "rule_packets": Metric("packets", "none",
                                      "packets kube-proxy's rules for ADDRESS matched "
                                      "(iptables mode)"),
               "gateway_new": Metric("connections", "none",
                                     "connections the stateful gateway opened")})
def path_proof_step(ctx: StepContext, p: dict) -> None:
    """What carried the traffic since the previous proof: a legacy node's netfilter
    (conntrack entries, DNAT to a pod, kube-proxy's rule counters), no netfilter on any
    other node, the stateful gateway's own conntrack for a VIP it serves."""
    node = ctx.node(p["node"])
    kp = kp_node.instance(ctx.lab, node.name)
    entries = kp_node.conntrack(node)
    address = p.get("address")
    ctx.record("conntrack", len(entries))
    if kp is None:
        ctx.check(not entries, f"{node.name} runs no netfilter: nothing tracked",
                  measured=len(entries), expected=0)
    else:
        ctx.check(bool(entries), f"{node.name}'s conntrack tracked the traffic "
                                 f"({kp.config.mode} mode)", measured=len(entries),
                  expected="> 0")
    if kp is not None and address is not None:
        to_vip = [e for e in entries if e.orig_dst == address]
        dnat = [e for e in to_vip if e.reply_src != address]
        ctx.record("dnat", len(dnat))
        ctx.check(bool(dnat) and len(dnat) == len(to_vip),
                  f"every connection to {address} was DNATed to an endpoint by "
                  "kube-proxy's rules", measured=f"{len(dnat)} of {len(to_vip)}",
                  expected="all, at least one")
        if kp.config.mode == "iptables":
            counts = kp.matched(address)
            ctx.record("rule_packets", counts)
            ctx.check(counts > 0, f"kube-proxy's rules for {address} matched packets",
                      measured=counts, expected="> 0")
    if entries:
        kp_node.flush_conntrack(node)
    gateway = _gateway_serving(ctx, address) if address is not None else None
    if gateway is not None:
        opened = gateway.new_connections()
        ctx.record("gateway_new", opened)
        ctx.check(opened > 0, f"the stateful gateway on {gateway.node} opened connections",
                  measured=opened, expected="> 0")


def _gateway_serving(ctx: StepContext, address: str):
    from lab.datapath.kubeproxy.sweep import GatewayServices, service_datapaths

    for target in service_datapaths(ctx.lab).values():
        if isinstance(target, GatewayServices) and target.serves(address):
            return target
    return None


STEP_KINDS = (services_step, path_proof_step)
