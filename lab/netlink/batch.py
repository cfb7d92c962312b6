"""Batched rtnetlink requests: many messages per sendmsg(), every ack checked.

The kernel processes the messages of one netlink datagram in order and acks each, carrying on
after a failure, so a whole namespace's configuration is one or two system calls. Each request
carries a description ("gw:eth0: add address 192.0.2.1/24") that a failure is reported with,
together with the kernel's extended-ack message when it gives one.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2.netlink import nlmsg

from lab.errors import LabError

log = logging.getLogger("lab.netlink")

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_ROOT, NLM_F_MATCH = 0x100, 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_ACK_TLVS = 0x200
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLMSGERR_ATTR_MSG = 1

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
MAX_DATAGRAM = 60 * 1024  # stay well within the kernel's per-sendmsg limits


class NetlinkError(LabError):
    def __init__(self, failures: list[tuple[str, int, str]]):
        self.failures = failures
        lines = [f"{desc}: {os.strerror(code)}" + (f" ({msg})" if msg else "")
                 for desc, code, msg in failures]
        more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
        super().__init__("; ".join(lines[:5]) + more)

    @property
    def errno(self) -> int:
        return self.failures[0][1]


def open_socket() -> socket.socket:
    """An rtnetlink socket in the calling thread's network namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                         NETLINK_ROUTE)
    configure_socket(sock)
    return sock


def configure_socket(sock: socket.socket) -> None:
    # Big buffers: a batch of hundreds of requests gets as many acks back at once.
    for opt, size in ((SO_SNDBUFFORCE, 4 << 20), (SO_RCVBUFFORCE, 16 << 20)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
        except PermissionError:
            pass
    sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    sock.bind((0, 0))


@dataclass
class _Pending:
    seq: int
    description: str
    ignore: tuple[int, ...]


class RtnlBatch:
    """Requests queued for one rtnetlink socket, sent together by flush()."""

    _seq = 0

    def __init__(self, sock: socket.socket, label: str = ""):
        self.sock, self.label = sock, label
        self._chunks: list[bytearray] = [bytearray()]
        self._pending: list[list[_Pending]] = [[]]

    def __len__(self) -> int:
        return sum(len(p) for p in self._pending)

    @classmethod
    def _next_seq(cls) -> int:
        cls._seq = (cls._seq + 1) & 0xFFFFFFFF
        return cls._seq

    def add(self, msg_type: int, msg: nlmsg, description: str, create: bool = False,
            ignore: tuple[int, ...] = ()) -> None:
        """Queue MSG. `create` adds NLM_F_CREATE|NLM_F_EXCL; errnos in IGNORE are not errors."""
        seq = self._next_seq()
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | (
            NLM_F_CREATE | NLM_F_EXCL if create else 0)
        msg["header"]["sequence_number"] = seq
        msg["header"]["pid"] = 0
        msg.encode()
        data = msg.data
        if len(self._chunks[-1]) + len(data) > MAX_DATAGRAM and self._chunks[-1]:
            self._chunks.append(bytearray())
            self._pending.append([])
        self._chunks[-1] += data
        self._pending[-1].append(_Pending(seq, description, ignore))
        log.info("%s%s", f"[{self.label}] " if self.label else "", description)

    def flush(self) -> None:
        """Send everything queued; raise NetlinkError listing every request that failed."""
        failures: list[tuple[str, int, str]] = []
        chunks, pending = self._chunks, self._pending
        self._chunks, self._pending = [bytearray()], [[]]
        for chunk, reqs in zip(chunks, pending):
            if not reqs:
                continue
            self.sock.send(chunk)
            by_seq = {r.seq: r for r in reqs}
            while by_seq:
                for seq, code, ext in _read_acks(self.sock):
                    req = by_seq.pop(seq, None)
                    if req is None or code == 0 or code in req.ignore:
                        continue
                    failures.append((req.description, code, ext))
        if failures:
            raise NetlinkError(failures)


def _read_acks(sock: socket.socket) -> Iterator[tuple[int, int, str]]:
    buf = sock.recv(1 << 20)
    off = 0
    while off + _HDR.size <= len(buf):
        length, mtype, flags, seq, _ = _HDR.unpack_from(buf, off)
        if length < _HDR.size:
            break
        if mtype == NLMSG_ERROR:
            code = -struct.unpack_from("=i", buf, off + 16)[0]
            yield seq, code, _ext_ack_message(buf, off, length, flags)
        off += (length + 3) & ~3


def _ext_ack_message(buf: bytes, off: int, length: int, flags: int) -> str:
    if not flags & NLM_F_ACK_TLVS:
        return ""
    pos, end = off + 16 + 4 + 16, off + length  # nlmsghdr, error, echoed (capped) header
    while pos + 4 <= end:
        alen, atype = struct.unpack_from("=HH", buf, pos)
        if alen < 4:
            break
        if atype == NLMSGERR_ATTR_MSG:
            return buf[pos + 4:pos + alen].split(b"\0", 1)[0].decode(errors="replace")
        pos += (alen + 3) & ~3
    return ""


def request(sock: socket.socket, msg_type: int, msg: nlmsg, msg_class: type[nlmsg],
            dump: bool = False) -> list[nlmsg]:
    """One request with its answer(s) decoded as MSG_CLASS (a get, or a dump with dump=True)."""
    seq = RtnlBatch._next_seq()
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
    msg["header"]["sequence_number"] = seq
    msg.encode()
    sock.send(msg.data)
    out: list[nlmsg] = []
    while True:
        buf = sock.recv(1 << 20)
        off = 0
        while off + _HDR.size <= len(buf):
            length, mtype, flags, rseq, _ = _HDR.unpack_from(buf, off)
            if length < _HDR.size:
                return out
            if rseq == seq:
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", buf, off + 16)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return out
                if mtype == NLMSG_DONE:
                    return out
                reply = msg_class(buf[off:off + length])
                reply.decode()
                out.append(reply)
                if not dump:
                    return out
            off += (length + 3) & ~3


__all__ = ["RtnlBatch", "NetlinkError", "open_socket", "request"]
