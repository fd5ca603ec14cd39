"""UDP traffic of known shape between sockets of this process, and its flows' sums."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Exchange:
    """What one client and one server sent each other (payload bytes, datagrams)."""

    family: int
    client_port: int
    server_port: int
    client_bytes: int
    client_datagrams: int
    server_bytes: int
    server_datagrams: int


def loopback(family: int) -> str:
    return "127.0.0.1" if family == socket.AF_INET else "::1"


def exchange(
    family: int,
    client_sends: Iterable[int],
    server_sends: Iterable[int],
    connected: bool = True,
    host: str | None = None,
) -> Exchange:
    """A client sends datagrams of the given sizes to a server, which answers
    with its own; both read everything and close. Connected: the client
    connect()s and uses send(); else sendto() on both sides."""
    host = host or loopback(family)
    server = socket.socket(family, socket.SOCK_DGRAM)
    client = socket.socket(family, socket.SOCK_DGRAM)
    try:
        server.bind((host, 0))
        client.bind((host, 0))
        addr = server.getsockname()
        if connected:
            client.connect(addr)
        csizes, ssizes = list(client_sends), list(server_sends)
        for n in csizes:
            if connected:
                client.send(b"c" * n)
            else:
                client.sendto(b"c" * n, addr)
        for _ in csizes:
            server.recvfrom(65536)
        peer = client.getsockname()
        for n in ssizes:
            server.sendto(b"s" * n, peer)
        for _ in ssizes:
            client.recv(65536)
        return Exchange(
            family,
            client.getsockname()[1],
            addr[1],
            sum(csizes),
            len(csizes),
            sum(ssizes),
            len(ssizes),
        )
    finally:
        client.close()
        server.close()
