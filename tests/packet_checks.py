"""Lengths and checksums of a frame, checked with scapy's RFC 1071 checksum (never with the
code under test): shared by the translator's packet tests and its end-to-end ones."""

from __future__ import annotations

from scapy.utils import checksum


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
