"""Held-open loopback connections and the kernel's own TCP_INFO of them.

For the tests of ``tcpevent.connections()`` and ``tcpevent --connections``.
Only 127.0.0.1 and ::1 are used.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from netutil import LOOPBACK, recv_exact, set_reset_on_close

T = TypeVar("T")

# struct tcp_info as the kernel lays it out (include/uapi/linux/tcp.h),
# independently of csrc/sockdiag.h: name -> (offset, struct code).
KERNEL_TCP_INFO: dict[str, tuple[int, str]] = {
    "state": (0, "B"),
    "rto_us": (8, "I"),
    "snd_mss": (16, "I"),
    "rcv_mss": (20, "I"),
    "rtt_us": (68, "I"),
    "rttvar_us": (72, "I"),
    "snd_cwnd": (80, "I"),
    "total_retrans": (100, "I"),
    "bytes_acked": (120, "Q"),
    "bytes_received": (128, "Q"),
    "segs_out": (136, "I"),
    "segs_in": (140, "I"),
    "data_segs_in": (152, "I"),
    "data_segs_out": (156, "I"),
    "bytes_sent": (200, "Q"),
    "snd_wnd": (228, "I"),
}
# The fields compared with tcpevent's (state is Connection.state there).
COMPARED = tuple(name for name in KERNEL_TCP_INFO if name != "state")

SO_COOKIE = 57  # include/uapi/asm-generic/socket.h


def kernel_tcp_info(sock: socket.socket) -> dict[str, int]:
    """getsockopt(TCP_INFO), parsed at the kernel's offsets."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    return {
        name: struct.unpack_from("=" + code, raw, off)[0]
        for name, (off, code) in KERNEL_TCP_INFO.items()
    }


def socket_cookie(sock: socket.socket) -> int:
    return int(struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0])


def congestion_control(sock: socket.socket) -> str:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
    return raw.partition(b"\0")[0].decode()


def own_comm() -> str:
    return Path("/proc/self/comm").read_text().rstrip("\n")


def own_cmdline() -> str:
    return Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode()


class Held:
    """A loopback connection kept open: listener, client, accepted server.

    ``exchange(up, down)`` sends ``up`` bytes client -> server and ``down``
    bytes back, each read in full by the other side.
    """

    def __init__(self, family: int = socket.AF_INET) -> None:
        self.family = family
        self.addr = LOOPBACK[socket.AddressFamily(family)]
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((self.addr, 0))
        self.listener.listen(16)
        self.port: int = self.listener.getsockname()[1]
        self.client = socket.create_connection((self.addr, self.port))
        self.server, _ = self.listener.accept()
        self.cport: int = self.client.getsockname()[1]
        self.up = self.down = 0

    def exchange(self, up: int, down: int) -> None:
        self.client.sendall(b"u" * up)
        recv_exact(self.server, up)
        self.server.sendall(b"d" * down)
        recv_exact(self.client, down)
        self.up += up
        self.down += down

    def infos(self) -> tuple[dict[str, int], dict[str, int]]:
        return kernel_tcp_info(self.client), kernel_tcp_info(self.server)

    def close(self, reset: bool = False) -> None:
        for s in (self.client, self.server, self.listener):
            if reset and s is not self.listener:
                set_reset_on_close(s)
            s.close()

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stable(
    held: Held, read: Callable[[], T], tries: int = 40
) -> tuple[T, dict[str, int], dict[str, int]]:
    """``read()`` while the kernel's counters of ``held`` hold still.

    TCP_INFO of both ends is read before and after; the result counts only
    when the two reads agree (a delayed ACK may land in between), else the
    whole thing is retried. Returns (result, client info, server info).
    """
    for _ in range(tries):
        before = held.infos()
        result = read()
        after = held.infos()
        if before == after:
            return result, after[0], after[1]
        time.sleep(0.05)
    raise AssertionError("the tcp_info counters never held still")
