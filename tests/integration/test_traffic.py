"""The traffic tools for real between lab nodes: output parsed, placement read back, servers
stopped at teardown, captures readable. Short runs; no value of a measurement is asserted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scapy.layers.inet6 import ICMPv6EchoRequest
from scapy.utils import rdpcap

from lab import state
from lab.datapath.registry import DATAPATHS
from lab.errors import LabError
from lab.lab import Lab
from lab.traffic import iperf3, ping, placement, rr, sockperf
from lab.traffic.capture import Capture

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
TWO_CPUS = len(os.sched_getaffinity(0)) >= 2


@pytest.fixture(scope="module")
def lab():
    name = f"tt{os.getpid() % 100000}"
    with Lab.from_file(ROOT / "topologies" / "bigtcp.yaml", name, datapaths=DATAPATHS) as lab:
        yield lab
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"{name}-")]


def ordered(lat: dict) -> bool:
    return lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"]


@pytest.mark.parametrize("family", [6, 4])
def test_iperf3_single_stream_with_cpu_placement_read_back(lab, tmp_path, family):
    client, server = lab.node("client"), lab.node("server")
    srv = iperf3.start(server, tmp_path, port=5300 + family)
    names = ["same-cpu", "cross-cpu"] if TWO_CPUS else ["same-cpu"]
    for name in names:
        where = placement.resolve(name)
        res = iperf3.measure(client, srv, server.address(family), where, seconds=1)
        assert res.throughput_gbps > 0 and res.version.startswith("iperf 3")
        assert res.client_cpus == [where.client_cpu], "client CPU as the kernel reports it"
        assert res.server_cpus == [where.server_cpu]
        assert 0 < res.client_cpu_percent <= 100 and res.mss and res.mss <= 1500
    free = iperf3.measure(client, srv, server.address(family), placement.resolve("unpinned"),
                          seconds=1, mss=1000, zerocopy=True)
    assert free.server_cpus == sorted(os.sched_getaffinity(0))
    assert free.mss <= 1000


def test_lab_rr_transactions_both_sizes_and_connection_rate(lab, tmp_path):
    client, server = lab.node("client"), lab.node("server")
    same = placement.resolve("same-cpu")
    for family in (6, 4):
        for size, port in ((1, 7201), (80000, 7202)):
            srv = rr.start(server, tmp_path, size, size, port=port + 10 * family)
            res = rr.measure(client, srv, server.address(family), same, size, size,
                             seconds=0.3, warmup=0.05)
            assert (res.mode, res.request_bytes, res.response_bytes) == ("rr", size, size)
            assert res.transactions > 0 and ordered(res.latency_us)
            assert res.client_cpus == [same.client_cpu] == res.server_cpus
    crr = rr.start(server, tmp_path, 1, 1, connect_each=True, port=7300)
    res = rr.measure(client, crr, server.address(6), same, 1, 1, seconds=0.3,
                     connect_each=True, warmup=0)
    assert res.mode == "crr" and res.transactions > 0 and ordered(res.latency_us)


def test_lab_rr_refuses_a_server_of_another_shape(lab, tmp_path):
    # a connection-rate client against a server that keeps connections open: a clear error
    client, server = lab.node("client"), lab.node("server")
    srv = rr.start(server, tmp_path, 1, 1, connect_each=False, port=7400)
    with pytest.raises(LabError, match="did not close after the transaction"):
        rr.measure(client, srv, server.address(6), placement.resolve("same-cpu"), 1, 1,
                   seconds=0.2, connect_each=True, warmup=0)


def test_sockperf_ping_pong_over_ipv4(lab, tmp_path):
    client, server = lab.node("client"), lab.node("server")
    address = server.address(4)
    srv = sockperf.start(server, address, tmp_path, port=11500)
    res = sockperf.measure(client, srv, address, placement.resolve("same-cpu"), 64, 1.0)
    assert res.round_trips > 0 and res.rtt_us["min"] <= res.rtt_us["p50"] <= res.rtt_us["p99"]


def test_ping_and_a_capture_readable_by_scapy(lab, tmp_path):
    client, router = lab.node("client"), lab.node("router")
    target = lab.node("server").address(6)
    pcap = tmp_path / "c.pcap"
    with Capture(router, "eth-server", pcap, filter="icmp6 and ip6[40] == 128") as cap:
        res = ping.ping(client, target, count=3, interval=0.05)
    assert (res.transmitted, res.loss_percent) == (3, 0.0)
    assert cap.packets == 3
    echoes = [p for p in rdpcap(str(pcap)) if p.haslayer(ICMPv6EchoRequest)]
    assert len(echoes) == 3 and {p["IPv6"].dst for p in echoes} == {target}


def test_servers_are_stopped_at_teardown(tmp_path):
    name = f"tu{os.getpid() % 100000}"
    with Lab.from_file(ROOT / "topologies" / "bigtcp.yaml", name, datapaths=DATAPATHS) as lab:
        srv = iperf3.start(lab.node("server"), tmp_path, port=5400)
        pid = srv.pid
        assert state.process_start_time(pid) is not None
    srv.proc.wait(5)
    assert state.process_start_time(pid) is None
