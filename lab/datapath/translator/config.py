"""The stateless NAT46/NAT64 translator's control plane (bpf/xlate.c): its configuration,
validated with clear errors, and written into the program's maps.

    cfg = TranslatorConfig.from_dict({"prefix": "64:ff9b:1::/48",
                                      "eam": [{"ipv4": "198.51.100.0/28",
                                               "ipv6": "fd00:10:244:1::/124"}],
                                      "allow": ["192.0.2.0/24"]})
    cfg.apply(obj)          # obj: the loaded bpf/xlate.c object

Map layouts come from the object's BTF (lab.bpf.maps); the outcome names of the statistics
from its `enum xlat_outcome`.
"""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any

from lab import bigtcp_form
from lab.datapath.translator.addrmap import (AddressMapError, AddressMapper, EamEntry, EamTable,
                                  Rfc6052Prefix)
from lab.errors import InputError, UsageError

if TYPE_CHECKING:
    from lab.bpf.bench import BenchCase
    from lab.bpf.maps import Map
    from lab.bpf.object import BpfObject

OBJECT = "xlate"
# Programs of bpf/xlate.c by hook (see the comment at its top for the packet path).
INGRESS_TC = "xlate_ingress"
INGRESS_XDP = "xlate_xdp"
EGRESS_46 = "xlate46_egress"      # on the IPv6-side device: the kernel's IPv4 -> IPv6
EGRESS_64 = "xlate64_egress"      # on the IPv4-side device: the kernel's IPv6 -> IPv4


def _error(path: tuple[str | int, ...], message: str) -> InputError:
    """A bad translator setting; PATH locates it inside the translator's mapping (for a
    topology file: under datapath.translator), so callers can point at the file position."""
    return InputError(message, path=path, subject="translator")


SETTINGS = _KEYS = ("prefix", "eam", "own", "allow", "exclude", "icmp_errors", "icmp_source4",
         "icmp_source6", "pool4", "mtu4", "mtu6", "zero_tos")


@dataclass(frozen=True)
class TranslatorConfig:
    prefix: Rfc6052Prefix | None = None
    # EAM entries; those with `own` set are the translator host's own address pairs: packets
    # to them are for the host (not translated), packets from them (the kernel's ICMP errors)
    # are translated like any.
    eam: EamTable = field(default_factory=EamTable)
    allow: tuple[IPv4Network, ...] = ()      # IPv4 sources allowed 4->6; empty: all
    exclude: tuple[IPv4Network, ...] = ()    # IPv4 ranges never combined with the prefix
    icmp_errors: bool = False                # answer discarded packets (RFC 7915 4.4, 5.4)
    icmp_source4: IPv4Address | None = None  # source of those errors
    icmp_source6: IPv6Address | None = None
    pool4: IPv4Address | None = None         # RFC 6791: errors from untranslatable sources
    mtu4: int = 0                            # next-hop MTUs for PMTU arithmetic, 0: unknown
    mtu6: int = 0
    zero_tos: bool = False                   # RFC 7915 option: traffic class / TOS to 0
    # How IPv6 BIG TCP packets built from IPv4 ones say their length: "hbh-jumbo" or "zero"
    # (lab.bigtcp_form); None: as the running kernel's own stack does.
    big_tcp_form: str | None = None

    def __post_init__(self) -> None:
        if self.prefix is None and not len(self.eam):
            raise _error((), "nothing to translate: give a prefix, EAM "
                                            "entries, or both")
        if self.icmp_errors and (self.icmp_source4 is None or self.icmp_source6 is None):
            raise _error(("icmp_errors",), "sending ICMP errors needs "
                                        "icmp_source4 and icmp_source6 (their source "
                                        "addresses)")
        for name in ("mtu4", "mtu6"):
            v = getattr(self, name)
            low = 68 if name == "mtu4" else 1280
            if v and not low <= v <= 65535:
                raise _error((name,), f"{v} is not an MTU ({low}..65535, or 0 "
                                            "for unknown)")

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranslatorConfig:
        """From a plain mapping, as in a topology file's `datapath: translator:` section."""
        if not isinstance(data, Mapping):
            raise _error((), "expected a mapping of settings")
        for key in data:
            if key not in _KEYS:
                raise _error((key,), f"unknown setting (known: "
                                            f"{', '.join(_KEYS)})")
        kw: dict[str, Any] = {}
        if data.get("prefix") is not None:
            kw["prefix"] = _at(("prefix",), Rfc6052Prefix.parse, str(data["prefix"]))
        entries = []
        for i, e in enumerate(_list(data, "eam")):
            if isinstance(e, str):
                entries.append(_at(("eam", i), EamEntry.parse_pair, e, "EAM"))
            elif isinstance(e, Mapping) and set(e) == {"ipv4", "ipv6"}:
                entries.append(_at(("eam", i), EamEntry.parse, str(e["ipv6"]),
                                   str(e["ipv4"])))
            else:
                raise _error(("eam", i), "expected {ipv4: PREFIX, ipv6: "
                                            "PREFIX} or 'IPV6PREFIX=IPV4PREFIX'")
        for i, e in enumerate(_list(data, "own")):
            if not (isinstance(e, Mapping) and set(e) == {"ipv4", "ipv6"}):
                raise _error(("own", i), "expected {ipv4: ADDRESS, ipv6: "
                                            "ADDRESS}")
            pair = _at(("own", i), EamEntry.parse, f"{e['ipv6']}/128", f"{e['ipv4']}/32",
                       "own address")
            entries.append(_at(("own", i), EamEntry, pair.v4, pair.v6, True))
        kw["eam"] = _at(("eam",), EamTable, tuple(entries))
        for key in ("allow", "exclude"):
            kw[key] = tuple(_at((key, i), _net4, str(v)) for i, v in enumerate(_list(data, key)))
        for key in ("icmp_errors", "zero_tos"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise _error((key,), "expected true or false")
                kw[key] = data[key]
        for key, parse in (("icmp_source4", _addr4), ("pool4", _addr4),
                           ("icmp_source6", _addr6)):
            if data.get(key) is not None:
                kw[key] = _at((key,), parse, str(data[key]))
        for key in ("mtu4", "mtu6"):
            if key in data:
                if not isinstance(data[key], int) or isinstance(data[key], bool):
                    raise _error((key,), "expected an integer")
                kw[key] = data[key]
        return cls(**kw)

    @classmethod
    def from_args(cls, prefix: str | None = None, eam: Sequence[str] = (),
                  allow: Sequence[str] = ()) -> TranslatorConfig:
        """From `lab xlate` options: --prefix P, --eam V6PFX=V4PFX, --allow V4PFX."""
        data: dict[str, Any] = {"eam": list(eam), "allow": list(allow)}
        if prefix is not None:
            data["prefix"] = prefix
        try:
            return cls.from_dict(data)
        except InputError as e:
            option = {"prefix": "--prefix", "eam": "--eam", "allow": "--allow"}.get(
                str(e.path[0]) if e.path else "", "options")
            raise UsageError(f"{option}: {e.message}") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.prefix is not None:
            out["prefix"] = str(self.prefix)
        if any(not e.own for e in self.eam):
            out["eam"] = [{"ipv4": str(e.v4), "ipv6": str(e.v6)} for e in self.eam
                          if not e.own]
        if any(e.own for e in self.eam):
            out["own"] = [{"ipv4": str(e.v4.network_address), "ipv6": str(e.v6.network_address)}
                          for e in self.eam if e.own]
        for key in ("allow", "exclude"):
            if getattr(self, key):
                out[key] = [str(n) for n in getattr(self, key)]
        for key in ("icmp_errors", "zero_tos"):
            if getattr(self, key):
                out[key] = True
        for key in ("icmp_source4", "icmp_source6", "pool4"):
            if getattr(self, key) is not None:
                out[key] = str(getattr(self, key))
        for key in ("mtu4", "mtu6"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    def mapper(self) -> AddressMapper:
        """The address mapping this configuration makes the datapath apply."""
        return AddressMapper(self.prefix, self.eam, self.exclude)

    # --- the maps --------------------------------------------------------------------------

    def apply(self, obj: BpfObject) -> None:
        """Write this configuration into the maps of a loaded bpf/xlate.c object, replacing
        what was there. The configuration entry goes last: until then the program still
        acts on a complete earlier configuration (or, first time, on none: it passes all)."""
        mapper = self.mapper()
        _replace(obj.map("xlat_eam4"), [(_lpm4(e.v4, obj), _eam_value(e, obj)) for e in self.eam])
        _replace(obj.map("xlat_eam6"), [(_lpm6(e.v6, obj), _eam_value(e, obj)) for e in self.eam])
        _replace(obj.map("xlat_allow4"), [(_lpm4(n, obj, "xlat_allow4"), 1) for n in self.allow])
        _replace(obj.map("xlat_excl4"),
                 [(_lpm4(n, obj, "xlat_excl4"), 1) for n in mapper.excluded_ranges])
        cfg_map = obj.map("xlat_cfg")
        v = cfg_map.value_type()
        if self.prefix is not None:
            _set_in6(v.pref6, self.prefix.network.network_address)
            v.pref6_len = self.prefix.length
        v.icmp_errors = int(self.icmp_errors)
        v.allow4 = int(bool(self.allow))
        v.zero_tos = int(self.zero_tos)
        v.jumbo_hbh = int(bigtcp_form.resolve(self.big_tcp_form) == bigtcp_form.LEN_JUMBO_HBH)
        v.mtu4, v.mtu6 = self.mtu4, self.mtu6
        v.use_eam = int(bool(len(self.eam)))
        v.use_excl4 = int(bool(mapper.excluded_ranges))
        v.pool4 = be32(self.pool4)
        v.src4 = be32(self.icmp_source4)
        if self.icmp_source6 is not None:
            _set_in6(v.src6, self.icmp_source6)
        cfg_map.update(0, v)


def outcome_names(obj: BpfObject | Map) -> list[str]:
    """Names of the translator's outcomes (the statistics map's indexes), from the object's
    BTF: XLAT_DONE46 -> "done46"."""
    btf = obj.btf
    t = btf.type(btf.find("xlat_outcome", "enum"))
    names = sorted(t.enumerators, key=lambda kv: kv[1])
    return [n.removeprefix("XLAT_").lower() for n, v in names if n != "XLAT_OUTCOME_MAX"]


def statistics(obj: BpfObject) -> dict[str, int]:
    """Packets per outcome since load, summed over CPUs."""
    stats = obj.map("xlat_stats")
    return {name: int(stats.lookup_sum(i) or 0) for i, name in enumerate(outcome_names(obj))}


# --- helpers ----------------------------------------------------------------------------------

def _at(path: tuple[str | int, ...], fn, *args):
    try:
        return fn(*args)
    except AddressMapError as e:
        raise _error(path, str(e)) from None


def _list(data: Mapping[str, Any], key: str) -> list:
    v = data.get(key) or []
    if not isinstance(v, list):
        raise _error((key,), "expected a list")
    return v


def _net4(text: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise AddressMapError(f"'{text}': {e}") from None
    if net.version != 4:
        raise AddressMapError(f"'{text}' is not an IPv4 prefix")
    return net


def _addr4(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise AddressMapError(f"'{text}' is not an IPv4 address") from None


def _addr6(text: str) -> IPv6Address:
    try:
        return IPv6Address(text)
    except ValueError:
        raise AddressMapError(f"'{text}' is not an IPv6 address") from None


def be32(addr: IPv4Address | None) -> int:
    """An IPv4 address as the u32 whose memory holds it in network byte order (__be32)."""
    return 0 if addr is None else int.from_bytes(addr.packed, "little")


def _set_in6(field_: Any, addr: Any) -> None:
    """Fill a BTF-derived struct in6_addr from an address."""
    ctypes.memmove(ctypes.addressof(field_), IPv6Address(addr).packed, 16)


def _lpm4(net: IPv4Network, obj: BpfObject, name: str = "xlat_eam4") -> Any:
    key = obj.map(name).key_type()
    key.prefixlen = net.prefixlen
    key.addr = be32(net.network_address)
    return key


def _lpm6(net: IPv6Network, obj: BpfObject) -> Any:
    key = obj.map("xlat_eam6").key_type()
    key.prefixlen = net.prefixlen
    _set_in6(key.addr, net.network_address)
    return key


def _eam_value(e: EamEntry, obj: BpfObject) -> Any:
    v = obj.map("xlat_eam4").value_type()
    _set_in6(v.v6, e.v6.network_address)
    v.v4 = be32(e.v4.network_address)
    v.suffix_len = e.suffix_len
    v.own = int(e.own)
    return v


def _replace(m: Map, items: Iterable[tuple[Any, Any]]) -> None:
    """Make map M hold exactly ITEMS: new ones first, then the stale ones removed."""
    items = list(items)
    wanted = {bytes(k) for k, _ in items}
    for k, v in items:
        m.update(k, v)
    for k in list(m.keys()):
        if bytes(k) not in wanted:
            m.delete(k)


# --- `lab bench prog` -------------------------------------------------------------------------

# The configuration and traffic of the benchmark: the seed's ingress (an IPv4 client to
# IPv6 pods by EAM) and egress (pods to an IPv4 server through the prefix), both ways.
BENCH_CONFIG = {"prefix": "64:ff9b:1::/48",
                "eam": [{"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:6::/120"}]}


def bench_mix() -> list[tuple[str, bytes]]:
    """What a translating gateway forwards: TCP, UDP and ICMP each way, small and at the MTU,
    and an ICMP error each way (their quoted packets are translated and summed too)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6TimeExceeded, IPv6
    from scapy.layers.l2 import Ether

    mapper = TranslatorConfig.from_dict(BENCH_CONFIG).mapper()
    c4, p4, s4 = "192.0.2.10", "198.51.100.7", "203.0.113.80"
    c6, p6, s6 = (str(mapper.to6(a)) for a in (c4, p4, s4))
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    mix = [
        ("tcp4-syn", eth / IP(src=c4, dst=p4) / TCP(sport=40000, dport=80, flags="S")),
        ("tcp4-1500", eth / IP(src=c4, dst=p4, flags="DF") / TCP(sport=40000, dport=80,
                                                                  flags="A") / bytes(1460)),
        ("udp4-dns", eth / IP(src=c4, dst=p4) / UDP(sport=40001, dport=53) / bytes(40)),
        ("icmp4-echo", eth / IP(src=c4, dst=p4) / ICMP() / bytes(56)),
        ("tcp6-synack", eth / IPv6(src=p6, dst=c6) / TCP(sport=80, dport=40000, flags="SA")),
        ("tcp6-1500", eth / IPv6(src=p6, dst=s6) / TCP(sport=40000, dport=443, flags="A") /
         bytes(1440)),
        ("udp6-dns", eth / IPv6(src=p6, dst=s6) / UDP(sport=40001, dport=53) / bytes(40)),
        ("icmp6-reply", eth / IPv6(src=p6, dst=c6) / ICMPv6EchoReply() / bytes(56)),
        ("icmp4-error", eth / IP(src=s4, dst=p4) / ICMP(type=3, code=4, nexthopmtu=1400) /
         IP(src=p4, dst=s4) / TCP(sport=40000, dport=443) / bytes(520)),
        ("icmp6-error", eth / IPv6(src=p6, dst=c6) / ICMPv6TimeExceeded() /
         IPv6(src=c6, dst=p6, hlim=1) / UDP(sport=33434, dport=33435) / bytes(32)),
    ]
    return [(label, bytes(p)) for label, p in mix]


def _bench_setup(obj: BpfObject) -> None:
    TranslatorConfig.from_dict(BENCH_CONFIG).apply(obj)


def bench_cases() -> tuple[BenchCase, ...]:
    """`lab bench prog xlate-tc|xlate-xdp`."""
    from lab.bpf.bench import BenchCase

    return tuple(
        BenchCase(f"xlate-{hook}", OBJECT, program, bench_mix, after_load=_bench_setup,
                  rewrites=True, description=f"stateless NAT46/NAT64 translator at {hook} "
                                             "(RFC 6052 prefix + EAM)")
        for hook, program in (("tc", INGRESS_TC), ("xdp", INGRESS_XDP)))
