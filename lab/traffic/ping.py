"""ping: packet loss and round-trip times between two lab nodes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.errors import LabError
from lab.lab import NodeHandle


@dataclass
class PingResult:
    transmitted: int
    received: int
    loss_percent: float
    rtt_ms: dict[str, float]  # min, avg, max, mdev (empty when nothing came back)


def parse(text: str) -> PingResult:
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", text)
    if not m:
        raise LabError(f"ping printed no statistics: {text.strip()[-200:]!r}")
    tx, rx = int(m.group(1)), int(m.group(2))
    rtt = {}
    r = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", text)
    if r:
        rtt = dict(zip(("min", "avg", "max", "mdev"), map(float, r.groups())))
    return PingResult(tx, rx, 100.0 * (tx - rx) / tx if tx else 100.0, rtt)


def ping(node: NodeHandle, address: str, count: int = 5, interval: float = 0.2,
         size: int | None = None, wait: float = 2.0) -> PingResult:
    """Send COUNT echo requests from NODE to ADDRESS, waiting WAIT seconds for the last
    replies; loss is a result, not an error."""
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", f"{interval:g}", "-W", f"{wait:g}"]
    if size is not None:
        argv += ["-s", str(size)]
    out = node.run([*argv, address], check=False, timeout=count * interval + wait + 10)
    if out.returncode not in (0, 1):  # 1: packets lost; 2: an error (bad address, no route)
        raise LabError(f"{node.name}: ping {address} failed: {(out.stderr or out.stdout).strip()}")
    return parse(out.stdout)
