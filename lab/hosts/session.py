"""A connection to one host's agent (`ssh DEST LAB remote`, lab/commands/remote.py).

One SSH connection per host carries every request of a command: checking and making the host's
part of a lab, processes in its nodes and their output, tearing the part down. Requests may be
in flight together (a client runs while a capture starts); the answers come back by id, and
the output of the host's processes as events between them. The agent's stderr (its log and
warnings) is relayed to ours, each line marked with the host.

The connection is the agent's lifetime: when it closes (the command is done, or it died), the
agent exits; what it made stays recorded in that host's journal, for `lab down`.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import subprocess
import sys
import threading
from collections import deque
from typing import Any, Protocol

from lab.errors import LabError, UsageError
from lab.hosts import ssh, wire
from lab.topology import Host

log = logging.getLogger("lab")
# Connecting, then the lab's Python starting there: a second on a server, a minute or more
# on an emulated host of a busy machine. An unreachable host fails at once (ssh exits).
HELLO_TIMEOUT = 600.0


class HostLost(LabError):
    """The connection to a host ended while the lab needed it."""


class HostUnreachable(UsageError):
    """A host could not be reached, or runs no usable lab."""


class EventSink(Protocol):
    def output(self, fd: int, data: bytes) -> None: ...

    def exited(self, code: int | None) -> None: ...


class HostSession:
    def __init__(self, host: Host):
        self.host = host
        self.where = ssh.describe(host)
        self.proc: subprocess.Popen | None = None
        self.hello: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._write = threading.Lock()
        self._pending: dict[int, list] = {}  # id -> [Event, answer]
        self._sinks: dict[int, EventSink] = {}
        self._early: dict[int, list[dict]] = {}  # events that came before their sink
        self._state = threading.Lock()
        self._stderr: deque[str] = deque(maxlen=20)
        self.lost: str | None = None

    def __repr__(self) -> str:
        return f"<session {self.where}>"

    # -- the connection ------------------------------------------------------------------------

    def connect(self) -> dict[str, Any]:
        """Start the agent and greet it; its hello (version, Python, host name) is returned.
        A host that cannot be reached, or has no lab, raises HostUnreachable."""
        argv = ssh.remote_argv(self.host, "remote")
        log.info("%s: %s", self.host.name, " ".join(argv))
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            raise HostUnreachable(f"{self.where}: no `{argv[0]}` here (install "
                                  "openssh-client, or set LAB_SSH)") from None
        threading.Thread(target=self._read, name=f"{self.host.name}-out", daemon=True).start()
        errors = threading.Thread(target=self._relay_stderr, name=f"{self.host.name}-err",
                                  daemon=True)
        errors.start()
        try:
            self.hello = self.call("hello", timeout=HELLO_TIMEOUT, protocol=wire.PROTOCOL)
        except HostLost:
            errors.join(10)  # what ssh said on its way out
            self.close()
            raise HostUnreachable(f"{self.where} is unreachable or runs no lab: "
                                  f"{self._why()}") from None
        except LabError:
            self.close()
            raise
        return self.hello

    def _why(self) -> str:
        code = self.proc.poll() if self.proc else None
        said = " | ".join(line for line in self._stderr if line.strip())
        if code == 127 or "not found" in said:
            return (f"`{self.host.lab}` is not a command there ({said or 'exit 127'}): install "
                    f"the lab on {self.host.name}, or set hosts.{self.host.name}.lab")
        return said or (f"ssh exited with {code}" if code is not None else "no answer")

    def close(self) -> None:
        """Let the agent go (it exits when its stdin closes) and wait for it a little."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    # -- requests ------------------------------------------------------------------------------

    def call(self, op: str, timeout: float | None = None, **args: Any) -> Any:
        """Send request OP and wait for its answer (raising the error the host sent)."""
        if self.lost:
            raise HostLost(f"{self.where}: {self.lost}")
        rid = next(self._ids)
        slot = [threading.Event(), None]
        with self._state:
            self._pending[rid] = slot
        try:
            with self._write:
                self.proc.stdin.write(wire.encode({"id": rid, "op": op, **args}))
                self.proc.stdin.flush()
        except (OSError, ValueError, AttributeError):
            with self._state:
                self._pending.pop(rid, None)
            self._lose("the connection is closed")
            raise HostLost(f"{self.where}: {self.lost}") from None
        if not slot[0].wait(timeout):
            with self._state:
                self._pending.pop(rid, None)
            raise LabError(f"{self.where}: no answer to {op} within {timeout:.0f} s")
        answer = slot[1]
        if answer is None:
            raise HostLost(f"{self.where}: {self.lost}")
        if "error" in answer:
            raise wire.error_from_wire(answer["error"], self.where)
        return answer.get("ok")

    # -- process events ------------------------------------------------------------------------

    def attach(self, proc: int, sink: EventSink) -> None:
        """Deliver the events of process PROC (an id the agent gave) to SINK."""
        with self._state:
            self._sinks[proc] = sink
            early = self._early.pop(proc, [])
            lost = self.lost
        for event in early:
            self._deliver(sink, event)
        if lost:
            sink.exited(None)

    def detach(self, proc: int) -> None:
        with self._state:
            self._sinks.pop(proc, None)

    @staticmethod
    def _deliver(sink: EventSink, event: dict) -> None:
        if event["event"] == "out":
            sink.output(event["fd"], base64.b64decode(event["data"]))
        elif event["event"] == "exit":
            sink.exited(event["code"])

    # -- the reader ----------------------------------------------------------------------------

    def _read(self) -> None:
        stream = self.proc.stdout
        for line in stream:
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("%s: not the lab's protocol: %r", self.where, line[:200])
                continue
            if "id" in msg:
                with self._state:
                    slot = self._pending.pop(msg["id"], None)
                if slot is not None:
                    slot[1] = msg
                    slot[0].set()
            elif "event" in msg:
                with self._state:
                    sink = self._sinks.get(msg.get("proc"))
                    if sink is None:
                        self._early.setdefault(msg.get("proc"), []).append(msg)
                if sink is not None:
                    self._deliver(sink, msg)
        self._lose("the connection closed")

    def _relay_stderr(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            if line:
                print(f"[{self.host.name}] {line}", file=sys.stderr, flush=True)

    def _lose(self, why: str) -> None:
        with self._state:
            if self.lost:
                return
            proc = self.proc
            code = proc.poll() if proc else None
            self.lost = why + (f" (exit {code})" if code not in (None, 0) else "")
            pending, self._pending = self._pending, {}
            sinks = list(self._sinks.values())
        for slot in pending.values():
            slot[0].set()
        for sink in sinks:
            sink.exited(None)
