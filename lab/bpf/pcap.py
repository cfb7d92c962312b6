"""Offline runs: every packet of a capture file through a program with BPF_PROG_TEST_RUN.

Input is a pcap or pcapng file with Ethernet frames (link type 1) or raw IP packets (101 raw
IP, 228 IPv4, 229 IPv6). Programs see Ethernet frames, so raw IP is wrapped in an Ethernet
header whose ethertype follows the packet's IP version, and unwrapped after the run. Passed and
redirected packets go to the output pcap, in the input's link type; for 228/229 the output's
IP version decides (a 4->6 translator writes 229, mixed versions 101). Each packet gets a
verdict (passed, dropped, redirected, or error for a packet the kernel would not run) with the
program's return code. A malformed or unsupported file is an InputError (exit code 2).
"""

from __future__ import annotations

import json
import struct
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.bpf import testrun
from lab.errors import InputError

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6 = 1, 101, 228, 229
LINKTYPES = {LINKTYPE_ETHERNET: "Ethernet", LINKTYPE_RAW: "raw IP",
             LINKTYPE_IPV4: "raw IPv4", LINKTYPE_IPV6: "raw IPv6"}
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD

# The Ethernet header put around raw IP packets (locally administered addresses).
WRAP_DST = bytes.fromhex("020000000002")
WRAP_SRC = bytes.fromhex("020000000001")
ETH_HLEN = 14
ERROR = "error"


@dataclass
class Record:
    data: bytes
    sec: int
    frac: int       # microseconds, or nanoseconds if the file is nanosecond-resolution
    wirelen: int


@dataclass
class Capture:
    path: str
    linktype: int
    nano: bool
    snaplen: int = 0xFFFF
    records: list[Record] = field(default_factory=list)


def _fail(path: str, what: str) -> InputError:
    return InputError(what, path)


def read(path: str) -> Capture:
    """Read a capture, refusing what the runner cannot use, with the file and the reason."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapNgReader, RawPcapReader

    try:
        reader = RawPcapReader(path)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a capture file") from None
    except Scapy_Exception as e:
        raise _fail(path, f"not a pcap or pcapng file ({e})") from None
    with reader:
        if isinstance(reader, RawPcapNgReader):
            cap = Capture(path, -1, nano=True)
            for data, meta in _records(reader, path):
                if cap.linktype == -1:
                    cap.linktype = meta.linktype
                elif meta.linktype != cap.linktype:
                    raise _fail(path, f"packet {len(cap.records) + 1}: link type "
                                f"{meta.linktype} after {cap.linktype}; one link type per file")
                ts = (meta.tshigh << 32 | meta.tslow) * 10**9 // meta.tsresol
                cap.records.append(Record(data, ts // 10**9, ts % 10**9, meta.wirelen))
        else:
            cap = Capture(path, reader.linktype, nano=reader.nano, snaplen=reader.snaplen)
            for data, meta in _records(reader, path):
                cap.records.append(Record(data, meta.sec, meta.usec, meta.wirelen))
    if cap.linktype not in LINKTYPES and cap.records:
        raise _fail(path, f"link type {cap.linktype} is not supported (supported: " +
                    ", ".join(f"{k} {v}" for k, v in LINKTYPES.items()) + ")")
    if cap.linktype == -1:
        cap.linktype = LINKTYPE_ETHERNET  # an empty pcapng names no interface
    return cap


def _records(reader: Any, path: str) -> Iterator[tuple[bytes, Any]]:
    n = 0
    while True:
        try:
            data, meta = reader._read_packet(size=1 << 30)
        except EOFError:
            return
        n += 1
        caplen = getattr(meta, "caplen", None)
        if caplen is not None and len(data) != caplen:
            raise _fail(path, f"packet {n}: truncated record ({len(data)} of {caplen} bytes)")
        yield data, meta


def write(path: str, linktype: int, nano: bool, records: list[Record],
          snaplen: int = 0xFFFF) -> None:
    """A classic pcap (what tcpdump and wrpcap write) with LINKTYPE and RECORDS."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    snaplen = max([snaplen, *(len(r.data) for r in records)])
    with open(path, "wb") as f:
        f.write(struct.pack("=IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for r in records:
            f.write(struct.pack("=IIII", r.sec, r.frac, len(r.data), r.wirelen))
            f.write(r.data)


def wrap_ip(packet: bytes, linktype: int = LINKTYPE_RAW) -> bytes:
    """An Ethernet frame around a raw IP packet, ethertype from the IP version (or the
    link type, for files that say which version they hold)."""
    version = {LINKTYPE_IPV4: 4, LINKTYPE_IPV6: 6}.get(linktype)
    if version is None:
        version = packet[0] >> 4 if packet else 0
    if version not in (4, 6):
        raise ValueError(f"IP version {version} is neither 4 nor 6")
    ethertype = ETH_P_IP if version == 4 else ETH_P_IPV6
    return WRAP_DST + WRAP_SRC + ethertype.to_bytes(2, "big") + packet


def unwrap_ip(frame: bytes) -> bytes:
    if len(frame) < ETH_HLEN:
        raise ValueError(f"the program left {len(frame)} bytes, less than an Ethernet header")
    return frame[ETH_HLEN:]


@dataclass
class PacketVerdict:
    index: int                 # 1-based, as Wireshark numbers packets
    verdict: str               # passed, dropped, redirected, error
    retval: int | None = None
    code: str | None = None
    len_in: int = 0
    len_out: int | None = None
    out_index: int | None = None  # its place in the output pcap
    error: str | None = None


@dataclass
class PcapRun:
    program: str
    prog_type: str
    input: str
    output: str
    linktype_in: int
    linktype_out: int
    packets: list[PacketVerdict]

    def counts(self) -> dict[str, int]:
        c = Counter(p.verdict for p in self.packets)
        return {k: c.get(k, 0) for k in (testrun.PASSED, testrun.DROPPED, testrun.REDIRECTED,
                                          ERROR)}

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "type": self.prog_type, "input": self.input,
                "output": self.output,
                "linktype": {"in": self.linktype_in, "out": self.linktype_out},
                "counts": self.counts(),
                "packets": [{k: v for k, v in asdict(p).items() if v is not None}
                            for p in self.packets]}

    def summary(self) -> str:
        c = self.counts()
        errs = f", {c[ERROR]} not run" if c[ERROR] else ""
        return (f"{len(self.packets)} packets through {self.program}: {c['passed']} passed, "
                f"{c['dropped']} dropped, {c['redirected']} redirected{errs} -> {self.output} "
                f"({c['passed'] + c['redirected']} packets, {LINKTYPES[self.linktype_out]})")


def run(prog: Any, src: str, dst: str, ctx: Mapping[str, Any] | None = None) -> PcapRun:
    """Run every packet of SRC through PROG (a loaded Program); write what leaves to DST."""
    cap = read(src)
    raw = cap.linktype != LINKTYPE_ETHERNET
    verdicts: list[PacketVerdict] = []
    out: list[Record] = []
    for i, rec in enumerate(cap.records, 1):
        v = PacketVerdict(i, ERROR, len_in=len(rec.data))
        verdicts.append(v)
        try:
            frame = wrap_ip(rec.data, cap.linktype) if raw else rec.data
        except ValueError as e:
            v.error = str(e)
            continue
        try:
            result = testrun.run(prog, frame, ctx)
        except OSError as e:
            v.error = str(e.strerror or e)
            continue
        v.verdict, v.retval, v.code = result.verdict, result.retval, result.code
        if result.verdict == testrun.DROPPED:
            continue
        try:
            data = unwrap_ip(result.data) if raw else result.data
        except ValueError as e:
            v.verdict, v.error = ERROR, str(e)
            continue
        v.len_out, v.out_index = len(data), len(out) + 1
        # A packet the program left unchanged keeps its original wire length.
        wirelen = rec.wirelen if data == rec.data else len(data)
        out.append(Record(data, rec.sec, rec.frac, wirelen))
    linktype_out = _output_linktype(cap.linktype, out)
    write(dst, linktype_out, cap.nano, out, cap.snaplen)
    name = f"{prog.object.name}:{prog.name}" if hasattr(prog, "object") else prog.name
    return PcapRun(name, "xdp" if prog.is_xdp else "tc", src, dst, cap.linktype, linktype_out,
                   verdicts)


def _output_linktype(linktype: int, out: list[Record]) -> int:
    if linktype not in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        return linktype
    versions = {r.data[0] >> 4 for r in out if r.data}
    if versions == {4}:
        return LINKTYPE_IPV4
    if versions == {6}:
        return LINKTYPE_IPV6
    return linktype if not versions else LINKTYPE_RAW


def report(result: PcapRun, as_json: bool, stream: Any = None) -> int:
    """Print RESULT as the CLI does (summary line, or --json) and return the exit code."""
    stream = stream or sys.stdout
    if as_json:
        json.dump(result.to_dict(), stream, indent=2)
        stream.write("\n")
    else:
        stream.write(result.summary() + "\n")
    return 0
