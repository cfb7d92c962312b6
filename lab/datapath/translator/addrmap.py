"""Stateless IPv4 <-> IPv6 address mapping: RFC 6052 prefixes and RFC 7757 explicit address
mappings (EAM), the same rules bpf/include/xlat/addrmap.h applies per packet.

A translator maps an address by the longest matching EAM entry first and by the RFC 6052
prefix otherwise; the prefix is never combined with an excluded IPv4 range (with the
well-known prefix 64:ff9b::/96 that includes every non-global range, RFC 6052 3.1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from lab.errors import UsageError

# RFC 6052 2.2: the prefix lengths an IPv4-embedded IPv6 address can have.
PREFIX_LENGTHS = (32, 40, 48, 56, 64, 96)

WELL_KNOWN_PREFIX = IPv6Network("64:ff9b::/96")     # RFC 6052 2.1
LOCAL_USE_PREFIX = IPv6Network("64:ff9b:1::/48")    # RFC 8215, for network-specific prefixes

# IPv4 ranges that are not globally reachable (the IANA special-purpose registry, RFC 6890,
# "Globally Reachable: False"), plus multicast and the reserved class E, which have no
# meaning inside a unicast IPv6 prefix. RFC 6052 3.1: never combined with the well-known
# prefix.
NON_GLOBAL_V4: tuple[IPv4Network, ...] = tuple(IPv4Network(n) for n in (
    "0.0.0.0/8",        # "this network" (RFC 791)
    "10.0.0.0/8",       # private use (RFC 1918)
    "100.64.0.0/10",    # shared address space (RFC 6598)
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link local (RFC 3927)
    "172.16.0.0/12",    # private use
    "192.0.0.0/24",     # IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",     # documentation, TEST-NET-1 (RFC 5737)
    "192.168.0.0/16",   # private use
    "198.18.0.0/15",    # benchmarking (RFC 2544)
    "198.51.100.0/24",  # documentation, TEST-NET-2
    "203.0.113.0/24",   # documentation, TEST-NET-3
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, and the limited broadcast address
))


class AddressMapError(UsageError):
    """A prefix or mapping that RFC 6052 / RFC 7757 do not allow."""


def _net6(text: str | IPv6Network, what: str) -> IPv6Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise AddressMapError(f"{what} '{text}': {_reason(e)}") from None
    if net.version != 6:
        raise AddressMapError(f"{what} '{text}' is not an IPv6 prefix")
    return net


def _net4(text: str | IPv4Network, what: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise AddressMapError(f"{what} '{text}': {_reason(e)}") from None
    if net.version != 4:
        raise AddressMapError(f"{what} '{text}' is not an IPv4 prefix")
    return net


def _reason(e: ValueError) -> str:
    msg = str(e)
    return "host bits set (the bits after the prefix length must be zero)" \
        if "host bits set" in msg else msg


# --- RFC 6052 ---------------------------------------------------------------------------------

def _positions(plen: int) -> list[int]:
    """Byte positions of the four IPv4 bytes in an address under a /PLEN prefix: right after
    the prefix, skipping byte 8 (bits 64-71, the "u" octet)."""
    out, pos = [], plen // 8
    for _ in range(4):
        if pos == 8 and plen != 96:
            pos += 1
        out.append(pos)
        pos += 1
    return out


def embed(prefix: IPv6Network, v4: IPv4Address) -> IPv6Address:
    """The IPv4-embedded IPv6 address of V4 under PREFIX (RFC 6052 2.2): u octet and suffix
    zero."""
    if prefix.prefixlen not in PREFIX_LENGTHS:
        raise AddressMapError(f"RFC 6052 prefix {prefix}: length must be one of "
                              f"{', '.join(map(str, PREFIX_LENGTHS))}")
    out = bytearray(prefix.network_address.packed)
    for pos, byte in zip(_positions(prefix.prefixlen), IPv4Address(v4).packed):
        out[pos] = byte
    return IPv6Address(bytes(out))


def extract(prefix: IPv6Network, v6: IPv6Address) -> IPv4Address | None:
    """The IPv4 address embedded in V6 under PREFIX, or None if V6 is not one that embed()
    produces (outside the prefix, non-zero u octet or suffix). Refusing the others keeps the
    mapping one-to-one, so a translated address translates back to itself."""
    packed = IPv6Address(v6).packed
    v4 = IPv4Address(bytes(packed[p] for p in _positions(prefix.prefixlen)))
    return v4 if embed(prefix, v4).packed == packed else None


@dataclass(frozen=True)
class Rfc6052Prefix:
    """A validated translation prefix: the well-known 64:ff9b::/96 or a network-specific one
    of an RFC 6052 length."""

    network: IPv6Network

    @classmethod
    def parse(cls, text: str | IPv6Network, what: str = "prefix") -> Rfc6052Prefix:
        net = _net6(text, what)
        if net.prefixlen not in PREFIX_LENGTHS:
            raise AddressMapError(f"{what} {net}: RFC 6052 allows the lengths "
                                  f"{', '.join(map(str, PREFIX_LENGTHS))}, not /{net.prefixlen}")
        if net.prefixlen == 96 and net.network_address.packed[8]:
            raise AddressMapError(f"{what} {net}: bits 64-71 (the u octet) must be zero "
                                  "(RFC 6052 2.2)")
        if net.overlaps(WELL_KNOWN_PREFIX) and net != WELL_KNOWN_PREFIX:
            raise AddressMapError(f"{what} {net}: the well-known prefix is only ever "
                                  f"{WELL_KNOWN_PREFIX} (RFC 6052 2.1); use a prefix under "
                                  f"{LOCAL_USE_PREFIX} (RFC 8215) for a local one")
        if net.is_multicast or net.is_link_local or net.is_loopback or net.is_unspecified:
            raise AddressMapError(f"{what} {net}: not a unicast prefix")
        return cls(net)

    @property
    def is_well_known(self) -> bool:
        return self.network == WELL_KNOWN_PREFIX

    @property
    def length(self) -> int:
        return self.network.prefixlen

    def embed(self, v4: IPv4Address) -> IPv6Address:
        return embed(self.network, v4)

    def extract(self, v6: IPv6Address) -> IPv4Address | None:
        return extract(self.network, v6)

    def __str__(self) -> str:
        return str(self.network)


# --- RFC 7757 ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class EamEntry:
    """An explicit address mapping: IPv4 prefix <-> IPv6 prefix whose suffixes (the bits after
    each prefix) have equal lengths and are copied across (RFC 7757 3.2)."""

    v4: IPv4Network
    v6: IPv6Network
    own: bool = False   # the translator host's own address pair (a /32 and a /128)

    def __post_init__(self) -> None:
        if self.own and (self.v4.prefixlen != 32 or self.v6.prefixlen != 128):
            raise AddressMapError(f"own addresses {self.v6}={self.v4}: single addresses "
                                  "(/128 and /32)")
        if 32 - self.v4.prefixlen != 128 - self.v6.prefixlen:
            raise AddressMapError(
                f"EAM {self.v6}={self.v4}: the suffixes must have the same length, but "
                f"/{self.v6.prefixlen} leaves {128 - self.v6.prefixlen} bits and "
                f"/{self.v4.prefixlen} leaves {32 - self.v4.prefixlen} (RFC 7757 3.2)")

    @classmethod
    def parse(cls, v6: str, v4: str, what: str = "EAM") -> EamEntry:
        return cls(_net4(v4, f"{what} IPv4 prefix"), _net6(v6, f"{what} IPv6 prefix"))

    @classmethod
    def parse_pair(cls, text: str, what: str = "--eam") -> EamEntry:
        """'V6PFX=V4PFX', as `lab xlate --eam` takes it."""
        v6, sep, v4 = text.partition("=")
        if not sep or not v6 or not v4:
            raise AddressMapError(f"{what} '{text}': expected IPV6PREFIX=IPV4PREFIX, e.g. "
                                  "2001:db8:64::/120=192.0.2.0/24")
        return cls.parse(v6.strip(), v4.strip(), what)

    @property
    def suffix_len(self) -> int:
        return 32 - self.v4.prefixlen

    def to6(self, v4: IPv4Address) -> IPv6Address:
        suffix = int(v4) & ((1 << self.suffix_len) - 1)
        return IPv6Address(int(self.v6.network_address) | suffix)

    def to4(self, v6: IPv6Address) -> IPv4Address:
        suffix = int(v6) & ((1 << self.suffix_len) - 1)
        return IPv4Address(int(self.v4.network_address) | suffix)

    def __str__(self) -> str:
        return f"{self.v6}={self.v4}"


@dataclass(frozen=True)
class EamTable:
    """EAM entries, looked up by longest prefix on either side (RFC 7757 3.3)."""

    entries: tuple[EamEntry, ...] = ()

    def __post_init__(self) -> None:
        seen4: dict[IPv4Network, EamEntry] = {}
        seen6: dict[IPv6Network, EamEntry] = {}
        for e in self.entries:
            for side, seen, key in (("IPv4", seen4, e.v4), ("IPv6", seen6, e.v6)):
                if key in seen:
                    raise AddressMapError(f"EAM {e}: {side} prefix {key} is already mapped by "
                                          f"{seen[key]}")
                seen[key] = e  # type: ignore[index]

    def lookup4(self, v4: IPv4Address) -> EamEntry | None:
        best = None
        for e in self.entries:
            if v4 in e.v4 and (best is None or e.v4.prefixlen > best.v4.prefixlen):
                best = e
        return best

    def lookup6(self, v6: IPv6Address) -> EamEntry | None:
        best = None
        for e in self.entries:
            if v6 in e.v6 and (best is None or e.v6.prefixlen > best.v6.prefixlen):
                best = e
        return best

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


# --- both -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AddressMapper:
    """Map an address of one family to the other as the translator does: EAM, then prefix."""

    prefix: Rfc6052Prefix | None = None
    eam: EamTable = field(default_factory=EamTable)
    exclude4: tuple[IPv4Network, ...] = ()

    @property
    def excluded_ranges(self) -> tuple[IPv4Network, ...]:
        """Every IPv4 range the prefix is never combined with."""
        wkp = NON_GLOBAL_V4 if self.prefix is not None and self.prefix.is_well_known else ()
        return tuple(_collapse([*wkp, *self.exclude4]))

    def excluded(self, v4: IPv4Address) -> bool:
        return any(v4 in n for n in self.excluded_ranges)

    def to6(self, v4: IPv4Address | str) -> IPv6Address | None:
        v4 = IPv4Address(v4)
        e = self.eam.lookup4(v4)
        if e is not None:
            return e.to6(v4)
        if self.prefix is None or self.excluded(v4):
            return None
        return self.prefix.embed(v4)

    def to4(self, v6: IPv6Address | str) -> IPv4Address | None:
        v6 = IPv6Address(v6)
        e = self.eam.lookup6(v6)
        if e is not None:
            return e.to4(v6)
        if self.prefix is None:
            return None
        v4 = self.prefix.extract(v6)
        return None if v4 is None or self.excluded(v4) else v4


def _collapse(nets: Iterable[IPv4Network]) -> Sequence[IPv4Network]:
    return list(ipaddress.collapse_addresses(nets))
