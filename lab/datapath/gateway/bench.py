"""`lab bench prog gateway-tc|gateway-xdp`: ns/packet of the stateful gateway.

The packets are those of open connections, the gateway's steady state: a client's segments
to the VIP and the backend's answers, each way between the families (NAT46 and NAT64
services), a UDP flow, an ICMP error about a connection, and a packet that is none of the
gateway's business (the cost of looking and passing). The connections are opened before the
timing, by running their first packets through the program; each service has one backend,
so every packet's translation is known in advance.

New connections are not timed: BPF_PROG_TEST_RUN repeats one packet, which is a new
connection only the first time.
"""

from __future__ import annotations

from ipaddress import ip_address

from lab.bpf import bench, testrun
from lab.bpf.object import BpfObject
from lab.datapath.gateway.control import OBJECT, PROG_TC, PROG_XDP, Gateway
from lab.datapath.gateway.model import Backend, Frontend, Service, Settings

CLIENT4, VIP4, SNAT4, BACKEND4 = "192.0.2.10", "203.0.113.80", "198.51.100.1", "198.51.100.20"
CLIENT6, VIP6, SNAT6, BACKEND6 = ("2001:db8:c::10", "2001:db8:f::80", "fd00:0:0:1::1",
                                  "fd00:10:244:1::10")
CPORT, BPORT = 40000, 8080   # the client's port is in the SNAT range: the gateway keeps it


def _services() -> list[Service]:
    return [Service(Frontend(ip_address(VIP4), 80), (Backend(ip_address(BACKEND6), BPORT),)),
            Service(Frontend(ip_address(VIP4), 53, "udp"),
                    (Backend(ip_address(BACKEND6), 53),)),
            Service(Frontend(ip_address(VIP6), 80), (Backend(ip_address(BACKEND4), BPORT),))]


def _first_packets() -> list[bytes]:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    return [bytes(eth / IP(src=CLIENT4, dst=VIP4) / TCP(sport=CPORT, dport=80, flags="S")),
            bytes(eth / IP(src=CLIENT4, dst=VIP4) / UDP(sport=CPORT, dport=53)),
            bytes(eth / IPv6(src=CLIENT6, dst=VIP6) / TCP(sport=CPORT, dport=80, flags="S"))]


def mix() -> list[tuple[str, bytes]]:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
    from scapy.layers.l2 import Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    fwd6 = IPv6(src=SNAT6, dst=BACKEND6) / TCP(sport=CPORT, dport=BPORT, flags="A") / bytes(1232)
    packets = [
        ("tcp4-ack-64", eth / IP(src=CLIENT4, dst=VIP4) / TCP(sport=CPORT, dport=80,
                                                                flags="A") / bytes(10)),
        ("tcp4-1500", eth / IP(src=CLIENT4, dst=VIP4, flags="DF") /
         TCP(sport=CPORT, dport=80, flags="A") / bytes(1460)),
        ("tcp6-reply-1500", eth / IPv6(src=BACKEND6, dst=SNAT6) /
         TCP(sport=BPORT, dport=CPORT, flags="A") / bytes(1440)),
        ("udp4-dns", eth / IP(src=CLIENT4, dst=VIP4) / UDP(sport=CPORT, dport=53) / bytes(40)),
        ("udp6-reply", eth / IPv6(src=BACKEND6, dst=SNAT6) / UDP(sport=53, dport=CPORT) /
         bytes(120)),
        ("tcp6-nat64", eth / IPv6(src=CLIENT6, dst=VIP6) / TCP(sport=CPORT, dport=80,
                                                                 flags="A") / bytes(500)),
        ("tcp4-nat64-reply", eth / IP(src=BACKEND4, dst=SNAT4) /
         TCP(sport=BPORT, dport=CPORT, flags="A") / bytes(500)),
        ("icmp6-ptb", eth / IPv6(src=BACKEND6, dst=SNAT6) / ICMPv6PacketTooBig(mtu=1280) / fwd6),
        ("tcp4-other", eth / IP(src=CLIENT4, dst="192.0.2.99") / TCP(sport=1, dport=22,
                                                                      flags="A")),
    ]
    return [(label, bytes(p)) for label, p in packets]


def setup(obj: BpfObject) -> None:
    """Configure, add the services and open their connections."""
    from ipaddress import IPv4Address, IPv6Address

    gw = Gateway.from_object(obj)
    gw.configure(Settings(snat4=IPv4Address(SNAT4), snat6=IPv6Address(SNAT6)))
    for svc in _services():
        gw.add_service(svc)
    prog = obj.program(PROG_TC)
    for frame in _first_packets():
        r = testrun.run(prog, frame)
        if r.retval != 0:
            raise RuntimeError(f"gateway bench set-up: a first packet got {r.code}")


BENCH_CASES = tuple(
    bench.BenchCase(f"gateway-{hook}", OBJECT, program, mix, after_load=setup, rewrites=True,
                    description=f"stateful NAT46/NAT64 gateway at {hook}, open connections")
    for hook, program in (("tc", PROG_TC), ("xdp", PROG_XDP)))
