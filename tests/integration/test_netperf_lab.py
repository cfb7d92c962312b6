"""netperf in lab nodes (root): TCP_RR, TCP_CRR and TCP_STREAM from one pod to another over
IPv6, pinned where the placement says, netserver stopped with the lab; and lab-rr agrees with
netperf on the same path (rr_crosscheck's pairs)."""

from __future__ import annotations

import statistics

import pytest
from pod_traffic import make_lab  # noqa: F401 (fixture)

from lab.traffic import netperf, netperf_package, rr
from lab.traffic.placement import resolve
from lab.traffic.process import listening

pytestmark = pytest.mark.root


@pytest.fixture
def tools():
    if netperf_package.find() is None:
        pytest.skip(netperf_package.capability().detail)


def test_netperf_tests_between_pods(make_lab, tools, tmp_path):
    lab = make_lab(device="veth", routing="host")
    pod0, pod1 = lab.pods("node1")
    srv = netperf.start(pod1, tmp_path)
    placement = resolve("same-cpu")
    got = {}
    for test in netperf.TESTS:
        res = netperf.measure(pod0, srv, pod1.address(6), placement, test, seconds=1)
        got[test] = res
        assert res.rate > 0, test
        assert res.client_cpus == [placement.client_cpu]
        assert res.server_cpus == [placement.server_cpu]
    rr_lat = got["TCP_RR"].latency_us
    assert 0 < rr_lat["min"] <= rr_lat["p50"] <= rr_lat["p99"] <= rr_lat["max"]
    assert got["TCP_RR"].request_bytes == got["TCP_RR"].response_bytes == 1
    # a connection per transaction costs more than a transaction on an open one
    assert got["TCP_CRR"].rate < got["TCP_RR"].rate
    lab.down()
    assert srv.proc.poll() is not None  # netserver went with the lab
    assert not listening(srv.pid, netperf.DEFAULT_PORT)


def test_lab_rr_agrees_with_netperf_on_the_same_path(make_lab, tools, tmp_path):
    """The pairs rr_crosscheck records: alternating runs on one path and placement. Their
    median ratio is what scenarios/legacy-vs-bpf.yaml asserts within 10%; here, a bound that
    shared-machine noise cannot break but a tool measuring something else (a doubled
    round trip, connections instead of transactions) would."""
    lab = make_lab(device="veth", routing="host")
    pod0, pod1 = lab.pods("node1")
    np_srv = netperf.start(pod1, tmp_path)
    rr_srv = rr.start(pod1, tmp_path, 1, 1)
    placement = resolve("same-cpu")
    ratios = []
    for _ in range(3):
        a = netperf.measure(pod0, np_srv, pod1.address(6), placement, "TCP_RR", 1)
        b = rr.measure(pod0, rr_srv, pod1.address(6), placement, 1, 1, seconds=1)
        ratios.append(b.transactions_per_second / a.rate)
    assert 0.6 < statistics.median(ratios) < 1.6, ratios
