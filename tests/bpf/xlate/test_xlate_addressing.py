"""Address mapping in the datapath: RFC 6052 at every prefix length (the section 2.4
examples, both ways), the u octet, the well-known prefix refusing non-global IPv4 (RFC 6052
3.1), RFC 8215 local prefixes, EAM precedence and longest match (RFC 7757), the allow-list."""

from ipaddress import IPv6Address

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from xlate_helpers import CLIENT4, CLIENT6, EAM4, EAM6, ETH, SERVER4, SERVER6, assert_valid

pytestmark = pytest.mark.root

# RFC 6052 2.4: 192.0.2.33 under a prefix of every length.
RFC6052_EXAMPLES = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
]


@pytest.mark.parametrize("prefix,address", RFC6052_EXAMPLES)
def test_rfc6052_examples_ipv4_to_ipv6(xlat, prefix, address):
    xlat.configure(prefix=prefix)
    out = xlat(ETH / IP(src="192.0.2.33", dst=SERVER4) / UDP())
    assert IPv6Address(out.packet[IPv6].src) == IPv6Address(address)
    assert out.packet[IPv6].dst == SERVER6
    assert_valid(out.raw)


@pytest.mark.parametrize("prefix,address", RFC6052_EXAMPLES)
def test_rfc6052_examples_ipv6_to_ipv4(xlat, prefix, address):
    xlat.configure(prefix=prefix)
    out = xlat(ETH / IPv6(src=SERVER6, dst=address) / UDP())
    assert (out.packet[IP].src, out.packet[IP].dst) == (SERVER4, "192.0.2.33")
    assert_valid(out.raw)


@pytest.mark.parametrize("plen,u_octet_addr", [
    (32, "2001:db8:c000:221:100::"), (48, "2001:db8:122:c000:102:2100::"),
    (64, "2001:db8:122:344:1c0:2:2100:0")])
def test_non_zero_u_octet_is_not_translated(xlat, plen, u_octet_addr):
    prefix = dict((p.split("/")[1], p) for p, _ in RFC6052_EXAMPLES)[str(plen)]
    xlat.configure(prefix=prefix)
    out = xlat(ETH / IPv6(src=SERVER6, dst=u_octet_addr) / UDP())
    assert (out.verdict, out.outcome) == ("passed", "pass")


def test_well_known_prefix_with_a_global_address(xlat):
    xlat.configure(prefix="64:ff9b::/96")
    out = xlat(ETH / IP(src="8.8.8.8", dst=SERVER4) / UDP())
    assert out.packet[IPv6].src == "64:ff9b::808:808"
    back = xlat(ETH / IPv6(src=SERVER6, dst="64:ff9b::808:808") / UDP())
    assert back.packet[IP].dst == "8.8.8.8"


@pytest.mark.parametrize("addr", ["192.0.2.33", "10.0.0.1", "172.16.5.4", "192.168.1.1",
                                  "100.64.0.1", "169.254.0.9", "127.0.0.1", "203.0.113.7"])
def test_well_known_prefix_refuses_non_global_ipv4(xlat, addr):
    """RFC 6052 3.1: translators MUST NOT translate packets in which an address is composed
    of the well-known prefix and a non-global IPv4 address; they MUST drop them. (An IPv4
    packet to a non-global address is not one: it is not for the translator and passes.)"""
    xlat.configure(prefix="64:ff9b::/96")
    # the special-use ones (loopback, link-local) are refused before the prefix is asked
    special = addr.startswith(("127.", "169.254."))
    src = xlat(ETH / IP(src=addr, dst=SERVER4) / UDP())
    assert (src.verdict, src.outcome) == ("dropped", "drop_special" if special else "drop_src")
    assert xlat(ETH / IP(src=SERVER4, dst=addr) / UDP()).outcome == "pass"
    from ipaddress import IPv4Address
    composed = f"64:ff9b::{IPv4Address(addr)}"
    dst = xlat(ETH / IPv6(src=SERVER6, dst=composed) / UDP())
    assert (dst.verdict, dst.outcome) == ("dropped", "drop_special" if special else "drop_dst")
    src6 = xlat(ETH / IPv6(src=composed, dst="64:ff9b::808:808") / UDP())
    assert (src6.verdict, src6.outcome) == ("dropped",
                                            "drop_special" if special else "drop_src")


def test_well_known_prefix_refusal_is_answered(xlat):
    """The refused packet is a discarded one (RFC 7915 5.4): with errors on, the pod hears
    Destination Unreachable, code 1, from the configured source."""
    xlat.configure(prefix="64:ff9b::/96", icmp_errors=True, icmp_source4="203.0.113.254",
                   icmp_source6="2001:db8:6::1")
    out = xlat(ETH / IPv6(src=SERVER6, dst="64:ff9b::a00:1") / UDP())
    assert out.outcome == "bounce"
    icmp = out.packet[IPv6].payload
    assert (out.packet[IPv6].src, icmp.type, icmp.code) == ("2001:db8:6::1", 1, 1)


def test_local_use_prefix_takes_non_global_ipv4(xlat):
    """RFC 8215's 64:ff9b:1::/48 is a network-specific prefix: no such restriction."""
    xlat.configure(prefix="64:ff9b:1::/48")
    out = xlat(ETH / IP(src="10.1.2.3", dst=SERVER4) / UDP())
    assert out.packet[IPv6].src == "64:ff9b:1:a01:2:300::"


def test_configured_exclusion(xlat):
    xlat.configure(exclude=["192.0.2.0/28"])
    assert xlat(ETH / IP(src="192.0.2.1", dst=SERVER4) / UDP()).outcome == "drop_src"
    assert xlat(ETH / IP(src="192.0.2.17", dst=SERVER4) / UDP()).outcome == "done46"


def test_eam_wins_over_the_prefix(xlat):
    """RFC 7757: the EAM table is consulted first; the prefix maps the rest."""
    xlat.configure(eam=[{"ipv4": EAM4, "ipv6": EAM6},
                        {"ipv4": "192.0.2.10/32", "ipv6": "2001:db8:c::a/128"}])
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / TCP())
    assert (out.packet[IPv6].src, out.packet[IPv6].dst) == ("2001:db8:c::a", SERVER6)
    other = xlat(ETH / IP(src="192.0.2.11", dst=SERVER4) / TCP())
    assert other.packet[IPv6].src == "64:ff9b:1:c000:2:b00::"
    back = xlat(ETH / IPv6(src=SERVER6, dst="2001:db8:c::a") / TCP())
    assert (back.packet[IP].src, back.packet[IP].dst) == (SERVER4, CLIENT4)
    assert_valid(back.raw)


def test_eam_longest_prefix_match_and_suffix_copy(xlat):
    xlat.configure(prefix=None, eam=[
        {"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:6::/120"},
        {"ipv4": "198.51.100.128/25", "ipv6": "2001:db8:7::80/121"},
        {"ipv4": "198.51.100.200/32", "ipv6": "2001:db8:8::1/128"},
        {"ipv4": "192.0.2.0/24", "ipv6": "2001:db8:c::/120"}])
    cases = {"198.51.100.5": "2001:db8:6::5", "198.51.100.129": "2001:db8:7::81",
             "198.51.100.255": "2001:db8:7::ff", "198.51.100.200": "2001:db8:8::1"}
    for v4, v6 in cases.items():
        out = xlat(ETH / IP(src="192.0.2.77", dst=v4) / UDP())
        assert (out.packet[IPv6].src, out.packet[IPv6].dst) == ("2001:db8:c::4d", v6)
        back = xlat(ETH / IPv6(src=v6, dst="2001:db8:c::4d") / UDP())
        assert (back.packet[IP].src, back.packet[IP].dst) == (v4, "192.0.2.77")


def test_eam_only_translates_nothing_else(xlat):
    xlat.configure(prefix=None)
    assert xlat(ETH / IP(src=SERVER4, dst="192.0.2.99") / UDP()).outcome == "pass"
    assert xlat(ETH / IPv6(src=SERVER6, dst="2001:db8:9::1") / UDP()).outcome == "pass"


def test_allow_list(xlat):
    """IPv4 sources outside the allow-list (the seed's loadBalancerSourceRanges) do not get
    through 4->6; IPv6 to IPv4 is not filtered."""
    xlat.configure(allow=["192.0.2.0/28", "203.0.113.7/32"])
    assert xlat(ETH / IP(src="192.0.2.10", dst=SERVER4) / TCP()).outcome == "done46"
    assert xlat(ETH / IP(src="203.0.113.7", dst=SERVER4) / TCP()).outcome == "done46"
    refused = xlat(ETH / IP(src="192.0.2.16", dst=SERVER4) / TCP())
    assert (refused.verdict, refused.outcome) == ("dropped", "drop_allow4")
    assert xlat(ETH / IPv6(src=SERVER6, dst=v6_of("192.0.2.16")) / TCP()).outcome == "done64"


def test_empty_allow_list_allows_everyone(xlat):
    xlat.configure(allow=[])
    assert xlat(ETH / IP(src="192.0.2.16", dst=SERVER4) / TCP()).outcome == "done46"


def test_reconfiguring_replaces_the_tables(xlat):
    xlat.configure(eam=[{"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:9::/120"}])
    assert xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP()).packet[IPv6].dst == "2001:db8:9::5"
    xlat.configure(prefix=PREFIX_ONLY, eam=None)
    out = xlat(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP())
    assert out.packet[IPv6].dst == "64:ff9b:1:c633:64:500::"
    assert xlat(ETH / IPv6(src="2001:db8:9::5", dst=CLIENT6) / UDP()).outcome == "drop_src"


PREFIX_ONLY = "64:ff9b:1::/48"


def v6_of(v4):
    from xlate_helpers import v6
    return v6(v4)
