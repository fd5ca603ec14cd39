"""The Python API against the real kernel, with loopback connections.

The tracer sees the whole host: every test filters on its own pid or ports
and never assumes it is alone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import netutil
import pytest
from liveness import PROMPTLY

import tcpevent
from tcpevent import TcpEvent, TcpState, Tracer

pytestmark = pytest.mark.bpf

TESTS = Path(__file__).resolve().parent
COMM = Path("/proc/self/comm").read_text().strip()


def collect(tracer: Tracer, n: int, timeout: float = 5.0) -> list[TcpEvent]:
    """Dequeue until ``n`` events arrived (or the timeout)."""
    events: list[TcpEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < n and time.monotonic() < deadline:
        events += tracer.dequeue_batch(n - len(events), timeout=0.1)
    return events


def check_connection(conn: netutil.Connection, events: Iterable[TcpEvent]) -> None:
    """Both ends of ``conn`` are among ``events``, with exactly what the test did."""
    by_ports = {(ev.sport, ev.dport): ev for ev in events}
    now = time.time_ns()
    ends = [
        (conn.client, conn.server, conn.client_sent, conn.server_sent),
        (conn.server, conn.client, conn.server_sent, conn.client_sent),
    ]
    for local, remote, sent, received in ends:
        ev = by_ports.get((local.port, remote.port))
        assert ev is not None, f"no event for {local} -> {remote} in {list(by_ports)}"
        assert ev.pid == os.getpid()
        assert ev.uid == os.getuid()
        assert ev.task == COMM
        assert ev.family is conn.family
        assert isinstance(ev.family, socket.AddressFamily)
        assert ev.saddr == local.addr and ev.daddr == remote.addr
        assert sent <= ev.tx_bytes <= sent + 2, ev
        assert received <= ev.rx_bytes <= received + 2, ev
        assert ev.segs_out > 0 and ev.segs_in > 0
        # Closed after it was made, before now (within the clock's 1 s
        # tolerance); the test may have run for a while since.
        assert conn.made_ns - 1_000_000_000 < ev.time_ns < now + 1_000_000_000
        assert conn.made_ns / 1e9 - 1.0 < ev.time.timestamp() < now / 1e9 + 1.0
        assert ev.kind == "close"
        assert isinstance(ev.state, TcpState) and ev.state != TcpState.UNKNOWN
        assert ev.lifetime_ns > 0
        d = ev.to_dict()
        assert json.loads(json.dumps(d))["sport"] == local.port


def exchange(ls: socket.socket, client_sends: int, server_sends: int) -> netutil.Connection:
    """netutil.connection() through an existing listener (whose port we filter on)."""
    client = socket.create_connection(ls.getsockname()[:2])
    server, _ = ls.accept()
    conn = netutil.Connection(
        family=socket.AddressFamily(ls.family),
        client=netutil.Endpoint(*client.getsockname()[:2]),
        server=netutil.Endpoint(*server.getsockname()[:2]),
        client_sent=client_sends,
        server_sent=server_sends,
    )
    client.sendall(b"c" * client_sends)
    netutil.recv_exact(server, client_sends)
    server.sendall(b"s" * server_sends)
    netutil.recv_exact(client, server_sends)
    client.close()
    server.recv(1)
    server.close()
    return conn


@pytest.fixture
def own() -> Iterable[Tracer]:
    """A tracer of this process's connections only."""
    with Tracer(pids=[os.getpid()]) as tracer:
        yield tracer


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_dequeue_fields(own: Tracer, family: socket.AddressFamily) -> None:
    conn = netutil.connection(family, client_sends=1234, server_sends=4321)
    first = own.dequeue(timeout=5)
    second = own.dequeue(timeout=5)
    assert first is not None and second is not None
    check_connection(conn, [first, second])


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_batch_and_iteration_fields(own: Tracer, family: socket.AddressFamily) -> None:
    conns = [netutil.connection(family, 100 * i + 1, 50 * i + 7, reset=i == 2) for i in range(4)]
    events = collect(own, 2 * len(conns))
    assert len(events) == 2 * len(conns)
    for conn in conns:
        check_connection(conn, events)
    # Iteration delivers the same thing.
    conn = netutil.connection(family, 10, 20, close_first="server")
    got = []
    for ev in own:
        got.append(ev)
        if len(got) == 2:
            break
    check_connection(conn, got)


def test_batch_returns_at_most_n(own: Tracer) -> None:
    for _ in range(5):
        netutil.connection()
    assert netutil.wait_until(lambda: own.stats.queued >= 10)
    batch = own.dequeue_batch(3, timeout=1)
    assert len(batch) == 3
    rest = collect(own, 7)
    assert len(rest) == 7
    assert own.dequeue_batch(1024, timeout=0) == []
    assert own.stats.delivered == 10


def test_iteration_break_keeps_the_rest(own: Tracer) -> None:
    """Events fetched in a batch but not consumed are not lost."""
    for _ in range(3):
        netutil.connection()
    assert netutil.wait_until(lambda: own.stats.queued >= 6)
    for _ in own:
        break
    assert own.stats.buffered == 5
    rest = collect(own, 5, timeout=1)
    assert len(rest) == 5
    assert own.stats.buffered == 0


def test_timeouts(own: Tracer) -> None:
    for timeout in (0.0, 0.05, 0.3):
        start = time.monotonic()
        assert own.dequeue(timeout=timeout) is None
        elapsed = time.monotonic() - start
        assert timeout <= elapsed + 0.005 < timeout + PROMPTLY, (timeout, elapsed)
    start = time.monotonic()
    assert own.dequeue_batch(100, timeout=0.2) == []
    assert 0.195 <= time.monotonic() - start < 0.2 + PROMPTLY
    with pytest.raises(ValueError):
        own.dequeue(timeout=-1)
    with pytest.raises(ValueError):
        own.dequeue_batch(0)


def test_close_from_another_thread_ends_iteration_and_wakes_dequeue() -> None:
    tracer = Tracer(pids=[os.getpid()])
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            tracer.dequeue()
        except BaseException as exc:  # recorded for the assertion
            errors.append(exc)

    waiter = threading.Thread(target=blocked)
    waiter.start()
    threading.Timer(0.3, tracer.close).start()
    start = time.monotonic()
    assert list(tracer) == []
    assert 0.25 < time.monotonic() - start < 0.3 + PROMPTLY
    waiter.join(2)
    assert not waiter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], tcpevent.TracerClosedError)
    assert tracer.closed
    tracer.close()  # idempotent
    with pytest.raises(tcpevent.TracerClosedError):
        tracer.dequeue(timeout=0)
    with pytest.raises(tcpevent.TracerClosedError):
        tracer.fileno()
    assert tracer.stats.received == 0  # final values stay readable


def test_close_from_a_signal_handler() -> None:
    tracer = Tracer(pids=[os.getpid()])
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: tracer.close())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        start = time.monotonic()
        assert list(tracer) == []
        assert time.monotonic() - start < 0.2 + PROMPTLY
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert tracer.closed and tracer._handle is None


def test_concurrent_close_and_dequeue_hammer() -> None:
    """Many threads in the core while another closes: no crash, all return."""
    for _ in range(5):
        tracer = Tracer(pids=[os.getpid()], queue_size=16)
        stop = threading.Event()
        outcomes: list[str] = []

        def worker(
            t: Tracer = tracer,
            stop: threading.Event = stop,
            outcomes: list[str] = outcomes,
        ) -> None:
            while not stop.is_set():
                try:
                    t.dequeue_batch(8, timeout=0.01)
                    _ = t.stats
                except tcpevent.TracerClosedError:
                    outcomes.append("closed")
                    return

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for th in threads:
            th.start()
        time.sleep(0.05)
        closers = [threading.Thread(target=tracer.close) for _ in range(2)]
        for th in closers:
            th.start()
        for th in closers + threads:
            th.join(2)
            assert not th.is_alive()
        stop.set()
        assert outcomes == ["closed"] * 4
        assert tracer._handle is None  # freed as soon as the last user left


def test_gil_is_released_while_blocked(own: Tracer) -> None:
    def count(seconds: float) -> int:
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
        return n

    baseline = count(0.3)
    blocked = threading.Thread(target=own.dequeue, kwargs={"timeout": 1.0})
    blocked.start()
    time.sleep(0.05)
    during = count(0.3)
    assert blocked.is_alive()
    blocked.join()
    assert during > 0.5 * baseline, (during, baseline)


def test_ports_filter_with_parallel_traffic() -> None:
    """Filtered-out connections never show up and never push ours out."""
    with netutil.listener(socket.AF_INET6) as ls:
        port = ls.getsockname()[1]
        with Tracer(ports=[port], queue_size=16) as tracer:
            stop = threading.Event()
            others: list[netutil.Connection] = []

            def noise() -> None:
                while not stop.is_set():
                    others.append(netutil.connection(socket.AF_INET6, 10, 10))

            noisy = threading.Thread(target=noise)
            noisy.start()
            try:
                ours = []
                events: list[TcpEvent] = []
                for _ in range(6):
                    ours.append(exchange(ls, 100, 200))
                    events += tracer.dequeue_batch(16, timeout=0)  # keep the queue short
                events += collect(tracer, 2 * len(ours) - len(events))
                # More noise than the queue holds, were it not filtered out.
                assert netutil.wait_until(lambda: len(others) >= 50)
            finally:
                stop.set()
                noisy.join()
            time.sleep(0.05)
            events += tracer.dequeue_batch(100, timeout=0)
            stats = tracer.stats
    assert all(port in (ev.sport, ev.dport) for ev in events), events
    assert len(events) == 2 * len(ours)
    for conn in ours:
        check_connection(conn, events)
    assert stats.dropped_kernel == 0 and stats.dropped_queue == 0
    # Whether the kernel or user space rejected them, the noise was not delivered.
    assert stats.received - stats.filtered == 2 * len(ours)
    assert stats.delivered == 2 * len(ours)


CHILD = """
import json, socket, sys
sys.path.insert(0, {tests!r})
import netutil
conns = [netutil.connection(socket.AF_INET, 10, 10) for _ in range(50)]
print(json.dumps([[c.client.port, c.server.port] for c in conns]))
"""


def test_pids_filter_with_parallel_traffic(own: Tracer) -> None:
    """A child's connections (another pid) never appear; ours all do."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(TESTS / "support"))],
        stdout=subprocess.PIPE,
        text=True,
    )
    ours = [netutil.connection(socket.AF_INET, 300, 400) for _ in range(20)]
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    child_pairs = {(a, b) for a, b in json.loads(out)} | {(b, a) for a, b in json.loads(out)}
    events = collect(own, 2 * len(ours))
    time.sleep(0.05)
    events += own.dequeue_batch(1000, timeout=0)
    assert len(events) == 2 * len(ours)
    assert all(ev.pid == os.getpid() for ev in events)
    assert not child_pairs & {(ev.sport, ev.dport) for ev in events}
    for conn in ours:
        check_connection(conn, events)
    assert own.stats.dropped == 0


def test_family_filter() -> None:
    with Tracer(pids=[os.getpid()], family=socket.AF_INET6) as tracer:
        netutil.connection(socket.AF_INET)
        v6 = netutil.connection(socket.AF_INET6)
        events = collect(tracer, 2)
        time.sleep(0.05)
        events += tracer.dequeue_batch(10, timeout=0)
    assert {ev.family for ev in events} == {socket.AF_INET6}
    check_connection(v6, events)


def test_stats_warnings_repr(own: Tracer) -> None:
    stats = own.stats
    assert isinstance(stats, tcpevent.TracerStats)
    assert stats.received == 0 and stats.dropped == 0
    assert isinstance(own.warnings, str)
    assert f"pids=[{os.getpid()}]" in repr(own) and "open" in repr(own)
    assert own.fileno() >= 0
    netutil.connection()
    assert netutil.wait_until(lambda: own.stats.queued == 2)
    assert own.stats.received == 2


def test_invalid_program_carries_the_cores_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bpf.o"
    bad.write_text("not an ELF object")
    with pytest.raises(tcpevent.InvalidProgramError) as info:
        Tracer(program=bad)
    assert isinstance(info.value, ValueError) and info.value.filename == str(bad)
    assert "not a valid BPF ELF object" in str(info.value)
    assert str(info.value) == str(info.value).strip()


def test_core_warnings_become_runtime_warnings(mocker: Any) -> None:
    from tcpevent import _core
    from tcpevent import tracer as tracer_module

    text = _core.ffi.new("char[]", b"no accept() hook: passive-side owners may be missed")
    fake = mocker.MagicMock(wraps=_core.lib)
    fake.tcpevent_warnings.return_value = text
    mocker.patch.object(tracer_module, "lib", fake)
    with pytest.warns(RuntimeWarning, match="no accept"), Tracer(pids=[os.getpid()]) as tracer:
        assert tracer.warnings == "no accept() hook: passive-side owners may be missed"


def test_stats_after_close_keep_final_values() -> None:
    tracer = Tracer(pids=[os.getpid()])
    with tracer:
        netutil.connection()
        assert len(collect(tracer, 2)) == 2
    assert tracer.closed and tracer._handle is None
    assert tracer.stats.delivered == 2
    assert "closed" in repr(tracer)
