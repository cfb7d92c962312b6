"""The XDP translator is a multi-buffer program (SEC "xdp.frags"): a frame larger than a page
reaches it in fragments (a jumbo-MTU link, or veth handing over a nonlinear skb), and it
must translate it whole. BPF_PROG_TEST_RUN builds such a frame when the data does not fit
one page: the headers in the first buffer, the rest in fragments (at tc it takes no more
than a page, so the expected frames are built with scapy). Each test checks every byte and
the checksums with scapy's code, both ways, plus a trim across fragments (Ethernet padding
past the IP length) and an ICMP error quoting a jumbo packet (cut to 1280 bytes)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from xlate_helpers import (CLIENT4, CLIENT6, ETH, ROUTER4, ROUTER6, SERVER4, SERVER6,
                           Translator, expect4, problems)

pytestmark = pytest.mark.root

PAYLOAD = bytes(range(256)) * 35          # 8960 bytes: a 9000-byte jumbo frame's worth


def test_the_xdp_program_is_multi_buffer(xlate_object):
    assert xlate_object.program("xlate_xdp").section == "xdp.frags"


@pytest.fixture
def xdp(xlate_object):
    return Translator(xlate_object, "xdp")


def l4_of(proto: str):
    return TCP(sport=40000, dport=80, flags="A") if proto == "tcp" else UDP(sport=4000, dport=53)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_jumbo_4to6_in_fragments(xdp, proto):
    pkt = ETH / IP(src=CLIENT4, dst=SERVER4, flags="DF") / l4_of(proto) / PAYLOAD[:8940]
    out = xdp(pkt)
    assert (out.outcome, out.code) == ("done46", "XDP_PASS")
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) / l4_of(proto) /
                            PAYLOAD[:8940])
    assert problems(out.raw) == []


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_jumbo_6to4_in_fragments(xdp, proto):
    pkt = ETH / IPv6(src=SERVER6, dst=CLIENT6) / l4_of(proto) / PAYLOAD[:8960]
    out = xdp(pkt)
    assert (out.outcome, out.code) == ("done64", "XDP_PASS")
    assert out.raw == expect4(out, ETH / IP(src=SERVER4, dst=CLIENT4, flags="DF", ttl=64) /
                              l4_of(proto) / PAYLOAD[:8960])
    assert problems(out.raw) == []


def test_padding_past_the_ip_length_is_trimmed_across_fragments(xdp):
    """Bytes after the announced length go (bpf_xdp_adjust_tail shrinks the fragments)."""
    inner = ETH / IP(src=CLIENT4, dst=SERVER4, flags="DF") / UDP(sport=4000, dport=53) / \
        PAYLOAD[:5000]
    out = xdp(bytes(inner) + bytes(3000))
    assert out.outcome == "done46"
    assert out.raw == bytes(ETH / IPv6(src=CLIENT6, dst=SERVER6, hlim=64) /
                            UDP(sport=4000, dport=53) / PAYLOAD[:5000])


def test_icmp_error_quoting_a_jumbo_packet_is_cut_to_1280(xdp):
    """A Fragmentation Needed quoting all of a 9000-byte packet: the translated error holds
    1280 bytes of IPv6 (RFC 4443 2.4(c)), its checksum over what is left."""
    quoted = IP(src=SERVER4, dst=ROUTER4) / UDP(sport=53, dport=4000) / PAYLOAD[:8900]
    pkt = ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=3, code=4, nexthopmtu=1500) / quoted
    out = xdp(pkt)
    assert (out.outcome, out.code) == ("done46", "XDP_PASS")
    assert len(out.raw) - 14 == 1280
    assert problems(out.raw) == []
    six = Ether(out.raw)[IPv6]
    assert (six.src, six.dst, six.nh) == (ROUTER6, SERVER6, 58)
