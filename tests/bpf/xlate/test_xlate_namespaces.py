"""The translator on real veth devices, in three throwaway namespaces: an IPv4 host, a
gateway translating at tc, tcx or XDP ingress with the egress programs for the kernel's own
packets, and an IPv6-only pod. What BPF_PROG_TEST_RUN cannot show:

  - senders on veth hand over CHECKSUM_PARTIAL skbs (and TCP GSO packets); the gateway's
    outgoing devices have tx checksumming off, so every forwarded checksum is completed in
    software and the receiving stack verifies it;
  - the gateway is a router for both families: the kernel's Time Exceeded and Packet Too Big
    for translated packets reach the sender translated (traceroute, path MTU discovery).

    ns4 eth0 192.0.2.10 ---- g4 192.0.2.1 [gw] g6 2001:db8:6::1 ---- eth0 2001:db8:6::5 ns6

The gateway is a topology file's `datapath: translator:` section (docs/translator.md): the
lab derives the programs at each hook, the routes into the egress translators with their
permanent neighbours, and at XDP the senders' tx checksumming off and the peers' XDP
programs, from the same settings a hand-built gateway once needed spelled out.
"""

from __future__ import annotations

import contextlib
import re
import socket
from dataclasses import dataclass
from typing import Any

import pytest
from pyroute2 import IPRoute

from lab import netns
from lab.datapath.registry import DATAPATHS
from lab.datapath.translator import topology as translator_topology
from lab.lab import Lab
from lab.topology import parse

from bpf_fixtures import unique
from tcp_exchange import tcp_exchange
from xlate_helpers import CLIENT4, CLIENT6, EAM4, EAM6, PREFIX, SERVER4, SERVER6

pytestmark = pytest.mark.root

GW4, GW6 = "192.0.2.1", "2001:db8:6::1"
# Only CLIENT4 may reach the pods: a second address of the IPv4 host is refused, with an
# ICMP error back.
REFUSED4 = "192.0.2.20"

TOPOLOGY = f"""
nodes:
  ns4: {{role: client, routes: [{{dst: default, via: {GW4}}}]}}
  gw: {{role: gateway, forwarding: true}}
  ns6: {{role: server, routes: [{{dst: default6, via: "{GW6}"}}]}}
links:
  # Forwarded packets leave the gateway with their checksums completed in software.
  - ends:
      - {{node: ns4, ifname: eth0, addresses: [{CLIENT4}/24, {REFUSED4}/24]}}
      - {{node: gw, ifname: g4, addresses: [{GW4}/24], offloads: {{tx: off}}}}
  - ends:
      - {{node: gw, ifname: g6, addresses: ["{GW6}/64"], offloads: {{tx: off}}}}
      - {{node: ns6, ifname: eth0, addresses: ["{SERVER6}/64"]}}
datapath:
  translator:
    hook: HOOK
    dev4: g4
    dev6: g6
    prefix: "{PREFIX}"
    eam: [{{ipv4: {EAM4}, ipv6: "{EAM6}"}}]
    # The gateway's own addresses, paired: what the kernel sends from either (ICMP errors)
    # is translated; what comes to either is the gateway's, in the family it came in.
    own: [{{ipv4: {GW4}, ipv6: "{GW6}"}}]
    allow: [{CLIENT4}/32]
    icmp_errors: true
"""


@dataclass
class Gateway:
    ns4: str
    gw: str
    ns6: str
    mode: str
    lab: Any


@pytest.fixture(scope="module", params=["tc", "tcx", "xdp"])
def gateway(request, bpf_build):
    from lab.bpf import features
    if request.param == "tcx" and not features.has_tcx():
        pytest.skip("kernel lacks tcx (6.6+)")
    name = unique("x").replace("-", "")[:20]
    topo = parse(TOPOLOGY.replace("HOOK", request.param), name=name,
                 file=f"translator gateway ({request.param})", datapaths=DATAPATHS)
    with Lab(topo, datapaths=DATAPATHS) as lab:
        yield Gateway(lab.node("ns4").netns, lab.node("gw").netns, lab.node("ns6").netns,
                      request.param, lab)


def _snmp(ns: str, name: str) -> int:
    """A counter from /proc/net/snmp (IPv4, TCP) or snmp6, read inside NS."""
    if name.startswith("Udp6") or name.startswith("Icmp6"):
        for line in netns.run(ns, ["cat", "/proc/net/snmp6"]).stdout.splitlines():
            k, v = line.split()
            if k == name:
                return int(v)
        raise KeyError(name)
    group, key = name.split(":")
    lines = netns.run(ns, ["cat", "/proc/net/snmp"]).stdout.splitlines()
    for head, values in zip(lines[::2], lines[1::2]):
        if head.startswith(group + ":"):
            return int(dict(zip(head.split()[1:], values.split()[1:]))[key])
    raise KeyError(name)


def _udp_round(send_ns, send_family, dst, recv_ns, recv_family, bind, sizes):
    rx = netns.socket_in(recv_ns, recv_family, socket.SOCK_DGRAM)
    tx = netns.socket_in(send_ns, send_family, socket.SOCK_DGRAM)
    try:
        rx.bind((bind, 0))
        rx.settimeout(2)
        port = rx.getsockname()[1]
        got = []
        for n in sizes:
            data = bytes((n + i) % 251 for i in range(n))
            tx.sendto(data, (dst, port))
            got.append(rx.recvfrom(65535)[0] == data)
        return got
    finally:
        rx.close()
        tx.close()


SIZES = [1, 2, 3, 17, 100, 512, 1000, 1200, 1371, 1372]


def test_udp_from_ipv4_host_to_pod(gateway):
    before = _snmp(gateway.ns6, "Udp6InCsumErrors")
    got = _udp_round(gateway.ns4, socket.AF_INET, SERVER4, gateway.ns6, socket.AF_INET6, "::",
                     SIZES)
    assert all(got)
    assert _snmp(gateway.ns6, "Udp6InCsumErrors") == before


def test_udp_from_pod_to_ipv4_host(gateway):
    before = _snmp(gateway.ns4, "Udp:InCsumErrors")
    got = _udp_round(gateway.ns6, socket.AF_INET6, CLIENT6, gateway.ns4, socket.AF_INET,
                     "0.0.0.0", SIZES)
    assert all(got)
    assert _snmp(gateway.ns4, "Udp:InCsumErrors") == before


def test_tcp_bulk_both_ways(gateway):
    """A TCP stream through the gateway: GSO packets translated whole, segmented after."""
    before = _snmp(gateway.ns6, "Tcp:InCsumErrors"), _snmp(gateway.ns4, "Tcp:InCsumErrors")
    _, ok = tcp_exchange(gateway.ns6, socket.AF_INET6, gateway.ns4, socket.AF_INET, SERVER4,
                         size=4 << 20)
    assert ok
    after = _snmp(gateway.ns6, "Tcp:InCsumErrors"), _snmp(gateway.ns4, "Tcp:InCsumErrors")
    assert after == before


def _ping(ns, *args):
    return netns.run(ns, ["ping", "-n", "-c", "1", "-W", "2", *args], check=False,
                     timeout=10).stdout


def test_ping_both_ways(gateway):
    assert " 0% packet loss" in _ping(gateway.ns4, SERVER4)
    assert " 0% packet loss" in _ping(gateway.ns6, "-6", CLIENT6)


def test_gateway_answers_in_either_family(gateway):
    """Packets to the gateway's own addresses are not translated (nor the neighbour
    discovery that reaches it)."""
    assert " 0% packet loss" in _ping(gateway.ns4, GW4)
    assert " 0% packet loss" in _ping(gateway.ns6, "-6", GW6)


def test_time_exceeded_comes_back_translated(gateway):
    """The gateway is a hop: TTL 1 expires there, and the kernel's ICMPv6 (or ICMPv4)
    Time Exceeded is translated on its way out to the sender."""
    out4 = _ping(gateway.ns4, "-t", "1", SERVER4)
    assert re.search(rf"From {re.escape(GW4)} icmp_seq=1 Time to live exceeded", out4), out4
    out6 = _ping(gateway.ns6, "-6", "-t", "1", CLIENT6)
    assert re.search(rf"From {re.escape(GW6)} icmp_seq=1 Time exceeded", out6), out6


def _set_mtu(ends, mtu):
    for ns, dev in ends:
        with netns.entered(ns), IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=dev)[0], mtu=mtu)


@contextlib.contextmanager
def _mtu(gateway, side: str, mtu: int):
    """MTU on one of the gateway's links (both ends of the veth), 1500 again afterwards and
    the path MTUs learnt meanwhile forgotten, so that later tests start afresh."""
    ends = [(gateway.gw, f"g{side}"), (gateway.ns4 if side == "4" else gateway.ns6, "eth0")]
    _set_mtu(ends, mtu)
    try:
        yield
    finally:
        _set_mtu(ends, 1500)
        for ns in (gateway.ns4, gateway.gw, gateway.ns6):
            netns.run(ns, ["ip", "-6", "route", "flush", "cache"], check=False)
            netns.run(ns, ["ip", "-4", "route", "flush", "cache"], check=False)


def test_path_mtu_discovery_ipv4_host(gateway):
    """A 1500-byte IPv4 packet with DF becomes 1520 bytes of IPv6: the kernel's Packet Too
    Big for the pod's 1400-byte link reaches the IPv4 host as Fragmentation Needed, 1380."""
    with _mtu(gateway, "6", 1400):
        out = _ping(gateway.ns4, "-M", "do", "-s", "1472", SERVER4)
        assert "mtu = 1380" in out, out
        assert " 0% packet loss" in _ping(gateway.ns4, "-M", "do", "-s", "1352", SERVER4)


def test_path_mtu_discovery_pod(gateway):
    """The other way: Fragmentation Needed for the IPv4 host's 1400-byte link reaches the
    pod as Packet Too Big, 1420."""
    with _mtu(gateway, "4", 1400):
        out = _ping(gateway.ns6, "-6", "-M", "do", "-s", "1452", CLIENT6)
        assert "mtu=1420" in out, out
        assert " 0% packet loss" in _ping(gateway.ns6, "-6", "-M", "do", "-s", "1372", CLIENT6)


def test_refused_source_gets_an_icmp_error_that_verifies(gateway):
    """A datagram from an address outside the allow-list is answered with Destination
    Unreachable, administratively prohibited, which the connected UDP socket reports. The
    datagram left the sender CHECKSUM_PARTIAL; the error quotes it, and the kernel completes
    the quoted checksum when the error leaves: the ICMP checksum must already count that (at
    tc; at XDP the sender finished its own checksum)."""
    import errno
    counters = ("Icmp:InDestUnreachs", "Icmp:InCsumErrors")
    before = [_snmp(gateway.ns4, c) for c in counters]
    client = netns.socket_in(gateway.ns4, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.bind((REFUSED4, 0))
        client.connect((SERVER4, 9))
        client.settimeout(5)
        client.send(b"refused" * 20)
        with pytest.raises(OSError) as err:
            client.recv(100)
        assert err.value.errno == errno.EHOSTUNREACH, err.value
    finally:
        client.close()
    assert [_snmp(gateway.ns4, c) - b for c, b in zip(counters, before)] == [1, 0]


def test_translator_counted_what_it_did(gateway):
    stats = translator_topology.statistics(gateway.lab)
    assert stats["done46"] > 0 and stats["done64"] > 0 and stats["bounce"] > 0
