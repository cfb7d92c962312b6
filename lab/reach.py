"""Reachability across a running lab: every pair of nodes that share an address family.

Within one family the lab's topologies route every node to every other, so a failed pair is a
broken topology or datapath. Across families (IPv4 client -> IPv6 pod) only the translator can
connect them; those pairs belong to the translation scenarios, not here.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from lab.lab import Lab


@dataclass
class Probe:
    src: str
    dst: str
    address: str
    ok: bool
    rtt_ms: float | None


def reachability(lab: Lab, count: int = 1, timeout_s: int = 2) -> list[Probe]:
    """Ping, in parallel, from every node to one address of every other node per family."""
    started = []
    for src in lab.nodes.values():
        for dst in lab.nodes.values():
            if src is dst:
                continue
            for version in (4, 6):
                if not src.addresses(version) or not dst.addresses(version):
                    continue
                addr = dst.address(version)
                proc = src.popen(["ping", "-n", "-q", "-c", str(count), "-W", str(timeout_s),
                                  addr], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
                started.append((src.name, dst.name, addr, proc))
    probes = []
    for src, dst, addr, proc in started:
        out, _ = proc.communicate()
        m = re.search(r"= [\d.]+/([\d.]+)/", out)
        probes.append(Probe(src, dst, addr, proc.returncode == 0,
                            float(m.group(1)) if m else None))
    return probes
