"""Where a run happened: kernel, CPUs, native or in a VM, tool and library versions.

Numbers from two runs are comparable only when these match; `lab compare` prints the
differences. Tool versions are what the tools say of themselves (`lab doctor`'s probe).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from lab import features

LIBRARIES = ("pyroute2", "scapy", "PyYAML", "jsonschema", "matplotlib", "datapath-lab")
TOOLS = ("iperf3", "sockperf", "netperf", "tcpdump", "ethtool")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mib() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    checkout = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _lab_rr_version() -> str | None:
    from lab.traffic import rr

    try:
        return rr.version()
    except Exception as e:  # noqa: BLE001 - a missing compiler is reported, not fatal here
        return f"unavailable: {e}"


def collect() -> dict:
    in_vm = os.environ.get("LAB_VM") == "1"
    tools = {}
    for name in TOOLS:
        cap = features.tool(name)
        tools[name] = cap.detail if cap.ok else None
    tools["lab-rr"] = _lab_rr_version()
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "kernel": {"release": platform.release(), "version": platform.version()},
        "machine": {"architecture": platform.machine(), "cpu_model": _cpu_model(),
                    "cpus": os.cpu_count() or 1,
                    "cpus_allowed": sorted(os.sched_getaffinity(0)),
                    "memory_mib": _memory_mib(), "hostname": socket.gethostname()},
        "execution": {"mode": "vm" if in_vm else "native",
                      "accel": os.environ.get("LAB_VM_ACCEL") if in_vm else None,
                      "vm_kernel": platform.release() if in_vm else None},
        "python": sys.version.split()[0],
        "libraries": {name: _version(name) for name in LIBRARIES},
        "tools": tools,
        "lab": {"version": _version("datapath-lab") or "unknown", "commit": commit,
                "dirty": bool(status) if status is not None else None},
    }
