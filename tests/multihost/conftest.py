"""Two hosts on this machine, for the fast tests of labs that span hosts: each host is a
network namespace (its "root" namespace: the underlay, its NICs) with a lab run directory of
its own, and `ssh HOST` is tests/multihost/nsssh (LAB_SSH), which runs the command in that
namespace. The hosts share this machine's /run/netns and bpffs: what differs from two
machines is only what the lab must not care about. tests/vm/test_two_hosts.py runs the same
over real SSH between two kernel VMs."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab import netns
from lab.links.host import HostView

HERE = Path(__file__).resolve().parent
NSSSH = HERE / "nsssh"
LAB = f"{sys.executable} -m lab"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class EmulatedHost:
    ns: str  # its namespace, also its SSH destination
    run_dir: Path
    env: dict

    def lab(self, *args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
        """`lab ARGS` run on this host, as the machine driving a lab."""
        return subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, **kw)

    def argv(self, *args: str) -> list[str]:
        return ["nsenter", f"--net={netns.path_of(self.ns)}", sys.executable, "-m", "lab",
                *args]

    def devices(self) -> dict:
        with netns.entered(self.ns):
            return HostView().devices

    def labs(self) -> list[str]:
        return sorted(p.name for p in self.run_dir.iterdir()) if self.run_dir.exists() else []


@dataclass
class Hosts:
    a: EmulatedHost  # the client's side: underlay 10.99.0.1, NIC eth1
    b: EmulatedHost  # the gateway's side: underlay 10.99.0.2, NIC eth1


@pytest.fixture
def hosts(tmp_path):
    tag = f"t{os.getpid() % 10000}"
    names = (f"{tag}ha", f"{tag}hb")
    env = {**os.environ, "LAB_SSH": str(NSSSH), "LAB_NSSSH_RUN": str(tmp_path)}
    made = []
    try:
        for n in names:
            ip("netns", "add", n)
            made.append(n)
            ip("-n", n, "link", "set", "lo", "up")
        a, b = names
        # Devices of the hosts' own at the indexes a node's first devices get (a machine's
        # eth0 is index 2): the lab must not mistake them for its own.
        for n in names:
            ip("-n", n, "link", "add", "own0", "type", "veth", "peer", "own1")
        # The underlay between them, and a cable between a NIC of each (for phys links).
        ip("link", "add", "ul0", "netns", a, "type", "veth", "peer", "ul0", "netns", b)
        ip("link", "add", "eth1", "netns", a, "mtu", "1400", "type", "veth", "peer", "eth1",
           "netns", b)
        for n, i in ((a, 1), (b, 2)):
            ip("-n", n, "addr", "add", f"10.99.0.{i}/24", "dev", "ul0")
            ip("-n", n, "link", "set", "ul0", "up")
        # Host a's NIC has an address, a route and is up; host b's is down and bare: both
        # must come back as they were.
        ip("-n", a, "addr", "add", "10.98.0.1/24", "dev", "eth1")
        ip("-n", a, "link", "set", "eth1", "up")
        ip("-n", a, "route", "add", "10.97.0.0/16", "via", "10.98.0.254", "dev", "eth1")
        out = {n: EmulatedHost(n, tmp_path / n, {**env, "LAB_RUN_DIR": str(tmp_path / n)})
               for n in names}
        yield Hosts(out[a], out[b])
    finally:
        for n in made:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
