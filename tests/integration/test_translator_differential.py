"""Differential test against TAYGA: the same packets through our translator and through
TAYGA (`engine: tayga`), each on `topologies/nat46-bench.yaml`, and what comes out compared
field by field. Every difference must be declared below with the RFC section that decides
it; an undeclared difference fails the test, and so does a declared one that no longer
happens (the list stays true).

    client 192.0.2.10 --- gw (ours | TAYGA) --- node1 --- pod0 fd00:10:244:1::10 = 203.0.113.16
    (the client is 2001:db8:64::c000:20a to the pods)

Packets are written onto the wire with AF_PACKET: IPv4 ones from the client's eth0 to the
gateway, IPv6 ones from node1's eth0 as if the pod sent them. Captured: what arrives on the far
side (node1's eth0 for IPv6 to the pod, the client's eth0 for IPv4 to the client) and on the
near side (what comes back to the sender: errors of the translator or of the gateway's
kernel, and the pod's or client's own answers). ICMP rate limits are off in every namespace
so that answers do not depend on timing.
"""

from __future__ import annotations

import fnmatch
import os
import select
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from scapy.layers.inet import ICMP, IP, IPOption_RR, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6PacketTooBig, \
    ICMPv6TimeExceeded, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, \
    IPv6ExtHdrRouting
from scapy.layers.l2 import Ether
from scapy.packet import NoPayload

from lab.datapath.registry import DATAPATHS
from lab.lab import Lab
from lab.topology import parse
from packet_checks import problems

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
CLIENT4, CLIENT6 = "192.0.2.10", "2001:db8:64::c000:20a"
POD4, POD6 = "203.0.113.16", "fd00:10:244:1::10"
SERVER6 = "2001:db8:64::c633:640a"               # 198.51.100.10 through the prefix
NODE6 = "fd00:0:0:1::2"                          # an IPv6 router without an IPv4 address
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def v6(addr4: str) -> str:
    from ipaddress import IPv4Address
    return f"2001:db8:64::{IPv4Address(addr4)}"


@dataclass(frozen=True)
class Probe:
    name: str
    direction: str                   # "46": client -> pod, "64": pod -> client
    packet: Callable[[], Any]        # the IP packet (scapy), without Ethernet
    section: str                     # the RFC section it exercises


def _first_fragment(ip, port: int) -> bytes:
    """The first 104 bytes of a 208-byte UDP datagram from the pod to the client (or the
    client to the pod), its checksum that of the whole."""
    src, dst = (POD6, CLIENT6) if ip is IPv6 else (CLIENT4, POD4)
    whole = bytes(ip(src=src, dst=dst) / UDP(sport=port, dport=9) / bytes(200))
    return whole[40 if ip is IPv6 else 20:][:104]


def _quoted4(n=40):
    return IP(src=POD4, dst=CLIENT4, ttl=3) / UDP(sport=3000, dport=53) / bytes(n)


def _quoted6(n=40):
    return IPv6(src=CLIENT6, dst=POD6, hlim=3) / UDP(sport=53, dport=3000) / bytes(n)


PROBES = [
    # IPv4 -> IPv6 (RFC 7915 4)
    Probe("tcp-syn", "46", lambda: IP(src=CLIENT4, dst=POD4, tos=0x28, flags="DF") /
          TCP(sport=40000, dport=9, flags="S", options=[("MSS", 1460)]), "4.1, 4.5"),
    Probe("udp", "46", lambda: IP(src=CLIENT4, dst=POD4, id=77) / UDP(sport=40001, dport=9) /
          bytes(100), "4.1, 4.5"),
    Probe("udp-zero-checksum", "46", lambda: IP(src=CLIENT4, dst=POD4) /
          UDP(sport=40002, dport=9, chksum=0) / bytes(64), "4.5"),
    Probe("echo", "46", lambda: IP(src=CLIENT4, dst=POD4) / ICMP(type=8, id=7, seq=1) /
          bytes(56), "4.2"),
    Probe("ipv4-options", "46", lambda: IP(src=CLIENT4, dst=POD4, options=[IPOption_RR()]) /
          UDP(sport=40003, dport=9) / b"opt", "4.1"),
    Probe("fragment", "46", lambda: IP(src=CLIENT4, dst=POD4, id=0x1234, flags="MF",
                                       proto=17) / _first_fragment(IP, 40004), "4.1"),
    Probe("udp-zero-checksum-fragment", "46", lambda: IP(src=CLIENT4, dst=POD4, id=0x1235,
                                                         flags="MF", proto=17) /
          bytes(UDP(sport=40009, dport=9, len=208, chksum=0) / bytes(200))[:104], "4.5"),
    Probe("df-clear-1400", "46", lambda: IP(src=CLIENT4, dst=POD4, id=0x2345) /
          UDP(sport=40005, dport=9) / bytes(1372), "4.1 (fragmentation)"),
    Probe("df-set-1480", "46", lambda: IP(src=CLIENT4, dst=POD4, flags="DF") /
          UDP(sport=40006, dport=9) / bytes(1452), "4.1"),
    Probe("ttl-1", "46", lambda: IP(src=CLIENT4, dst=POD4, ttl=1) /
          UDP(sport=40007, dport=9) / b"ttl", "4.1, 4.4"),
    Probe("special-source", "46", lambda: IP(src="127.0.0.1", dst=POD4) /
          UDP(sport=40008, dport=9) / b"spoofed", "4.1"),
    Probe("time-exceeded", "46", lambda: IP(src=CLIENT4, dst=POD4) / ICMP(type=11) /
          _quoted4(), "4.2, 4.3"),
    Probe("frag-needed-1000", "46", lambda: IP(src=CLIENT4, dst=POD4) /
          ICMP(type=3, code=4, nexthopmtu=1000) / _quoted4(1300), "4.2"),
    Probe("frag-needed-0", "46", lambda: IP(src=CLIENT4, dst=POD4) /
          ICMP(type=3, code=4, nexthopmtu=0) / _quoted4(1300), "4.2 (RFC 1191 plateaus)"),
    Probe("param-problem", "46", lambda: IP(src=CLIENT4, dst=POD4) /
          ICMP(type=12, code=0, ptr=8) / _quoted4(), "4.2"),
    # IPv6 -> IPv4 (RFC 7915 5)
    Probe("tcp-synack", "64", lambda: IPv6(src=POD6, dst=CLIENT6, tc=0x28, fl=0x12345) /
          TCP(sport=9, dport=40000, flags="SA"), "5.1, 5.5"),
    Probe("udp-small", "64", lambda: IPv6(src=POD6, dst=CLIENT6) / UDP(sport=9, dport=40001) /
          bytes(100), "5.1 (DF clear)"),
    Probe("udp-1300", "64", lambda: IPv6(src=POD6, dst=CLIENT6) / UDP(sport=9, dport=40001) /
          bytes(1300), "5.1 (DF set above 1260)"),
    Probe("echo6", "64", lambda: IPv6(src=POD6, dst=CLIENT6) / ICMPv6EchoRequest(id=7, seq=1) /
          bytes(56), "5.2"),
    Probe("hop-by-hop", "64", lambda: IPv6(src=POD6, dst=CLIENT6) / IPv6ExtHdrHopByHop() /
          UDP(sport=9, dport=40002) / b"hbh", "5.1"),
    Probe("fragment6", "64", lambda: IPv6(src=POD6, dst=CLIENT6) /
          IPv6ExtHdrFragment(nh=17, m=1, id=0xABCDEF) / _first_fragment(IPv6, 40003), "5.1.1"),
    Probe("routing-segments-left", "64", lambda: IPv6(src=POD6, dst=CLIENT6) /
          IPv6ExtHdrRouting(addresses=["2001:db8::1"], segleft=1) / UDP(sport=9, dport=40004),
          "5.1"),
    Probe("ext-after-fragment", "64", lambda: IPv6(src=POD6, dst=CLIENT6) /
          IPv6ExtHdrFragment(m=1, id=5) / IPv6ExtHdrDestOpt() / UDP(sport=9, dport=40005),
          "5.1"),
    Probe("payload-length-0", "64", lambda: IPv6(src=POD6, dst=CLIENT6, nh=59, plen=0),
          "5.1"),
    Probe("special-destination", "64", lambda: IPv6(src=POD6, dst=v6("127.0.0.1")) /
          UDP(sport=9, dport=40006) / b"lo", "5.1"),
    Probe("hop-limit-1", "64", lambda: IPv6(src=POD6, dst=CLIENT6, hlim=1) /
          UDP(sport=9, dport=40007) / b"hlim", "5.1, 5.4"),
    Probe("time-exceeded6", "64", lambda: IPv6(src=POD6, dst=CLIENT6) / ICMPv6TimeExceeded() /
          _quoted6(), "5.2, 5.3"),
    Probe("error-from-unmapped-router", "64", lambda: IPv6(src=NODE6, dst=CLIENT6) /
          ICMPv6DestUnreach(code=0) / _quoted6(), "5.2, RFC 6791"),
    Probe("packet-too-big", "64", lambda: IPv6(src=POD6, dst=CLIENT6) /
          ICMPv6PacketTooBig(mtu=1300) / _quoted6(1300), "5.2"),
]


def bench_topology(engine: str, name: str):
    """nat46-bench with the translator's own ICMP errors on (TAYGA sends its own always) and
    every device's tx checksumming off: checksums complete on the wire, as a capture needs
    them (a CHECKSUM_PARTIAL packet on veth is captured before the kernel completes it)."""
    data = yaml.safe_load((ROOT / "topologies/nat46-bench.yaml").read_text())
    data["name"] = name
    data["datapath"]["translator"]["engine"] = engine
    data["datapath"]["translator"]["icmp_errors"] = True
    for link in data["links"]:
        for end in link["ends"]:
            end["offloads"] = {"tx": False}
    return parse(yaml.safe_dump(data, sort_keys=False), file=f"nat46-bench.yaml ({engine})",
                 datapaths=DATAPATHS)


def _mac(node, ifname: str) -> str:
    return node.run(["cat", f"/sys/class/net/{ifname}/address"]).stdout.strip()


def _wanted(frame: bytes) -> bool:
    """IP packets of the probes: not ARP, neighbour discovery or MLD."""
    pkt = Ether(frame)
    if IP in pkt:
        return True
    if IPv6 in pkt:
        nh = pkt[IPv6].payload
        # MLD reports come behind a Hop-by-Hop header (Router Alert): skip it to see them
        while nh.__class__.__name__ == "IPv6ExtHdrHopByHop":
            nh = nh.payload
        return not (getattr(nh, "type", None) in (130, 131, 132, 133, 134, 135, 136, 143)
                    and nh.__class__.__name__.startswith("ICMPv6"))
    return False


class Wire:
    """An AF_PACKET socket on a node's device: what arrives, and sending frames."""

    def __init__(self, node, ifname: str):
        with node.entered():
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                      socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.sock.setblocking(False)
        self.mac = self.sock.getsockname()[4]

    def drain(self) -> list[bytes]:
        got = []
        while True:
            try:
                frame, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return got
            if addr[2] != PACKET_OUTGOING and _wanted(frame):
                got.append(frame)

    def close(self) -> None:
        self.sock.close()


def run_engine(engine: str) -> dict[str, dict[str, list[bytes]]]:
    """Every probe through ENGINE: {probe: {"far": frames, "near": frames}}."""
    out = {}
    with Lab(bench_topology(engine, f"xdf{engine[0]}{os.getpid() % 10000}"),
             datapaths=DATAPATHS) as lab:
        for node in lab.nodes.values():
            node.run(["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0",
                      "net.ipv6.icmp.ratelimit=0"], check=False)
        client, node1, gw = lab.node("client"), lab.node("node1"), lab.node("gw")
        ends = {"46": (Wire(client, "eth0"), _mac(gw, "eth-client"), Wire(node1, "eth0")),
                "64": (Wire(node1, "eth0"), _mac(gw, "eth-node"), Wire(client, "eth0"))}
        try:
            # neighbours resolved first, so that no probe waits on them
            for cmd in (["ping", "-c1", "-W1", POD4], ["ping", "-c1", "-W1", "fd00:0:0:2::1"]):
                client.run(cmd, check=False)
            lab.node("node1-pod0").run(["ping", "-c1", "-W1", CLIENT6], check=False)
            time.sleep(0.3)
            for probe in PROBES:
                near, gw_mac, far = ends[probe.direction]
                near.drain(), far.drain()
                ip = probe.packet()
                near.sock.send(bytes(Ether(src=near.mac, dst=gw_mac) / ip))
                deadline = time.monotonic() + 0.6
                while time.monotonic() < deadline:
                    select.select([near.sock, far.sock], [], [], 0.1)
                out[probe.name] = {"far": far.drain(), "near": near.drain()}
        finally:
            for wire in {w for e in ends.values() for w in (e[0], e[2])}:
                wire.close()
    return out


# --- field by field ------------------------------------------------------------------------------

def fields(frame: bytes) -> dict[str, Any]:
    """The frame's IP layers and everything after them, flattened: "<depth>:<layer>.<field>"
    -> value; checksum fields left out, replaced by what is wrong with the lengths and
    checksums of the whole (packet_checks.problems: checked independently of both engines)."""
    pkt = Ether(frame)
    out: dict[str, Any] = {"checks": tuple(problems(frame))}
    layer, depth = pkt.payload, 0
    while not isinstance(layer, NoPayload):
        depth += 1
        key = f"{depth}:{layer.__class__.__name__}"
        for f in layer.fields_desc:
            if f.name not in ("chksum", "cksum"):
                value = layer.getfieldval(f.name)
                out[f"{key}.{f.name}"] = bytes(value) if isinstance(value, (bytes, bytearray)) \
                    else repr(value)
        layer = layer.payload
    return out


def differences(ours: list[bytes], tayga: list[bytes]) -> dict[str, tuple[Any, Any]]:
    """Field -> (ours, TAYGA) where the two outputs differ; "count" when their numbers of
    packets do."""
    diff: dict[str, tuple[Any, Any]] = {}
    if len(ours) != len(tayga):
        diff["count"] = (len(ours), len(tayga))
    for i, (a, b) in enumerate(zip(sorted(ours, key=len), sorted(tayga, key=len))):
        fa, fb = fields(a), fields(b)
        for k in sorted(set(fa) | set(fb)):
            if fa.get(k) != fb.get(k):
                diff[f"#{i} {k}"] = (fa.get(k), fb.get(k))
    return diff


# --- what differs, and why ---------------------------------------------------------------------

# (probe pattern, side, field pattern) -> the RFC's word on it, and what each engine does.
# Patterns are fnmatch ones; a field is "#<packet> <depth>:<layer>.<field>" or "count".
HOPS = ("RFC 7915 4.1/5.1: \"Since the translator is a router, as part of forwarding the "
        "packet it needs to decrement either the IPv4 TTL (before the translation) or the IPv6 "
        "Hop Limit (after the translation)\": once. TAYGA on its TUN device costs three: the "
        "gateway kernel's forwarding into the TUN, TAYGA's own decrement, the forwarding out "
        "(the far end's answers quote it)")
DF_AND_ID = ("RFC 7915 5.1: DF is \"set to zero\" when \"the translated IPv4 packet is less "
             "than or equal to 1260 bytes\", and \"Identification: Set according to a Fragment "
             "Identification generator at the translator\" (RFC 6864 4.1: unique while its "
             "fragments may live); the same for a quoted packet (5.3). Ours: DF clear and a "
             "generated Identification; TAYGA 0.9.2 sets DF with Identification 0 on the "
             "packets the far end answers, and counts Identifications from 1")
DECLARED: dict[tuple[str, str, str], str] = {
    ("*", "far", "#* 1:IPv6.hlim"): HOPS,
    ("*", "far", "#* 1:IP.ttl"): HOPS,
    ("*", "near", "#* 1:IPv6.hlim"): HOPS,
    ("*", "near", "#* 1:IP.ttl"): HOPS,
    ("*", "near", "#* 3:IPerror.ttl"): HOPS,
    ("*", "near", "#* 3:IPerror6.hlim"): HOPS,
    ("*", "*", "#* 1:IP.id"): DF_AND_ID,
    ("*", "*", "#* 1:IP.flags"): DF_AND_ID,
    ("*", "*", "#* 3:IPerror.flags"): DF_AND_ID,
    ("udp-zero-checksum", "*", "count"):
        "RFC 7915 4.5: for IPv4 UDP without checksum the translator \"SHOULD provide a "
        "configuration function to allow: 1. Dropping the packet ... 2. Calculating an IPv6 "
        "checksum and forwarding the packet\": ours calculates (udp_zero: calculate, the "
        "default), TAYGA drops; the pod's Port Unreachable answers ours",
    ("udp-zero-checksum-fragment", "near", "count"):
        "RFC 7915 4.5: a first fragment without UDP checksum cannot be summed, \"the translator "
        "SHOULD drop the packet\"; 4.4: a discarded packet is answered with Destination "
        "Unreachable, code 13 (ours, icmp_errors on); TAYGA drops it silently",
    ("param-problem", "far", "count"):
        "RFC 7915 4.2: Parameter Problem codes 0 and 2 \"Translate to an ICMPv6 Parameter "
        "Problem (Type 4, Code 0)\" with the pointer of Figure 3 (TTL: 7); TAYGA drops them",
    ("routing-segments-left", "*", "count"):
        "RFC 7915 5.1: \"If a Routing header with a non-zero Segments Left field is present, "
        "then the packet MUST NOT be translated, and an ICMPv6 'parameter problem/erroneous "
        "header field encountered' (Type 4, Code 0) error message ... SHOULD be returned\": "
        "ours does; TAYGA translates the packet",
    ("ext-after-fragment", "*", "count"):
        "RFC 7915 5.1: \"If the Next Header field of the Fragment Header is an extension header "
        "... then the packet SHOULD be dropped and logged\"; ours drops it and answers with 5.4's "
        "Destination Unreachable code 1; TAYGA translates it, the Destination Options header "
        "becoming IPv4 payload",
    ("special-destination", "near", "#0 1:IPv6.src"):
        "RFC 7915 5.4: the translator's error comes from the translator: ours from its "
        "configured source (the gateway's own pair), TAYGA from its IPv4 address through the "
        "prefix",
    ("special-destination", "near", "#0 2:ICMPv6DestUnreach.code"):
        "RFC 7915 5.4: \"Type 1 (Destination Unreachable) and Code 1 (Communication with "
        "destination administratively prohibited), unless otherwise specified\"; TAYGA answers "
        "code 0 (no route)",
    ("hop-limit-1", "near", "#0 1:IPv6.fl"):
        "RFC 7915 4.1 (\"Flow Label: 0\"): ours decrements after translating (5.1 allows it), "
        "so the Time Exceeded is the IPv4 forwarding's, translated; TAYGA's is the IPv6 "
        "forwarding's, with an automatic flow label",
    ("hop-limit-1", "near", "#0 1:IPv6.tc"):
        "RFC 7915 4.1 (\"Traffic Class: ... copied from the IPv4 TOS\"): ours is the IPv4 "
        "forwarding's Time Exceeded (precedence 6, 0xc0) translated; TAYGA's the IPv6 "
        "forwarding's, traffic class 0",
    ("ttl-1", "near", "#0 1:IP.tos"):
        "RFC 7915 4.1: ours decrements after translating, so the Time Exceeded is the IPv6 "
        "forwarding's (traffic class 0) translated back; TAYGA's the IPv4 forwarding's, "
        "precedence 6 (0xc0)",
    ("ttl-1", "near", "#0 3:IPerror.id"):
        "RFC 7915 5.1 and 5.3: the quoted packet is rebuilt from its IPv6 form, and an "
        "unfragmented IPv6 packet carries no Identification (0 in the quote); TAYGA's error "
        "quotes the IPv4 original",
    ("error-from-unmapped-router", "far", "#0 1:IP.src"):
        "RFC 6791 and RFC 7915 5.1: an error from an IPv6 router without an IPv4 address takes "
        "an address of the pool, or the translator's own: ours the gateway's (its own pair), "
        "TAYGA its ipv4-addr",
}


def _declaration(probe: str, side: str, key: str) -> tuple[str, str, str] | None:
    return next((d for d in DECLARED if fnmatch.fnmatch(probe, d[0]) and
                 fnmatch.fnmatch(side, d[1]) and fnmatch.fnmatch(key, d[2])), None)


@pytest.fixture(scope="module")
def outputs(bpf_build):
    import shutil
    if shutil.which("tayga") is None:
        pytest.skip("TAYGA is not installed (Debian package tayga; `make deps` installs it)")
    return {"ours": run_engine("bpf"), "tayga": run_engine("tayga")}


def test_same_packets_through_both_engines(outputs):
    undeclared, seen = [], set()
    for probe in PROBES:
        for side in ("far", "near"):
            diff = differences(outputs["ours"][probe.name][side],
                               outputs["tayga"][probe.name][side])
            for key, (a, b) in diff.items():
                declared = _declaration(probe.name, side, key)
                if declared is None:
                    if key == "count":
                        a, b = ([Ether(f).summary() for f in outputs[e][probe.name][side]]
                                for e in ("ours", "tayga"))
                    undeclared.append(f"{probe.name} ({probe.section}) {side} {key}: "
                                      f"ours {a!r}, TAYGA {b!r}")
                else:
                    seen.add(declared)
    assert not undeclared, "undeclared differences:\n" + "\n".join(undeclared)
    assert set(DECLARED) == seen, f"declared, but no longer different: {set(DECLARED) - seen}"
