"""The IPv6 BIG TCP wire form, read from a packet's first bytes (lab.bigtcp_form)."""

import pytest
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, Jumbo

from lab import bigtcp_form


def _header(pkt) -> bytes:
    return bytes(pkt)[:48]


def test_classify_the_three_ways_a_packet_gives_its_length():
    hbh = IPv6(plen=0) / IPv6ExtHdrHopByHop(options=[Jumbo(jumboplen=100000)]) / TCP()
    assert bigtcp_form.classify(_header(hbh)) == "hbh-jumbo"
    assert bigtcp_form.classify(_header(IPv6(plen=0) / TCP())) == "zero"
    assert bigtcp_form.classify(_header(IPv6() / TCP() / bytes(100))) is None
    # a Hop-by-Hop header with another option and payload length 0: not the jumbo form
    other = IPv6(plen=0) / IPv6ExtHdrHopByHop(options=[]) / TCP()
    assert bigtcp_form.classify(_header(other)) == "zero"


def test_resolve_takes_a_given_form_and_refuses_others():
    assert bigtcp_form.resolve("zero") == "zero"
    assert bigtcp_form.resolve("hbh-jumbo") == "hbh-jumbo"
    with pytest.raises(ValueError, match="unknown IPv6 BIG TCP form"):
        bigtcp_form.resolve("jumbo")
