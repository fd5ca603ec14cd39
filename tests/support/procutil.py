"""Running the example clients as subprocesses and reading what they print."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from liveness import ATTACH_TIMEOUT
from netutil import Connection, connection


class Output:
    """Collects a process's stdout lines in a thread, for polling."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.text()):
                return True
            if self.proc.poll() is not None:
                self._thread.join(1)
                return predicate(self.text())
            time.sleep(0.02)
        return predicate(self.text())


class LoggedChild:
    """A child process (its stdout discarded) whose stderr a thread reads as
    it comes: :meth:`log` is what it has written so far, for polling."""

    #: How long :meth:`stop` waits for it to exit before killing it.
    stop_timeout = 60.0

    def __init__(self, cmd: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self._lines.append(line)

    def log(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int:
        """Stop it with ``sig``; its exit status (killed after ``timeout``,
        :attr:`stop_timeout` unless given)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


def without_preload() -> dict[str, str]:
    """The environment minus LD_PRELOAD: ``make test-asan`` preloads the
    sanitizer runtime for our library, not for the servers the tests run
    (Prometheus, ClickHouse, PostgreSQL, sshd) nor for the tools they ask
    (bpftool hangs in ``prog dump xlated`` under it)."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def start(cmd: Sequence[str], **kwargs: Any) -> tuple[subprocess.Popen[str], Output]:
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    return proc, Output(proc)


def wait_until_tracing(
    out: Output, port_seen: Callable[[str, int], bool], timeout: float = ATTACH_TIMEOUT
) -> None:
    """Make throwaway connections until the tracer reports one of them.

    The clients print nothing until the first event, so this is how a test
    knows the probe is attached before it makes the connections it checks.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        port = connection(client_sends=1, server_sends=1).server.port
        if out.wait_for(lambda text, port=port: port_seen(text, port), timeout=0.5):
            return
        assert out.proc.poll() is None, f"client exited early: {out.text()}"
    raise AssertionError(f"tracer never reported a connection; output: {out.text()!r}")


BLOCK_RE = re.compile(
    r"---\n"
    r"PID: (?P<pid>\d+)\n"
    r"UID: (?P<uid>\d+)\n"
    r"Bytes received: (?P<rx>\d+)\n"
    r"Bytes sent: (?P<tx>\d+)\n"
    r"Segments out: (?P<segs_out>\d+)\n"
    r"Segments in: (?P<segs_in>\d+)\n"
    r"Command: (?P<task>.*)\n"
    r"Source: (?P<saddr>.+):(?P<sport>\d+)\n"
    r"Destination: (?P<daddr>.+):(?P<dport>\d+)\n"
    r"Event time: (?P<time>\d+)\n"
    r"---"
)


def parse_blocks(text: str) -> list[dict[str, Any]]:
    """The seed's "Example Output" blocks, as dicts with typed values."""
    blocks = []
    for m in BLOCK_RE.finditer(text):
        d: dict[str, Any] = m.groupdict()
        for key in ("pid", "uid", "rx", "tx", "segs_out", "segs_in", "sport", "dport", "time"):
            d[key] = int(d[key])
        blocks.append(d)
    return blocks


def own_comm() -> str:
    with open(f"/proc/{os.getpid()}/comm") as f:
        return f.read().strip()


@dataclass(frozen=True)
class Owner:
    """Who a socket belongs to, as an event names it."""

    pid: int
    uid: int
    comm: str


def me() -> Owner:
    return Owner(os.getpid(), os.getuid(), own_comm())


def check_pair(
    events: list[dict[str, Any]],
    conn: Connection,
    keys: dict[str, str],
    owners: tuple[Owner, Owner] | None = None,
    closed: tuple[int, int] | None = None,
) -> None:
    """Both ends of a connection, as reported: exactly one event each.

    ``keys`` names the fields in ``events``: pid, uid, task, saddr, sport,
    daddr, dport, rx, tx, segs_out, segs_in, time. ``owners``: the client's
    and the server's owner (default: this process for both). ``closed``:
    the wall-clock ns before and after the closes; the event time must lie
    within a second of that span (default: of now).
    """
    k = keys
    now = time.time_ns()
    first, last = closed or (now, now)
    client_owner, server_owner = owners or (me(), me())
    sides = [
        (conn.client, conn.server, conn.client_sent, conn.server_sent, client_owner),
        (conn.server, conn.client, conn.server_sent, conn.client_sent, server_owner),
    ]
    for local, remote, sent, received, owner in sides:
        matches = [
            e for e in events if e[k["sport"]] == local.port and e[k["dport"]] == remote.port
        ]
        assert len(matches) == 1, (local, remote, matches)
        e = matches[0]
        assert (e[k["pid"]], e[k["uid"]], e[k["task"]]) == (owner.pid, owner.uid, owner.comm)
        assert e[k["saddr"]] == local.addr
        assert e[k["daddr"]] == remote.addr
        # bytes_acked counts the SYN and the FIN; bytes_received the FIN.
        assert sent <= e[k["tx"]] <= sent + 2
        assert received <= e[k["rx"]] <= received + 2
        assert e[k["segs_out"]] > 0
        assert e[k["segs_in"]] > 0
        assert first - 1_000_000_000 < e[k["time"]] < last + 1_000_000_000
