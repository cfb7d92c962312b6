"""The netem step kind on a real link (needs CONFIG_NET_SCH_NETEM: where this kernel lacks it,
tests/vm/test_bpf_in_vm.py runs it in each kernel VM): half the RTT and the loss at each end,
pings see the RTT, and the point without delay or loss removes exactly the qdiscs the step
put there."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from pyroute2 import IPRoute

from lab import features, netns
from lab.scenarios.netem import NETEM_HANDLE, set_netem

pytestmark = [pytest.mark.root, pytest.mark.netem]


@pytest.fixture(autouse=True)
def netem_kernel():
    ok, why = features.netem()
    if not ok:
        pytest.skip(why)


def root_qdiscs(ns: str, ifname: str) -> list[tuple[str, int, dict]]:
    with netns.entered(ns), IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        return [(q.get_attr("TCA_KIND"), q["handle"], q.get_attr("TCA_OPTIONS") or {})
                for q in ipr.get_qdiscs(idx) if q["parent"] == 0xFFFFFFFF]


def min_rtt_ms(pair) -> float:
    out = pair.ping(count=5).stdout
    return float(re.search(r"= ([\d.]+)/", out).group(1))


def test_rtt_and_loss_on_both_ends_and_back(veth_pair):
    ctx = SimpleNamespace(node=lambda ns: SimpleNamespace(entered=lambda: netns.entered(ns)))
    ends = [(veth_pair.a, veth_pair.a_if), (veth_pair.b, veth_pair.b_if)]
    set_netem(ctx, ends, rtt_ms=0, loss_pct=0)              # nothing of ours there yet: fine
    set_netem(ctx, ends, rtt_ms=20, loss_pct=0.1)
    for ns, ifname in ends:
        [(kind, handle, _)] = root_qdiscs(ns, ifname)
        assert (kind, handle) == ("netem", NETEM_HANDLE)
    assert min_rtt_ms(veth_pair) >= 20.0                    # 10 ms each way
    set_netem(ctx, ends, rtt_ms=0, loss_pct=0)
    assert all(kind != "netem" for ns, i in ends for kind, _, _ in root_qdiscs(ns, i))
    assert min_rtt_ms(veth_pair) < 20.0
    # A root qdisc the step did not put there stays.
    with netns.entered(veth_pair.a), IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=veth_pair.a_if)[0]
        ipr.tc("add", "tbf", idx, handle=0x20000, rate="100mbit", latency="50ms", burst=15000)
    set_netem(ctx, ends[:1], rtt_ms=0, loss_pct=0)
    assert [k for k, _, _ in root_qdiscs(*ends[0])] == ["tbf"]
