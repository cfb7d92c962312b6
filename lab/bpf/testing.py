"""Scapy packets in, scapy packets out: BPF programs under test, the way Cilium's bpf/tests
and the kernel's selftests/bpf drive them through BPF_PROG_TEST_RUN.

A packet without an Ethernet header (IP()/..., IPv6()/...) is wrapped in one for the run and
comes back as an IP/IPv6 packet; an Ethernet frame comes back as an Ethernet frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab.bpf import pcap, testrun


@dataclass(frozen=True)
class Outcome:
    verdict: str           # passed, dropped, redirected
    code: str              # TC_ACT_OK, XDP_PASS, ...
    retval: int
    raw: bytes             # the output as the program left it (an Ethernet frame)
    packet: Any            # scapy: Ether, or IP/IPv6 when the input had no Ethernet header
    ctx: dict[str, Any] | None

    @property
    def passed(self) -> bool:
        return self.verdict == testrun.PASSED

    @property
    def dropped(self) -> bool:
        return self.verdict == testrun.DROPPED

    @property
    def redirected(self) -> bool:
        return self.verdict == testrun.REDIRECTED


def _is_l3(pkt: Any) -> bool:
    from scapy.layers.l2 import Ether
    from scapy.packet import Packet
    return isinstance(pkt, Packet) and not isinstance(pkt, Ether)


def run_packet(prog: Any, pkt: Any, ctx: Mapping[str, Any] | None = None) -> Outcome:
    """Run one scapy packet (or an Ethernet frame as bytes) through PROG."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    l3 = _is_l3(pkt)
    frame = pcap.wrap_ip(bytes(pkt)) if l3 else bytes(pkt)
    r = testrun.run(prog, frame, ctx)
    if l3:
        body = pcap.unwrap_ip(r.data)
        version = body[0] >> 4 if body else 0
        out = IP(body) if version == 4 else IPv6(body) if version == 6 else body
    else:
        out = Ether(r.data)
    return Outcome(r.verdict, r.code, r.retval, r.data, out, r.ctx)


class PacketRunner:
    """A loaded program with a default context: `runner(pkt, ifindex=3)` -> Outcome."""

    def __init__(self, prog: Any, **ctx: Any):
        self.prog, self.ctx = prog, ctx

    def __call__(self, pkt: Any, **ctx: Any) -> Outcome:
        merged = {**self.ctx, **ctx}
        return run_packet(self.prog, pkt, merged or None)
