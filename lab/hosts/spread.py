"""A lab across hosts, brought up and torn down from the machine running `lab up` (`local`).

Up, in an order that refuses bad input before anything is made anywhere:
  1. every other host is reached (in parallel) and must run this lab's version;
  2. every host checks its part (this one too): namespace names free, the NICs and underlay
     addresses its links take, MTUs; a problem in the file is reported at its line here;
  3. each host is journaled here (HostPart) before it is asked to make its part, then all
     parts are made at once; should any fail (a host lost half-way), the caller tears every
     part down, the failed one included, from its journal there.
Down: every host's part is torn down there (in parallel), this host's here. A host that
cannot be reached keeps its HostPart in the journal here, with what is left on it, so the
next `lab down` tries again.

The lab is seen through `SpreadLab`, the narrow view declared here.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from lab.build import place
from lab.errors import InputError, LabError, UsageError
from lab.hosts.session import HostSession, HostUnreachable
from lab.hosts.ssh import describe
from lab.journal import HostPart, HostPartDown
from lab.state import Inventory, LabRecord
from lab.topology import Host, Topology
from lab.version import version_id

log = logging.getLogger("lab")
UP_TIMEOUT = 1800.0  # a host making its part (pods, BPF loads; emulated hosts are slow)


class SpreadLab(Protocol):
    name: str
    topology: Topology
    record: LabRecord
    host: str

    def session(self, host: str) -> HostSession: ...


# One agent per host for the whole process: a command that brings up several labs on the
# same hosts (`lab run`'s configs) starts Python there once. Closed when the process exits.
_sessions: dict[tuple[str, str], HostSession] = {}
_sessions_lock = threading.Lock()


def session(host: Host, topo: Topology | None = None) -> HostSession:
    """This process's session with HOST (opened, and its version checked, on first use)."""
    key = (host.ssh, host.lab)
    with _sessions_lock:
        s = _sessions.get(key)
        if s is None or s.lost:
            s = _sessions[key] = open_session(host, topo)
        return s


@atexit.register
def close_sessions() -> None:
    with _sessions_lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for s in sessions:
        s.close()


def open_session(host: Host, topo: Topology | None = None) -> HostSession:
    """A session with HOST's agent, which must run this version of the lab. An unreachable
    host is reported at its entry in TOPO's file when there is one."""
    s = HostSession(host)
    try:
        hello = s.connect()
    except HostUnreachable as e:
        if topo is not None:
            raise place(InputError(e.args[0], path=("hosts", host.name), at_key=True),
                        topo) from None
        raise
    if hello.get("version") != version_id():
        s.close()
        raise UsageError(f"{describe(host)} runs lab {hello.get('version')}, this machine "
                         f"{version_id()}: install the same version on every host")
    return s


def _in_parallel(calls: Mapping[str, Callable[[], object]],
                 here: Callable[[], object] | None = None) -> dict[str, BaseException]:
    """Run CALLS (by host) in threads and HERE in this one (signals reach only it); the
    errors by host ("local" for HERE)."""
    errors: dict[str, BaseException] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures: dict[str, Future] = {h: pool.submit(c) for h, c in calls.items()}
        if here is not None:
            try:
                here()
            except BaseException as e:  # noqa: BLE001 - collected with the hosts'
                errors["local"] = e
        for h, f in futures.items():
            try:
                f.result()
            except BaseException as e:  # noqa: BLE001
                errors[h] = e
    return errors


def _raise_first(errors: dict[str, BaseException], topo: Topology) -> None:
    if not errors:
        return
    if "local" in errors and not isinstance(errors["local"], Exception):
        raise errors["local"]  # KeyboardInterrupt and the like: as they came
    for h, e in errors.items():
        if h != "local" and not isinstance(e, LabError):
            raise LabError(f"host {h}: {type(e).__name__}: {e}") from e
    first = errors.get("local") or next(iter(errors.values()))
    if len(errors) > 1:
        for h, e in errors.items():
            if e is not first:
                log.warning("also: %s", e)
    if isinstance(first, InputError):
        raise place(first, topo) from None
    raise first


def connect(lab: SpreadLab) -> None:
    """1. Reach every other host of LAB (in parallel); each must run this version."""
    hosts = lab.topology.remote_hosts()
    _raise_first(_in_parallel({h.name: (lambda h=h: lab.session(h.name)) for h in hosts}),
                 lab.topology)


def preflight(lab: SpreadLab, here: Callable[[], None]) -> None:
    """2. Every host checks its part of LAB, this one by HERE, before anything is made."""
    model = lab.topology.to_json()
    calls = {h.name: (lambda h=h: lab.session(h.name).call("check", name=lab.name,
                                                          topology=model, host=h.name))
             for h in lab.topology.remote_hosts()}
    _raise_first(_in_parallel(calls, here), lab.topology)


def bring_up(lab: SpreadLab, here: Callable[[], None]) -> None:
    """3. Journal every other host's part, then make all parts at once (this one by HERE).
    On failure the caller tears down what the journal lists, on every host."""
    topo = lab.topology
    hosts = topo.remote_hosts()
    lab.record.append(*(HostPart(h.name, h.ssh, h.lab, tuple(topo.nodes_on(h.name)))
                        for h in hosts))
    model = topo.to_json()
    calls = {h.name: (lambda h=h: lab.session(h.name).call(
        "up", name=lab.name, topology=model, host=h.name, timeout=UP_TIMEOUT))
        for h in hosts}
    _raise_first(_in_parallel(calls, here), topo)


def tear_down(record: LabRecord, inv: Inventory,
              sessions: Mapping[str, HostSession]) -> tuple[list[str], dict[str, str]]:
    """Tear down the parts INV lists on other hosts (through SESSIONS where open, else a new
    connection); (what was removed, {host: why not} for the hosts that could not be)."""
    removed: list[str] = []
    failed: dict[str, str] = {}

    def down(part: HostPart) -> None:
        s = sessions.get(part.host)
        if s is None or s.lost:
            s = session(Host(part.host, ssh=part.ssh, lab=part.lab))
        answer = s.call("down", name=record.name, timeout=UP_TIMEOUT)
        record.append(HostPartDown(part.host))
        removed.extend(f"{part.host}: {r}" for r in answer.get("removed", []))

    errors = _in_parallel({h: (lambda p=p: down(p)) for h, p in inv.hosts.items()})
    for h, e in errors.items():
        failed[h] = str(e)
    return removed, failed


def left_behind(record: LabRecord, parts: Mapping[str, HostPart],
                failed: Mapping[str, str]) -> LabError:
    """The error saying which hosts still hold which nodes of the lab (their HostParts stay
    in the journal, so the next `lab down` tries them again)."""
    lines = []
    for h, why in failed.items():
        p = parts[h]
        nodes = ", ".join(p.nodes[:8]) + (f" and {len(p.nodes) - 8} more"
                                          if len(p.nodes) > 8 else "")
        lines.append(f"{describe(Host(h, ssh=p.ssh))}: not torn down ({why}); its part of "
                     f"lab {record.name} (nodes {nodes or 'none'}) is still there")
    return LabError("\n  ".join(lines) + f"\n  run `lab down {record.name}` again when "
                    f"{'it is' if len(lines) == 1 else 'they are'} back, or `lab down "
                    f"{record.name}` on {'it' if len(lines) == 1 else 'each'}")
