"""`lab bench prog`: nanoseconds per packet of a program over a fixed packet mix.

Timing comes from the kernel: BPF_PROG_TEST_RUN runs the program REPEAT times on a packet and
reports the average. A whole pass over the mix is one run; the result is the median of several
runs, next to the same measurement of an empty program (the harness's own cost), so that
datapath changes can be compared on this noisy shared machine by ratio, not by absolute time.

Programs that rewrite the packet (a translator turns IPv4 into IPv6) would see their own output
on the second repetition, because the kernel reuses the buffer; their cases set `rewrites` and
are timed one run per syscall instead (which adds a constant timer overhead, also visible in
the baseline).

Each datapath feature offers its programs as BenchCases, with their own mix and set-up;
`lab bench prog` (lab/commands/bench.py) gathers them.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.bpf import libbpf, testrun
from lab.bpf.object import BpfObject, Program
from lab.errors import UsageError

Packets = list[tuple[str, bytes]]  # (label, Ethernet frame)


@dataclass
class BenchCase:
    name: str                                   # what `lab bench prog NAME` takes
    object: str                                 # object under build/bpf (or a path)
    program: str
    packets: Callable[[], Packets]              # the packet mix
    before_load: Callable[[BpfObject], None] | None = None  # e.g. set globals
    after_load: Callable[[BpfObject], None] | None = None   # e.g. fill maps
    ctx: Mapping[str, Any] | None = None        # test-run context (__sk_buff / xdp_md fields)
    rewrites: bool = False                      # see the module docstring
    description: str = ""


def by_name(*groups: Iterable[BenchCase]) -> dict[str, BenchCase]:
    """The cases of GROUPS by name; a name offered twice is a mistake in the lab."""
    out: dict[str, BenchCase] = {}
    for case in (c for group in groups for c in group):
        if case.name in out:
            raise ValueError(f"bench case {case.name} is offered twice")
        out[case.name] = case
    return out


def default_mix() -> Packets:
    """A small mix of what a node's datapath sees: TCP/UDP/ICMP, IPv4/IPv6, small and MTU."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    v4 = dict(src="192.0.2.1", dst="198.51.100.7")
    v6 = dict(src="2001:db8::1", dst="2001:db8:1::7")
    mix = [
        ("tcp4-syn", eth / IP(**v4) / TCP(sport=40000, dport=80, flags="S")),
        ("tcp4-1500", eth / IP(**v4) / TCP(sport=40000, dport=80, flags="A") / bytes(1460)),
        ("udp4-dns", eth / IP(**v4) / UDP(sport=40001, dport=53) / bytes(40)),
        ("icmp4-echo", eth / IP(**v4) / ICMP() / bytes(56)),
        ("tcp6-syn", eth / IPv6(**v6) / TCP(sport=40000, dport=80, flags="S")),
        ("tcp6-1500", eth / IPv6(**v6) / TCP(sport=40000, dport=80, flags="A") / bytes(1440)),
        ("udp6-dns", eth / IPv6(**v6) / UDP(sport=40001, dport=53) / bytes(40)),
        ("icmp6-echo", eth / IPv6(**v6) / ICMPv6EchoRequest() / bytes(56)),
    ]
    return [(label, bytes(p)) for label, p in mix]


def case_for(name: str, known: Mapping[str, BenchCase]) -> BenchCase:
    """One of the KNOWN cases, or OBJECT:PROGRAM with the default mix."""
    if name in known:
        return known[name]
    if ":" in name:
        obj, prog = name.rsplit(":", 1)
        return BenchCase(name, obj, prog, default_mix, description="default packet mix")
    raise UsageError(f"no bench case '{name}' (known: {', '.join(sorted(known)) or 'none'}; "
                     "or give OBJECT:PROGRAM)")


@dataclass
class PacketTiming:
    label: str
    length: int
    code: str
    ns: float            # median over runs


@dataclass
class BenchResult:
    name: str
    program: str
    prog_type: str
    mode: str            # "repeat" (kernel loop) or "single" (one run per syscall)
    runs: int
    repeat: int
    ns_per_packet: float  # median over runs of the mix's mean
    min_ns: float
    max_ns: float
    baseline_ns: float    # an empty program of the same type, measured the same way
    packets: list[PacketTiming] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        how = (f"{self.repeat} repeats per packet" if self.mode == "repeat"
               else f"{self.repeat} single runs per packet")
        lines = [f"{self.name} ({self.program}, {self.prog_type}): {self.ns_per_packet:.1f} "
                 f"ns/packet (median of {self.runs} runs, {how}; min {self.min_ns:.1f}, "
                 f"max {self.max_ns:.1f})",
                 f"  empty {self.prog_type} program, same harness: {self.baseline_ns:.1f} "
                 "ns/packet"]
        for p in self.packets:
            lines.append(f"  {p.label:<14} {p.length:>5} B  {p.ns:8.1f} ns  {p.code}")
        return "\n".join(lines)


class _ReturnProgram:
    """An empty program (`return` a pass code) for the baseline."""

    def __init__(self, xdp: bool):
        self.is_xdp, self.name = xdp, "baseline"
        self.fd = libbpf.load_return_program(
            libbpf.PROG_TYPE_XDP if xdp else libbpf.PROG_TYPE_SCHED_CLS, 2 if xdp else 0)

    def close(self) -> None:
        os.close(self.fd)


def _time(prog: Any, packets: Packets, ctx: Mapping[str, Any] | None, rewrites: bool,
          repeat: int) -> list[tuple[float, str]]:
    """(ns, code) per packet for one pass over the mix."""
    out = []
    for _, data in packets:
        if rewrites:
            results = [testrun.run(prog, data, ctx) for _ in range(repeat)]
            out.append((statistics.fmean(r.duration_ns for r in results), results[0].code))
        else:
            r = testrun.run(prog, data, ctx, repeat=repeat)
            out.append((float(r.duration_ns), r.code))
    return out


def measure(case: BenchCase, runs: int = 7, repeat: int | None = None) -> BenchResult:
    """Time CASE: RUNS passes over its mix, each packet REPEAT times."""
    if repeat is None:
        repeat = 300 if case.rewrites else 20000
    packets = case.packets()
    if not packets:
        raise UsageError(f"bench case {case.name} has an empty packet mix")
    obj = BpfObject(case.object)
    try:
        if case.before_load:
            case.before_load(obj)
        obj.load()
        if case.after_load:
            case.after_load(obj)
        prog: Program = obj.program(case.program)
        baseline = _ReturnProgram(prog.is_xdp)
        try:
            per_run, base_runs = [], []
            per_packet: list[list[float]] = [[] for _ in packets]
            codes: list[str] = []
            for _ in range(runs):  # interleaved, so drift hits both alike
                timings = _time(prog, packets, case.ctx, case.rewrites, repeat)
                codes = [c for _, c in timings]
                for i, (ns, _) in enumerate(timings):
                    per_packet[i].append(ns)
                per_run.append(statistics.fmean(ns for ns, _ in timings))
                base = _time(baseline, packets, case.ctx, case.rewrites, repeat)
                base_runs.append(statistics.fmean(ns for ns, _ in base))
        finally:
            baseline.close()
        return BenchResult(
            case.name, f"{obj.name}:{prog.name}", prog.type_name,
            "single" if case.rewrites else "repeat", runs, repeat,
            statistics.median(per_run), min(per_run), max(per_run),
            statistics.median(base_runs),
            [PacketTiming(label, len(data), codes[i], statistics.median(per_packet[i]))
             for i, (label, data) in enumerate(packets)])
    finally:
        obj.close()
