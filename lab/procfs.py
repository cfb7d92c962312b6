"""What /proc says of a process the lab started in a node: whether its network namespace has a
TCP socket listening on a port, and which CPUs it may run on once it has exec'd its program.

These are questions about a pid on the machine that runs it: a node's handle asks them here
for its own processes, a host's agent for the processes of its nodes (lab/hosts/).
"""

from __future__ import annotations

import os
import time

TCP_LISTEN = "0A"


def listening(pid: int, port: int) -> bool:
    """Does the network namespace of PID have a TCP socket listening on PORT?"""
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except (OSError, StopIteration):
            continue
    return False


def cpus_after_exec(pid: int, program: str, timeout: float = 2.0) -> list[int] | None:
    """The CPUs PID may run on once it runs PROGRAM, or None if it never did in TIMEOUT.

    Before its final exec the process is still our fork or taskset; /proc/PID/comm names the
    program once it runs (truncated to 15 characters, as the kernel keeps it)."""
    comm = os.path.basename(program)[:15]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == comm:
                    return sorted(os.sched_getaffinity(pid))
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return None  # it ended before we saw it run
        except (OSError, ProcessLookupError):
            return None
        time.sleep(0.001)
    return None


def cpus() -> list[int]:
    """The CPUs this process may use."""
    return sorted(os.sched_getaffinity(0))


def set_affinity(pid: int, wanted: list[int] | set[int]) -> list[int]:
    """Move PID to WANTED; return the CPUs the kernel reports for it afterwards."""
    os.sched_setaffinity(pid, set(wanted))
    return sorted(os.sched_getaffinity(pid))
