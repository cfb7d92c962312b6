"""`lab agent`: the gateway's HTTP/JSON API (api.py) served on a unix socket.

The socket is created with mode 0600 and owned by root, and every connection's peer is
checked with SO_PEERCRED: a process of another user (one that got hold of the socket some
other way, or reached it despite its mode) is answered 403 and disconnected. The agent keeps
no state of its own: services and connections live in the gateway's pinned maps, so stopping
and restarting it loses nothing, and `lab service` may change them meanwhile.

The agent holds out against careless and hostile clients with fixed bounds: one request per
connection, which must arrive whole within `timeout` seconds (answered 408 otherwise) with a
Content-Length of at most api.MAX_BODY bytes (411 without one, 413 above it); at most
`max_connections` are served at once and the rest are answered 503 at once. So memory and
threads stay bounded whatever clients send, or do not send.

Only one agent serves a path: it holds an flock on PATH.lock while it runs, and the path is
removed only when lstat shows a socket on which nobody answers. A second agent, a regular
file or a directory at PATH is refused and left alone.

    with serving(gateway, path):      # in a thread, e.g. for tests
        request(path, "GET", "/v1/services")
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import io
import json
import logging
import os
import socket
import socketserver
import stat
import struct
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any
from wsgiref.handlers import SimpleHandler
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from lab.datapath.gateway.api import MAX_BODY, GatewayApi
from lab.datapath.gateway.control import Gateway
from lab.digits import parse_int
from lab.errors import UsageError

log = logging.getLogger("lab.gateway")

ALLOWED_UID = 0
TIMEOUT = 10.0              # seconds for a request to arrive whole, and for its answer to leave
MAX_CONNECTIONS = 32        # served at once; more are answered 503
MAX_HEAD = 64 * 1024        # request line and headers
MAX_REQUEST_LINE = 8 * 1024
BODY_METHODS = ("POST", "PUT", "PATCH")
SUN_PATH_MAX = 107          # sockaddr_un.sun_path, less its NUL


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def answer(status: int, message: str | None = None) -> bytes:
    """A complete HTTP/1.0 answer with a JSON error body, as the API gives."""
    body = b"" if message is None else json.dumps({"error": message}).encode() + b"\n"
    head = (f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n")
    if body:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + body


class _Request(io.RawIOBase):
    """The reading side of one connection: the whole request must arrive by DEADLINE, and
    no more than BUDGET bytes are read from it, however the client sends them (one byte at a
    time, or without end)."""

    def __init__(self, sock: socket.socket, deadline: float, budget: int):
        self.sock, self.deadline, self.budget = sock, deadline, budget

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.budget <= 0:
            return 0
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.sock.settimeout(left)
        n = self.sock.recv_into(memoryview(buf)[:min(len(buf), self.budget)])
        self.budget -= n
        return n


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _ServerHandler(SimpleHandler):
    """wsgiref's handler, logging failures instead of printing tracebacks."""

    os_environ: dict[str, str] = {}       # the agent's own environment is none of the app's

    def log_exception(self, exc_info) -> None:
        log.debug("agent: answering failed", exc_info=exc_info)


class _Handler(WSGIRequestHandler):
    server: AgentServer

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.deadline = time.monotonic() + self.server.timeout_s
        self.rfile = io.BufferedReader(_Request(self.connection, self.deadline,
                                                MAX_HEAD + MAX_BODY))

    def handle(self) -> None:
        try:
            uid = peer_uid(self.connection)
            if uid != ALLOWED_UID:
                self._refuse_user(uid)
                return
            self._handle()
        except _Refused as e:
            log.info("agent: refused a request: %d %s", e.status, e.message)
            self._send(answer(e.status, e.message))
        except TimeoutError:
            log.info("agent: a request did not arrive within %g s", self.server.timeout_s)
            self._send(answer(408, f"the request did not arrive within "
                                   f"{self.server.timeout_s:g} s"))
        except OSError as e:
            log.debug("agent: connection failed: %s", e)

    def _handle(self) -> None:
        self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if not self.raw_requestline:
            return                          # connected and closed: nothing to answer
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            raise _Refused(414, f"the request line is longer than {MAX_REQUEST_LINE} bytes")
        if not self.parse_request():        # answered by send_error
            return
        body = self._body()
        env = self.get_environ()
        env["CONTENT_LENGTH"] = str(len(body))
        self.connection.settimeout(self.server.timeout_s)   # for the answer
        handler = _ServerHandler(io.BytesIO(body), self.wfile, io.StringIO(), env,
                                 multithread=True, multiprocess=False)
        handler.request_handler = self
        handler.run(self.server.get_app())

    def _body(self) -> bytes:
        """The body, by the Content-Length rules: required with a body, decimal, capped."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise _Refused(411, "Transfer-Encoding is not supported: send a Content-Length")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            if self.command in BODY_METHODS:
                raise _Refused(411, f"{self.command} needs a Content-Length")
            return b""
        if len(set(lengths)) > 1:
            raise _Refused(400, "several different Content-Length headers")
        try:
            length = parse_int(lengths[0].strip())
        except ValueError as e:
            raise _Refused(400, f"bad Content-Length: {e}") from None
        if length > MAX_BODY:
            raise _Refused(413, f"the body ({length} bytes) is larger than {MAX_BODY} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            raise _Refused(400, f"the body ended after {len(body)} of its {length} bytes")
        return body

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """parse_request's refusals, in JSON like every other answer."""
        self.close_connection = True
        self._send(answer(code, message or HTTPStatus(code).phrase))

    def _refuse_user(self, uid: int) -> None:
        log.warning("agent: refused a connection from uid %d", uid)
        self._send(answer(403, f"the gateway agent serves root only (you are uid {uid})"))
        # Read what the client sent before closing (within the deadline and the budget):
        # closing a unix socket with unread data resets it, and the client may not have
        # read the answer yet.
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            while self.rfile.read1(65536):
                pass

    def _send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.connection.settimeout(max(0.0, self.deadline - time.monotonic()) + 1.0)
            self.connection.sendall(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("agent: " + format, *args)


class AgentServer(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server on a root-only unix socket, with bounded threads and requests."""

    address_family = socket.AF_UNIX
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128

    def __init__(self, path: str | os.PathLike, app: Any, *, timeout: float = TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS):
        self.path = os.fspath(path)
        self.timeout_s = timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._claim: SocketClaim | None = None
        self._bound: tuple[int, int] | None = None
        super().__init__(self.path, _Handler)
        self.set_app(app)

    def server_bind(self) -> None:
        self._claim = claim = SocketClaim(self.path)
        # Bound under a staging name and linked into place once listening: the socket's path
        # exists only while something answers on it (scripts may wait for it to appear).
        old = os.umask(0o177)  # the socket is never reachable by others, not even briefly
        try:
            self.socket.bind(claim.staging)
        finally:
            os.umask(old)
        st = os.lstat(claim.staging)
        self._bound = (st.st_dev, st.st_ino)
        os.chown(claim.staging, 0, 0)
        os.chmod(claim.staging, 0o600)
        self.server_address = self.path
        self.server_name, self.server_port = "localhost", 0
        self.setup_environ()

    def server_activate(self) -> None:
        super().server_activate()
        assert self._claim is not None
        try:
            os.link(self._claim.staging, self.path)     # never replaces what appeared there
        except FileExistsError:
            raise UsageError(f"{self.path} appeared while the agent started: remove it or "
                             "choose another --socket") from None
        os.unlink(self._claim.staging)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)  # a peer on a unix socket has no address; WSGI wants one

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("agent: %d connections are being served: answered 503",
                        self.max_connections)
            with contextlib.suppress(OSError):
                request.send(answer(503, f"the agent serves {self.max_connections} "
                                         "connections at once: try again"),
                             socket.MSG_DONTWAIT)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError:                # no thread to serve it: the slot is free again
            self._slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("agent: a connection failed", exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        try:
            if self._bound is not None and self._claim is not None:
                for path in (self.path, self._claim.staging):
                    with contextlib.suppress(FileNotFoundError):
                        st = os.lstat(path)
                        if (st.st_dev, st.st_ino) == self._bound:   # still ours
                            os.unlink(path)
        finally:
            self._bound = None
            if self._claim is not None:
                self._claim.release()
                self._claim = None


class SocketClaim:
    """The right to serve on PATH: an flock on PATH.lock for as long as the agent runs.

    With it taken, PATH may be cleared for binding: nothing there, or a socket on which
    nobody answers (left by an agent that died). Anything else is refused and left as it is.
    """

    def __init__(self, path: str):
        self.path, self.lock_path, self.staging = path, path + ".lock", path + ".new"
        if len(os.fsencode(self.staging)) > SUN_PATH_MAX:
            raise UsageError(f"the socket path {path} is longer than {SUN_PATH_MAX - 4} "
                             f"bytes (a unix socket address holds {SUN_PATH_MAX}, and the "
                             "agent binds PATH.new first)")
        parent = os.path.dirname(path) or "."
        try:
            os.makedirs(parent, mode=0o755, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create the socket's directory {parent}: "
                             f"{e.strerror}") from None
        self.fd = self._lock()
        try:
            self._clear()
        except BaseException:
            self.release()
            raise

    def _lock(self) -> int:
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                             | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
            except OSError as e:
                raise UsageError(f"cannot open the agent's lock {self.lock_path}: "
                                 f"{e.strerror}") from None
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise UsageError(f"{self.lock_path} is not a regular file: remove it or "
                                     "choose another --socket")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise UsageError(f"an agent is serving {self.path} already") from None
                with contextlib.suppress(FileNotFoundError):
                    now = os.lstat(self.lock_path)
                    if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                        return fd
                # The holder removed the file between our open and our lock: take the new one.
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _clear(self) -> None:
        self._clear_path(self.staging)
        self._clear_path(self.path)

    def _clear_path(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else
                    "a symbolic link" if stat.S_ISLNK(st.st_mode) else
                    "a regular file" if stat.S_ISREG(st.st_mode) else "not a socket")
            raise UsageError(f"{path} exists and is {kind}: remove it or choose another "
                             "--socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)                 # a socket nobody answers on: left by a dead agent
            log.info("agent: removed the stale socket %s", path)
            return
        except OSError as e:
            raise UsageError(f"cannot tell whether {path} is in use: "
                             f"{e.strerror or e}") from None
        finally:
            probe.close()
        raise UsageError(f"{path} is a socket another process answers on: stop it or "
                         "choose another --socket")

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.lock_path)       # while still holding it (see _lock)
        os.close(self.fd)
        self.fd = None


def serve(gateway: Gateway, path: str | os.PathLike, **limits: Any) -> AgentServer:
    """The agent's server for GATEWAY, bound to PATH (call serve_forever()); LIMITS:
    timeout, max_connections (AgentServer)."""
    if os.geteuid() != 0:
        raise UsageError("lab agent runs as root (its socket belongs to root)")
    return AgentServer(path, GatewayApi(gateway), **limits)


@contextlib.contextmanager
def serving(gateway: Gateway, path: str | os.PathLike,
            **limits: Any) -> Iterator[AgentServer]:
    """The agent in a background thread for the duration of the block."""
    server = serve(gateway, path, **limits)
    thread = threading.Thread(target=server.serve_forever, name="lab-agent", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket."""

    def __init__(self, path: str | os.PathLike, timeout: float = 10.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def request(path: str | os.PathLike, method: str, url: str,
            body: Any = None) -> tuple[int, Any]:
    """One request to the agent at PATH: (status, decoded JSON or None)."""
    conn = UnixHTTPConnection(path)
    try:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, url, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def default_socket(lab: str, node: str) -> Path:
    """Where `lab agent` listens for a lab's gateway: in the lab's run directory."""
    from lab.state import LabRecord
    return LabRecord(lab).dir / f"gateway-{node}.sock"
