"""The stateless translator from the topology file, end to end: `topologies/nat46.yaml` as
`lab up` builds it (the translator section derives the programs, routes, neighbours and
offloads; docs/translator.md), at tc, tcx and XDP.

    client 192.0.2.10 --IPv4-- gw --IPv6-- node1 -- pods fd00:10:244:1::1x = 203.0.113.(16+x)
                                |
                    server4 198.51.100.10 = 64:ff9b:1::c633:640a for the pods

Ingress: the client reaches the pods by their EAM IPv4 addresses and is seen by them as its
RFC 6052 address. Egress: the pods reach server4 through the prefix and are seen by it as
their EAM IPv4 addresses. The gateway is a router for both families (Time Exceeded, path MTU
discovery across a smaller-MTU link), and the allow-list refuses the client's second address.
DNS64: unbound, started by the lab, gives the pods the IPv4-only name's address in the prefix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab import netns
from lab.datapath.registry import DATAPATHS
from lab.datapath.translator import dns64
from lab.datapath.translator import topology as translator_topology
from lab.journal import BpfAttached, ProcessStarted
from lab.lab import Lab
from lab.topology import parse
from tcp_exchange import tcp_exchange

pytestmark = [pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]
CLIENT4, REFUSED4, SERVER4 = "192.0.2.10", "192.0.2.20", "198.51.100.10"
CLIENT6 = "64:ff9b:1::c000:20a"          # RFC 6052: 192.0.2.10 in 64:ff9b:1::/96
SERVER6 = "64:ff9b:1::c633:640a"         # 198.51.100.10
POD0_6, POD0_4 = "fd00:10:244:1::10", "203.0.113.16"
POD1_6, POD1_4 = "fd00:10:244:1::11", "203.0.113.17"
GW4, GW6 = "192.0.2.1", "fd00:0:0:1::1"


def topology(hook: str, name: str):
    data = yaml.safe_load((ROOT / "topologies/nat46.yaml").read_text())
    data["name"] = name
    data["datapath"]["translator"]["hook"] = hook
    return parse(yaml.safe_dump(data, sort_keys=False), file=f"nat46.yaml ({hook})",
                 datapaths=DATAPATHS)


@pytest.fixture(scope="module", params=["tc", "tcx", "xdp"])
def lab(request, bpf_build):
    from lab.bpf import features
    if request.param == "tcx" and not features.has_tcx():
        pytest.skip("kernel lacks tcx (6.6+)")
    with Lab(topology(request.param, f"xe{request.param}{os.getpid() % 100000}"),
             datapaths=DATAPATHS) as lab:
        yield lab


def test_addresses_follow_the_section(lab):
    topo = lab.topology
    assert translator_topology.address_of(topo, CLIENT4) == CLIENT6
    assert translator_topology.address_of(topo, SERVER4) == SERVER6
    assert translator_topology.address_of(topo, POD1_6) == POD1_4


def _ping(node, *args):
    return node.run(["ping", "-n", "-c", "1", "-W", "2", *args], check=False,
                    timeout=10).stdout


def test_client_pings_pods_by_their_eam_address(lab):
    client = lab.node("client")
    for addr in (POD0_4, POD1_4):
        assert " 0% packet loss" in _ping(client, addr)


def test_pod_pings_server4_through_the_prefix(lab):
    assert " 0% packet loss" in _ping(lab.node("node1-pod1"), "-6", SERVER6)


def test_pod_pings_the_client(lab):
    assert " 0% packet loss" in _ping(lab.node("node1-pod0"), "-6", CLIENT6)


def test_tcp_client_to_pod_sees_the_rfc6052_source(lab):
    peer, ok = tcp_exchange(lab.node("node1-pod0").netns, socket.AF_INET6,
                             lab.node("client").netns, socket.AF_INET, POD0_4)
    assert ok
    assert peer == CLIENT6


def test_tcp_pod_to_server4_sees_the_eam_source(lab):
    peer, ok = tcp_exchange(lab.node("server4").netns, socket.AF_INET,
                             lab.node("node1-pod1").netns, socket.AF_INET6, SERVER6)
    assert ok
    assert peer == POD1_4


def test_udp_client_to_pod(lab):
    rx = netns.socket_in(lab.node("node1-pod0").netns, socket.AF_INET6, socket.SOCK_DGRAM)
    tx = netns.socket_in(lab.node("client").netns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("::", 0))
        rx.settimeout(2)
        port = rx.getsockname()[1]
        # up to 1452: 1472 bytes without DF would be 1520 bytes of IPv6, which the 1500-byte
        # links refuse (the translator does not fragment, docs/translator.md)
        for n in (1, 100, 1000, 1452):
            tx.sendto(bytes(n), (POD0_4, port))
            data, peer = rx.recvfrom(65535)
            assert (len(data), peer[0]) == (n, CLIENT6)
    finally:
        rx.close()
        tx.close()


def test_time_exceeded_at_the_gateway_both_ways(lab):
    out4 = _ping(lab.node("client"), "-t", "1", POD0_4)
    assert re.search(rf"From {re.escape(GW4)} icmp_seq=1 Time to live exceeded", out4), out4
    # the pod's packet spends one hop at node1; the second expires at the gateway
    out6 = _ping(lab.node("node1-pod0"), "-6", "-t", "2", SERVER6)
    assert re.search(rf"From {re.escape(GW6)} icmp_seq=1 Time exceeded", out6), out6


@contextlib.contextmanager
def _link_mtu(lab, ends, mtu):
    """MTU on both ends of a link, 1500 again afterwards and learnt path MTUs forgotten."""
    for node, ifname in ends:
        lab.node(node).set_link(ifname, mtu=mtu)
    try:
        yield
    finally:
        for node, ifname in ends:
            lab.node(node).set_link(ifname, mtu=1500)
        for node in lab.nodes.values():
            for family in ("-4", "-6"):
                node.run(["ip", family, "route", "flush", "cache"], check=False)


def test_path_mtu_discovery_client_to_pod(lab):
    """1500 bytes of IPv4 with DF are 1520 of IPv6: the kernel's Packet Too Big for the
    1400-byte node link reaches the client as Fragmentation Needed, MTU 1380."""
    with _link_mtu(lab, [("gw", "eth-node"), ("node1", "eth0")], 1400):
        out = _ping(lab.node("client"), "-M", "do", "-s", "1472", POD0_4)
        assert "mtu = 1380" in out, out
        assert " 0% packet loss" in _ping(lab.node("client"), "-M", "do", "-s", "1352", POD0_4)


def test_path_mtu_discovery_pod_to_server4(lab):
    """The other way: Fragmentation Needed for the 1400-byte server link reaches the pod as
    Packet Too Big, MTU 1420."""
    pod = lab.node("node1-pod0")
    with _link_mtu(lab, [("gw", "eth-server"), ("server4", "eth0")], 1400):
        out = _ping(pod, "-6", "-M", "do", "-s", "1452", SERVER6)
        assert "mtu=1420" in out, out
        assert " 0% packet loss" in _ping(pod, "-6", "-M", "do", "-s", "1372", SERVER6)


def test_allow_list_refuses_the_second_client_address(lab):
    """192.0.2.20 is not in the allow-list: its datagram is dropped and answered with an
    administratively-prohibited error (icmp_errors), which the connected socket reports."""
    before = translator_topology.statistics(lab)["bounce"]
    client = netns.socket_in(lab.node("client").netns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.bind((REFUSED4, 0))
        client.connect((POD0_4, 9))
        client.settimeout(5)
        client.send(b"refused" * 20)
        with pytest.raises(OSError) as err:
            client.recv(100)
        assert err.value.errno == errno.EHOSTUNREACH, err.value
    finally:
        client.close()
    assert translator_topology.statistics(lab)["bounce"] == before + 1   # answered, not passed
    # the allowed address still passes
    assert " 0% packet loss" in _ping(lab.node("client"), "-I", CLIENT4, POD0_4)


def test_statistics_count_both_directions(lab):
    stats = translator_topology.statistics(lab)
    assert stats["done46"] > 0 and stats["done64"] > 0


def test_gateway_has_the_permanent_neighbours(lab):
    from pyroute2 import IPRoute
    with lab.node("gw").entered(), IPRoute() as ipr:
        entries = {(n.get_attr("NDA_DST"), n["state"]) for n in ipr.get_neighbours()}
    assert {(translator_topology.NEXT_HOP6, 0x80), (translator_topology.NEXT_HOP4, 0x80)} <= entries


# --- DNS64 (unbound, started by the lab) --------------------------------------------------------

def test_pod_resolves_the_ipv4_only_name_to_the_prefix(lab):
    out = lab.node("node1-pod2").run(["getent", "ahostsv6", "ipv4only.lab"]).stdout
    assert {line.split()[0] for line in out.splitlines()} == {SERVER6}
    # the zone itself has no AAAA: the address is the resolver's synthesis
    assert dns64.query(lab.node("server4").netns, SERVER4, "ipv4only.lab", "AAAA") == []
    assert dns64.query(lab.node("server4").netns, SERVER4, "ipv4only.lab", "A") == [SERVER4]


def test_pod_connects_to_the_ipv4_only_name(lab):
    """A pod's TCP connection to the name: resolved through DNS64, translated at the gateway,
    accepted by server4 from the pod's EAM address."""
    srv = netns.socket_in(lab.node("server4").netns, socket.AF_INET, socket.SOCK_STREAM)
    srv.bind((SERVER4, 0))
    srv.listen(1)
    srv.settimeout(15)
    port = srv.getsockname()[1]
    try:
        client = lab.node("node1-pod3").popen(
            [sys.executable, "-c", "import socket, sys; s = socket.create_connection("
             "('ipv4only.lab', int(sys.argv[1])), timeout=10); s.sendall(b'hello via dns64');"
             " print(s.getpeername()[0]); s.close()", str(port)],
            stdout=subprocess.PIPE, text=True)
        conn, peer = srv.accept()
        with conn:
            conn.settimeout(10)
            assert conn.recv(100) == b"hello via dns64"
        assert client.stdout.read().strip() == SERVER6
        assert client.wait(10) == 0
    finally:
        srv.close()
    assert peer[0] == "203.0.113.19"     # node1-pod3: fd00:10:244:1::13 by the EAM


def test_dns64_servers_and_resolv_conf_go_with_the_lab(bpf_build):
    from lab.state import process_start_time
    with Lab(topology("tc", f"xd{os.getpid() % 100000}"), datapaths=DATAPATHS) as lab:
        procs = [r for r in lab.record.replay() if isinstance(r, ProcessStarted)]
        assert sorted(Path(r.argv[0]).name for r in procs) == ["unbound", "unbound"]
        etc = Path("/etc/netns") / lab.node("node1-pod0").netns / "resolv.conf"
        assert etc.read_text().startswith("nameserver fd00:0:0:1::1")
    assert all(process_start_time(r.pid) != r.start for r in procs)
    assert not etc.exists()


# --- engine tayga and engine none (topologies/nat46-bench.yaml) ---------------------------------

def bench_topology(engine: str, name: str, pod0: str | None = None):
    data = yaml.safe_load((ROOT / "topologies/nat46-bench.yaml").read_text())
    data["name"] = name
    data["datapath"]["translator"]["engine"] = engine
    if pod0:
        data["nodes"]["client"]["hosts"] = {"pod0.bench": pod0}
    return parse(yaml.safe_dump(data, sort_keys=False), file=f"nat46-bench.yaml ({engine})",
                 datapaths=DATAPATHS)


def test_tayga_translates_the_same_mapping_and_goes_with_the_lab():
    from lab.state import process_start_time
    with Lab(bench_topology("tayga", f"xt{os.getpid() % 100000}"), datapaths=DATAPATHS) as lab:
        (proc,) = [r for r in lab.record.replay() if isinstance(r, ProcessStarted)]
        assert Path(proc.argv[0]).name == "tayga"
        assert " 0% packet loss" in _ping(lab.node("client"), "pod0.bench")   # /etc/hosts
        peer, ok = tcp_exchange(lab.node("node1-pod0").netns, socket.AF_INET6,
                                 lab.node("client").netns, socket.AF_INET, POD0_4)
        assert ok and peer == "2001:db8:64::c000:20a"
        peer, ok = tcp_exchange(lab.node("server4").netns, socket.AF_INET,
                                 lab.node("node1-pod1").netns, socket.AF_INET6,
                                 "2001:db8:64::c633:640a")
        assert ok and peer == POD1_4
        hosts = Path("/etc/netns") / lab.node("client").netns / "hosts"
        assert "203.0.113.16\tpod0.bench" in hosts.read_text()
    assert process_start_time(proc.pid) != proc.start
    assert not hosts.exists()


def test_engine_none_is_plain_ipv6_routing():
    with Lab(bench_topology("none", f"xn{os.getpid() % 100000}", POD0_6),
             datapaths=DATAPATHS) as lab:
        assert not [r for r in lab.record.replay()
                    if isinstance(r, (BpfAttached, ProcessStarted))]
        assert " 0% packet loss" in _ping(lab.node("client"), "pod0.bench")
        assert " 100% packet loss" in _ping(lab.node("client"), POD0_4)   # nothing translates
