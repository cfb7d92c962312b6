"""sockperf: TCP ping-pong round-trip latency, a second opinion next to lab-rr.

Debian 12's sockperf 3.7 only speaks IPv4 and needs messages of 14..65506 bytes (it carries a
header of its own in each), so it measures IPv4 paths only; the seed's 1-byte and 80000-byte
transactions and every IPv6 path use lab-rr (lab.traffic.rr). sockperf discards its first 400 ms
as warm-up and reports percentiles of the round-trip time (--full-rtt).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import LabError, UsageError
from lab.lab import NodeHandle
from lab.traffic.placement import Placement
from lab.traffic.process import Server, run_client, start_server

DEFAULT_PORT = 11111
MIN_MESSAGE, MAX_MESSAGE = 14, 65506
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class SockperfResult:
    message_bytes: int
    round_trips: int  # in the valid (post warm-up) duration
    round_trips_per_second: float
    rtt_us: dict[str, float] = field(default_factory=dict)  # min, mean, p50, p90, p99, max
    client_cpus: list[int] | None = None
    server_cpus: list[int] | None = None


def parse(text: str, message_bytes: int = 0) -> SockperfResult:
    """Parse `sockperf ping-pong --full-rtt` output."""
    text = _ANSI.sub("", text)
    valid = re.search(r"\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); "
                      r"ReceivedMessages=(\d+)", text)
    avg = re.search(r"avg-rtt=([\d.]+)", text)
    if not valid or not avg:
        err = re.search(r"ERROR: (.*)", text)
        raise LabError("sockperf: " + (err.group(1).strip() if err else
                                       f"no result in its output: {text[-200:]!r}"))
    runtime, received = float(valid.group(1)), int(valid.group(3))
    rtt = {"mean": float(avg.group(1))}
    for label, key in (("<MIN> observation", "min"), ("<MAX> observation", "max"),
                       ("percentile 50.000", "p50"), ("percentile 90.000", "p90"),
                       ("percentile 99.000", "p99"), ("percentile 99.900", "p999")):
        m = re.search(re.escape(label) + r"\s*=\s*([\d.]+)", text)
        if m:
            rtt[key] = float(m.group(1))
    return SockperfResult(message_bytes, received, received / runtime if runtime else 0.0, rtt)


def check_usable(address: str, message_bytes: int) -> None:
    if ipaddress.ip_address(address).version != 4:
        raise UsageError(f"sockperf 3.7 (Debian 12) cannot use IPv6 ({address}): use the rr "
                         "step (lab-rr) for IPv6 paths")
    if not MIN_MESSAGE <= message_bytes <= MAX_MESSAGE:
        raise UsageError(f"sockperf messages are {MIN_MESSAGE}..{MAX_MESSAGE} bytes, not "
                         f"{message_bytes}: use the rr step (lab-rr) for other sizes")


def start(node: NodeHandle, address: str, log_dir: Path, port: int = DEFAULT_PORT) -> Server:
    check_usable(address, MIN_MESSAGE)
    argv = ["sockperf", "server", "--tcp", "--ip", address, "--port", str(port)]
    return start_server(node, argv, port, log_dir / f"{node.netns}-sockperf-{port}.log")


def measure(client: NodeHandle, server: Server, address: str, placement: Placement,
            message_bytes: int = 64, seconds: float = 2.0) -> SockperfResult:
    check_usable(address, message_bytes)
    server.check_alive()
    server_cpus = server.pin(placement)
    argv = ["sockperf", "ping-pong", "--tcp", "--ip", address, "--port", str(server.port),
            "--msg-size", str(message_bytes), "--time", f"{seconds:g}", "--full-rtt"]
    run = run_client(client, argv, placement, timeout=seconds + 20)
    result = parse(run.stdout + run.stderr, message_bytes)
    result.client_cpus, result.server_cpus = run.cpus, server_cpus
    return result
