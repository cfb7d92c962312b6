"""The `netem` step kind: delay and loss on a link of the running lab (a netem qdisc on both
ends), so a scenario can sweep real round-trip times and loss as a matrix dimension.

Half the round-trip time is added at each end's egress, and the loss applies to each
direction. A point with no delay and no loss removes the qdiscs (the device's default
queueing again). netem needs CONFIG_NET_SCH_NETEM (`lab doctor`'s `netem`): a scenario with
this step runs in the kernel VM under `lab run --vm` when the host kernel lacks it, as a
netkit scenario does.
"""

from __future__ import annotations

from lab.scenarios.context import StepContext
from lab.scenarios.registry import Metric, step
from lab.topology import Topology

NETEM_LIMIT = 10000  # packets queued per end: a 10 ms RTT at tens of Gbit/s holds thousands
NETEM_HANDLE = 0x10000  # 1:, the root qdisc this step puts on a link end
TC_H_ROOT = 0xFFFFFFFF


def _check_link(p: dict, topo: Topology) -> tuple[str, str] | None:
    a, b = p["link"]
    for n in (a, b):
        if n not in topo.nodes:
            return "link", f"no node '{n}' in topology {topo.file} (nodes: " \
                           f"{', '.join(topo.nodes)})"
    if not any(i.peer_node == b for i in topo.nodes[a].interfaces.values()):
        return "link", f"no link joins {a} and {b} in topology {topo.file}"
    return None


def link_ends(topo: Topology, a: str, b: str) -> list[tuple[str, str]]:
    """(node, ifname) of both ends of the link between nodes A and B."""
    ends = []
    for node, peer in ((a, b), (b, a)):
        ends += [(node, name) for name, i in topo.nodes[node].interfaces.items()
                 if i.peer_node == peer]
    return ends


def set_netem(ctx: StepContext, ends: list[tuple[str, str]], rtt_ms: float,
              loss_pct: float) -> None:
    from pyroute2 import IPRoute

    for node, ifname in ends:
        with ctx.node(node).entered(), IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            if rtt_ms == 0 and loss_pct == 0:
                # Only our netem goes: a root qdisc someone else put there stays.
                if any(q["parent"] == TC_H_ROOT and q["handle"] == NETEM_HANDLE
                       and q.get_attr("TCA_KIND") == "netem" for q in ipr.get_qdiscs(idx)):
                    ipr.tc("del", index=idx, parent=TC_H_ROOT, handle=NETEM_HANDLE)
                continue
            ipr.tc("replace", "netem", idx, handle=NETEM_HANDLE, delay=int(rtt_ms * 500),
                   loss=loss_pct, limit=NETEM_LIMIT)


@step("netem", requires=["netem"], check=_check_link,
      schema={"type": "object", "additionalProperties": False,
              "properties": {
                  "link": {"type": "array", "minItems": 2, "maxItems": 2,
                           "items": {"type": "string"}, "default": ["client", "gw"],
                           "description": "the two nodes the link joins"},
                  "rtt_ms": {"type": "number", "minimum": 0, "maximum": 10000, "default": 0,
                             "description": "round-trip time added (half at each end)"},
                  "loss_pct": {"type": "number", "minimum": 0, "maximum": 100, "default": 0,
                               "description": "packets lost, per direction, in percent"}}},
      metrics={"rtt_ms": Metric("ms", "none", "round-trip time added on the link"),
               "loss_pct": Metric("%", "none", "loss per direction added on the link")})
def netem(ctx: StepContext, p: dict) -> None:
    """Delay and loss on a link, for the following steps of this point."""
    ends = link_ends(ctx.lab.topology, *p["link"])
    set_netem(ctx, ends, p["rtt_ms"], p["loss_pct"])
    ctx.record("rtt_ms", p["rtt_ms"])
    ctx.record("loss_pct", p["loss_pct"])
