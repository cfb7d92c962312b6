"""The client side of the gateway's end-to-end tests, run inside the client's namespace.

    python gateway_client.py ADDRESS PORT spread N
        N connections one after another, one line each: prints {"counts": {pod: n}}
    python gateway_client.py ADDRESS PORT hold K
        K connections kept open: prints [pod, ...]; then for every line on stdin, one
        request on each connection, printing [pod or "error: ...", ...]
"""

import collections
import json
import socket
import sys


def ask(conn):
    try:
        conn.sendall(b"who\n")
        line = conn.makefile("rb").readline()
        return line.decode().strip() or "error: closed"
    except OSError as e:
        return f"error: {e}"


def main():
    addr, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if mode == "spread":
        counts = collections.Counter()
        for _ in range(n):
            with socket.create_connection((addr, port), timeout=5) as c:
                counts[ask(c)] += 1
        print(json.dumps({"counts": counts}), flush=True)
        return
    conns = [socket.create_connection((addr, port), timeout=5) for _ in range(n)]
    print(json.dumps([ask(c) for c in conns]), flush=True)
    for _ in sys.stdin:
        print(json.dumps([ask(c) for c in conns]), flush=True)


if __name__ == "__main__":
    main()
