#!/usr/bin/env python3
"""Bulk transfer server and client for the tunnel benchmark.

server PORT          -- on connect, reads one command line: "down N" sends N bytes then
                        closes; "up" reads to EOF and answers with the byte count.
down HOST PORT BYTES -- prints Mbit/s of a download of BYTES.
up HOST PORT BYTES   -- prints Mbit/s of an upload of BYTES (timed until the server has
                        read them all and answered).
"""
import socket
import sys
import threading
import time

CHUNK = 256 * 1024


def serve(port):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("0.0.0.0", port))
    lst.listen(128)
    block = b"\xa5" * CHUNK
    while True:
        conn, _ = lst.accept()
        threading.Thread(target=handle, args=(conn, block), daemon=True).start()


def handle(conn, block):
    with conn:
        line = b""
        while not line.endswith(b"\n"):
            got = conn.recv(1)
            if not got:
                return
            line += got
        words = line.split()
        if words[0] == b"down":
            left = int(words[1])
            while left > 0:
                n = conn.send(block[: min(left, CHUNK)])
                left -= n
        else:
            conn.sendall(b"%d\n" % drain(conn))


def drain(conn):
    """Reads until the peer closes; the number of bytes read."""
    total = 0
    while True:
        got = conn.recv(CHUNK)
        if not got:
            return total
        total += len(got)


def client(mode, host, port, size):
    conn = socket.create_connection((host, port))
    start = time.monotonic()
    if mode == "down":
        conn.sendall(b"down %d\n" % size)
        got = drain(conn)
        if got != size:
            sys.exit(f"short download: {got} of {size}")
    else:
        conn.sendall(b"up\n")
        block = b"\x5a" * CHUNK
        left = size
        while left > 0:
            conn.sendall(block[: min(left, CHUNK)])
            left -= min(left, CHUNK)
        conn.shutdown(socket.SHUT_WR)
        answer = conn.makefile().readline()
        if int(answer) != size:
            sys.exit(f"short upload: {answer.strip()} of {size}")
    seconds = time.monotonic() - start
    print(f"{size * 8 / seconds / 1e6:.0f}")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        client(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
