"""Connections through the gateway in the four family combinations (4->6 and 6->4 are the
point, 4->4 and 6->6 come with them), at tc and XDP: the first packet picks a backend and an
SNAT port and is rewritten to them, later packets follow, replies come back as if from the
VIP, and every rewritten packet has correct lengths and checksums."""

from ipaddress import ip_address

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from gw_helpers import (BACKEND_PORT, COMBOS, ETH, assert_valid, ip_layer, l4_of, service)

pytestmark = pytest.mark.root


def _l3_type(addr):
    return IP if ip_address(addr).version == 4 else IPv6


@pytest.mark.parametrize("combo", COMBOS)
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_connection_both_ways(gut, combo, proto):
    client, vip, backends, snat = COMBOS[combo]
    gut.add(service(vip, backends, port=80, proto=proto))
    L4 = TCP if proto == "tcp" else UDP
    first = {"flags": "S"} if proto == "tcp" else {}
    payload = b"hello through the gateway"

    out = gut(ETH / ip_layer(client, vip, ttl=33, tos=0x28) / L4(sport=40000, dport=80, **first)
              / payload)
    assert out.outcome == "new" and gut.rewrote(out)
    l3 = out.l3
    assert isinstance(l3, _l3_type(backends[0]))
    assert l3.src == snat and l3.dst in backends
    seg = l4_of(l3)
    assert (seg.sport, seg.dport) == (40000, BACKEND_PORT)  # the client's port kept
    assert bytes(seg.payload) == payload
    # header fields translation carries: hop limit / TTL, traffic class / TOS
    assert (l3.ttl if isinstance(l3, IP) else l3.hlim) == 33
    assert (l3.tos if isinstance(l3, IP) else l3.tc) == 0x28
    assert_valid(out.raw)
    backend = l3.dst

    # the next packet of the connection goes the same way
    more = {"flags": "A"} if proto == "tcp" else {}
    again = gut(ETH / ip_layer(client, vip) / L4(sport=40000, dport=80, **more) / b"more")
    assert again.outcome == "forward"
    assert again.l3.dst == backend and l4_of(again.l3).sport == seg.sport
    assert_valid(again.raw)

    # the backend answers the gateway; the client sees the VIP answer
    answer = {"flags": "SA"} if proto == "tcp" else {}
    back = gut(ETH / ip_layer(backend, snat, ttl=60) / L4(sport=BACKEND_PORT, dport=seg.sport,
                                                           **answer) / b"answer")
    assert back.outcome == "reply" and gut.rewrote(back)
    assert isinstance(back.l3, _l3_type(client))
    assert (back.l3.src, back.l3.dst) == (vip, client)
    assert (l4_of(back.l3).sport, l4_of(back.l3).dport) == (80, 40000)
    assert bytes(l4_of(back.l3).payload) == b"answer"
    assert_valid(back.raw)


def test_ipv4_udp_without_checksum_gets_one_in_ipv6(gut):
    """RFC 7915 4.5 through the gateway: the translation computes the checksum IPv6 needs,
    over the rewritten ports."""
    client, vip, backends, snat = COMBOS["46"]
    gut.add(service(vip, backends, port=53, proto="udp"))
    pkt = ETH / IP(src=client, dst=vip) / UDP(sport=5353, dport=53) / b"query"
    raw = bytearray(bytes(pkt))
    raw[14 + 20 + 6:14 + 20 + 8] = b"\0\0"     # no checksum
    out = gut(bytes(raw))
    assert out.outcome == "new"
    udp = out.l3[UDP]
    assert udp.chksum != 0 and udp.dport == BACKEND_PORT
    assert_valid(out.raw)


def test_ipv4_udp_without_checksum_keeps_none_to_ipv4(gut):
    client, vip, backends, snat = COMBOS["44"]
    gut.add(service(vip, backends, port=53, proto="udp"))
    raw = bytearray(bytes(ETH / IP(src=client, dst=vip) / UDP(sport=5353, dport=53) / b"q"))
    raw[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
    out = gut(bytes(raw))
    assert out.outcome == "new" and out.l3[UDP].chksum == 0 and out.l3.dst in backends
    assert_valid(out.raw)


def test_tcp_with_ipv4_options(gut):
    """Options move the transport header; the ports are found after them."""
    from scapy.layers.inet import IPOption_NOP
    client, vip, backends, snat = COMBOS["44"]
    gut.add(service(vip, backends))
    pkt = ETH / IP(src=client, dst=vip, options=[IPOption_NOP()] * 4) / \
        TCP(sport=41000, dport=80, flags="S")
    out = gut(pkt)
    assert out.outcome == "new" and out.l3[TCP].dport == BACKEND_PORT
    assert_valid(out.raw)


def test_ipv6_extension_headers_before_tcp(gut):
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt
    client, vip, backends, snat = COMBOS["64"]
    gut.add(service(vip, backends))
    out = gut(ETH / IPv6(src=client, dst=vip) / IPv6ExtHdrDestOpt() /
              TCP(sport=41000, dport=80, flags="S"))
    assert out.outcome == "new"
    assert out.l3.dst in backends and out.l3[TCP].dport == BACKEND_PORT
    assert_valid(out.raw)


def test_traffic_not_for_the_gateway_is_left_alone(gut):
    client, vip, backends, snat = COMBOS["46"]
    client6, vip6 = COMBOS["64"][:2]
    gut.add(service(vip, backends))
    for pkt in (ETH / IP(src=client, dst=vip) / TCP(sport=1, dport=81, flags="S"),   # port
                ETH / IP(src=client, dst="192.0.2.99") / TCP(dport=80, flags="S"),  # address
                ETH / IP(src=client, dst=vip) / UDP(dport=80),                      # protocol
                ETH / IPv6(src=client6, dst=vip6) / TCP(dport=80),                  # family
                ETH / IPv6(src="fe80::1", dst="ff02::1") / b"x"):
        out = gut(pkt)
        assert out.outcome == "pass"
        assert out.code == ("XDP_PASS" if gut.hook == "xdp" else "TC_ACT_UNSPEC")
        assert out.raw == bytes(pkt)



def test_fragments_are_left_to_the_stack(gut):
    client, vip, backends, snat = COMBOS["46"]
    gut.add(service(vip, backends, proto="udp"))
    frag = ETH / IP(src=client, dst=vip, flags="MF", id=7) / UDP(sport=1, dport=80) / bytes(64)
    out = gut(frag)
    assert out.outcome == "pass_fragment" and out.raw == bytes(frag)


def test_malformed_packet_to_a_vip_is_refused(gut):
    client, vip, backends, snat = COMBOS["44"]
    gut.add(service(vip, backends))
    raw = bytearray(bytes(ETH / IP(src=client, dst=vip) / TCP(dport=80, flags="S")))
    raw[14 + 10] ^= 0xFF   # header checksum
    out = gut(bytes(raw))
    assert out.outcome == "drop_invalid" and out.refused == "drop_malformed"
    assert out.verdict == "dropped"
    assert gut.gw.connections() == []
