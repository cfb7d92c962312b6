"""CPU placement of a client and its server: one CPU, two CPUs, or left to the scheduler.

On a 2-vCPU machine an unpinned request/response test swings by 4x from run to run as the
scheduler moves the two ends on and off one CPU (and the softirq work with them). So every
measurement names its placement, and the CPUs it ran on are read back from the kernel
(sched_getaffinity of the running processes), never assumed from what was asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from lab.errors import UsageError

PLACEMENTS = ("same-cpu", "cross-cpu", "unpinned")


class CpuControl(Protocol):
    """Where a server runs (a node's handle: its host's CPUs)."""

    def cpus(self) -> list[int]: ...

    def set_affinity(self, pid: int, cpus: list[int]) -> list[int]: ...


@dataclass(frozen=True)
class Placement:
    """Where a client/server pair is to run. CPUs are None when unpinned."""

    name: str
    client_cpu: int | None
    server_cpu: int | None

    @property
    def pinned(self) -> bool:
        return self.client_cpu is not None

    def client_argv(self, argv: list[str]) -> list[str]:
        """ARGV started on the client CPU (taskset fails the command if it cannot pin)."""
        if not self.pinned:
            return list(argv)
        return ["taskset", "--cpu-list", str(self.client_cpu), *argv]

    def pin_server(self, pid: int, where: CpuControl | None = None) -> list[int]:
        """Move the server process PID to its CPU (all allowed CPUs when unpinned) on WHERE
        (the node it runs in; default: this machine); return the CPUs the kernel reports for
        it afterwards. Across hosts the CPU is the same number on the server's host."""
        if where is None:
            cpus = [self.server_cpu] if self.pinned else sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(pid, set(cpus))
            return sorted(os.sched_getaffinity(pid))
        return where.set_affinity(pid, [self.server_cpu] if self.pinned else where.cpus())


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def resolve(name: str, cpus: list[int] | None = None) -> Placement:
    """The placement NAME on CPUS (default: the CPUs this process may use).

    same-cpu puts both ends on the last CPU, cross-cpu the client on the first and the server
    on the last; a machine with one usable CPU has no cross-cpu placement.
    """
    cpus = sorted(cpus) if cpus is not None else available_cpus()
    if name == "unpinned":
        return Placement(name, None, None)
    if name == "same-cpu":
        return Placement(name, cpus[-1], cpus[-1])
    if name == "cross-cpu":
        if len(cpus) < 2:
            raise UsageError(f"placement cross-cpu needs two CPUs; this process may use only "
                             f"CPU {cpus[0]}")
        return Placement(name, cpus[0], cpus[-1])
    raise UsageError(f"unknown placement '{name}' (one of: {', '.join(PLACEMENTS)})")
