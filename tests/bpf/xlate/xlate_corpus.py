"""Random and malformed packets for the translator's robustness tests: well-formed packets of
every kind the translator handles (built by scapy, checksums right), then the same with
their bytes damaged (cut short, bad lengths, bad IHL, flipped bits, garbage appended).

Deterministic for a seed, so a failure can be replayed.
"""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP, IPOption_LSRR, IPOption_NOP, IPOption_RR, \
    IPOption_SSRR, IPOption_Timestamp, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, \
    ICMPv6PacketTooBig, ICMPv6ParamProblem, ICMPv6TimeExceeded, IPv6, IPv6ExtHdrDestOpt, \
    IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.packet import Raw

from xlate_helpers import CLIENT4, CLIENT6, ETH, ROUTER4, ROUTER6, ROUTER6_UNMAPPED, SERVER4, \
    SERVER6, v6

# First two: the usual source and destination (client and pod); the rest: mapped and
# unmapped, special and broadcast addresses.
ADDR4 = [CLIENT4, SERVER4, ROUTER4, "198.51.100.77", "10.9.8.7", "0.0.0.0", "224.0.0.1",
         "255.255.255.255", "8.8.8.8"]
ADDR6 = [CLIENT6, SERVER6, ROUTER6, ROUTER6_UNMAPPED, v6("10.9.8.7"), "2001:db8:6::ff", "::1",
         "ff02::1", "fe80::1", "::"]


class Corpus:
    def __init__(self, seed: int, addr4: list[str] = ADDR4, addr6: list[str] = ADDR6):
        self.r = random.Random(seed)
        self.addr4, self.addr6 = addr4, addr6

    def choice(self, xs):
        return self.r.choice(xs)

    def payload(self, limit: int = 1400) -> bytes:
        n = self.r.choice([0, 1, 2, 3, 7, 8, 20, 63, 64, 65, 200, 511, 1000, 1232,
                           self.r.randrange(limit)])
        return self.r.randbytes(min(n, limit))

    # --- IPv4 ----------------------------------------------------------------------------

    def options4(self) -> list:
        r = self.r
        pick = [
            lambda: [],
            lambda: [IPOption_NOP()],
            lambda: [IPOption_RR(routers=[self.choice(self.addr4)] * r.randrange(1, 9))],
            lambda: [IPOption_Timestamp(flg=0, oflw=0, length=8, pointer=5, timestamp=[0])],
            lambda: [IPOption_LSRR(routers=[self.choice(self.addr4)], pointer=r.choice([4, 8]))],
            lambda: [IPOption_SSRR(routers=[SERVER4, CLIENT4])],
        ]
        return r.choice(pick)()

    def raw_options4(self, frame: bytes) -> bytes:
        """FRAME (Ethernet + IPv4 without options) with random option bytes spliced in."""
        from scapy.utils import checksum
        opts = self.r.randbytes(self.r.randrange(1, 41))
        opts += bytes(-len(opts) % 4)
        if len(opts) > 40:
            opts = opts[:40]
        ip = bytearray(frame[14:34])
        ip[0] = 0x40 | (5 + len(opts) // 4)
        ip[2:4] = (int.from_bytes(ip[2:4], "big") + len(opts)).to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        hdr = bytes(ip) + opts
        hdr = hdr[:10] + checksum(hdr).to_bytes(2, "big") + hdr[12:]
        return frame[:14] + hdr + frame[34:]

    def transport4(self, quoted: bool = False):
        r = self.r
        kind = r.randrange(7 if not quoted else 8)
        if kind == 0:
            return TCP(sport=r.randrange(65536), dport=r.randrange(65536),
                       flags=r.choice(["S", "SA", "A", "FA", "R"]), seq=r.randrange(2**32))
        if kind == 1:
            return UDP(sport=r.randrange(65536), dport=r.randrange(65536))
        if kind == 2:
            return UDP(sport=r.randrange(65536), dport=53, chksum=0)
        if kind == 3:
            return ICMP(type=r.choice([0, 8]), id=r.randrange(65536), seq=r.randrange(65536))
        if kind == 4:
            return ICMP(type=r.randrange(256), code=r.randrange(20))
        if kind == 5:
            return Raw(self.payload(64))     # other protocols, set by the caller
        if kind == 6:
            return self.icmp4_error()
        return ICMP(type=r.choice([3, 11]), code=1) / Raw(self.payload(40))

    def icmp4_error(self):
        r = self.r
        t, c = r.choice([(3, r.randrange(16)), (11, r.randrange(2)), (12, r.choice([0, 2])),
                         (3, 4), (4, 0), (5, 1)])
        if r.random() < 0.25:
            quoted = Raw(self.payload(200))          # garbage in the quote
        else:
            inner = IP(src=self.choice(self.addr4), dst=self.choice(self.addr4), ttl=r.randrange(256),
                       flags=r.choice([0, "DF", "MF"]), options=self.options4()) / \
                self.transport4(quoted=True) / self.payload(1400)
            quoted = Raw(bytes(inner)[:r.choice([20, 28, 48, 100, 548, 1472, 10000])])
        fields = {"ptr": r.randrange(30)} if t == 12 else \
            {"nexthopmtu": r.choice([0, 68, 1280, 1400, 1500])} if (t, c) == (3, 4) else {}
        return ICMP(type=t, code=c, **fields) / quoted

    def ipv4(self) -> IP:
        r = self.r
        l4 = self.transport4()
        ip = IP(src=self.choice(self.addr4), dst=self.choice([self.addr4[1]] * 4 + self.addr4),
                tos=r.randrange(256), ttl=r.randrange(256), id=r.randrange(65536),
                flags=r.choice([0, "DF", "MF", 0, 0]),
                frag=r.choice([0, 0, 0, 0, r.randrange(8192)]), options=self.options4())
        if isinstance(l4, Raw):
            ip.proto = r.choice([47, 50, 132, 0, 44, 58, 41])
        return ip / l4 / self.payload()

    # --- IPv6 ----------------------------------------------------------------------------

    def exts6(self):
        r = self.r
        chain = []
        for _ in range(r.choice([0, 0, 0, 1, 2, 4, 8])):
            chain.append(r.choice([
                lambda: IPv6ExtHdrHopByHop(),
                lambda: IPv6ExtHdrDestOpt(),
                lambda: IPv6ExtHdrRouting(addresses=[SERVER6], segleft=r.choice([0, 0, 1])),
                lambda: IPv6ExtHdrFragment(m=r.randrange(2), offset=r.choice([0, 0, 17]),
                                           id=r.randrange(2**32)),
            ])())
        out = None
        for e in chain:
            out = e if out is None else out / e
        return out

    def transport6(self, quoted: bool = False):
        r = self.r
        kind = r.randrange(6 if not quoted else 7)
        if kind == 0:
            return TCP(sport=r.randrange(65536), dport=r.randrange(65536), flags="S")
        if kind == 1:
            return UDP(sport=r.randrange(65536), dport=r.randrange(65536))
        if kind == 2:
            return r.choice([ICMPv6EchoRequest, ICMPv6EchoReply])(id=r.randrange(65536))
        if kind == 3:
            return Raw(bytes([r.randrange(256), r.randrange(256)]) + self.payload(60))
        if kind == 4:
            return self.icmp6_error()
        if kind == 5:
            return Raw(self.payload(64))
        return ICMPv6TimeExceeded() / Raw(self.payload(40))

    def icmp6_error(self):
        r = self.r
        head = r.choice([ICMPv6DestUnreach(code=r.randrange(8)), ICMPv6TimeExceeded(),
                         ICMPv6PacketTooBig(mtu=r.choice([0, 1280, 1500, 99999])),
                         ICMPv6ParamProblem(code=r.randrange(3), ptr=r.randrange(48))])
        if r.random() < 0.25:
            return head / Raw(self.payload(200))
        inner = IPv6(src=self.choice(self.addr6), dst=self.choice(self.addr6), hlim=r.randrange(256))
        exts = self.exts6()
        if exts is not None:
            inner = inner / exts
        inner = inner / self.transport6(quoted=True) / self.payload(1400)
        return head / Raw(bytes(inner)[:r.choice([40, 48, 100, 1232, 10000])])

    def ipv6(self) -> IPv6:
        r = self.r
        ip = IPv6(src=self.choice(self.addr6), dst=self.choice([self.addr6[0]] * 4 + self.addr6),
                  tc=r.randrange(256), fl=r.choice([0, r.randrange(2**20)]),
                  hlim=r.randrange(256))
        exts = self.exts6()
        l4 = self.transport6()
        pkt = ip / exts if exts is not None else ip
        pkt = pkt / l4 / self.payload()
        if isinstance(l4, Raw) and exts is None:
            pkt.nh = r.choice([58, 47, 50, 59])
        return pkt

    # --- damage --------------------------------------------------------------------------

    def damage(self, frame: bytes) -> bytes:
        r = self.r
        b = bytearray(frame)
        how = r.randrange(7)
        if how == 0 and len(b) > 15:                      # cut anywhere
            return bytes(b[:r.randrange(14, len(b))])
        if how == 1 and len(b) > 18:                      # a length field
            at = 16 if b[12:14] == b"\x08\x00" else 18
            b[at:at + 2] = r.randrange(65536).to_bytes(2, "big")
        elif how == 2 and len(b) > 14:                    # version / IHL
            b[14] = r.randrange(256)
        elif how == 3:                                    # bits anywhere past L2
            for _ in range(r.randrange(1, 4)):
                i = r.randrange(14, len(b)) if len(b) > 14 else 0
                b[i] ^= 1 << r.randrange(8)
        elif how == 4:                                    # garbage after the packet
            b += r.randbytes(r.randrange(1, 100))
        elif how == 5 and len(b) > 34:                    # a transport header byte
            i = r.randrange(34, min(len(b), 80))
            b[i] = r.randrange(256)
        else:                                             # next header / protocol
            at = 23 if b[12:14] == b"\x08\x00" else 20
            if len(b) > at:
                b[at] = r.choice([0, 1, 6, 17, 43, 44, 58, 60, 255])
        return bytes(b)

    def frames(self, n: int) -> list[tuple[str, bytes]]:
        out = []
        for i in range(n):
            try:
                pkt = ETH / (self.ipv4() if self.r.random() < 0.5 else self.ipv6())
                frame = bytes(pkt)
            except Exception:          # scapy refusing an odd combination: try another
                continue
            if IP in pkt and not pkt[IP].options and self.r.random() < 0.1:
                frame = self.raw_options4(frame)
            if len(frame) > 3000:
                frame = frame[:3000]
            if self.r.random() < 0.5:
                out.append((f"#{i} damaged {pkt.summary()}", self.damage(frame)))
            else:
                out.append((f"#{i} {pkt.summary()}", frame))
        return out
