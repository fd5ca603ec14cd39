"""UDP traffic of known shape, run in a test's network namespace
(``ip netns exec NAME python3 udp_workload.py SCENARIO...``).

Every socket is closed before the process exits. It prints, as JSON, its
pid and what each socket sent to and got from each peer: the flows a
tracer must report, exactly.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

V4, V6 = socket.AF_INET, socket.AF_INET6
flows: dict[tuple[int, int, str], dict[str, int]] = {}


def flow(sock: socket.socket, peer: Any) -> dict[str, int]:
    key = (sock.getsockname()[1], peer[1], peer[0])
    return flows.setdefault(key, {"tx_bytes": 0, "tx": 0, "rx_bytes": 0, "rx": 0, "drops": 0})


def note(sock: socket.socket, peer: Any, tx: int | None = None, rx: int | None = None) -> None:
    """Count one datagram of ``tx`` (sent) or ``rx`` (received) payload
    bytes on the flow (sock, peer)."""
    f = flow(sock, peer)
    if tx is not None:
        f["tx_bytes"] += tx
        f["tx"] += 1
    if rx is not None:
        f["rx_bytes"] += rx
        f["rx"] += 1


def server_and_clients(family: int, host: str, clients: int, rounds: int, connected: bool) -> None:
    """One server answering many clients; each client sends ``rounds``
    datagrams (sizes vary) and reads the echo of each (plus 3 bytes)."""
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    addr = server.getsockname()[:2]
    socks = []
    for c in range(clients):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        if connected:
            s.connect(addr)
        socks.append(s)
        for r in range(rounds):
            data = b"q" * (1 + (c * 7 + r * 13) % 300)
            if connected:
                s.send(data)
            else:
                s.sendto(data, addr)
            note(s, addr, tx=len(data))
            got, peer = server.recvfrom(65536)
            note(server, peer[:2], rx=len(got))
            server.sendto(got + b"abc", peer)
            note(server, peer[:2], tx=len(got) + 3)
            back, _ = s.recvfrom(65536)
            note(s, addr, rx=len(back))
    for s in socks:
        s.close()
    server.close()


def v4_mapped() -> None:
    """An AF_INET6 server on :: answering IPv4 clients, and an AF_INET6
    client talking to ::ffff:127.0.0.1: both kinds of v4-mapped flow."""
    server = socket.socket(V6, socket.SOCK_DGRAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", 0))
    port = server.getsockname()[1]
    v4 = socket.socket(V4, socket.SOCK_DGRAM)
    v4.bind(("127.0.0.1", 0))
    v6 = socket.socket(V6, socket.SOCK_DGRAM)
    v6.bind(("::", 0))
    for client, dest in ((v4, ("127.0.0.1", port)), (v6, ("::ffff:127.0.0.1", port))):
        for n in (10, 20, 30):
            client.sendto(b"m" * n, dest)
            note(client, dest, tx=n)
            got, peer = server.recvfrom(65536)  # ("::ffff:127.0.0.1", port, ...)
            note(server, peer[:2], rx=len(got))
            server.sendto(got * 2, peer)
            note(server, peer[:2], tx=2 * len(got))
            back, _ = client.recvfrom(65536)
            note(client, dest, rx=len(back))
    for s in (v4, v6, server):
        s.close()


def slow_receiver() -> None:
    """A receiver with a small buffer that reads only after the sender is
    done: the kernel refuses part of the datagrams (RcvbufErrors)."""
    rx = socket.socket(V4, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(V4, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    addr, own = rx.getsockname(), tx.getsockname()
    for _ in range(200):
        tx.sendto(b"d" * 500, addr)
        note(tx, addr, tx=500)
    rx.setblocking(False)
    got = 0
    while True:
        try:
            data = rx.recv(65536)
        except BlockingIOError:
            break
        got += 1
        note(rx, own, rx=len(data))
    # All 200 reached the socket (its ingress); the queue refused the rest.
    f = flow(rx, own)
    f.update(rx=200, rx_bytes=200 * 500, drops=200 - got)
    tx.close()
    rx.close()


def long_lived() -> None:
    """A connected pair exchanging every 0.25 s for 3.6 s: a flow that
    lives past several 1-second export intervals."""
    a = socket.socket(V4, socket.SOCK_DGRAM)
    b = socket.socket(V4, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.connect(b.getsockname())
    b.connect(a.getsockname())
    end = time.monotonic() + 3.6
    i = 0
    while time.monotonic() < end:
        i += 1
        a.send(b"L" * i)
        note(a, b.getsockname(), tx=i)
        note(b, a.getsockname(), rx=len(b.recv(65536)))
        time.sleep(0.25)
    a.close()
    b.close()


SCENARIOS: dict[str, Callable[[], None]] = {
    "v4_connected": lambda: server_and_clients(V4, "127.0.0.1", 3, 5, True),
    "v4_unconnected_many": lambda: server_and_clients(V4, "127.0.0.1", 25, 4, False),
    "v6_connected": lambda: server_and_clients(V6, "::1", 3, 5, True),
    "v6_unconnected_many": lambda: server_and_clients(V6, "::1", 10, 3, False),
    "v4_mapped": v4_mapped,
    "slow_receiver": slow_receiver,
    "long_lived": long_lived,
}

if __name__ == "__main__":
    for name in sys.argv[1:]:
        SCENARIOS[name]()
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "flows": [
                    {"sport": k[0], "dport": k[1], "daddr": k[2], **v} for k, v in flows.items()
                ],
            }
        )
    )
