"""Real loopback TCP connections whose every detail the test knows.

Only 127.0.0.1 and ::1 are ever used.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Literal

LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


@dataclass(frozen=True)
class Endpoint:
    addr: str
    port: int


@dataclass(frozen=True)
class Connection:
    family: int
    client: Endpoint  # the connecting side's local end
    server: Endpoint  # the accepted side's local end
    client_sent: int
    server_sent: int
    #: Wall clock when the connection was made: its close comes after.
    made_ns: int = field(default_factory=time.time_ns)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 16))
        if not chunk:
            raise ConnectionError("peer closed early")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def set_reset_on_close(sock: socket.socket) -> None:
    """close() then sends RST instead of FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def listener(family: int = socket.AF_INET) -> socket.socket:
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.bind((LOOPBACK[family], 0))
    ls.listen(128)
    return ls


def connection(
    family: int = socket.AF_INET,
    client_sends: int = 1000,
    server_sends: int = 2500,
    close_first: Literal["client", "server"] = "client",
    reset: bool = False,
) -> Connection:
    """Open, exchange known payloads both ways, and close one connection.

    ``reset`` makes the side that closes first abort with RST.
    """
    with listener(family) as ls:
        client = socket.create_connection(ls.getsockname()[:2])
        server, _ = ls.accept()
    conn = Connection(
        family=family,
        client=Endpoint(*client.getsockname()[:2]),
        server=Endpoint(*server.getsockname()[:2]),
        client_sent=client_sends,
        server_sent=server_sends,
    )
    client.sendall(b"c" * client_sends)
    recv_exact(server, client_sends)
    server.sendall(b"s" * server_sends)
    recv_exact(client, server_sends)
    first, second = (client, server) if close_first == "client" else (server, client)
    if reset:
        set_reset_on_close(first)
    first.close()
    if not reset:
        # Let the FIN arrive so the second close is a LAST_ACK, not a race.
        second.recv(1)
    second.close()
    return conn


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
