"""RFC 6052 address embedding and RFC 7757 explicit address mappings (lab.datapath.addrmap),
the rules the translator's maps are filled from."""

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given, strategies as st

from lab.datapath.translator.addrmap import (NON_GLOBAL_V4, PREFIX_LENGTHS, AddressMapError, AddressMapper,
                                  EamEntry, EamTable, Rfc6052Prefix, embed, extract)
from lab.errors import UsageError

# RFC 6052 section 2.4, "Text Representation", the table of examples: 192.0.2.33 embedded
# under a prefix of every length.
RFC6052_EXAMPLES = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
    ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
]


@pytest.mark.parametrize("prefix,address", RFC6052_EXAMPLES)
def test_rfc6052_examples_embed(prefix, address):
    assert embed(IPv6Network(prefix), IPv4Address("192.0.2.33")) == IPv6Address(address)


@pytest.mark.parametrize("prefix,address", RFC6052_EXAMPLES)
def test_rfc6052_examples_extract(prefix, address):
    assert extract(IPv6Network(prefix), IPv6Address(address)) == IPv4Address("192.0.2.33")


def test_examples_cover_every_prefix_length():
    assert {IPv6Network(p).prefixlen for p, _ in RFC6052_EXAMPLES} == set(PREFIX_LENGTHS)


@pytest.mark.parametrize("plen", [32, 40, 48, 56, 64])
def test_u_octet_stays_zero(plen):
    """Bits 64-71 are the u octet, zero for every length where they are not in the prefix."""
    prefix = IPv6Network(f"2001:db8::/{plen}")
    a = embed(prefix, IPv4Address("255.255.255.255"))
    assert a.packed[8] == 0
    assert bin(int.from_bytes(a.packed, "big")).count("1") - bin(
        int(prefix.network_address)).count("1") == 32


@pytest.mark.parametrize("plen", [32, 40, 48, 56, 64])
def test_extract_refuses_a_non_zero_u_octet_or_suffix(plen):
    prefix = IPv6Network(f"2001:db8::/{plen}")
    good = embed(prefix, IPv4Address("192.0.2.33"))
    with_u = IPv6Address(int(good) | (0x80 << 56))       # bit 64 set
    with_suffix = IPv6Address(int(good) | 1)             # last bit set
    assert extract(prefix, good) == IPv4Address("192.0.2.33")
    assert extract(prefix, with_u) is None
    assert extract(prefix, with_suffix) is None


def test_extract_refuses_an_address_outside_the_prefix():
    assert extract(IPv6Network("2001:db8:122::/48"), IPv6Address("2001:db8:123:c000:2:2100::")) is None


@given(st.sampled_from(PREFIX_LENGTHS), st.integers(0, 2**128 - 1), st.integers(0, 2**32 - 1))
def test_embed_extract_round_trip(plen, bits, v4):
    prefix = IPv6Network((bits >> (128 - plen) << (128 - plen), plen))
    if plen == 96:  # the u octet is inside a /96 and must be zero there
        prefix = IPv6Network((int(prefix.network_address) & ~(0xFF << 56), 96))
    a = embed(prefix, IPv4Address(v4))
    assert a in prefix
    assert extract(prefix, a) == IPv4Address(v4)


@given(st.sampled_from(PREFIX_LENGTHS), st.integers(0, 2**128 - 1))
def test_extract_is_the_inverse_of_embed_only(plen, bits):
    """Any address either comes from embed() and extracts to the IPv4 address that gives it
    back, or extracts to nothing: the mapping is one-to-one."""
    prefix = IPv6Network("2001:db8::/32") if plen == 32 else IPv6Network(f"2001:db8::/{plen}")
    addr = IPv6Address((int(prefix.network_address) & ~((1 << (128 - plen)) - 1))
                       | (bits & ((1 << (128 - plen)) - 1)))
    v4 = extract(prefix, addr)
    if v4 is not None:
        assert embed(prefix, v4) == addr


# --- prefix validation ------------------------------------------------------------------------

@pytest.mark.parametrize("text,why", [
    ("2001:db8::/33", "lengths 32, 40, 48, 56, 64, 96"),
    ("2001:db8::/128", "not /128"),
    ("2001:db8::1/96", "host bits set"),
    ("2001:db8:0:0:100::/96", "u octet"),
    ("64:ff9b::/64", "well-known prefix is only ever 64:ff9b::/96"),
    ("ff02::/32", "not a unicast prefix"),
    ("192.0.2.0/24", "not an IPv6 prefix"),
    ("nonsense", "does not appear to be"),
])
def test_bad_prefixes_are_refused_with_the_reason(text, why):
    with pytest.raises(AddressMapError, match=why) as e:
        Rfc6052Prefix.parse(text)
    assert isinstance(e.value, UsageError)  # exit code 2 at the CLI


@pytest.mark.parametrize("text", ["64:ff9b::/96", "64:ff9b:1::/48", "64:ff9b:1:ab00::/56",
                                  "2001:db8::/32", "2001:db8:1::/96"])
def test_good_prefixes(text):
    assert str(Rfc6052Prefix.parse(text)) == text


def test_well_known_prefix_refuses_non_global_ipv4():
    """RFC 6052 3.1: the well-known prefix is never combined with non-global IPv4."""
    wkp = AddressMapper(Rfc6052Prefix.parse("64:ff9b::/96"))
    for addr in ("10.1.2.3", "192.168.1.1", "172.16.0.1", "100.64.0.1", "127.0.0.1",
                 "169.254.1.1", "192.0.2.33", "198.51.100.1", "203.0.113.9", "224.0.0.1"):
        assert wkp.to6(addr) is None, addr
        assert wkp.to4(embed(IPv6Network("64:ff9b::/96"), IPv4Address(addr))) is None, addr
    assert wkp.to6("8.8.8.8") == IPv6Address("64:ff9b::808:808")
    assert wkp.to4("64:ff9b::808:808") == IPv4Address("8.8.8.8")


def test_network_specific_prefix_takes_any_ipv4():
    local = AddressMapper(Rfc6052Prefix.parse("64:ff9b:1::/48"))
    assert local.to6("10.1.2.3") == IPv6Address("64:ff9b:1:a01:2:300::")
    assert local.to4("64:ff9b:1:a01:2:300::") == IPv4Address("10.1.2.3")


def test_non_global_ranges_are_disjoint_ranges():
    nets = sorted(NON_GLOBAL_V4)
    assert all(not a.overlaps(b) for a, b in zip(nets, nets[1:]))
    assert IPv4Network("192.0.2.0/24") in NON_GLOBAL_V4


# --- EAM --------------------------------------------------------------------------------------

def test_eam_copies_the_suffix_both_ways():
    e = EamEntry.parse("2001:db8:6::/120", "198.51.100.0/24")
    assert e.to6(IPv4Address("198.51.100.77")) == IPv6Address("2001:db8:6::4d")
    assert e.to4(IPv6Address("2001:db8:6::4d")) == IPv4Address("198.51.100.77")
    assert e.suffix_len == 8


def test_eam_suffix_lengths_must_match():
    with pytest.raises(AddressMapError, match="same length.*RFC 7757"):
        EamEntry.parse("2001:db8:6::/112", "198.51.100.0/24")


@pytest.mark.parametrize("text,why", [
    ("2001:db8::/128", "expected IPV6PREFIX=IPV4PREFIX"),
    ("=198.51.100.1/32", "expected IPV6PREFIX=IPV4PREFIX"),
    ("198.51.100.1/32=2001:db8::1/128", "not an IPv4 prefix"),
    ("2001:db8::1/120=198.51.100.0/24", "host bits set"),
])
def test_eam_pair_syntax(text, why):
    with pytest.raises(AddressMapError, match=why):
        EamEntry.parse_pair(text)


def test_eam_longest_prefix_wins():
    table = EamTable((EamEntry.parse("2001:db8:6::/120", "198.51.100.0/24"),
                      EamEntry.parse("2001:db8:7::1/128", "198.51.100.1/32")))
    assert table.lookup4(IPv4Address("198.51.100.1")).v6 == IPv6Network("2001:db8:7::1/128")
    assert table.lookup4(IPv4Address("198.51.100.2")).v6 == IPv6Network("2001:db8:6::/120")
    assert table.lookup6(IPv6Address("2001:db8:7::1")).v4 == IPv4Network("198.51.100.1/32")
    assert table.lookup4(IPv4Address("198.51.101.1")) is None


def test_eam_duplicate_prefixes_are_refused():
    with pytest.raises(AddressMapError, match="already mapped"):
        EamTable((EamEntry.parse("2001:db8:6::/120", "198.51.100.0/24"),
                  EamEntry.parse("2001:db8:8::/120", "198.51.100.0/24")))


def test_eam_wins_over_the_prefix():
    m = AddressMapper(Rfc6052Prefix.parse("64:ff9b:1::/48"),
                      EamTable((EamEntry.parse("2001:db8:6::/120", "198.51.100.0/24"),)))
    assert m.to6("198.51.100.5") == IPv6Address("2001:db8:6::5")
    assert m.to6("198.51.101.5") == m.prefix.embed(IPv4Address("198.51.101.5"))
    # an address under the prefix whose IPv4 is EAM-mapped is still the prefix's to undo
    assert m.to4(m.prefix.embed(IPv4Address("198.51.100.5"))) == IPv4Address("198.51.100.5")


def test_configured_exclusions_apply_to_the_prefix_only():
    m = AddressMapper(Rfc6052Prefix.parse("64:ff9b:1::/48"),
                      EamTable((EamEntry.parse("2001:db8:6::/120", "198.51.100.0/24"),)),
                      (IPv4Network("198.51.0.0/16"),))
    assert m.to6("198.51.7.7") is None
    assert m.to6("198.51.100.7") == IPv6Address("2001:db8:6::7")


@given(st.integers(0, 2**32 - 1))
def test_mapper_round_trip_4_6_4(v4):
    m = AddressMapper(Rfc6052Prefix.parse("64:ff9b:1::/48"),
                      EamTable((EamEntry.parse("2001:db8:6::/120", "198.51.100.0/24"),
                                EamEntry.parse("2001:db8:7::/128", "203.0.113.7/32"))))
    a = IPv4Address(v4)
    assert m.to4(m.to6(a)) == a
