"""A process in a node of another host, as much of subprocess.Popen as the lab's callers use:
pid (the host's), args, returncode, poll, wait, communicate, send_signal, terminate, kill.

Its output comes over the host's connection as events: into a buffer (PIPE), into a file of
ours (a capture, a server's log), or nowhere (DEVNULL, or None: ours is not its terminal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from lab.hosts.session import HostLost, HostSession


def wire_mode(target: Any) -> str:
    """How the agent treats one of the process's outputs, for what the caller passed."""
    return "null" if target in (subprocess.DEVNULL, None) else "pipe"


class RemoteProcess:
    def __init__(self, session: HostSession, proc: int, pid: int, argv: Sequence[str],
                 stdout: Any = None, stderr: Any = None, text: bool = False):
        self.session, self.proc, self.pid, self.args = session, proc, pid, list(argv)
        self.text = text
        self.returncode: int | None = None
        self._done = threading.Event()
        self._buf = {1: bytearray(), 2: bytearray()}
        self._fds: dict[int, int | None] = {1: self._target(stdout), 2: self._target(stderr)}
        self._to_stdout = stderr is subprocess.STDOUT
        self._lost = False
        session.attach(proc, self)

    @staticmethod
    def _target(target: Any) -> int | None:
        """A dup of the caller's file (so they may close theirs), or None: buffer / drop."""
        if target in (None, subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT):
            return None
        fd = target if isinstance(target, int) else target.fileno()
        return os.dup(fd)

    def __repr__(self) -> str:
        return f"<process {self.pid} on {self.session.host.name}: {' '.join(self.args)[:60]}>"

    # -- events (from the session's reader) ---------------------------------------------------

    def output(self, fd: int, data: bytes) -> None:
        if fd == 2 and self._to_stdout:
            fd = 1
        target = self._fds.get(fd)
        if target is not None:
            os.write(target, data)
        else:
            self._buf[fd] += data

    def exited(self, code: int | None) -> None:
        if code is None:
            self._lost = True
        self.returncode = code if code is not None else -signal.SIGKILL
        for fd in self._fds.values():
            if fd is not None:
                os.close(fd)
        self._fds = {1: None, 2: None}
        self.session.detach(self.proc)
        self._done.set()

    # -- Popen's interface ---------------------------------------------------------------------

    def poll(self) -> int | None:
        return self.returncode if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        if self._lost:
            raise HostLost(f"{self.session.where}: lost while {self.args[0]} ran: "
                           f"{self.session.lost}")
        return self.returncode

    def communicate(self, input: Any = None, timeout: float | None = None
                    ) -> tuple[Any, Any]:
        self.wait(timeout)
        out, err = bytes(self._buf[1]), bytes(self._buf[2])
        if self.text:
            return out.decode(errors="replace"), err.decode(errors="replace")
        return out, err

    def send_signal(self, sig: int) -> None:
        if self._done.is_set():
            return
        try:
            self.session.call("signal", proc=self.proc, sig=int(sig), timeout=30)
        except HostLost:
            pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __enter__(self) -> RemoteProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.poll() is None:
            self.kill()
            self._done.wait(10)

