"""Shared by the gateway's API tests: a gateway loaded with its maps pinned in a private
directory, configured, and its agent serving on a socket in a directory others may traverse
(so that only the socket's own mode keeps them out)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from lab import state
from lab.bpf.object import BpfObject
from lab.datapath.gateway import Gateway, Settings
from lab.datapath.gateway.agent import serving

SNAT4, SNAT6 = "192.0.2.1", "2001:db8:1::1"


@dataclass
class RunningAgent:
    gw: Gateway
    obj: BpfObject
    socket: Path

    def snapshot(self) -> dict:
        """Everything the control plane wrote: settings, services, backends, tables."""
        out = {name: sorted((bytes(k), bytes(v)) for k, v in self.gw.maps[name].items())
               for name in ("gw_cfg", "gw_services", "gw_backends")}
        out["tables"] = {s.id: self.gw.table(s.id) for s in self.gw.services()}
        return out


@contextlib.contextmanager
def running_agent(object_path: Path, tag: str) -> Iterator[RunningAgent]:
    pins = state.PIN_ROOT / f"test-gw-{tag}-{os.getpid()}"
    sock_dir = Path(tempfile.mkdtemp(prefix="lab-agent-"))
    os.chmod(sock_dir, 0o711)
    obj = BpfObject(object_path, str(pins))
    try:
        obj.load()
        gw = Gateway.from_object(obj)
        gw.configure(Settings(snat4=IPv4Address(SNAT4), snat6=IPv6Address(SNAT6),
                              table_size=251))
        with serving(gw, sock_dir / "agent.sock") as server:
            yield RunningAgent(gw, obj, Path(server.path))
        gw.close()
    finally:
        obj.close()
        state.remove_pin_dir(pins)
        shutil.rmtree(sock_dir, ignore_errors=True)
