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

from scapy.layers.l2 import Ether
from scapy.utils import checksum

from lab.bpf.testing import run_packet
from lab.datapath.translator.addrmap import embed
from lab.datapath.translator import (INGRESS_TC, INGRESS_XDP, TranslatorConfig,
                                     outcome_names)

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


def _valid_sum(pseudo: bytes, l4: bytes) -> bool:
    return checksum(pseudo + l4) == 0


def problems(frame: bytes) -> list[str]:
    """What is wrong with the lengths or checksums of an Ethernet frame carrying IPv4 or
    IPv6 (empty: nothing). Headers are read by hand (any bytes at all may come here), sums
    made with scapy's RFC 1071 checksum. Transport checksums are checked where the packet
    holds the whole transport message (not in fragments); an ICMP error's quoted packet is
    payload."""
    body = frame[14:]
    ethertype = int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else 0
    names = {6: "TCP", 17: "UDP", 58: "ICMPv6"}
    if ethertype == 0x0800:
        if len(body) < 20 or body[0] >> 4 != 4:
            return ["IPv4 header"]
        hl = (body[0] & 0xF) * 4
        if hl < 20 or len(body) < hl:
            return ["IPv4 header length"]
        out = ["IPv4 header checksum"] if checksum(body[:hl]) != 0 else []
        tot = int.from_bytes(body[2:4], "big")
        if tot < hl or tot > len(body):
            return out + [f"IPv4 total length {tot}, {len(body)} bytes there"]
        proto, l4 = body[9], body[hl:tot]
        if int.from_bytes(body[6:8], "big") & 0x3FFF:      # MF or an offset: a fragment
            return out
        pseudo = body[12:20] + bytes([0, proto]) + len(l4).to_bytes(2, "big")
        if proto == 1 and len(l4) >= 4 and checksum(l4) != 0:
            out.append("ICMP checksum")
        elif proto in (6, 17) and len(l4) >= (20 if proto == 6 else 8):
            if not (proto == 17 and l4[6:8] == b"\0\0") and not _valid_sum(pseudo, l4):
                out.append(f"{names[proto]} checksum")
        return out
    if ethertype == 0x86DD:
        if len(body) < 40 or body[0] >> 4 != 6:
            return ["IPv6 header"]
        plen = int.from_bytes(body[4:6], "big")
        if plen == 0 or 40 + plen > len(body):
            return [f"IPv6 payload length {plen}, {len(body) - 40} bytes there"]
        nh, rest = body[6], body[40:40 + plen]
        while nh in (0, 43, 60):        # hop-by-hop, routing, destination options
            if len(rest) < 8:
                return ["extension header cut"]
            if nh == 43 and rest[3]:
                return []               # still routing: summed for its final destination
            nh, rest = rest[0], rest[(rest[1] + 1) * 8:]
        if nh == 44:                    # a fragment: only a whole datagram can be summed
            return [] if len(rest) >= 8 else ["fragment header cut"]
        pseudo = body[8:40] + len(rest).to_bytes(4, "big") + bytes([0, 0, 0, nh])
        if nh in names and len(rest) >= {6: 20, 17: 8, 58: 4}[nh]:
            if not _valid_sum(pseudo, rest):
                return [f"{names[nh]} checksum"]
        return []
    return [f"ethertype {ethertype:#x}"]


def assert_valid(frame: bytes) -> None:
    assert problems(frame) == [], Ether(frame).summary()
