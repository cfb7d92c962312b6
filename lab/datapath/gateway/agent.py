"""`lab agent`: the gateway's HTTP/JSON API (api.py) served on a unix socket.

The socket is created with mode 0600 and owned by root, and every connection's peer is
checked with SO_PEERCRED: a process of another user (one that got hold of the socket some
other way, or reached it despite its mode) is answered 403 and disconnected. The agent keeps
no state of its own: services and connections live in the gateway's pinned maps, so stopping
and restarting it loses nothing, and `lab service` may change them meanwhile.

    with serving(gateway, path):      # in a thread, e.g. for tests
        request(path, "GET", "/v1/services")
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import logging
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from lab.datapath.gateway.api import GatewayApi
from lab.datapath.gateway.control import Gateway
from lab.errors import UsageError

log = logging.getLogger("lab.gateway")

ALLOWED_UID = 0
_REFUSAL = (b"HTTP/1.0 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s")


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("agent: " + format, *args)


class AgentServer(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server on a root-only unix socket."""

    address_family = socket.AF_UNIX
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: str | os.PathLike, app: Any):
        self.path = str(path)
        super().__init__(self.path, _Handler)
        self.set_app(app)

    def server_bind(self) -> None:
        _clear_stale(self.path)
        old = os.umask(0o177)  # the socket is never reachable by others, not even briefly
        try:
            self.socket.bind(self.path)
        finally:
            os.umask(old)
        os.chown(self.path, 0, 0)
        os.chmod(self.path, 0o600)
        self.server_address = self.path
        self.server_name, self.server_port = "localhost", 0
        self.setup_environ()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)  # a peer on a unix socket has no address; WSGI wants one

    def verify_request(self, request: Any, client_address: Any) -> bool:
        uid = peer_uid(request)
        if uid == ALLOWED_UID:
            return True
        log.warning("agent: refused a connection from uid %d", uid)
        body = json.dumps({"error": f"the gateway agent serves root only (you are uid "
                                    f"{uid})"}).encode()
        with contextlib.suppress(OSError):
            request.sendall(_REFUSAL % (len(body), body))
            # Read what the client sent before closing: closing a unix socket with unread
            # data resets the connection, and the client might lose the answer.
            request.shutdown(socket.SHUT_WR)
            request.settimeout(1.0)
            while request.recv(65536):
                pass
        return False

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _clear_stale(path: str) -> None:
    """Remove a socket file left by an agent that died; refuse if one is still serving."""
    if not os.path.lexists(path):
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as e:
        if e.errno not in (errno.ECONNREFUSED, errno.ENOTSOCK, errno.ENOENT):
            raise
        os.unlink(path)
        return
    finally:
        probe.close()
    raise UsageError(f"an agent is serving {path} already")


def serve(gateway: Gateway, path: str | os.PathLike) -> AgentServer:
    """The agent's server for GATEWAY, bound to PATH (call serve_forever())."""
    if os.geteuid() != 0:
        raise UsageError("lab agent runs as root (its socket belongs to root)")
    return AgentServer(path, GatewayApi(gateway))


@contextlib.contextmanager
def serving(gateway: Gateway, path: str | os.PathLike) -> Iterator[AgentServer]:
    """The agent in a background thread for the duration of the block."""
    server = serve(gateway, path)
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
