"""``tcpevent ship`` run by a test, and the loopback traffic it ships.

:class:`Ship` starts ``python -m tcpevent ship ARGS`` (the package the tests
import), collects its log, and knows where its ``--metrics`` serve.
:class:`Traffic` makes connections to a listener of its own, in a thread if
asked, and remembers each one's client port: the two close events of each
connection are ``outbound`` with that port as ``sport`` and ``inbound`` with
it as ``dport``, and nothing else has the listener's port.
"""

from __future__ import annotations

import gzip
import json
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from liveness import ATTACH_TIMEOUT
from procutil import LoggedChild

#: Events reach ClickHouse within this once it accepts them (batches of
#: 1 s at most, retries of 30 s at most: a liveness bound, not a speed).
ARRIVAL_TIMEOUT = 90.0
SHIPPING_RE = re.compile(r"tcpevent ship: shipping ")
SERVING_RE = re.compile(r"tcpevent ship: serving (https?://\S+)")
WAITING_RE = re.compile(r"\(spool \S+: (\d+) rows waiting\)")


class Ship(LoggedChild):
    """``python -m tcpevent ship ARGS``, returned once its tracer is attached."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        super().__init__([sys.executable, "-m", "tcpevent", "ship", *self.args])
        deadline = time.monotonic() + ATTACH_TIMEOUT
        while not SHIPPING_RE.search(self.log()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise AssertionError(f"tcpevent ship did not start: {self.log()!r}")
            time.sleep(0.05)
        m = SERVING_RE.search(self.log())
        self.metrics_url = m[1] if m else None

    def waiting(self) -> int:
        """The rows its spool held when it started, as it logged them."""
        m = WAITING_RE.search(self.log())
        assert m, self.log()
        return int(m[1])

    def wait_log(self, pattern: str, timeout: float = ARRIVAL_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            assert self.proc.poll() is None, self.log()
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in the log: {self.log()!r}")


def scrape(url: str, context: ssl.SSLContext | None = None) -> dict[str, float]:
    """The samples of a /metrics page (no labels kept), by name."""
    with urllib.request.urlopen(url, timeout=10, context=context) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def spool_rows(directory: Path) -> int:
    """Rows in a spool's batch files, from their names (<seq>-<rows>.jsonl.gz)."""
    return sum(int(p.name.split("-")[1].split(".")[0]) for p in directory.glob("*-*.jsonl.gz"))


def spooled_events(directory: Path) -> list[dict[str, object]]:
    """The rows in a spool's batch files (read while no shipper runs on it)."""
    rows = []
    for path in sorted(directory.glob("*-*.jsonl.gz")):
        text = gzip.decompress(path.read_bytes()).decode()
        rows += [json.loads(line) for line in text.splitlines()]
    return rows


def client_end(row: dict[str, object]) -> tuple[object, object]:
    """(direction, client port) of a close row of :class:`Traffic`'s."""
    port = row["sport"] if row["direction"] == "outbound" else row["dport"]
    return row["direction"], port


End = tuple[object, object]


def both_ends(ports: Iterable[int]) -> Counter[End]:
    """The close events of connections with these client ports, counted
    (a multiset: a port reused is two connections)."""
    return Counter((d, p) for p in ports for d in ("outbound", "inbound"))


def within(part: Counter[End], whole: Counter[End]) -> bool:
    """Each element of ``part`` at most as often in ``whole``."""
    return not excess(part, whole)


def excess(part: Counter[End], whole: Counter[End]) -> list[tuple[End, int, int]]:
    """What ``part`` has more often than ``whole``: (element, there, here)."""
    return [(k, n, whole[k]) for k, n in part.items() if whole[k] < n]


class Traffic:
    """Connections to one loopback listener of its own (``port``)."""

    def __init__(self, family: int = socket.AF_INET) -> None:
        self.family = family
        self.addr = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((self.addr, 0))
        self.listener.listen(512)
        self.port: int = self.listener.getsockname()[1]
        self.client_ports: list[int] = []
        #: Each connection: its client port, when it began and ended
        #: (monotonic). Loopback reuses a port in TIME_WAIT for a new
        #: connection (tcp_tw_reuse), so a port may come more than once.
        self.times: list[tuple[int, float, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def one(self, payload: int = 100) -> int:
        """One connection, ``payload`` bytes each way; its client port
        (recorded as soon as it is connected: its events come whatever
        happens next)."""
        began = time.monotonic()
        client = socket.create_connection((self.addr, self.port))
        port = int(client.getsockname()[1])
        with self._lock:
            self.client_ports.append(port)
        with client:
            server, _ = self.listener.accept()
            with server:
                client.sendall(b"c" * payload)
                _recv(server, payload)
                server.sendall(b"s" * payload)
                _recv(client, payload)
                client.close()
                server.recv(1)  # the FIN: the server's close is a LAST_ACK
        with self._lock:
            self.times.append((port, began, time.monotonic()))
        return port

    def many(self, n: int) -> list[int]:
        return [self.one(i % 1000 + 1) for i in range(n)]

    def start(self, per_second: float = 100.0) -> None:
        """Connections in a thread, about ``per_second``, until ``stop()``."""
        self._stop.clear()

        def run() -> None:
            try:
                while not self._stop.is_set():
                    self.one()
                    self._stop.wait(1 / per_second)
            except OSError as exc:
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; an error that ended it early is an AssertionError."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise AssertionError(f"the traffic thread failed: {error!r}")

    def ports(self) -> list[int]:
        with self._lock:
            return list(self.client_ports)

    def between(self, start: float, end: float) -> list[int]:
        """The client ports of the connections wholly within ``start..end``."""
        with self._lock:
            return [p for p, b, e in self.times if start <= b and e <= end]

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.listener.close()


def _recv(sock: socket.socket, n: int) -> None:
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("peer closed early")
        n -= len(chunk)
