"""A TCP exchange between two namespaces that tells whether every byte got through, both ways:
what the translator's tests (tests/bpf/xlate, tests/integration) send through a gateway."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

from lab import netns


def tcp_exchange(server_ns, server_family, client_ns, client_family, dst, size=2 << 20):
    """SIZE random bytes from a client in CLIENT_NS to a server in SERVER_NS at DST, the
    server's digest of them and 64 KiB of them back: returns (the client's address as the
    server saw it, whether every byte arrived intact both ways)."""
    data = os.urandom(size)
    srv = netns.socket_in(server_ns, server_family, socket.SOCK_STREAM)
    srv.bind(("::" if server_family == socket.AF_INET6 else "0.0.0.0", 0))
    srv.listen(1)
    srv.settimeout(20)
    port = srv.getsockname()[1]
    seen = {}

    def serve():
        conn, peer = srv.accept()
        seen["peer"] = peer[0]
        with conn:
            conn.settimeout(20)
            h, n = hashlib.sha256(), 0
            while n < size:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
            conn.sendall(h.digest() + data[:65536])

    t = threading.Thread(target=serve)
    t.start()
    cli = netns.socket_in(client_ns, client_family, socket.SOCK_STREAM)
    try:
        cli.settimeout(20)
        cli.connect((dst, port))
        cli.sendall(data)
        back = b""
        while len(back) < 32 + 65536:
            chunk = cli.recv(1 << 16)
            if not chunk:
                break
            back += chunk
    finally:
        cli.close()
        t.join(25)
        srv.close()
    return seen.get("peer"), back == hashlib.sha256(data).digest() + data[:65536]
