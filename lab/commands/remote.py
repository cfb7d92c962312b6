"""`lab remote`: this host's side of a lab that spans hosts, run by `ssh HOST lab remote` from
the machine driving the lab (lab/hosts/session.py is the other side).

It reads one JSON request per line on stdin and writes answers and events as JSON lines on
stdout (lab/hosts/wire.py); its own log goes to stderr, which SSH carries back. Requests run
in threads of their own, so a long one (making the part) does not hold up the rest. When
stdin closes it exits: what it made is in this host's journal, for `lab down` (by the
driving machine, through another connection, or here).

    hello            the version, Python, CPUs and the lab's tools here
    check, up, down  this host's part of a lab: checked, made (Lab(host=...).up()), torn down
    spawn, signal    a process in a node; its output and exit come back as events
    listening, cpus_after_exec, set_affinity   what /proc says of a node's process
    set_link, link_settings, set_offloads, write_etc   a node's NodeHandle methods
    status           the lab's part here, as `lab status --json` shows a lab
"""

from __future__ import annotations

import base64
import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

from lab import procfs, state
from lab.build import Builder
from lab.datapath.registry import DATAPATHS
from lab.errors import LabError, UsageError
from lab.hosts import wire
from lab.lab import Lab, teardown_record
from lab.topology import Topology, check_lab_name
from lab.version import version_id

log = logging.getLogger("lab")


def register(sub) -> None:
    p = sub.add_parser("remote", help="serve this host's part of a lab that spans hosts (what "
                                      "`lab up` runs over SSH)",
                       description="Speak the lab's protocol (JSON lines) on stdin and stdout: "
                                   "the machine driving a lab across hosts runs it here as "
                                   "`ssh HOST lab remote` (docs/multihost.md).")
    p.set_defaults(handler=cmd_remote)


def cmd_remote(args) -> int:
    # The protocol owns the real stdout; anything printed goes to stderr with the log.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    Agent(out).serve(sys.stdin.buffer)
    return 0


class Agent:
    def __init__(self, out):
        self.out = out
        self.write_lock = threading.Lock()
        self.labs: dict[str, Lab] = {}
        self.procs: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.ops = {
            "hello": self.hello, "check": self.check, "up": self.up, "down": self.down,
            "status": self.status, "spawn": self.spawn, "signal": self.signal,
            "listening": self.listening, "cpus_after_exec": self.cpus_after_exec,
            "set_affinity": self.set_affinity, "set_link": self.node_method,
            "link_settings": self.node_method, "set_offloads": self.node_method,
            "write_etc": self.node_method,
        }

    # -- the loop ------------------------------------------------------------------------------

    def send(self, message: dict) -> None:
        data = wire.encode(message)
        with self.write_lock:
            try:
                self.out.write(data)
            except (BrokenPipeError, OSError):
                pass  # the driving machine went away; our journal keeps what we made

    def serve(self, stream) -> None:
        running: list[threading.Thread] = []
        for line in stream:
            try:
                msg = json.loads(line)
                rid, op = msg.pop("id"), msg.pop("op")
            except (ValueError, KeyError, TypeError):
                log.warning("lab remote: not a request: %r", line[:200])
                continue
            t = threading.Thread(target=self.handle, args=(rid, op, msg), name=f"op-{op}")
            t.start()
            running = [r for r in running if r.is_alive()] + [t]
        # The driving machine is gone: finish what it asked (a part half made is finished,
        # then recorded as up), so `lab down` finds a journal no one is writing.
        for t in running:
            t.join()

    def handle(self, rid: int, op: str, args: dict) -> None:
        fn = self.ops.get(op)
        try:
            if fn is None:
                raise UsageError(f"unknown request '{op}' (a newer lab asking an older one?)")
            result = fn(op, **args)
            self.send({"id": rid, "ok": result})
        except Exception as e:  # noqa: BLE001 - every error goes back to the asker
            if not isinstance(e, LabError):
                log.exception("lab remote: %s failed", op)
            self.send({"id": rid, "error": wire.error_to_wire(e)})

    # -- the host and its parts ------------------------------------------------------------------

    def hello(self, op: str, protocol: int) -> dict[str, Any]:
        if protocol != wire.PROTOCOL:
            raise UsageError(f"protocol {protocol} asked, this lab speaks {wire.PROTOCOL}")
        from lab.traffic import rr

        try:
            tools = {"lab-rr": str(rr.binary())}
        except UsageError as e:
            log.warning("lab-rr is not available here: %s", e)
            tools = {}
        return {"protocol": wire.PROTOCOL, "version": version_id(),
                "hostname": socket.gethostname(), "kernel": platform.release(),
                "python": sys.executable, "cpus": procfs.cpus(), "tools": tools,
                "euid": os.geteuid(), "pid": os.getpid()}

    def _lab(self, name: str) -> Lab:
        with self.lock:
            lab = self.labs.get(name)
        if lab is None:
            lab = Lab.running(check_lab_name(name), DATAPATHS)
            with self.lock:
                lab = self.labs.setdefault(name, lab)
        return lab

    def check(self, op: str, name: str, topology: dict, host: str) -> None:
        from lab import features

        features.require_privileges()
        record = state.LabRecord(check_lab_name(name))
        if record.exists():
            raise UsageError(f"a lab named '{name}' is already up here: run `lab down {name}` "
                             "here first")
        topo = Topology.from_json(topology)
        Builder(topo, record, Lab(topo, host=host).pin_dir, host=host).preflight()

    def up(self, op: str, name: str, topology: dict, host: str) -> dict:
        lab = Lab(Topology.from_json(topology), check_lab_name(name), DATAPATHS, host=host)
        lab.up()
        with self.lock:
            self.labs[name] = lab
        return {"instance": lab.instance, "nodes": sorted(lab.nodes)}

    def down(self, op: str, name: str) -> dict:
        with self.lock:
            lab = self.labs.pop(name, None)
        if lab is not None:
            return {"removed": lab.down()}
        record = state.LabRecord(check_lab_name(name))
        if not record.exists():
            return {"removed": [], "absent": True}
        with record.locked():
            return {"removed": teardown_record(record)}

    def status(self, op: str, name: str) -> dict:
        from lab.commands.lifecycle import kernel_view

        lab = self._lab(name)
        return {n.name: {"role": n.role, "netns": n.netns, "interfaces": kernel_view(n.netns)}
                for n in lab.nodes.values()}

    # -- processes in nodes ------------------------------------------------------------------------

    def spawn(self, op: str, lab: str, node: str, argv: list[str], env: dict[str, str],
              stdout: str, stderr: str) -> dict:
        handle = self._lab(lab).node(node)
        pipes = {"pipe": subprocess.PIPE, "null": subprocess.DEVNULL,
                 "stdout": subprocess.STDOUT}
        proc = handle.popen(argv, env={**os.environ, **env} if env else None,
                            stdout=pipes[stdout], stderr=pipes[stderr])
        with self.lock:
            self.procs[proc.pid] = proc
        readers = []
        for fd, stream in ((1, proc.stdout), (2, proc.stderr)):
            if stream is not None:
                t = threading.Thread(target=self._relay, args=(proc.pid, fd, stream),
                                     daemon=True)
                t.start()
                readers.append(t)
        threading.Thread(target=self._reap, args=(proc, readers), daemon=True).start()
        return {"proc": proc.pid, "pid": proc.pid}

    def _relay(self, pid: int, fd: int, stream) -> None:
        while data := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
            self.send({"event": "out", "proc": pid, "fd": fd,
                       "data": base64.b64encode(data).decode()})

    def _reap(self, proc: subprocess.Popen, readers: list[threading.Thread]) -> None:
        code = proc.wait()
        for t in readers:
            t.join()
        with self.lock:
            self.procs.pop(proc.pid, None)
        self.send({"event": "exit", "proc": proc.pid, "code": code})

    def signal(self, op: str, proc: int, sig: int) -> None:
        with self.lock:
            p = self.procs.get(proc)
        if p is not None and p.poll() is None:
            p.send_signal(signal.Signals(sig))

    def _ours(self, pid: int) -> None:
        with self.lock:
            if pid not in self.procs:
                raise UsageError(f"process {pid} was not started by this agent")

    def listening(self, op: str, lab: str, node: str, pid: int, port: int) -> bool:
        self._ours(pid)
        return procfs.listening(pid, port)

    def cpus_after_exec(self, op: str, lab: str, node: str, pid: int, program: str,
                        wait: float) -> list[int] | None:
        self._ours(pid)
        return procfs.cpus_after_exec(pid, program, wait)

    def set_affinity(self, op: str, lab: str, node: str, pid: int, cpus: list[int]
                     ) -> list[int]:
        self._ours(pid)
        return procfs.set_affinity(pid, cpus)

    def node_method(self, op: str, lab: str, node: str, **args) -> Any:
        handle = self._lab(lab).node(node)
        if op == "set_link":
            return handle.set_link(args["ifname"], **args["settings"])
        if op == "link_settings":
            return handle.link_settings(args["ifname"])
        if op == "set_offloads":
            return handle.set_offloads(args["ifname"], args["wanted"])
        return str(handle.write_etc(args["filename"], args["content"]))
