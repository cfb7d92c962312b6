"""Servers and clients of the traffic tools, as processes in lab nodes.

A server is started once with NodeHandle.popen (so the lab records it and stops it at
teardown), its output goes to a log file, and start_server() returns when the kernel shows its
socket listening (read from /proc/PID/net/tcp*, which is the view of the server's own network
namespace, by the node's host: lab/procfs.py): no sleep, no banner parsing. A client runs to
completion with its placement, and the CPUs it ran on are read back from the kernel once it
has exec'd. A node on another host runs them there (lab/hosts/).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from lab.lab import NodeHandle
from lab.traffic.placement import Placement

@dataclass
class Server:
    node: NodeHandle
    argv: list[str]
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise LabError(f"{self.node.name}: server `{shlex.join(self.argv)}` exited with "
                           f"{self.proc.returncode}: {log_tail(self.log)}")

    def pin(self, placement: Placement) -> list[int]:
        """Move the server to PLACEMENT's server CPU (on its node's host); the CPUs after."""
        return placement.pin_server(self.pid, self.node)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(no output)"



def start_server(node: NodeHandle, argv: list[str], port: int, log: Path,
                 timeout: float = 10.0) -> Server:
    """Start ARGV in NODE in the background; return once it listens on TCP PORT."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = node.popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = Server(node, list(argv), port, proc, log)
    deadline = time.monotonic() + timeout
    while not node.listening(proc.pid, port):
        server.check_alive()
        if time.monotonic() > deadline:
            raise LabError(f"{node.name}: `{shlex.join(argv)}` does not listen on port {port} "
                           f"after {timeout:.0f} s: {log_tail(log)}")
        time.sleep(0.005)
    return server


@dataclass
class ClientRun:
    stdout: str
    stderr: str
    cpus: list[int] | None  # the client's CPUs as the kernel reported them, None if unseen
    wall_seconds: float


def run_client(node: NodeHandle, argv: list[str], placement: Placement,
               timeout: float) -> ClientRun:
    """Run the client ARGV in NODE on PLACEMENT's client CPU; raise LabError if it fails."""
    started = time.monotonic()
    proc = node.popen(placement.client_argv(argv), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    try:
        cpus = node.cpus_after_exec(proc.pid, argv[0])
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise LabError(f"{node.name}: `{shlex.join(argv)}` did not finish in {timeout:.0f} s"
                       ) from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        tail = (err.strip() or out.strip()).splitlines()[-3:]
        raise LabError(f"{node.name}: `{shlex.join(argv)}` exited with {proc.returncode}"
                       + (": " + " | ".join(tail) if tail else ""))
    return ClientRun(out, err, cpus, time.monotonic() - started)
