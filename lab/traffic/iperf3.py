"""iperf3: single-stream TCP throughput, CPU use of both ends and retransmits (JSON output),
and the sender's throughput per INTERVAL seconds of the test (a stall shows as a dip).

The server is started once per lab node (iperf3 serves one test at a time, which is all a
scenario runs); each measurement is a fresh connection, so link settings changed between
measurements (GSO/GRO sizes) apply to it. The server's CPU is set per measurement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import LabError, UsageError
from lab.lab import NodeHandle
from lab.traffic.placement import Placement
from lab.traffic.process import Server, run_client, start_server

DEFAULT_PORT = 5201
# iperf3's shortest reporting interval: 20 samples in a 2-second test.
INTERVAL = 0.1


@dataclass
class Iperf3Result:
    throughput_gbps: float  # as received by the server
    sender_gbps: float
    retransmits: int
    client_cpu_percent: float  # iperf3's own process, user + system
    server_cpu_percent: float
    seconds: float
    mss: int | None  # the MSS the sender's socket reported
    version: str
    # (end of the interval in seconds, Gbit/s sent in it), as the client reported them
    intervals: list[tuple[float, float]] = field(default_factory=list)
    client_cpus: list[int] | None = None
    server_cpus: list[int] | None = None


def parse(text: str) -> Iperf3Result:
    """Parse `iperf3 -c ... -J` output (one TCP stream, client side)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabError(f"iperf3 printed no JSON ({e}): {text[:200]!r}") from None
    if data.get("error"):
        raise LabError(f"iperf3: {data['error']}")
    try:
        end, start = data["end"], data["start"]
        sent, received = end["sum_sent"], end["sum_received"]
        cpu = end["cpu_utilization_percent"]
        mss = start.get("tcp_mss") or start.get("tcp_mss_default")
        intervals = [(float(i["sum"]["end"]), i["sum"]["bits_per_second"] / 1e9)
                     for i in data.get("intervals", []) if not i["sum"].get("omitted")]
        return Iperf3Result(
            throughput_gbps=received["bits_per_second"] / 1e9,
            sender_gbps=sent["bits_per_second"] / 1e9,
            retransmits=int(sent.get("retransmits", 0)),
            client_cpu_percent=cpu["host_total"],
            server_cpu_percent=cpu["remote_total"],
            seconds=received["seconds"],
            mss=int(mss) if mss else None,
            version=start.get("version", "iperf3"),
            intervals=intervals,
        )
    except (KeyError, TypeError) as e:
        raise LabError(f"iperf3 JSON lacks {e}: not a TCP client result") from None


def start(node: NodeHandle, log_dir: Path, port: int = DEFAULT_PORT) -> Server:
    # Listens on [::] (IPv4 too). --forceflush keeps the log current for failure messages.
    argv = ["iperf3", "--server", "--port", str(port), "--forceflush"]
    return start_server(node, argv, port, log_dir / f"{node.netns}-iperf3-{port}.log")


def measure(client: NodeHandle, server: Server, address: str, placement: Placement,
            seconds: int = 2, mss: int | None = None, length: int | None = None,
            zerocopy: bool = False, reverse: bool = False) -> Iperf3Result:
    """One single-stream test from CLIENT to SERVER's ADDRESS, for SECONDS (whole seconds:
    iperf3 3.12 reads --time as an integer, and 0 would mean forever)."""
    if seconds != int(seconds) or seconds < 1:
        raise UsageError(f"iperf3 runs for whole seconds (at least 1), not {seconds}")
    server.check_alive()
    server_cpus = server.pin(placement)
    argv = ["iperf3", "--client", address, "--port", str(server.port), "--json",
            "--time", str(int(seconds)), "--interval", f"{INTERVAL:g}"]
    if mss:
        argv += ["--set-mss", str(mss)]
    if length:
        argv += ["--length", str(length)]
    if zerocopy:
        argv += ["--zerocopy"]
    if reverse:
        argv += ["--reverse"]
    run = run_client(client, argv, placement, timeout=seconds + 20)
    result = parse(run.stdout)
    result.client_cpus, result.server_cpus = run.cpus, server_cpus
    return result
