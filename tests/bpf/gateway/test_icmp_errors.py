"""ICMP errors about a connection go to the connection's other end, translated: an error a
backend (or a router on its side) sends about the gateway's packet reaches the client, from
the VIP, quoting the packet as the client sent it; an error from the client's side about a
reply reaches the backend, from the gateway's SNAT address, quoting the backend's packet.
The quoted transport checksum comes out equal to the one its sender computed: addresses and
ports are restored exactly, checksums included."""

from ipaddress import ip_address

import pytest
from scapy.layers.inet import ICMP, IP, IPerror, TCP, TCPerror
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6PacketTooBig, IPerror6, IPv6,
                                TCPerror as TCPerror6)
from scapy.utils import checksum

from gw_helpers import BACKEND_PORT, COMBOS, ETH, ROUTER4, ROUTER6, assert_valid, ip_layer, service

pytestmark = pytest.mark.root


def v4(addr):
    return ip_address(addr).version == 4


def port_unreachable(src, dst, quoted):
    if v4(src):
        return ETH / IP(src=src, dst=dst) / ICMP(type=3, code=3) / quoted
    return ETH / IPv6(src=src, dst=dst) / ICMPv6DestUnreach(code=4) / quoted


def too_big(src, dst, quoted, mtu):
    if v4(src):
        return ETH / IP(src=src, dst=dst) / ICMP(type=3, code=4, nexthopmtu=mtu) / quoted
    return ETH / IPv6(src=src, dst=dst) / ICMPv6PacketTooBig(mtu=mtu) / quoted


def quoted_of(l3):
    """The quoted IP packet and its TCP header of an ICMP error, as scapy parses them."""
    if IPerror in l3:
        return l3[IPerror], l3[TCPerror]
    return l3[IPerror6], l3[TCPerror6]


def built(pkt):
    """PKT with its checksums computed, as it goes on the wire."""
    return type(pkt)(bytes(pkt))


def setup_connection(gut, combo):
    client, vip, backends, snat = COMBOS[combo]
    gut.add(service(vip, backends))
    sent = built(ip_layer(client, vip) / TCP(sport=40000, dport=80, flags="PA", seq=1000) /
                 bytes(100))
    fwd = gut(ETH / sent)
    assert fwd.outcome == "new"
    return sent, fwd.l3


@pytest.mark.parametrize("combo", COMBOS)
def test_backend_side_error_reaches_the_client(gut, combo):
    client, vip, backends, snat = COMBOS[combo]
    sent, fwd = setup_connection(gut, combo)
    backend = fwd.dst
    out = gut(port_unreachable(backend, snat, fwd))
    assert out.outcome == "icmp_error" and gut.rewrote(out)
    assert_valid(out.raw)
    l3 = out.l3
    assert (l3.src, l3.dst) == (vip, client)
    if v4(client):
        assert (l3[ICMP].type, l3[ICMP].code) == (3, 3)
    else:
        assert (l3[ICMPv6DestUnreach].type, l3[ICMPv6DestUnreach].code) == (1, 4)
    q, qtcp = quoted_of(l3)
    assert (q.src, q.dst) == (client, vip)
    assert (qtcp.sport, qtcp.dport, qtcp.seq) == (40000, 80, 1000)
    assert qtcp.chksum == sent[TCP].chksum  # as the client computed it
    if v4(client):
        assert checksum(bytes(q)[:20]) == 0  # the quoted IPv4 header's own checksum


@pytest.mark.parametrize("combo", COMBOS)
def test_client_side_error_reaches_the_backend(gut, combo):
    client, vip, backends, snat = COMBOS[combo]
    sent, fwd = setup_connection(gut, combo)
    backend, port = fwd.dst, fwd[TCP].sport
    reply_sent = built(ip_layer(backend, snat) / TCP(sport=BACKEND_PORT, dport=port, flags="A",
                                                     seq=5000) / bytes(200))
    reply = gut(ETH / reply_sent)
    assert reply.outcome == "reply"
    router = ROUTER4 if v4(client) else ROUTER6
    out = gut(too_big(router, vip, reply.l3, 1400 if v4(client) else 1380))
    assert out.outcome == "icmp_error"
    assert_valid(out.raw)
    l3 = out.l3
    assert (l3.src, l3.dst) == (snat, backend)
    q, qtcp = quoted_of(l3)
    assert (q.src, q.dst) == (backend, snat)
    assert (qtcp.sport, qtcp.dport, qtcp.seq) == (BACKEND_PORT, port, 5000)
    assert qtcp.chksum == reply_sent[TCP].chksum
    if combo == "46":      # RFC 7915 4.2: MTU + 20 towards IPv6
        assert l3[ICMPv6PacketTooBig].mtu == 1420
    elif combo == "64":    # RFC 7915 5.2: MTU - 20 towards IPv4
        assert (l3[ICMP].type, l3[ICMP].code, l3[ICMP].nexthopmtu) == (3, 4, 1360)


@pytest.mark.parametrize("combo", COMBOS)
def test_error_quoting_only_eight_bytes_of_tcp(gut, combo):
    """RFC 792 errors quote the IP header and 8 bytes: ports and sequence, no checksum. The
    quoted transport checksum cannot absorb the restored ports, so the error's own checksum
    changes before a translation checks it (both directions)."""
    client, vip, backends, snat = COMBOS[combo]
    sent, fwd = setup_connection(gut, combo)
    backend = fwd.dst
    quoted = bytes(fwd)[:(40 if not v4(backend) else 20) + 8]
    out = gut(port_unreachable(backend, snat, quoted))
    assert out.outcome == "icmp_error"
    assert_valid(out.raw)
    q, qtcp = quoted_of(out.l3)
    assert (q.src, q.dst, qtcp.sport, qtcp.dport) == (client, vip, 40000, 80)


def test_error_about_an_unknown_connection_is_left_alone(gut):
    client, vip, backends, snat = COMBOS["46"]
    sent, fwd = setup_connection(gut, "46")
    stranger = fwd.copy()
    stranger[TCP].sport = 1   # no connection has this port
    pkt = port_unreachable(fwd.dst, snat, stranger)
    out = gut(pkt)
    assert out.outcome == "pass" and out.raw == bytes(pkt)


def test_error_not_sent_to_the_quoted_source_is_left_alone(gut):
    """An error must go back to whoever sent the packet it quotes."""
    client, vip, backends, snat = COMBOS["46"]
    sent, fwd = setup_connection(gut, "46")
    pkt = port_unreachable(fwd.dst, "2001:db8:1::99", fwd)
    assert gut(pkt).outcome == "pass"
