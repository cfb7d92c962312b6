"""For the translator's packet tests: the addresses they use, the translator under test at
either hook, and checks of lengths and checksums made with scapy's checksum code (never with
the code under test).

Addresses: an RFC 8215 local prefix for IPv4 hosts seen from IPv6, an EAM range for the IPv6
servers (pods) seen from IPv4; documentation ranges throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from lab.bpf.testing import run_packet
from lab.datapath.translator.addrmap import embed
from lab.datapath.translator import (INGRESS_TC, INGRESS_XDP, TranslatorConfig,
                                     outcome_names)
from packet_checks import problems

PREFIX = "64:ff9b:1::/48"
EAM6, EAM4 = "2001:db8:6::/120", "198.51.100.0/24"


def v6(v4: str) -> str:
    """An IPv4 address as IPv6 hosts see it through PREFIX."""
    return str(embed(IPv6Network(PREFIX), IPv4Address(v4)))


CLIENT4 = "192.0.2.10"
CLIENT6 = v6(CLIENT4)              # 64:ff9b:1:c000:2:a00::
SERVER6 = "2001:db8:6::5"          # an IPv6-only pod
SERVER4 = "198.51.100.5"           # ... and its EAM IPv4 address
ROUTER4 = "203.0.113.1"            # an IPv4 router sending ICMP errors
ROUTER6 = v6(ROUTER4)
ROUTER6_UNMAPPED = "2001:db8:ff::1"   # an IPv6 router with no IPv4 address

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

BASE_CONFIG: dict[str, Any] = {"prefix": PREFIX, "eam": [{"ipv4": EAM4, "ipv6": EAM6}]}
HOOKS = ("tc", "xdp")


@dataclass
class Result:
    verdict: str        # passed, dropped, redirected
    code: str           # TC_ACT_OK, XDP_PASS, ...
    outcome: str        # the translator's own account: done46, drop_icmp_type, ...
    raw: bytes          # the frame as the program left it
    packet: Any         # scapy Ether

    @property
    def l3(self) -> Any:
        return self.packet.payload


class Translator:
    """bpf/xlate.c's ingress program at one hook, with a configuration."""

    def __init__(self, obj: Any, hook: str):
        self.obj, self.hook = obj, hook
        self.prog = obj.program(INGRESS_XDP if hook == "xdp" else INGRESS_TC)
        self.names = outcome_names(obj)
        self.stats = obj.map("xlat_stats")
        self.config = self.configure()

    def configure(self, **settings: Any) -> TranslatorConfig:
        """BASE_CONFIG with SETTINGS on top (a value of None removes a setting)."""
        data = {k: v for k, v in {**BASE_CONFIG, **settings}.items() if v is not None}
        self.config = TranslatorConfig.from_dict(data)
        self.config.apply(self.obj)
        return self.config

    def _counts(self) -> list[int]:
        return [int(self.stats.lookup_sum(i) or 0) for i in range(len(self.names))]

    def __call__(self, pkt: Any) -> Result:
        before = self._counts()
        out = run_packet(self.prog, pkt if isinstance(pkt, (bytes, bytearray)) else bytes(pkt))
        changed = [n for n, a, b in zip(self.names, before, self._counts()) if a != b]
        assert len(changed) == 1, f"one outcome per packet, got {changed}"
        return Result(out.verdict, out.code, changed[0], out.raw, Ether(out.raw))


def expect4(out: Result, expected: Any) -> bytes:
    """EXPECTED (Ether / IP ...) with the outer Identification the translator generated for
    it: a DF-clear IPv4 packet gets one (RFC 7915 5.1, RFC 6864), checked by tests of its
    own (test_xlate_rfc7915_5_1.py); the header checksum follows."""
    pkt = Ether(bytes(expected))
    pkt[IP].id = out.packet[IP].id
    del pkt[IP].chksum
    return bytes(pkt)


def assert_valid(frame: bytes) -> None:
    assert problems(frame) == [], Ether(frame).summary()
