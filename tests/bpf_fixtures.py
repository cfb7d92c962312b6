"""Fixtures for BPF tests: built objects, fresh loads, scapy-in/scapy-out runners, throwaway
namespaces joined by a veth pair, and a private bpffs pin directory; all cleaned up.

    def test_counts(bpf_runner):
        run = bpf_runner("pktcount", "pktcount_tc")
        out = run(IP(dst="192.0.2.1") / UDP())
        assert out.passed and out.packet[UDP].dport == 53
"""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.bpf.object import OBJECT_DIR, REPO, BpfObject

TEST_OBJECT_DIR = OBJECT_DIR / "tests"
_serial = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test process uses (pid) nor another test in this one (counter)."""
    return f"{prefix}{os.getpid()}-{next(_serial)}"


@pytest.fixture(scope="session")
def bpf_build() -> Path:
    """Build bpf/*.c and tests/bpf/progs/*.c (a no-op when up to date)."""
    subprocess.run(["make", "-s", "-C", str(REPO), "bpf-objects"], check=True)
    return OBJECT_DIR


def object_file(name: str) -> Path:
    """`pktcount` -> build/bpf/pktcount.o; `tests/verdict` -> build/bpf/tests/verdict.o."""
    if name.startswith("tests/"):
        return TEST_OBJECT_DIR / f"{name.removeprefix('tests/')}.o"
    return OBJECT_DIR / f"{name}.o"


@pytest.fixture
def load_bpf(bpf_build):
    """load_bpf(name, pin_maps_dir=None, **globals) -> a freshly loaded BpfObject, closed
    after the test."""
    objects = []

    def load(name: str, pin_maps_dir: str | None = None, **globals_) -> BpfObject:
        obj = BpfObject(object_file(name), pin_maps_dir)
        objects.append(obj)
        for k, v in globals_.items():
            obj.set_global(k, v)
        return obj.load()

    yield load
    for obj in objects:
        obj.close()


@pytest.fixture
def bpf_runner(load_bpf):
    """bpf_runner(object, program, **ctx) -> PacketRunner: scapy in, Outcome (scapy) out."""
    from lab.bpf.testing import PacketRunner

    def make(name: str, program: str | None = None, **ctx) -> PacketRunner:
        obj = load_bpf(name)
        return PacketRunner(obj.program(program), **ctx)

    return make


@pytest.fixture
def pin_dir():
    """A private pin directory under /sys/fs/bpf/lab/, removed with whatever is left in it."""
    from lab import state

    path = state.PIN_ROOT / unique("test-")
    yield str(path)
    state.remove_pin_dir(path)


@dataclass(frozen=True)
class VethPair:
    """Namespace `a` with device `a_if` (10.77.0.1, fd77::1) joined to namespace `b` with
    device `b_if` (10.77.0.2, fd77::2)."""
    a: str
    b: str
    a_if: str = "veth-a"
    b_if: str = "veth-b"
    a_ip: str = "10.77.0.1"
    b_ip: str = "10.77.0.2"
    a_ip6: str = "fd77::1"
    b_ip6: str = "fd77::2"

    def ping(self, count: int = 3, v6: bool = False) -> subprocess.CompletedProcess:
        from lab import netns
        dst = self.b_ip6 if v6 else self.b_ip
        return netns.run(self.a, ["ping", "-6" if v6 else "-4", "-n", "-q", "-c", str(count),
                                  "-i", "0.05", "-W", "2", dst], check=True, timeout=20)

    def ifindex(self, side: str) -> int:
        from lab import netns
        import socket
        with netns.entered(getattr(self, side)):
            return socket.if_nametoindex(getattr(self, f"{side}_if"))


@pytest.fixture
def veth_pair():
    """Two fresh namespaces joined by a veth pair, addressed and up; removed afterwards."""
    from pyroute2 import IPRoute

    from lab import netns

    pair = VethPair(unique("bpft-a"), unique("bpft-b"))
    netns.create(pair.a)
    try:
        netns.create(pair.b)
        b_fd = os.open(netns.path_of(pair.b), os.O_RDONLY)
        try:
            with netns.entered(pair.a), IPRoute() as ipr:
                ipr.link("add", ifname=pair.a_if, kind="veth",
                         peer={"ifname": pair.b_if, "net_ns_fd": b_fd})
            _address(pair.a, pair.a_if, pair.a_ip, pair.a_ip6)
            _address(pair.b, pair.b_if, pair.b_ip, pair.b_ip6)
        finally:
            os.close(b_fd)
        yield pair
    finally:
        netns.remove(pair.a)
        if netns.exists(pair.b):
            netns.remove(pair.b)


def _address(ns: str, ifname: str, ip: str, ip6: str) -> None:
    from pyroute2 import IPRoute

    from lab import netns

    with netns.entered(ns), IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.addr("add", index=idx, address=ip, prefixlen=24)
        ipr.addr("add", index=idx, address=ip6, prefixlen=64, flags=0x02)  # IFA_F_NODAD
        ipr.link("set", index=idx, state="up")
        ipr.link("set", index=1, state="up")
