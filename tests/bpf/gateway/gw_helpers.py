"""For the gateway's packet tests: addresses, the gateway under test at either hook with a
configuration, and checks of lengths and checksums made with scapy's checksum code (never
with the code under test).

Addresses are documentation ranges: clients and VIPs of both families, the gateway's SNAT
addresses, backends of both families.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from scapy.layers.inet import IP, TCP, UDP, in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.layers.l2 import Ether
from scapy.utils import checksum

from lab.bpf import testrun
from lab.bpf.features import has_test_run_checksum_complete
from lab.datapath.gateway import (PROG_TC, PROG_XDP, Backend, Frontend, Gateway, Service,
                                  Settings)

HOOKS = ("tc", "xdp")

CLIENT4, CLIENT6 = "192.0.2.10", "2001:db8:c::10"
VIP4, VIP6 = "192.0.2.100", "2001:db8:f::100"
SNAT4, SNAT6 = "198.51.100.1", "2001:db8:1::1"
BACKENDS4 = ("198.51.100.20", "198.51.100.21", "198.51.100.22")
BACKENDS6 = ("2001:db8:2::20", "2001:db8:2::21", "2001:db8:2::22")
ROUTER4, ROUTER6 = "203.0.113.1", "2001:db8:ff::1"
BACKEND_PORT = 8080

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

# family combination -> (client, VIP, backends, SNAT address)
COMBOS = {
    "46": (CLIENT4, VIP4, BACKENDS6, SNAT6),
    "64": (CLIENT6, VIP6, BACKENDS4, SNAT4),
    "44": (CLIENT4, VIP4, BACKENDS4, SNAT4),
    "66": (CLIENT6, VIP6, BACKENDS6, SNAT6),
}


def ip_layer(src: str, dst: str, **kw: Any) -> Any:
    if ip_address(src).version == 4:
        return IP(src=src, dst=dst, **kw)
    names = {"ttl": "hlim", "tos": "tc"}
    return IPv6(src=src, dst=dst, **{names.get(k, k): v for k, v in kw.items()})


def settings(**kw: Any) -> Settings:
    base = dict(snat4=IPv4Address(SNAT4), snat6=IPv6Address(SNAT6))
    return Settings(**{**base, **kw})


def service(vip: str, backends: tuple[str, ...] | list[str], port: int = 80, proto: str = "tcp",
            weights: list[int] | None = None, selection: str = "maglev",
            states: list[str] | None = None) -> Service:
    bs = [Backend(ip_address(b), BACKEND_PORT, (weights or [1] * len(backends))[i],
                  (states or ["active"] * len(backends))[i]) for i, b in enumerate(backends)]
    return Service(Frontend(ip_address(vip), port, proto), tuple(bs), selection)


@dataclass
class Result:
    verdict: str         # passed, dropped, redirected
    code: str            # TC_ACT_OK, XDP_PASS, ...
    outcome: str         # the gateway's own account: new, forward, reply, pass, ...
    refused: str | None  # translation's reason, for drop_invalid
    raw: bytes
    packet: Any          # scapy Ether

    @property
    def l3(self) -> Any:
        return self.packet.payload


class GatewayUnderTest:
    """bpf/gateway.c at one hook, its control plane, and a packet runner that reports what
    the program counted for each packet."""

    def __init__(self, obj: Any, hook: str, settings_: Settings | None = None):
        self.obj, self.hook = obj, hook
        self.prog = obj.program(PROG_XDP if hook == "xdp" else PROG_TC)
        self.gw = Gateway.from_object(obj)
        self.gw.configure(settings_ or settings())

    def add(self, svc: Service) -> Service:
        return self.gw.add_service(svc)

    def _counts(self) -> dict[str, int]:
        s = self.gw.statistics()
        return {**s["outcomes"], **{f"refused:{k}": v for k, v in s["refused"].items()}}

    def __call__(self, pkt: Any) -> Result:
        before = self._counts()
        # At tc the skb comes in CHECKSUM_COMPLETE, as from a NIC with receive checksums,
        # and the kernel checks afterwards that skb->csum still sums the rewritten packet
        # (EBADMSG otherwise). The state is the gateway's, so a packet runs once: the
        # full-checksum arithmetic is the same without it.
        out = testrun.run(self.prog, bytes(pkt), checksum_complete=self.hook == "tc" and
                          has_test_run_checksum_complete())
        after = self._counts()
        changed = [k for k in after if after[k] != before.get(k, 0)]
        outcomes = [k for k in changed if not k.startswith("refused:")]
        assert len(outcomes) == 1, f"one outcome per packet, got {changed}"
        refused = [k.split(":", 1)[1] for k in changed if k.startswith("refused:")]
        return Result(out.verdict, out.code, outcomes[0], refused[0] if refused else None,
                      out.data, Ether(out.data))

    def rewrote(self, result: Result) -> bool:
        return result.verdict == "passed" and result.outcome in (
            "new", "forward", "reply", "icmp_error")


def problems(frame: bytes) -> list[str]:
    """What is wrong with the lengths or checksums of an Ethernet frame carrying IPv4 or IPv6
    with TCP, UDP or ICMP (empty: nothing). Quoted packets in ICMP errors are checked by the
    tests that make them."""
    out: list[str] = []
    eth = Ether(frame)
    body = frame[14:]
    if eth.type == 0x0800:
        ip = IP(body)
        hl = ip.ihl * 4
        if checksum(body[:hl]) != 0:
            out.append("IPv4 header checksum")
        if ip.len > len(body):
            return out + [f"IPv4 total length {ip.len}, {len(body)} bytes there"]
        l4 = body[hl:ip.len]
        if ip.proto == 1 and checksum(l4) != 0:
            out.append("ICMP checksum")
        elif ip.proto in (6, 17):
            if not (ip.proto == 17 and l4[6:8] == b"\0\0") and in4_chksum(ip.proto, ip, l4):
                out.append(f"{'TCP' if ip.proto == 6 else 'UDP'} checksum")
        return out
    if eth.type == 0x86DD:
        ip6 = IPv6(body)
        if 40 + ip6.plen != len(body):
            return [f"IPv6 payload length {ip6.plen}, {len(body) - 40} bytes there"]
        rest = body[40:]
        if ip6.nh in (6, 17, 58) and in6_chksum(ip6.nh, ip6, rest):
            out.append({6: "TCP", 17: "UDP", 58: "ICMPv6"}[ip6.nh] + " checksum")
        return out
    return [f"ethertype {eth.type:#x}"]


def assert_valid(frame: bytes) -> None:
    assert problems(frame) == [], Ether(frame).summary()


def l4_of(l3: Any) -> Any:
    return l3[TCP] if TCP in l3 else l3[UDP]


def addresses(l3: Any) -> tuple[str, str]:
    return l3.src, l3.dst


def ip4_checksum_fix(frame: bytearray, off: int = 14) -> None:
    """Recompute the IPv4 header checksum of FRAME in place (header at OFF, no options)."""
    frame[off + 10:off + 12] = b"\0\0"
    s = sum(struct.unpack("!10H", bytes(frame[off:off + 20])))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", frame, off + 10, ~s & 0xFFFF)


