"""Known loopback traffic for tests/test_exporter.py, one role per process.

Run inside the test's own network namespace (``ip netns exec NAME python3
exporter_traffic.py ROLE ...``), so that every port is the test's. Each
process names itself (its comm) COMM, prints ``ready``, and:

- ``serve COMM PORT:IN:OUT ...``: listens on 127.0.0.1 and ::1 at each PORT;
  per connection reads IN bytes, sends OUT bytes, waits for the peer's FIN
  and closes; until its stdin closes;
- ``connect COMM PORT IN OUT N``: after a line ``go``, makes N connections
  to PORT, IPv4 and IPv6 alternately, each sending IN bytes, reading OUT
  bytes and closing first; prints ``done N``;
- ``refused COMM PORT N``: after ``go``, N connects to PORT, where nothing
  listens, IPv4 and IPv6 alternately: each refused; prints ``done N``;
- ``budget COMM LISTEN_BASE LISTENERS CLIENT_BASE PER_LISTENER``: after
  ``go``, for each of LISTENERS ports from LISTEN_BASE in turn, listens on
  127.0.0.1 and makes PER_LISTENER connections to it, each from a local
  port of its own bound explicitly (from CLIENT_BASE on), accepts, closes
  both ends; prints ``done N``. One listener and one connection at a time:
  a handful of file descriptors, however many connections.
"""

from __future__ import annotations

import socket
import sys
import threading

LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def recv_exact(sock: socket.socket, n: int) -> None:
    while n:
        chunk = sock.recv(min(n, 1 << 16))
        if not chunk:
            raise ConnectionError("peer closed early")
        n -= len(chunk)


def serve_one(ls: socket.socket, size_in: int, size_out: int) -> None:
    while True:
        try:
            conn, _ = ls.accept()
        except OSError:
            return  # the listener was closed
        with conn:
            recv_exact(conn, size_in)
            conn.sendall(b"s" * size_out)
            while conn.recv(1 << 16):
                pass


def serve(specs: list[str]) -> None:
    listeners = []
    for spec in specs:
        port, size_in, size_out = map(int, spec.split(":"))
        for family, addr in LOOPBACK.items():
            ls = socket.socket(family, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((addr, port))
            ls.listen(128)
            listeners.append(ls)
            threading.Thread(target=serve_one, args=(ls, size_in, size_out), daemon=True).start()
    say("ready")
    sys.stdin.read()  # until the test closes our stdin


def connect(port: int, size_in: int, size_out: int, n: int) -> None:
    say("ready")
    assert sys.stdin.readline().strip() == "go"
    for i in range(n):
        family = socket.AF_INET if i % 2 == 0 else socket.AF_INET6
        with socket.create_connection((LOOPBACK[family], port)) as s:
            s.sendall(b"c" * size_in)
            recv_exact(s, size_out)
    say(f"done {n}")


def refused(port: int, n: int) -> None:
    say("ready")
    assert sys.stdin.readline().strip() == "go"
    for i in range(n):
        family = socket.AF_INET if i % 2 == 0 else socket.AF_INET6
        with socket.socket(family) as s:
            try:
                s.connect((LOOPBACK[family], port))
            except ConnectionRefusedError:
                continue
        raise AssertionError(f"a connect to {port} was not refused")
    say(f"done {n}")


def budget(listen_base: int, listeners: int, client_base: int, per_listener: int) -> None:
    say("ready")
    assert sys.stdin.readline().strip() == "go"
    made = 0
    for j in range(listeners):
        with socket.socket() as ls:
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", listen_base + j))
            ls.listen(per_listener)
            for _ in range(per_listener):
                client = socket.socket()
                client.bind(("127.0.0.1", client_base + made))
                client.connect(("127.0.0.1", listen_base + j))
                server, _ = ls.accept()
                client.close()
                server.close()
                made += 1
    say(f"done {made}")


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str]) -> None:
    role, comm, *args = argv
    with open("/proc/self/comm", "w") as f:
        f.write(comm)
    if role == "serve":
        serve(args)
    elif role == "connect":
        connect(*map(int, args))
    elif role == "refused":
        refused(*map(int, args))
    elif role == "budget":
        budget(*map(int, args))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
