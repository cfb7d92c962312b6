"""The traffic tools' output, as the real tools printed it (tests/data/traffic), parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import LabError, UsageError
from lab.traffic import iperf3, ping, placement, rr, sockperf

DATA = Path(__file__).resolve().parents[1] / "data" / "traffic"


def test_iperf3_json():
    r = iperf3.parse((DATA / "iperf3-tcp6.json").read_text())
    assert r.version == "iperf 3.12"
    # the receiver's figure (sum_received), in Gbit/s; CPU from cpu_utilization_percent
    assert r.throughput_gbps == pytest.approx(17.2952640395003)
    assert r.retransmits == 0
    assert r.client_cpu_percent == pytest.approx(26.8538175752521)
    assert r.server_cpu_percent == pytest.approx(67.5682121399298)
    assert r.seconds > 0.9


def test_iperf3_error_is_reported_with_iperf3s_words():
    with pytest.raises(LabError, match="unable to connect to server: Connection refused"):
        iperf3.parse((DATA / "iperf3-refused.json").read_text())
    with pytest.raises(LabError, match="no JSON"):
        iperf3.parse("iperf3: error - bad\n")


def test_lab_rr_json():
    r = rr.parse((DATA / "lab-rr-80000.json").read_text())
    assert (r.mode, r.request_bytes, r.response_bytes) == ("rr", 80000, 80000)
    assert r.transactions == 12712
    assert r.transactions_per_second == pytest.approx(12712 / 0.500859, rel=1e-3)
    lat = r.latency_us
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


def test_lab_rr_keeps_every_transaction_in_log_spaced_buckets():
    from lab.scenarios.records import Distribution
    from lab.scenarios.steps import latency_distribution

    r = rr.parse((DATA / "lab-rr-80000-v2.json").read_text())
    assert r.histogram["per_decade"] == 20
    dist = latency_distribution(r)
    assert sum(dist.counts) == dist.count == r.transactions == 8004
    # the bucket that holds the median (exact, from lab-rr) is where the CDF crosses 0.5
    xs, ys = dist.cdf()
    crossing = next(i for i, y in enumerate(ys) if y >= 0.5)
    assert xs[crossing - 1] <= r.latency_us["p50"] < xs[crossing]
    assert xs[0] <= r.latency_us["min"] and r.latency_us["max"] < xs[-1]
    assert dist.quantiles["0.99"] == r.latency_us["p99"]
    # repeats pool by adding their counts
    both = Distribution.merge([dist, dist])
    assert both.count == 2 * dist.count and both.counts == [2 * c for c in dist.counts]
    # a tool with percentiles only (netperf -j) is drawn through them
    netperf = Distribution("us", 1000, {"0": 20.0, "0.5": 25.0, "0.99": 80.0, "1": 120.0},
                           source="netperf")
    assert netperf.cdf() == ([20.0, 25.0, 80.0, 120.0], [0.0, 0.5, 0.99, 1.0])
    assert rr.parse((DATA / "lab-rr-80000.json").read_text()).histogram is None  # version 1


def test_iperf3_intervals_show_the_stream_over_time():
    r = iperf3.parse((DATA / "iperf3-tcp6-intervals.json").read_text())
    assert len(r.intervals) == 10
    times = [t for t, _ in r.intervals]
    assert times == sorted(times) and times[-1] == pytest.approx(1.0, abs=0.01)
    assert min(v for _, v in r.intervals) < 0.7 * max(v for _, v in r.intervals)  # a dip
    assert iperf3.parse((DATA / "iperf3-tcp6.json").read_text()).intervals


def test_sockperf_full_rtt_output():
    r = sockperf.parse((DATA / "sockperf-pp-tcp.txt").read_text(), 64)
    assert r.round_trips > 0 and r.round_trips_per_second > 0
    assert set(r.rtt_us) >= {"min", "mean", "p50", "p90", "p99", "max"}
    assert r.rtt_us["min"] <= r.rtt_us["p50"] <= r.rtt_us["p99"] <= r.rtt_us["max"]


def test_sockperf_limits_are_explained():
    with pytest.raises(UsageError, match="IPv4 only|cannot use IPv6"):
        sockperf.check_usable("2001:db8::1", 64)
    with pytest.raises(UsageError, match="14..65506 bytes, not 80000"):
        sockperf.check_usable("192.0.2.1", 80000)
    with pytest.raises(LabError, match="Message received was larger"):
        sockperf.parse("sockperf: ERROR: Message received was larger than expected, message "
                       "ignored. (errno=0 Success)")


def test_ping_statistics_and_loss():
    ok = ping.parse((DATA / "ping6.txt").read_text())
    assert (ok.transmitted, ok.received, ok.loss_percent) == (3, 3, 0.0)
    assert ok.rtt_ms["min"] <= ok.rtt_ms["avg"] <= ok.rtt_ms["max"]
    lost = ping.parse((DATA / "ping4-loss.txt").read_text())
    assert (lost.transmitted, lost.received, lost.loss_percent) == (3, 0, 100.0)
    assert lost.rtt_ms == {}


def test_placements_on_two_cpus():
    same = placement.resolve("same-cpu", [0, 1])
    cross = placement.resolve("cross-cpu", [0, 1])
    assert (same.client_cpu, same.server_cpu) == (1, 1)
    assert (cross.client_cpu, cross.server_cpu) == (0, 1)
    assert cross.client_argv(["iperf3", "-c", "x"]) == ["taskset", "--cpu-list", "0", "iperf3",
                                                       "-c", "x"]
    free = placement.resolve("unpinned", [0, 1])
    assert not free.pinned and free.client_argv(["a"]) == ["a"]
    with pytest.raises(UsageError, match="needs two CPUs"):
        placement.resolve("cross-cpu", [3])
    with pytest.raises(UsageError, match="unknown placement"):
        placement.resolve("numa", [0, 1])
