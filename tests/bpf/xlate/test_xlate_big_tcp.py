"""BIG TCP length fields (issue 6): a zero IPv4 total length, or a zero IPv6 payload length
(with or without a hop-by-hop Jumbo Payload option), means "the skb's length" only on a GSO
packet longer than 64 KiB, which the translator carries across (IPv4 tot_len 0 <-> IPv6
payload length 0 with the Jumbo Payload option, the format of this kernel's IPv6 BIG TCP).

BPF_PROG_TEST_RUN cannot build such a packet (its skb data is limited to a page), so here
only the other side of the rule: on anything else those zeros are malformed, at tc and at
XDP, also on a GSO context. The super-packets themselves are translated in
tests/integration/test_translator_bigtcp.py, counted by the big packet counter on both sides
of a real gateway."""

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, Jumbo

from lab.bpf.testrun import run
from xlate_helpers import CLIENT4, CLIENT6, ETH, SERVER4, SERVER6

pytestmark = pytest.mark.root


def ipv4_zero_length():
    raw = bytearray(bytes(ETH / IP(src=CLIENT4, dst=SERVER4) / TCP(flags="A") / bytes(1000)))
    raw[14 + 2:14 + 4] = b"\0\0"       # tot_len 0 (header checksum left as it was)
    return bytes(raw)


def ipv6_jumbo(hbh: bool):
    pkt = IPv6(src=SERVER6, dst=CLIENT6, plen=0)
    if hbh:
        pkt = pkt / IPv6ExtHdrHopByHop(options=[Jumbo(jumboplen=8 + 20 + 1000)])
    return bytes(ETH / pkt / TCP(flags="A") / bytes(1000))


@pytest.mark.parametrize("frame", [ipv4_zero_length(), ipv6_jumbo(True), ipv6_jumbo(False)],
                         ids=["ipv4-tot-len-0", "ipv6-hbh-jumbo", "ipv6-plen-0"])
def test_zero_lengths_are_malformed_below_64k(xlat, frame):
    out = xlat(frame)
    assert (out.verdict, out.outcome) == ("dropped", "drop_malformed")


@pytest.mark.parametrize("frame", [ipv4_zero_length(), ipv6_jumbo(True)],
                         ids=["ipv4-tot-len-0", "ipv6-hbh-jumbo"])
def test_a_gso_context_alone_does_not_make_a_jumbogram(xlate_object, frame):
    """gso_size set (as on a GSO skb) but the packet within 64 KiB: still malformed."""
    from lab.datapath.translator import INGRESS_TC
    out = run(xlate_object.program(INGRESS_TC), frame,
              ctx={"gso_size": 1000, "gso_segs": 1})
    assert out.code == "TC_ACT_SHOT"
