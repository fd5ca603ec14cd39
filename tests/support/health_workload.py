"""TCP traffic that retransmits, resets and overflows, for tests/test_health.py.

Run inside a network namespace of the test's own (``ip netns exec``), on
its loopback, while the test's nftables rules drop chosen packets; prints
one JSON object saying what it did:

    health_workload.py lossy PORT N     N connections per family to PORT,
                                        each sending and echoing data
    health_workload.py resets PORT      resets of known kinds, each way
    health_workload.py overflow PORT CPORT GO
                                        a client (port CPORT) of a listener
                                        with backlog 1 that never accepts
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time

from netutil import LOOPBACK, recv_exact, set_reset_on_close

#: Bytes each lossy connection sends and gets back: several segments.
PAYLOAD = 64 * 1024
CHUNK = 4096


def serve_echo(ls: socket.socket, n: int) -> threading.Thread:
    """Accept n connections and echo each one's PAYLOAD back, then close."""

    def run() -> None:
        def echo(conn: socket.socket) -> None:
            with conn:
                data = recv_exact(conn, PAYLOAD)
                conn.sendall(data)
                conn.recv(1)  # the client's FIN

        workers = []
        for _ in range(n):
            conn, _ = ls.accept()
            worker = threading.Thread(target=echo, args=(conn,))
            worker.start()
            workers.append(worker)
        for worker in workers:
            worker.join()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def lossy(port: int, n: int) -> dict[str, object]:
    """Per family, n concurrent connections, each sending PAYLOAD in chunks
    and reading it back, then closing in order (the client first)."""
    ports = []
    for family in (socket.AF_INET, socket.AF_INET6):
        with socket.socket(family, socket.SOCK_STREAM) as ls:
            ls.bind((LOOPBACK[family], port))
            ls.listen(128)
            server = serve_echo(ls, n)

            def client(host: str = LOOPBACK[family]) -> None:
                with socket.create_connection((host, port), timeout=60) as c:
                    ports.append(c.getsockname()[1])
                    for _ in range(0, PAYLOAD, CHUNK):
                        c.sendall(b"x" * CHUNK)
                    recv_exact(c, PAYLOAD)
                    c.shutdown(socket.SHUT_WR)
                    c.recv(1)

            clients = [threading.Thread(target=client) for _ in range(n)]
            for t in clients:
                t.start()
            for t in clients:
                t.join()
            server.join()
    return {"pid": os.getpid(), "client_ports": sorted(ports)}


def resets(port: int) -> dict[str, object]:
    """Per family: a connect to a closed port (RST sent with no socket, and
    received in SYN_SENT); an abortive close (SO_LINGER 0: RST sent by the
    closer, received by its peer); data to a socket closed by its process
    (the orphan answers RST). Returns the client ports of each."""
    done: dict[str, list[int]] = {"refused": [], "linger": [], "data_after_close": []}
    for family in (socket.AF_INET, socket.AF_INET6):
        host = LOOPBACK[family]
        with socket.socket(family, socket.SOCK_STREAM) as c:
            c.bind((host, 0))
            done["refused"].append(c.getsockname()[1])
            with contextlib.suppress(ConnectionRefusedError):
                c.connect((host, port + 1))
        with socket.socket(family, socket.SOCK_STREAM) as ls:
            ls.bind((host, port))
            ls.listen(8)
            # Abortive close by the client: the server receives the RST.
            c = socket.create_connection((host, port))
            s, _ = ls.accept()
            done["linger"].append(c.getsockname()[1])
            set_reset_on_close(c)
            c.close()
            with contextlib.suppress(ConnectionResetError):
                s.recv(1)
            s.close()
            # The server closes; the client's data then meets an orphan
            # that can no longer read it: it answers with RST.
            c = socket.create_connection((host, port))
            s, _ = ls.accept()
            done["data_after_close"].append(c.getsockname()[1])
            # An orphan whose FIN is acknowledged while its close() runs
            # stays a full socket; one acknowledged just after becomes a
            # FIN_WAIT2 time-wait socket (and answers TCP_TIMEWAIT_SOCKET)
            # unless its FIN_WAIT2 timeout is longer than TIME_WAIT's:
            # 120 s makes it the full orphan every time.
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, 120)
            s.close()
            c.recv(1)  # its FIN
            c.sendall(b"late")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    c.sendall(b"x")  # fails once the RST came back
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.01)
            c.close()
    return {"pid": os.getpid(), **done}


def overflow(port: int, client_port: int, go: str) -> dict[str, object]:
    """A listener with backlog 1 that never accepts. The client bound to
    client_port connects first, but the test drops its handshake's last ACK
    until the file `go` exists: its request waits (the request queue is
    then full: the next SYNs are answered with cookies). Two more clients
    fill the accept queue. Then the first one's data completes its
    handshake into a full queue, and again at each retransmission, until it
    is closed with RST."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    late = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    late.bind(("127.0.0.1", client_port))
    late.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        late.connect(("127.0.0.1", port))
    time.sleep(0.1)
    queued = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    late.send(b"hello")
    time.sleep(1.5)  # it retransmits; the listener's SYN-ACK comes again
    ports = [c.getsockname()[1] for c in queued]
    for c in [late, *queued]:
        set_reset_on_close(c)
        c.close()
    ls.close()
    return {"pid": os.getpid(), "queued": ports}


if __name__ == "__main__":
    what, port = sys.argv[1], int(sys.argv[2])
    if what == "lossy":
        result = lossy(port, int(sys.argv[3]))
    elif what == "resets":
        result = resets(port)
    else:
        result = overflow(port, int(sys.argv[3]), sys.argv[4])
    print(json.dumps(result), flush=True)
