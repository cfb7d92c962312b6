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

from lab.bpf import testrun
from lab.bpf.features import has_test_run_checksum_complete
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
        # each tc packet once more as CHECKSUM_COMPLETE (check_checksum_complete()); off for
        # tests that count what each run of a packet changes (the IPv4 Identification)
        self.check_complete = hook == "tc" and has_test_run_checksum_complete()

    def configure(self, **settings: Any) -> TranslatorConfig:
        """BASE_CONFIG with SETTINGS on top (a value of None removes a setting)."""
        data = {k: v for k, v in {**BASE_CONFIG, **settings}.items() if v is not None}
        self.config = TranslatorConfig.from_dict(data)
        self.config.apply(self.obj)
        return self.config

    def _counts(self) -> list[int]:
        return [int(self.stats.lookup_sum(i) or 0) for i in range(len(self.names))]

    def __call__(self, pkt: Any) -> Result:
        frame = bytes(pkt)
        before = self._counts()
        out = run_packet(self.prog, frame)
        changed = [n for n, a, b in zip(self.names, before, self._counts()) if a != b]
        assert len(changed) == 1, f"one outcome per packet, got {changed}"
        if self.check_complete and not cuts_tail(frame, out.raw):
            check_checksum_complete(self.prog, frame, out.code, out.raw)
        return Result(out.verdict, out.code, changed[0], out.raw, Ether(out.raw))


def _without_ipv4_ident(frame: bytes) -> bytes:
    """FRAME with an outer IPv4 header's Identification and header checksum zeroed: the
    Identification generator gives each run its own (RFC 6864)."""
    if frame[12:14] != b"\x08\x00" or len(frame) < 34:
        return frame
    return frame[:18] + bytes(2) + frame[20:24] + bytes(2) + frame[26:]


def _ip_len(frame: bytes) -> int | None:
    """The length of the IP datagram in FRAME, as its header says (None: not IP)."""
    if frame[12:14] == b"\x08\x00" and len(frame) >= 34:
        return int.from_bytes(frame[16:18], "big")
    if frame[12:14] == b"\x86\xdd" and len(frame) >= 54:
        return 40 + int.from_bytes(frame[18:20], "big")
    return None


def _rfc4884_length(frame: bytes) -> int:
    """The RFC 4884 length attribute of an ICMP error in FRAME (0: none, or not an error)."""
    if frame[12:14] == b"\x08\x00" and len(frame) >= 42 and frame[23] == 1:
        icmp = 14 + (frame[14] & 0xF) * 4
        return frame[icmp + 5] if frame[icmp] in (3, 11, 12) else 0
    if frame[12:14] == b"\x86\xdd" and len(frame) >= 62 and frame[20] == 58:
        return frame[58] if frame[54] in (1, 3) else 0
    return 0


def cuts_tail(frame: bytes, out: bytes) -> bool:
    """Whether the program cut or re-laid the tail of FRAME to make OUT: Ethernet padding
    (bytes past the datagram) goes, an ICMP error is cut to the RFC's 1280 or 576 bytes or
    laid out anew around an RFC 4884 extension. bpf_skb_change_tail() does it, and leaves
    the skb CHECKSUM_NONE (__skb_trim_rcsum(), __skb_grow_rcsum()): the stack sums such a
    packet itself, and skb->csum means nothing any more."""
    length = _ip_len(frame)
    if length is not None and len(frame) > 14 + length:
        return True
    if len(out) - 14 in (576, 1280):
        return True
    return _rfc4884_length(frame) != 0


def check_checksum_complete(prog: Any, frame: bytes, code: str, raw: bytes) -> None:
    """FRAME once more through PROG as a NIC's CHECKSUM_COMPLETE skb, which the kernel checks
    afterwards: skb->csum must still sum what the program made of the packet (a translation
    rewrites, grows and shrinks headers; an ICMP error wraps the packet). The verdict and the
    bytes are those of the run without it."""
    again = testrun.run(prog, frame, checksum_complete=True)   # EBADMSG: skb->csum is stale
    assert again.code == code
    assert _without_ipv4_ident(again.data) == _without_ipv4_ident(raw)


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
