"""Malformed packets for fuzzing the datapath's BPF programs through BPF_PROG_TEST_RUN, as
hypothesis strategies: a well-formed packet that a program would rewrite (its addresses are
the caller's), then damaged one to three ways: cut short, a length field or header length
set at random, bytes overwritten, bits flipped, garbage appended, a checksum spoiled.

    @given(frame=damaged(st.sampled_from(well_formed(flows, 800))))
    def test(frame): ...

and `check_output`, the rule every program must keep whatever comes in: a packet it rewrote
has lengths consistent with its bytes, and a checksum comes out wrong only where one went in
wrong (programs adjust sums incrementally, as RFC 1624 says, and never recompute a broken sum
into a valid one).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, IPOption_NOP, IPOption_RR, TCP, UDP
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.l2 import Ether

from packet_checks import problems

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
CHECKSUMS = {"TCP checksum", "UDP checksum", "ICMP checksum", "ICMPv6 checksum",
             "IPv4 header checksum"}

ports = st.integers(0, 65535)
payloads = st.one_of(st.binary(max_size=64), st.binary(min_size=500, max_size=1400))


# --- well-formed packets ------------------------------------------------------------------------

@st.composite
def ipv4(draw, src: str, dst: str):
    frag = draw(st.sampled_from([(0, 0), (0, 0), (0, 0), ("MF", 0), (0, 185), ("DF", 0)]))
    options = draw(st.sampled_from([[], [], [IPOption_NOP()],
                                    [IPOption_RR(routers=["192.0.2.1"])]]))
    return IP(src=src, dst=dst, ttl=draw(st.integers(0, 255)), tos=draw(st.integers(0, 255)),
              id=draw(st.integers(0, 65535)), flags=frag[0], frag=frag[1], options=options)


@st.composite
def ipv6(draw, src: str, dst: str):
    head = IPv6(src=src, dst=dst, hlim=draw(st.integers(0, 255)), tc=draw(st.integers(0, 255)),
                fl=draw(st.integers(0, 2**20 - 1)))
    ext = draw(st.sampled_from(["", "", "", "hbh", "dst", "rt", "frag", "frag-later"]))
    if ext == "hbh":
        head = head / IPv6ExtHdrHopByHop()
    elif ext == "dst":
        head = head / IPv6ExtHdrDestOpt()
    elif ext == "rt":
        head = head / IPv6ExtHdrRouting(segleft=draw(st.integers(0, 1)), addresses=[dst])
    elif ext == "frag":
        head = head / IPv6ExtHdrFragment(m=1, id=draw(st.integers(0, 2**32 - 1)))
    elif ext == "frag-later":
        head = head / IPv6ExtHdrFragment(offset=100, id=draw(st.integers(0, 2**32 - 1)))
    return head


@dataclass(frozen=True)
class Flow:
    """Where packets go: their source and destination addresses; the ports they may use
    (any, when empty); what they may be (tcp, udp, echo, error); and the packet that an ICMP
    error quotes (one the program sent the other way)."""
    src: str
    dst: str
    quote: object = None
    sports: tuple[int, ...] = ()
    dports: tuple[int, ...] = ()
    only: tuple[str, ...] = ()

    @property
    def version(self) -> int:
        return 6 if ":" in self.src else 4

    def kinds(self) -> list[str]:
        kinds = ["tcp", "udp", "echo"] + (["error"] if self.quote is not None else [])
        return [k for k in kinds if k in self.only] if self.only else kinds


@st.composite
def transport(draw, flow: Flow):
    """TCP, UDP, an ICMP echo or an ICMP error quoting flow.quote, as FLOW allows."""
    version = flow.version
    kind = draw(st.sampled_from(flow.kinds()))
    sport = draw(st.sampled_from(flow.sports) if flow.sports else ports)
    dport = draw(st.sampled_from(flow.dports) if flow.dports else ports)
    if kind == "tcp":
        opts = draw(st.sampled_from([[], [("MSS", 1460)], [("MSS", 1400), ("SAckOK", b""),
                                                           ("WScale", 7), ("NOP", None)]]))
        return TCP(sport=sport, dport=dport, seq=draw(st.integers(0, 2**32 - 1)),
                   flags=draw(st.sampled_from(["S", "SA", "A", "PA", "FA", "R"])),
                   options=opts) / draw(payloads)
    if kind == "udp":
        return UDP(sport=sport, dport=dport) / draw(payloads)
    if kind == "echo":
        ident, seq = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
        if version == 4:
            return ICMP(type=draw(st.sampled_from([0, 8])), id=ident, seq=seq) / draw(payloads)
        echo = draw(st.sampled_from([ICMPv6EchoRequest, ICMPv6EchoReply]))
        return echo(id=ident, seq=seq) / draw(payloads)
    quoted = bytes(flow.quote)[:draw(st.sampled_from([28, 48, 68, 576, 1232]))]
    if version == 4:
        return ICMP(type=3, code=draw(st.sampled_from([0, 1, 3, 4])),
                    nexthopmtu=draw(st.integers(0, 9000))) / quoted
    error = draw(st.sampled_from([ICMPv6DestUnreach(code=4), ICMPv6TimeExceeded(),
                                  ICMPv6PacketTooBig(mtu=draw(st.integers(0, 9000)))]))
    return error / quoted


@st.composite
def packets(draw, flows: list[Flow]) -> bytes:
    """A well-formed Ethernet frame along one of FLOWS, checksums computed."""
    flow = draw(st.sampled_from(flows))
    head = draw(ipv4(flow.src, flow.dst) if flow.version == 4 else ipv6(flow.src, flow.dst))
    return bytes(ETH / head / draw(transport(flow)))


def well_formed(flows: list[Flow], n: int) -> list[bytes]:
    """N frames of `packets(FLOWS)`, generated once: building a packet with scapy costs
    about 100 times running it through a program, so the fuzz tests damage these (a run of
    10,000 damaged frames takes seconds, not minutes)."""
    frames: list[bytes] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(packets(flows))
    def collect(frame: bytes) -> None:
        frames.append(frame)

    collect()
    return frames


# --- damage ---------------------------------------------------------------------------------------

# Offsets (from the start of the IP header) of fields that frame the packet: IPv4 version and
# IHL, total length, protocol; IPv6 payload length and next header; and, after a header of
# 20 or 40 bytes, TCP's data offset and UDP's length.
FIELDS4 = [(0, 1), (2, 2), (9, 1), (20 + 12, 1), (20 + 4, 2)]
FIELDS6 = [(4, 2), (6, 1), (40 + 12, 1), (40 + 4, 2), (40, 1)]


@st.composite
def damage(draw, frame: bytes) -> bytes:
    """One way of breaking FRAME."""
    b = bytearray(frame)
    ways = ["cut", "field", "overwrite", "flip", "append", "checksum"] if len(b) > 16 else \
        ["append"]                      # cut to (almost) nothing already
    how = draw(st.sampled_from(ways))
    if how == "cut":
        return bytes(b[:draw(st.integers(14, max(14, len(b) - 1)))])
    if how == "field":
        off, size = draw(st.sampled_from(FIELDS4 if b[12:14] == b"\x08\x00" else FIELDS6))
        if 14 + off + size <= len(b):
            b[14 + off:14 + off + size] = draw(st.binary(min_size=size, max_size=size))
        return bytes(b)
    if how == "overwrite":
        at = draw(st.integers(14, len(b)))
        data = draw(st.binary(min_size=1, max_size=16))
        b[at:at + len(data)] = data
        return bytes(b)
    if how == "flip":
        at = draw(st.integers(14, len(b) - 1))
        b[at] ^= 1 << draw(st.integers(0, 7))
        return bytes(b)
    if how == "append":
        return bytes(b) + draw(st.binary(min_size=1, max_size=64))
    # a transport checksum spoiled: its two bytes, wherever the transport header starts
    at = draw(st.integers(14, len(b) - 2))
    b[at:at + 2] = bytes([b[at] ^ 0xFF, b[at + 1]])
    return bytes(b)


@st.composite
def damaged(draw, frames) -> bytes:
    """A frame of FRAMES (a strategy), broken one to three ways."""
    frame = draw(frames)
    for _ in range(draw(st.integers(1, 3))):
        frame = draw(damage(frame))
    return frame


# --- the rule -------------------------------------------------------------------------------------

def skb_run_takes(frame: bytes) -> bool:
    """BPF_PROG_TEST_RUN refuses an skb whose ethertype says IPv4 or IPv6 without a whole
    base header (the kernel sets the skb up from it); XDP runs take such frames."""
    ethertype = frame[12:14]
    return not ((ethertype == b"\x08\x00" and len(frame) < 34) or
                (ethertype == b"\x86\xdd" and len(frame) < 54))


def check_output(frame: bytes, verdict: str, out: bytes) -> bool:
    """Assert the rule for one packet the program left as OUT; whether it rewrote it."""
    if verdict == "dropped" or out == frame:
        return False
    found = problems(out)
    broken = [p for p in found if p not in CHECKSUMS]
    assert not broken, f"lengths wrong in what came out: {broken}"
    wrong = [p for p in found if p in CHECKSUMS]
    if wrong:
        came_wrong = [p for p in problems(frame) if p in CHECKSUMS]
        assert came_wrong, f"the program made a checksum wrong: {wrong}"
    return True
