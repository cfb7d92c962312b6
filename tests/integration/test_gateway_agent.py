"""`lab agent` against careless callers and hostile clients: it only ever removes a socket
nobody answers on, a second agent for the same socket touches nothing, requests are framed
by strict Content-Length rules, and however clients send (or stall), its threads and memory
stay bounded and every connection is answered and closed."""

from __future__ import annotations

import collections
import contextlib
import os
import resource
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.datapath.gateway.agent import request

from gateway_agent import loaded_gateway, running_agent, socket_dir

pytestmark = pytest.mark.root
LAB = [sys.executable, "-m", "lab"]
SERVICE = {"frontend": {"address": "203.0.113.80", "port": 80},
           "backends": [{"address": "fd00:10:244:1::10", "port": 8080}]}
MiB = 1 << 20


@pytest.fixture
def loaded(bpf_build):
    with loaded_gateway(bpf_build / "gateway.o", "agent") as g:
        yield g


@pytest.fixture
def sock_dir():
    with socket_dir() as d:
        yield d


# --- the agent as a process -------------------------------------------------------------------

class AgentProcess:
    def __init__(self, proc: subprocess.Popen, path: Path):
        self.proc, self.path = proc, path

    def status(self, field: str) -> int:
        """A field of /proc/PID/status: Threads, VmRSS or VmHWM (kB)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def idle_threads(self) -> int:
        """Its threads once no connection is being served (the last handler may be ending)."""
        deadline = time.monotonic() + 10
        while (n := self.status("Threads")) > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        return n


def agent_args(loaded, path: Path, *extra: str) -> list[str]:
    return LAB + ["agent", "--pin-dir", str(loaded.pins), "--socket", str(path), *extra]


@contextlib.contextmanager
def agent_process(loaded, path: Path, *extra: str):
    proc = subprocess.Popen(agent_args(loaded, path, *extra), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the agent did not come up"
            with contextlib.suppress(OSError):
                if request(path, "GET", "/v1/healthz")[0] == 200:
                    break
            time.sleep(0.05)
        yield AgentProcess(proc, path)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def refused(loaded, path: Path) -> str:
    """Run an agent that must refuse to start: its one-line message."""
    out = subprocess.run(agent_args(loaded, path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("lab: "), out.stderr
    return out.stderr[len("lab: "):].strip()


# --- the socket's path --------------------------------------------------------------------------

def make(kind: str, path: Path) -> None:
    if kind == "a regular file":
        path.write_text("precious\n")
    elif kind == "a directory":
        path.mkdir()
        (path / "inside").write_text("precious\n")
    elif kind == "a symbolic link":
        (path.parent / "target").write_text("precious\n")
        path.symlink_to(path.parent / "target")
    elif kind == "not a socket":
        os.mkfifo(path)


@pytest.mark.parametrize("kind", ["a regular file", "a directory", "a symbolic link",
                                  "not a socket"])
def test_a_path_that_is_not_a_socket_is_refused_and_kept(loaded, sock_dir, kind):
    path = sock_dir / "agent.sock"
    make(kind, path)
    before = {p.name: os.lstat(p) for p in sock_dir.iterdir()}
    assert refused(loaded, path) == (f"{path} exists and is {kind}: remove it or choose "
                                     "another --socket")
    after = {p.name: os.lstat(p) for p in sock_dir.iterdir()}
    assert {n: (s.st_ino, s.st_mode) for n, s in after.items()} == \
        {n: (s.st_ino, s.st_mode) for n, s in before.items()}
    if kind != "not a socket":
        target = path / "inside" if kind == "a directory" else path
        assert target.read_text() == "precious\n"


def test_a_symbolic_link_to_a_live_socket_is_refused(loaded, sock_dir):
    with agent_process(loaded, sock_dir / "real.sock"):
        link = sock_dir / "agent.sock"
        link.symlink_to(sock_dir / "real.sock")
        assert "is a symbolic link" in refused(loaded, link)
        assert link.is_symlink() and request(link, "GET", "/v1/healthz")[0] == 200


def test_a_stale_socket_is_replaced(loaded, sock_dir):
    path = sock_dir / "agent.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))            # bound, never listening: an agent that died
    dead.close()
    with agent_process(loaded, path):       # serving on it
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert list(sock_dir.iterdir()) == []


def test_a_socket_another_program_answers_on_is_left_alone(loaded, sock_dir):
    path = sock_dir / "agent.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        assert "another process answers on" in refused(loaded, path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(path))         # still the other program's
            other.accept()[0].close()


def test_a_second_agent_touches_nothing(loaded, sock_dir):
    path = sock_dir / "agent.sock"
    with agent_process(loaded, path):
        inode = os.lstat(path).st_ino
        assert refused(loaded, path) == f"an agent is serving {path} already"
        assert os.lstat(path).st_ino == inode
        assert request(path, "GET", "/v1/healthz") == (200, {"status": "ok"})
    assert list(sock_dir.iterdir()) == []            # neither the socket nor its lock


def test_the_socket_answers_as_soon_as_it_exists(loaded, sock_dir):
    """Scripts wait for the socket to appear: it must answer by then (bound and listening
    under PATH.new, linked into place after)."""
    path = sock_dir / "agent.sock"
    for _ in range(3):
        proc = subprocess.Popen(agent_args(loaded, path), stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not path.exists():
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the agent did not come up"
            assert request(path, "GET", "/v1/healthz")[0] == 200
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert list(sock_dir.iterdir()) == []


def test_a_stale_staging_socket_is_replaced_and_anything_else_there_refused(loaded, sock_dir):
    path = sock_dir / "agent.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path) + ".new")            # an agent killed between bind and link
    dead.close()
    with agent_process(loaded, path):
        assert not Path(str(path) + ".new").exists()
    Path(str(path) + ".new").write_text("precious\n")
    assert refused(loaded, path).endswith("agent.sock.new exists and is a regular file: "
                                          "remove it or choose another --socket")


def test_a_path_too_long_for_a_socket_is_refused(loaded, sock_dir):
    path = sock_dir / ("x" * 120)
    assert "longer than 103 bytes" in refused(loaded, path)
    assert list(sock_dir.iterdir()) == []


# --- requests -----------------------------------------------------------------------------------

def exchange(path: Path, data: bytes, *, close_sending: bool = True,
             timeout: float = 30) -> tuple[int, bytes]:
    """Send raw DATA; (status, body) of the answer. The client may be cut off while sending."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
            if close_sending:
                s.shutdown(socket.SHUT_WR)
        return read_answer(s)


def read_answer(s: socket.socket) -> tuple[int, bytes]:
    raw = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 "), raw[:200]
    return int(head.split()[1]), body


def post(headers: str, body: bytes = b"") -> bytes:
    return f"POST /v1/services HTTP/1.0\r\n{headers}\r\n".encode() + body


JSON = b'{"frontend": {"address": "203.0.113.80", "port": 80}}'

FRAMING = [
    # (request, status, words): a service the server would create, if it took the body
    (post("Content-Length: -1\r\n", JSON), 400, b"bad Content-Length"),
    (post("Content-Length: +53\r\n", JSON), 400, b"bad Content-Length"),
    (post("Content-Length: 5_3\r\n", JSON), 400, b"bad Content-Length"),
    (post("Content-Length: 53\r\nContent-Length: 54\r\n", JSON), 400, b"several"),
    (post("", JSON), 411, b"POST needs a Content-Length"),
    (post("Transfer-Encoding: chunked\r\n", b"35\r\n" + JSON + b"\r\n0\r\n\r\n"), 411,
     b"Transfer-Encoding"),
    (post(f"Content-Length: {300 * MiB}\r\n"), 413, b"larger than 1048576"),
    (post("Content-Length: 100\r\n", JSON), 400, b"ended after 53 of its 100 bytes"),
    (b"GET /" + b"x" * 9000 + b" HTTP/1.0\r\n\r\n", 414, b"request line"),
    (b"GET /v1/healthz HTTP/1.0\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431, b"Too many headers"),
]


@pytest.mark.parametrize("data, status, words", FRAMING,
                         ids=[f"{s}-{i}" for i, (_, s, _) in enumerate(FRAMING)])
def test_content_length_rules(bpf_build, data, status, words):
    with running_agent(bpf_build / "gateway.o", "framing") as agent:
        got, body = exchange(agent.socket, data, close_sending=status != 413)
        assert got == status, body
        assert words in body
        assert agent.gw.services() == []


def test_an_oversize_body_is_refused_before_it_is_sent(bpf_build):
    with running_agent(bpf_build / "gateway.o", "oversize") as agent:
        # the client sends the head only and waits: the answer comes without the body
        got, body = exchange(agent.socket, post(f"Content-Length: {MiB + 1}\r\n"),
                             close_sending=False, timeout=5)
        assert got == 413


def test_a_trickling_client_is_cut_off_at_the_timeout(bpf_build):
    with running_agent(bpf_build / "gateway.o", "trickle", timeout=1.0) as agent:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(agent.socket))
            start = time.monotonic()
            sent = 0
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for byte in post(f"Content-Length: {len(JSON)}\r\n", JSON):
                    s.send(bytes([byte]))     # each byte well within the timeout of one read
                    sent += 1
                    time.sleep(0.05)
                    if time.monotonic() - start > 10:
                        break
            got, body = read_answer(s)
        assert got == 408 and b"within 1 s" in body
        assert sent < 40                    # cut off, not served after the whole trickle
        assert agent.gw.services() == []


# --- bounds -------------------------------------------------------------------------------------

class Sampler:
    """The agent's thread count and RSS, sampled every 10 ms in the background."""

    def __init__(self, agent: AgentProcess):
        self.agent, self.threads = agent, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.threads.append(self.agent.status("Threads"))
            time.sleep(0.01)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def open_files(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))


def test_stalled_connections_hold_bounded_threads_and_are_closed_after_the_timeout(
        loaded, sock_dir):
    n, limit = 1000, 8
    open_files(n)
    path = sock_dir / "agent.sock"
    with agent_process(loaded, path, "--timeout", "1", "--max-connections", str(limit)) as a:
        idle = a.idle_threads()
        with Sampler(a) as sampler:
            conns = []
            for _ in range(n):
                c = socket.socket(socket.AF_UNIX)
                c.connect(str(path))                # blocks while the backlog is full
                c.settimeout(30)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    c.sendall(b"GET /v1/heal")      # and nothing more (unless turned away)
                conns.append(c)
            statuses = collections.Counter(read_answer(c)[0] for c in conns)
            for c in conns:
                c.close()
        assert sum(statuses.values()) == n            # every one answered and closed
        assert set(statuses) == {408, 503}, statuses
        assert statuses[408] >= limit
        assert max(sampler.threads) <= idle + limit, (idle, max(sampler.threads))
        assert request(path, "GET", "/v1/healthz")[0] == 200
        assert a.idle_threads() == idle


def test_the_agent_survives_the_probes_with_bounded_memory_and_threads(loaded, sock_dir):
    """The probes of issue 16: bodies of hundreds of MiB with a negative, missing or oversize
    Content-Length, deeply nested JSON, a thousand stalled connections."""
    open_files(1000)
    path = sock_dir / "agent.sock"
    with agent_process(loaded, path, "--timeout", "2") as a:
        idle_threads, idle_rss = a.idle_threads(), a.status("VmRSS")
        flood = b"x" * (100 * MiB)
        with Sampler(a) as sampler:
            assert exchange(path, post("Content-Length: -1\r\n", flood))[0] == 400
            assert exchange(path, post("", flood))[0] == 411
            assert exchange(path, post(f"Content-Length: {300 * MiB}\r\n", flood))[0] == 413
            deep = b"[" * 524288
            with_deep = [threading.Thread(target=exchange, args=(
                path, post(f"Content-Length: {len(deep)}\r\n", deep))) for _ in range(40)]
            for t in with_deep:
                t.start()
            for t in with_deep:
                t.join()
            assert exchange(path, post(f"Content-Length: {len(deep)}\r\n", deep))[0] == 400
            stalled = [socket.socket(socket.AF_UNIX) for _ in range(1000)]
            for c in stalled:
                c.connect(str(path))
                c.settimeout(30)
            answers = collections.Counter(read_answer(c)[0] for c in stalled)
            for c in stalled:
                c.close()
        assert set(answers) == {408, 503}
        grown_mib = (a.status("VmHWM") - idle_rss) / 1024
        print(f"agent: idle {idle_rss / 1024:.1f} MiB RSS, {idle_threads} threads; peak "
              f"{a.status('VmHWM') / 1024:.1f} MiB RSS (+{grown_mib:.1f}), "
              f"{max(sampler.threads)} threads")
        assert grown_mib < 64
        assert max(sampler.threads) <= idle_threads + 32
        assert request(path, "POST", "/v1/services", SERVICE)[0] == 201
