"""A TCP server for the gateway's end-to-end tests: answers every line it receives on a
connection with its own name, so a client sees which pod it reached and whether a connection
still reaches the same one later.

    python name_server.py NAME PORT
"""

import socket
import sys
import threading


def serve(conn: socket.socket, name: bytes) -> None:
    with conn, conn.makefile("rb") as lines:
        for _ in lines:
            conn.sendall(name + b"\n")


def main() -> None:
    name, port = sys.argv[1].encode(), int(sys.argv[2])
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", port))
    srv.listen(1024)
    print("listening", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, name), daemon=True).start()


if __name__ == "__main__":
    main()
