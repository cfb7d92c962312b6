"""Packet captures: tcpdump on one interface of a lab node, written to a pcap file.

    with Capture(node, "eth0", out_dir / "step.pcap", filter="ip6") as cap:
        ...traffic...
    cap.packets  # as tcpdump counted them

tcpdump writes the pcap to its stdout and we write the file: it then never drops privileges
to a user who cannot write the results directory, and no AppArmor profile (Ubuntu's limits
where tcpdump may write) is in the way. start() returns once tcpdump says it is listening;
--immediate-mode hands each packet over as it comes (not per filled ring block), and stop()
interrupts it (SIGINT, so it flushes) and reads its counters.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from lab.errors import LabError
from lab.lab import NodeHandle

SNAPLEN = 262144  # the whole packet, also GSO/GRO aggregates up to this size


class Capture:
    def __init__(self, node: NodeHandle, ifname: str, path: Path, filter: str | None = None,
                 snaplen: int = SNAPLEN):
        self.node, self.ifname, self.path = node, ifname, Path(path)
        self.filter, self.snaplen = filter, snaplen
        self.log = self.path.with_suffix(".tcpdump.log")
        self.proc: subprocess.Popen | None = None
        self.packets: int | None = None
        self.dropped: int | None = None

    def start(self, timeout: float = 10.0) -> Capture:
        if self.ifname not in self.node.interfaces and self.ifname not in ("lo", "any"):
            raise LabError(f"{self.node.name} has no interface {self.ifname} to capture on "
                           f"(it has: {', '.join(sorted(self.node.interfaces))})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        argv = ["tcpdump", "-n", "-i", self.ifname, "-s", str(self.snaplen), "--immediate-mode",
                "-U", "-w", "-"]
        if self.filter:
            argv.append(self.filter)
        with open(self.path, "wb") as pcap, open(self.log, "wb") as log:
            self.proc = self.node.popen(argv, stdout=pcap, stderr=log)
        deadline = time.monotonic() + timeout
        while "listening on" not in self._log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LabError(f"{self.node.name}: tcpdump on {self.ifname} did not start: "
                               f"{self._log_text().strip()[-300:]}")
            time.sleep(0.005)
        return self

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            time.sleep(0.05)  # the step's last packets may still wait in the socket
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        text = self._log_text()
        m = re.search(r"(\d+) packets? captured", text)
        self.packets = int(m.group(1)) if m else None
        m = re.search(r"(\d+) packets? dropped by kernel", text)
        self.dropped = int(m.group(1)) if m else None
        self.proc = None

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
