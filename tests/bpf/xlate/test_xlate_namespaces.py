"""The translator on real veth devices, in three throwaway namespaces: an IPv4 host, a
gateway translating at tc (or XDP) ingress with the egress programs for the kernel's own
packets, and an IPv6-only pod. What BPF_PROG_TEST_RUN cannot show:

  - senders on veth hand over CHECKSUM_PARTIAL skbs (and TCP GSO packets); the gateway's
    outgoing devices have tx checksumming off, so every forwarded checksum is completed in
    software and the receiving stack verifies it;
  - the gateway is a router for both families: the kernel's Time Exceeded and Packet Too Big
    for translated packets reach the sender translated (traceroute, path MTU discovery).

    ns4 eth0 192.0.2.10 ---- g4 192.0.2.1 [gw] g6 2001:db8:6::1 ---- eth0 2001:db8:6::5 ns6
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import threading
from pathlib import Path
from dataclasses import dataclass

import pytest
from pyroute2 import IPRoute

from lab import netns, offloads
from lab.bpf import attach
from lab.bpf.object import BpfObject
from lab.datapath import translator

from bpf_fixtures import unique
from xlate_helpers import CLIENT4, CLIENT6, SERVER4, SERVER6, v6

pytestmark = pytest.mark.root

GW4, GW6 = "192.0.2.1", "2001:db8:6::1"
# The gateway's own addresses, paired: what the kernel sends from either (ICMP errors) is
# translated; what comes to either is the gateway's, in the family it came in.
# Only CLIENT4 may reach the pods: a second address of the IPv4 host is refused, with an
# ICMP error back.
REFUSED4 = "192.0.2.20"
CONFIG = {"prefix": "64:ff9b:1::/48",
          "eam": [{"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:6::/120"}],
          "own": [{"ipv4": GW4, "ipv6": GW6}],
          "allow": [f"{CLIENT4}/32", f"{GW4}/32"],
          "icmp_errors": True, "icmp_source4": GW4, "icmp_source6": GW6}
# Next hops that are never resolved: routes to the other family's addresses lead the
# kernel's own packets (ICMP errors) to the egress translators, which route them anew.
XLAT_NH6, XLAT_NH4, XLAT_MAC = "fe80::ff", "169.254.255.1", "02:00:00:00:00:ff"


@dataclass
class Gateway:
    ns4: str
    gw: str
    ns6: str
    mode: str


def _sysctl(ns: str, path: str, value: str) -> None:
    with netns.entered(ns), open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


def _build(lab: Gateway) -> None:
    for ns in (lab.ns4, lab.gw, lab.ns6):
        netns.create(ns)
        # link-local addresses usable at once: no neighbour discovery waits on DAD
        _sysctl(ns, "net/ipv6/conf/default/accept_dad", "0")
    for peer_ns, gw_if in ((lab.ns4, "g4"), (lab.ns6, "g6")):
        fd = open(netns.path_of(peer_ns))
        try:
            with netns.entered(lab.gw), IPRoute() as ipr:
                ipr.link("add", ifname=gw_if, kind="veth",
                         peer={"ifname": "eth0", "net_ns_fd": fd.fileno()})
        finally:
            fd.close()
    _sysctl(lab.gw, "net/ipv4/ip_forward", "1")
    _sysctl(lab.gw, "net/ipv6/conf/all/forwarding", "1")
    with netns.entered(lab.ns4), IPRoute() as ipr:
        i = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=i, address=CLIENT4, prefixlen=24)
        ipr.addr("add", index=i, address=REFUSED4, prefixlen=24)
        ipr.link("set", index=i, state="up")
        ipr.link("set", index=1, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=GW4)
    with netns.entered(lab.ns6), IPRoute() as ipr:
        i = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=i, address=SERVER6, prefixlen=64, flags=0x02)
        ipr.link("set", index=i, state="up")
        ipr.link("set", index=1, state="up")
        ipr.route("add", dst="::/0", gateway=GW6, family=socket.AF_INET6)
    with netns.entered(lab.gw), IPRoute() as ipr:
        g4, g6 = ipr.link_lookup(ifname="g4")[0], ipr.link_lookup(ifname="g6")[0]
        ipr.addr("add", index=g4, address=GW4, prefixlen=24)
        ipr.addr("add", index=g6, address=GW6, prefixlen=64, flags=0x02)
        for i in (1, g4, g6):
            ipr.link("set", index=i, state="up")
        ipr.neigh("add", dst=XLAT_NH6, lladdr=XLAT_MAC, ifindex=g4, state=0x80,
                  family=socket.AF_INET6)
        ipr.route("add", dst="64:ff9b:1::/48", gateway=XLAT_NH6, oif=g4,
                  family=socket.AF_INET6)
        ipr.neigh("add", dst=XLAT_NH4, lladdr=XLAT_MAC, ifindex=g6, state=0x80)
        ipr.route("add", dst="198.51.100.0/24", gateway=XLAT_NH4, oif=g6, flags=4)  # onlink
    # Forwarded packets leave with their checksums completed here, in software.
    with netns.entered(lab.gw):
        for dev in ("g4", "g6"):
            offloads.apply(dev, {"tx": False}, dev)
    if lab.mode == "xdp":
        # XDP cannot see CHECKSUM_PARTIAL (docs/translator.md): the devices feeding it
        # finish their checksums before sending.
        for ns in (lab.ns4, lab.ns6):
            with netns.entered(ns):
                offloads.apply("eth0", {"tx": False}, "eth0")


@pytest.fixture(scope="module", params=["tc", "xdp"])
def gateway(request, bpf_build, tmp_path_factory):
    lab = Gateway(unique("x4-"), unique("xg-"), unique("x6-"), request.param)
    obj = BpfObject(bpf_build / "xlate.o")
    records = []
    pin_dir = None
    try:
        _build(lab)
        obj.load()
        translator.TranslatorConfig.from_dict(CONFIG).apply(obj)
        from lab import state
        pin_dir = str(state.PIN_ROOT / unique("xlt-"))
        ingress = (("xdp", translator.INGRESS_XDP) if lab.mode == "xdp" else
                   ("tc-ingress", translator.INGRESS_TC))
        for dev in ("g4", "g6"):
            records.append(attach.attach(obj.program(ingress[1]), ingress[0], dev,
                                         pin_dir=pin_dir, netns=lab.gw))
        if lab.mode == "xdp":
            # A veth delivers XDP_TX frames (the translator's own ICMP errors) promptly only
            # to a peer with an XDP program of its own: the packet counter, which passes all.
            counter = BpfObject(bpf_build / "pktcount.o").load(only=["pktcount_xdp"])
            lab.counter = counter
            for ns in (lab.ns4, lab.ns6):
                records.append(attach.attach(counter.program("pktcount_xdp"), "xdp", "eth0",
                                             pin_dir=pin_dir, netns=ns))
        records.append(attach.attach(obj.program(translator.EGRESS_64), "tc-egress", "g4",
                                     netns=lab.gw))
        records.append(attach.attach(obj.program(translator.EGRESS_46), "tc-egress", "g6",
                                     netns=lab.gw))
        lab.obj = obj
        yield lab
    finally:
        for rec in records:
            attach.detach(rec)
        for ns in (lab.ns4, lab.gw, lab.ns6):
            if netns.exists(ns):
                netns.remove(ns)
        obj.close()
        if getattr(lab, "counter", None) is not None:
            lab.counter.close()
        if pin_dir:
            from lab import state
            state.remove_pin_dir(Path(pin_dir))


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
    data = bytes(range(256)) * 16384            # 4 MiB
    server = netns.socket_in(gateway.ns6, socket.AF_INET6, socket.SOCK_STREAM)
    server.bind(("::", 0))
    server.listen(1)
    server.settimeout(20)
    port = server.getsockname()[1]
    result = {}

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.settimeout(20)
            h, n = hashlib.sha256(), 0
            while n < len(data):
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
            conn.sendall(h.digest() + data[:100000])    # and some back the other way
        result["n"] = n

    t = threading.Thread(target=serve)
    t.start()
    before = _snmp(gateway.ns6, "Tcp:InCsumErrors"), _snmp(gateway.ns4, "Tcp:InCsumErrors")
    client = netns.socket_in(gateway.ns4, socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.settimeout(20)
        client.connect((SERVER4, port))
        client.sendall(data)
        back = b""
        while len(back) < 32 + 100000:
            chunk = client.recv(1 << 16)
            if not chunk:
                break
            back += chunk
    finally:
        client.close()
        t.join(25)
        server.close()
    assert result.get("n") == len(data)
    assert back[:32] == hashlib.sha256(data).digest() and back[32:] == data[:100000]
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
    stats = translator.statistics(gateway.obj)
    assert stats["done46"] > 0 and stats["done64"] > 0 and stats["bounce"] > 0
