"""BIG TCP through the stateless translator (topologies/bigtcp-nat46.yaml, issue 6), proven
by the big packet counter on every link end of client -- gw -- server:

  - IPv6 -> IPv4: the server's IPv6 super-packets (payload length 0, hop-by-hop Jumbo
    Payload option on this kernel) are translated into IPv4 super-packets (tot_len 0) and
    reach the client as such; the transfer is intact.
  - IPv4 -> IPv6: the client's IPv4 super-packets are translated into IPv6 super-packets in
    the running kernel's own form (lab.bigtcp_form) and reach the server as such,
    without retransmissions. On a 7.x kernel (payload length 0 alone) the kernel routes them
    on. On a kernel whose form has the Hop-by-Hop Jumbo Payload option (6.12, 6.18) the
    transmit path would strip it (bpf_skb_change_proto() marks a GSO packet SKB_GSO_DODGY,
    veth lacks NETIF_F_GSO_ROBUST, validate_xmit_skb() -> ipv6_gso_segment() ->
    ipv6_hopopt_jumbo_remove(), and tcp_gso_segment() then does not segment), and the
    receiver would trim each one to its header, so the translator forwards them itself into
    the server's namespace (bpf_redirect_peer): none crosses the gateway's egress.
  - IPv4 -> IPv6 with IPv4 BIG TCP off on the client: nothing above 64 KiB, the transfer is
    intact: the configuration to use on such kernels.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

import pytest

from lab import netns
from lab.bpf import pktcount
from lab import bigtcp_form
from lab.datapath import bigtcp
from lab.datapath.registry import DATAPATHS
from lab.datapath.translator import topology as translator_topology
from lab.lab import Lab
from lab.topology import load

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SERVER_FOR_CLIENT = "198.51.100.2"          # the server's EAM address
CLIENT_FOR_SERVER = "64:ff9b:1::c000:20a"   # the client's RFC 6052 address


@pytest.fixture(scope="module")
def lab(bpf_build):
    from lab import features
    for cap in features.big_tcp().values():
        if not cap.ok:
            pytest.skip(cap.detail)
    topo = load(ROOT / "topologies/bigtcp-nat46.yaml", name=f"xbt{os.getpid() % 100000}",
                datapaths=DATAPATHS)
    with Lab(topo, datapaths=DATAPATHS) as lab:
        counter = bigtcp.BigPacketCounter(lab, bigtcp.path(lab, "client", "gw", "server").ends)
        lab.counter = counter.attach()
        try:
            yield lab
        finally:
            counter.close()


def _send(lab, sender: str, sender_family, receiver: str, receiver_family, dst: str,
          size: int, timeout: float = 15) -> tuple[int, bool]:
    """SIZE bytes from SENDER to RECEIVER in big writes; (bytes received, digest equal)."""
    data = os.urandom(size)
    srv = netns.socket_in(lab.node(receiver).netns, receiver_family, socket.SOCK_STREAM)
    srv.bind(("::" if receiver_family == socket.AF_INET6 else "0.0.0.0", 0))
    srv.listen(1)
    srv.settimeout(timeout)
    port = srv.getsockname()[1]
    got = {"n": 0, "digest": b""}

    def sink():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(timeout)
            h = hashlib.sha256()
            try:
                while chunk := conn.recv(1 << 20):
                    h.update(chunk)
                    got["n"] += len(chunk)
            except OSError:
                pass
            got["digest"] = h.digest()

    t = threading.Thread(target=sink)
    t.start()
    cli = netns.socket_in(lab.node(sender).netns, sender_family, socket.SOCK_STREAM)
    try:
        cli.settimeout(timeout)
        cli.connect((dst, port))
        try:
            cli.sendall(data)
        except OSError:
            pass            # a stalled flow: what arrived is counted below
    finally:
        cli.close()
        t.join(timeout + 5)
        srv.close()
    return got["n"], got["digest"] == hashlib.sha256(data).digest()


def _retransmitted(lab, node: str) -> int:
    lines = lab.node(node).run(["cat", "/proc/net/snmp"]).stdout.splitlines()
    for head, values in zip(lines[::2], lines[1::2]):
        if head.startswith("Tcp:"):
            return int(dict(zip(head.split()[1:], values.split()[1:]))["RetransSegs"])
    raise KeyError("Tcp: RetransSegs")


def _marks(reading, end, direction, family):
    (c,) = reading.select(end=end, direction=direction, family=family)
    return c.big_packets, set(c.lenfields)


def test_ipv6_to_ipv4_super_packets_cross_the_translator(lab):
    lab.counter.reset()
    before = translator_topology.statistics(lab)
    n, intact = _send(lab, "server", socket.AF_INET6, "client", socket.AF_INET,
                      CLIENT_FOR_SERVER, 64 << 20)
    assert (n, intact) == (64 << 20, True)
    r = lab.counter.read()
    big6, marks6 = _marks(r, "gw:eth-server", "ingress", 6)
    big4, marks4 = _marks(r, "gw:eth-client", "egress", 4)
    assert big6 > 0 and marks6 <= {pktcount.LEN_JUMBO_HBH, pktcount.LEN_ZERO}
    assert big4 > 0 and marks4 == {pktcount.LEN_ZERO}        # IPv4 BIG TCP: tot_len 0
    assert _marks(r, "client:eth0", "ingress", 4)[0] > 0
    after = translator_topology.statistics(lab)
    assert after["drop_malformed"] == before["drop_malformed"]
    assert after["done64"] - before["done64"] >= big6


def test_ipv4_to_ipv6_super_packets_reach_the_server_in_the_kernels_form(lab):
    form = bigtcp_form.ipv6_form()
    lab.counter.reset()
    before = translator_topology.statistics(lab)
    retrans = _retransmitted(lab, "client")
    n, intact = _send(lab, "client", socket.AF_INET, "server", socket.AF_INET6,
                      SERVER_FOR_CLIENT, 32 << 20, timeout=30)
    assert (n, intact) == (32 << 20, True)
    r = lab.counter.read()
    big4, marks4 = _marks(r, "gw:eth-client", "ingress", 4)
    assert big4 > 0 and marks4 == {pktcount.LEN_ZERO}
    assert translator_topology.statistics(lab)["drop_malformed"] == before["drop_malformed"]
    at_server, server_marks = _marks(r, "server:eth0", "ingress", 6)
    assert at_server > 0 and server_marks == {form}, r.table()
    egress, egress_marks = _marks(r, "gw:eth-server", "egress", 6)
    if form == pktcount.LEN_JUMBO_HBH:
        assert egress == 0, r.table()         # forwarded past the transmit path
    else:
        assert egress > 0 and egress_marks == {form}, r.table()
    # Before, each super-packet lost its data at the server and came again as retransmitted
    # ordinary segments: at least one retransmission per super-packet.
    assert _retransmitted(lab, "client") - retrans < at_server


def test_ipv4_to_ipv6_without_ipv4_big_tcp_is_intact(lab):
    client = bigtcp.path(lab, "client", "gw").ends_on("client")
    bigtcp.set_sizes(lab, client, 4, None)
    try:
        lab.counter.reset()
        n, intact = _send(lab, "client", socket.AF_INET, "server", socket.AF_INET6,
                          SERVER_FOR_CLIENT, 64 << 20)
        assert (n, intact) == (64 << 20, True)
        r = lab.counter.read()
        assert r.big_packets(family=4) == 0
        assert _marks(r, "gw:eth-server", "egress", 6)[0] == 0
    finally:
        bigtcp.set_sizes(lab, client, 4, 185000)
