"""Request/response transactions and connection rate with lab-rr (rr.c beside this file).

netperf's TCP_RR and TCP_CRR are the seed's measurements, and lab/traffic/netperf.py runs
netperf itself wherever a published netperf figure is the anchor (scenarios/legacy-vs-bpf.yaml
cross-checks the two on one path). lab-rr keeps what netperf does not give: the latency of
every transaction, exactly, at sub-microsecond resolution (netperf's percentiles come from a
histogram of whole microseconds), with the payload on the wire being the requested size (no
framing of its own):

  rr   one connection, one transaction in flight, back to back: transactions/s and the latency
       distribution (min/p50/p90/p99, exact over every transaction, and every transaction
       counted in log-spaced buckets);
  crr  a new connection per transaction (connect, request, response, the server closes): its
       transactions/s is connections/s, each including the handshake and the teardown.

The binary is built on first use (clang or cc, -O2) into build/bin of the checkout and rebuilt
when rr.c changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError, UsageError
from lab.lab import NodeHandle
from lab.traffic.placement import Placement
from lab.traffic.process import Server, run_client, start_server

SOURCE = Path(__file__).with_name("rr.c")
CFLAGS = ["-O2", "-g", "-Wall", "-Wextra", "-Werror"]
DEFAULT_PORT = 7100


def _fresh(path: Path) -> bool:
    return path.exists() and path.stat().st_mtime >= SOURCE.stat().st_mtime


def binary() -> Path:
    """The lab-rr executable, compiled from rr.c if missing or older than the source.

    It lives in build/bin of the checkout; a read-only checkout (e.g. the host's files seen
    from a kernel VM) is used as it is when its binary is current, else the binary is built
    into ~/.cache/lab/bin.
    """
    checkout = Path(__file__).resolve().parents[2]
    in_checkout = checkout / "build" / "bin" / "lab-rr"
    if (checkout / "pyproject.toml").exists():
        if _fresh(in_checkout):
            return in_checkout
        if os.access(checkout, os.W_OK):
            return _build(in_checkout)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lab" / "bin"
    target = cache / "lab-rr"
    return target if _fresh(target) else _build(target)


def _build(target: Path) -> Path:
    compiler = shutil.which("clang") or shutil.which("cc")
    if compiler is None:
        raise UsageError("lab-rr needs a C compiler (clang or cc) to be built from "
                         f"{SOURCE}: run `make deps`")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".lab-rr.")
    os.close(fd)
    try:
        out = subprocess.run([compiler, *CFLAGS, "-o", tmp, str(SOURCE), "-lm"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise UsageError(f"building lab-rr from {SOURCE} failed:\n{out.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def version() -> str:
    out = subprocess.run([str(binary()), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


@dataclass
class RRResult:
    mode: str  # rr | crr
    request_bytes: int
    response_bytes: int
    transactions: int
    transactions_per_second: float
    latency_us: dict[str, float]  # min, mean, p50, p90, p99, p999, max
    seconds: float
    # every transaction in log-spaced buckets: {unit, per_decade, first, counts} (rr.c)
    histogram: dict | None = None
    client_cpus: list[int] | None = None
    server_cpus: list[int] | None = None


def parse(text: str) -> RRResult:
    try:
        d = json.loads(text)
        return RRResult(mode=d["mode"], request_bytes=d["request_bytes"],
                        response_bytes=d["response_bytes"], transactions=d["transactions"],
                        transactions_per_second=d["transactions_per_second"],
                        latency_us=dict(d["latency_us"]), seconds=d["seconds"],
                        histogram=d.get("histogram"))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise LabError(f"lab-rr printed no result ({e}): {text[:200]!r}") from None


def start(node: NodeHandle, log_dir: Path, request: int, response: int,
          connect_each: bool = False, port: int = DEFAULT_PORT) -> Server:
    """A lab-rr server for one transaction shape (the server must know the request size)."""
    argv = [str(binary()), "server", "--port", str(port), "--request", str(request),
            "--response", str(response)]
    if connect_each:
        argv += ["--per-connection", "1"]
    return start_server(node, argv, port, log_dir / f"{node.netns}-lab-rr-{port}.log")


def measure(client: NodeHandle, server: Server, address: str, placement: Placement,
            request: int, response: int, seconds: float = 2.0, connect_each: bool = False,
            warmup: float = 0.2) -> RRResult:
    server.check_alive()
    server_cpus = server.pin(placement)
    argv = [str(binary()), "client", "--host", address, "--port", str(server.port),
            "--request", str(request), "--response", str(response),
            "--seconds", f"{seconds:g}", "--warmup", f"{warmup:g}"]
    if connect_each:
        argv.append("--connect-each")
    run = run_client(client, argv, placement, timeout=seconds + warmup + 30)
    result = parse(run.stdout)
    result.client_cpus, result.server_cpus = run.cpus, server_cpus
    return result
