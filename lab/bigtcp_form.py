"""How the running kernel writes an IPv6 BIG TCP packet (GSO above 64 KB) on the wire, found by
sending one.

Older kernels (6.12 and 6.18 measured) give such a packet payload length 0 and an 8-byte
Hop-by-Hop header with an RFC 2675 Jumbo Payload option; kernels with the "BIG TCP without
HBH" series (netdev, 2026; 7.2 and 7.3 measured) leave payload length 0 alone and take the
length from the skb, as IPv4 BIG TCP does with tot_len 0.
A translator building IPv6 super-packets from IPv4 ones must use the form of the kernel whose
GSO and receive paths will handle them, and the version number does not say which (stable
and distribution kernels backport), so the lab asks the kernel itself: two throwaway
namespaces joined by a veth with BIG TCP on, one TCP stream, and a packet socket on the
sender's veth reading the IPv6 header of the first packet above 64 KB as it leaves (after the
transmit path's GSO checks, as the peer receives it). About 0.1 s natively; the answer is kept
per boot in /run/lab.

    ipv6_form()  ->  "hbh-jumbo" | "zero"   (the names of the big packet counter's lenfield)
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import struct
import threading
import time
from collections.abc import Iterator

from lab import netns
from lab.bpf.pktcount import LEN_JUMBO_HBH, LEN_ZERO
from lab.errors import LabError

FORMS = (LEN_JUMBO_HBH, LEN_ZERO)
DESCRIPTIONS = {
    LEN_JUMBO_HBH: "hbh-jumbo: payload length 0 and a Hop-by-Hop Jumbo Payload option "
                   "(RFC 2675), kernels before the 2026 \"BIG TCP without HBH\" series",
    LEN_ZERO: "zero: payload length 0 without a Hop-by-Hop header, the length is the "
              "skb's (kernels with that series)",
}
CACHE = "/run/lab/bigtcp-form.json"
PROBE_SIZE = 185000
ETH_P_ALL = 0x0003  # a protocol-specific packet socket does not see outgoing packets
ETH_P_IPV6 = 0x86DD
IPV6_TLV_JUMBO = 0xC2
NEXTHDR_HOP = 0
_A, _B = "fd00:b16::1", "fd00:b16::2"


class ProbeError(LabError):
    """The kernel sent no IPv6 packet above 64 KB with BIG TCP on (it has no BIG TCP)."""


def classify(ipv6_header: bytes) -> str | None:
    """The form of an IPv6 packet from its first 48 bytes; None if it gives its length."""
    payload_len, nexthdr = struct.unpack_from("!HB", ipv6_header, 4)
    if payload_len:
        return None
    if nexthdr == NEXTHDR_HOP and len(ipv6_header) >= 48 and ipv6_header[42] == IPV6_TLV_JUMBO:
        return LEN_JUMBO_HBH
    return LEN_ZERO


def _boot_key() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return f"{boot} {platform.release()}"


@contextlib.contextmanager
def _namespace_pair() -> Iterator[tuple[str, str]]:
    """Two unnamed namespaces, as /proc/self/fd paths netns.entered() takes; they vanish
    with their descriptors, so nothing outlives the probe."""
    fds = []
    try:
        for _ in range(2):
            with netns.anonymous():
                fds.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC))
        yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
    finally:
        for fd in fds:
            os.close(fd)


def _link_up(ns: str, ifname: str, address: str) -> None:
    from pyroute2 import IPRoute

    with netns.entered(ns), IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.link("set", index=idx, gso_max_size=PROBE_SIZE, gro_max_size=PROBE_SIZE)
        ipr.addr("add", index=idx, address=address, prefixlen=64, flags=0x02)  # NODAD
        ipr.link("set", index=idx, state="up")
        ipr.link("set", index=1, state="up")


def probe(timeout: float = 10.0) -> str:
    """Send one BIG TCP stream over a veth and return the form its super-packets had."""
    from pyroute2 import IPRoute

    with _namespace_pair() as (a, b):
        b_fd = os.open(b, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with netns.entered(a), IPRoute() as ipr:
                ipr.link("add", ifname="big0", kind="veth",
                         peer={"ifname": "big1", "net_ns_fd": b_fd})
        finally:
            os.close(b_fd)
        _link_up(a, "big0", _A)
        _link_up(b, "big1", _B)
        with netns.entered(a):
            tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                socket.htons(ETH_P_ALL))
        server = netns.socket_in(b, socket.AF_INET6, socket.SOCK_STREAM)
        client = netns.socket_in(a, socket.AF_INET6, socket.SOCK_STREAM)
        with tap, server, client:
            tap.bind(("big0", ETH_P_ALL))
            tap.settimeout(0.2)
            server.bind((_B, 0))
            server.listen(1)
            done = threading.Event()

            def sink() -> None:
                server.settimeout(timeout)
                with contextlib.suppress(OSError):
                    conn, _ = server.accept()
                    with conn:
                        conn.settimeout(timeout)
                        while not done.is_set() and conn.recv(1 << 20):
                            pass

            reader = threading.Thread(target=sink, daemon=True)
            reader.start()
            client.settimeout(timeout)
            client.connect(server.getsockname()[:2])

            def source() -> None:
                with contextlib.suppress(OSError):
                    chunk = bytes(1 << 20)
                    while not done.is_set():
                        client.sendall(chunk)

            writer = threading.Thread(target=source, daemon=True)
            writer.start()
            found = None
            end = time.monotonic() + timeout
            try:
                while found is None and time.monotonic() < end:
                    try:
                        frame = tap.recv(14 + 48)  # the Ethernet and IPv6 headers are enough
                    except TimeoutError:
                        continue
                    header = frame[14:]
                    if frame[12:14] == b"\x86\xdd" and len(header) >= 8 and \
                            header[6] in (NEXTHDR_HOP, socket.IPPROTO_TCP):
                        found = classify(header)
            finally:
                done.set()
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                writer.join(timeout)
                reader.join(timeout)
    if found is None:
        raise ProbeError(f"this kernel ({platform.release()}) sent no IPv6 packet above 64 KB "
                         f"over a veth with gso_max_size {PROBE_SIZE}: no IPv6 BIG TCP")
    return found


def resolve(form: str | None) -> str:
    """FORM if given (checked), else the running kernel's; a kernel without IPv6 BIG TCP gets
    the Hop-by-Hop form (it never builds a packet above 64 KB for it to matter)."""
    if form is not None:
        if form not in FORMS:
            raise ValueError(f"unknown IPv6 BIG TCP form {form!r} ({', '.join(FORMS)})")
        return form
    try:
        return ipv6_form()
    except ProbeError:
        return LEN_JUMBO_HBH


def ipv6_form(refresh: bool = False) -> str:
    """The running kernel's IPv6 BIG TCP form: probed once per boot, then read back."""
    key = _boot_key()
    if not refresh:
        with contextlib.suppress(OSError, ValueError, KeyError):
            with open(CACHE, encoding="utf-8") as f:
                cached = json.load(f)
            if cached["key"] == key and cached["form"] in FORMS:
                return cached["form"]
    form = probe()
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        tmp = f"{CACHE}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"key": key, "form": form}, f)
        os.rename(tmp, CACHE)
    return form
