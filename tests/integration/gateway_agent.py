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


@dataclass
class LoadedGateway:
    gw: Gateway
    obj: BpfObject
    pins: Path          # where its maps are pinned (`lab agent --pin-dir`)


@contextlib.contextmanager
def loaded_gateway(object_path: Path, tag: str) -> Iterator[LoadedGateway]:
    """The gateway object loaded and configured, its maps pinned in a private directory."""
    pins = state.PIN_ROOT / f"test-gw-{tag}-{os.getpid()}"
    obj = BpfObject(object_path, str(pins))
    try:
        obj.load()
        gw = Gateway.from_object(obj)
        gw.configure(Settings(snat4=IPv4Address(SNAT4), snat6=IPv6Address(SNAT6),
                              table_size=251))
        try:
            yield LoadedGateway(gw, obj, pins)
        finally:
            gw.close()
    finally:
        obj.close()
        state.remove_pin_dir(pins)


@contextlib.contextmanager
def socket_dir() -> Iterator[Path]:
    """A directory others may traverse, so that only a socket's own mode keeps them out."""
    path = Path(tempfile.mkdtemp(prefix="lab-agent-"))
    os.chmod(path, 0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running_agent(object_path: Path, tag: str, **limits) -> Iterator[RunningAgent]:
    with loaded_gateway(object_path, tag) as g, socket_dir() as sock_dir:
        with serving(g.gw, sock_dir / "agent.sock", **limits) as server:
            yield RunningAgent(g.gw, g.obj, Path(server.path))
