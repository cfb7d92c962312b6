"""Helpers of the pod mode tests (tests/integration/test_pod_modes.py natively,
tests/netkit/test_netkit_pods.py in the kernel VM): topologies/pods.yaml in a given mode, and
traffic that says whether it got through (ping, a TCP transfer echoed back)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import netns
from lab.datapath.registry import DATAPATHS
from lab.lab import Lab

ROOT = Path(__file__).resolve().parents[1]
POD_TOPOLOGY = ROOT / "topologies/pods.yaml"
TRANSFER = 1 << 20


@pytest.fixture
def make_lab(tmp_path, lab_name, bpf_build):
    """Labs of topologies/pods.yaml in the modes asked for, torn down after the test."""
    labs = []

    def make(**mode) -> Lab:
        lab = Lab.from_file(pods_topology(tmp_path, **mode), f"{lab_name[:22]}{len(labs)}",
                            datapaths=DATAPATHS)
        labs.append(lab.up())
        return lab

    yield make
    for lab in labs:
        lab.down()


def paths(lab):
    """(client, server, address): pod to pod, pod to gateway, gateway to pod."""
    pod0, pod1 = lab.pods("node1")
    gw = lab.node("gw")
    return [(pod0, pod1, pod1.address(6)), (pod0, gw, gw.address(6)),
            (gw, pod1, pod1.address(6))]


def pods_topology(tmp_path: Path, device: str = "veth", routing: str = "host",
                  netkit: dict[str, str] | None = None,
                  node_sysctls: dict[str, Any] | None = None) -> Path:
    """topologies/pods.yaml with the pods in one mode, written to TMP_PATH."""
    data = yaml.safe_load(POD_TOPOLOGY.read_text())
    pods = data["nodes"]["node1"]["pods"]
    pods.update(device=device, routing=routing)
    if netkit:
        pods["netkit"] = netkit
    if node_sysctls:
        data["nodes"]["node1"]["sysctls"] = node_sysctls
    path = tmp_path / f"pods-{device}-{routing}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pings(node: Any, dst: str, count: int = 2) -> bool:
    r = node.run(["ping", "-6", "-n", "-q", "-c", str(count), "-i", "0.1", "-W", "1", dst],
                 check=False, timeout=20)
    return r.returncode == 0


def tcp_echoes(client: Any, server: Any, address: str, nbytes: int = TRANSFER,
               timeout: float = 5) -> bool:
    """A TCP connection from CLIENT to SERVER's ADDRESS carries NBYTES there and back."""
    port = 21000 + os.getpid() % 20000
    listener = netns.socket_in(server.netns, socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(1)
    listener.settimeout(timeout)

    def echo():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(timeout)
            try:
                while chunk := conn.recv(1 << 16):
                    conn.sendall(chunk)
            except OSError:
                pass

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    back = 0
    try:
        with netns.socket_in(client.netns, socket.AF_INET6, socket.SOCK_STREAM) as c:
            c.settimeout(timeout)
            c.connect((address, port))
            payload = os.urandom(nbytes)
            sender = threading.Thread(target=c.sendall, args=(payload,), daemon=True)
            sender.start()
            got = bytearray()
            while len(got) < nbytes:
                chunk = c.recv(1 << 16)
                if not chunk:
                    break
                got += chunk
            sender.join(timeout)
            back = len(got) if bytes(got) == payload else -1
    except OSError:
        return False
    finally:
        listener.close()
        t.join(timeout)
    return back == nbytes
