"""The packet counter as BIG TCP's proof: with gso_max_size above 64 KiB on a veth, TCP over
IPv6 hands the device super-packets, and the counter's buckets from 16 up show them; with the
legacy limit, none appear."""

import socket
import threading

import pytest
from pyroute2 import IPRoute

from lab import netns
from lab.bpf import attach, pktcount

pytestmark = pytest.mark.root

BIG = 150_000
PAYLOAD = 32 << 20


def _set_gso(pair, size):
    for ns, ifname in ((pair.a, pair.a_if), (pair.b, pair.b_if)):
        with netns.entered(ns), IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            ipr.link("set", index=idx, gso_max_size=size, gro_max_size=size)


def _transfer(pair, port=5201):
    server = netns.socket_in(pair.b, socket.AF_INET6, socket.SOCK_STREAM)
    server.bind((pair.b_ip6, port))
    server.listen(1)
    received = []

    def sink():
        conn, _ = server.accept()
        with conn:
            n = 0
            while chunk := conn.recv(1 << 20):
                n += len(chunk)
            received.append(n)

    t = threading.Thread(target=sink)
    t.start()
    client = netns.socket_in(pair.a, socket.AF_INET6, socket.SOCK_STREAM)
    with client:
        client.connect((pair.b_ip6, port))
        client.sendall(bytes(PAYLOAD))
    t.join(timeout=30)
    server.close()
    assert received == [PAYLOAD]


@pytest.mark.parametrize("gso, expect_big", [(BIG, True), (65536, False)])
def test_super_packets_land_in_buckets_above_64k(gso, expect_big, veth_pair, load_bpf,
                                                  pin_dir):
    _set_gso(veth_pair, gso)
    obj = load_bpf("pktcount")
    rec = attach.attach(obj.program("pktcount_tc"), "tc-egress", veth_pair.a_if,
                        netns=veth_pair.a)
    try:
        _transfer(veth_pair)
    finally:
        with netns.entered(veth_pair.a):
            attach.detach(rec)
    rows = pktcount.read(obj.map(pktcount.MAP))
    tcp6 = [r for r in rows if (r.family, r.l4proto) == (6, 6)]
    assert sum(r.bytes for r in tcp6) > PAYLOAD, pktcount.table(rows)
    big = pktcount.big_packets(rows, rec.ifindex)
    if expect_big:
        assert big > 0, pktcount.table(rows)
        largest = max(tcp6, key=lambda r: r.bucket)
        assert largest.lengths[1] < gso * 2   # nothing beyond what the device allows
        assert all(r.segments > r.packets for r in tcp6 if r.bucket >= pktcount.BIG_BUCKET)
    else:
        assert big == 0, pktcount.table(rows)


def test_the_wire_form_probe_agrees_with_the_counter(veth_pair, load_bpf, pin_dir):
    """lab.bigtcp_form reads the first super-packet off a packet socket; the BPF
    counter classifies every one at tc egress: two independent readings of the same kernel
    (the translator builds IPv6 super-packets in the form the probe finds)."""
    from lab import bigtcp_form

    form = bigtcp_form.probe()
    assert form in bigtcp_form.FORMS
    _set_gso(veth_pair, BIG)
    obj = load_bpf("pktcount")
    rec = attach.attach(obj.program("pktcount_tc"), "tc-egress", veth_pair.a_if,
                        netns=veth_pair.a)
    try:
        _transfer(veth_pair)
    finally:
        with netns.entered(veth_pair.a):
            attach.detach(rec)
    assert pktcount.lenfields(pktcount.read(obj.map(pktcount.MAP)), 6) == {form}
