"""Overload and concurrency: what an agent meets in months of running.

- A consumer that stalls under churn: memory stays bounded by the queue,
  every lost event is counted where it was lost, delivery resumes in order.
- A process stopped under churn (its poller too): the kernel ring buffer
  overflows, and that is counted exactly, separately.
- More live sockets than the kernel's socket table holds: the overflow is
  not tracked, counted exactly, and never attributed to anyone.
- Eight threads dequeueing while another closes: nothing delivered twice,
  every blocked caller released at once (Python and the legacy C calls).
- fork() with a tracer open: the child cannot use (or steal from) the
  parent's tracer, gets a clear error, and can open its own (Python and the
  legacy C calls).

See docs/reliability.md for the policies these tests pin.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import bpfutil
import pytest
from accounting import assert_accounted
from liveness import PROMPTLY
from netutil import connection, listener, wait_until

import tcpevent
from tcpevent import TcpEvent, TracerClosedError, TracerError

pytestmark = pytest.mark.bpf

HERE = Path(__file__).resolve().parent
READY_RE = re.compile(r"^READY pid=(\d+) port=(\d+) family=([46])$")
MB = 1024 * 1024
#: One churn thread: its connections are made and closed one after another,
#: so the kernel tells their client sides in an order that causality fixes
#: (below). Its --rate is still met (about 30,000 connections/s here).
ONE_THREAD = ("-t", "1")


class Churn:
    """benchmarks/churn.c started in --wait mode: its pid is known before it
    makes a single connection, so a tracer can filter on it."""

    def __init__(self, binary: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(binary), "--wait", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        m = READY_RE.match(self.proc.stdout.readline().strip())
        assert m, "churn did not start"
        self.pid, self.port = int(m[1]), int(m[2])

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 60) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        summary: dict[str, Any] = json.loads(out)
        return summary

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def accounted(st: tcpevent.TracerStats) -> int:
    """Events the tracer received, or counted where they were lost."""
    return st.received + st.dropped_kernel + st.missed


def assert_stats_accounted(st: tcpevent.TracerStats, produced: int) -> None:
    """Each of ``produced`` events was received, or dropped where it was
    dropped, or counted in missed (tests/support/accounting.py)."""
    assert_accounted(st.received + st.dropped_kernel, st.missed, produced, st)


def collect(tracer: tcpevent.Tracer, count: int, timeout: float = 10 * PROMPTLY) -> list[TcpEvent]:
    """Events until ``count`` came (or ``timeout``), then any extra ones."""
    events: list[TcpEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += tracer.dequeue_batch(1024, timeout=0.1)
    events += tracer.dequeue_batch(1024, timeout=0.3)
    return events


def client_times(events: Iterable[TcpEvent]) -> list[int]:
    """The times of the client sides (connect()'s end), in delivery order."""
    return [ev.time_ns for ev in events if ev.direction == "outbound"]


def out_of_order(times: list[int]) -> int:
    """How many times are not after the one before (client_times()).

    A record's time is stamped just after its slot in the ring is reserved,
    and an interrupt (with the softirqs run on its way out, up to 2 ms) or a
    hypervisor may pause a CPU in between: so times of two CPUs' records can
    step back, and no tolerance is safe. One churn thread closes a client
    only after the last one's close() returned, its record stamped: the
    client sides' times rise strictly in ring order, and any reordering by
    the queue shows here."""
    return sum(later <= earlier for earlier, later in zip(times, times[1:]))


# ---- a stalled consumer ------------------------------------------------------


def test_stalled_consumer_is_bounded_counted_and_resumes_in_order(churn: Path) -> None:
    """5 s without a dequeue under churn, with queue_size=1000: the 1000
    oldest events wait, the rest are counted in dropped_queue, RSS does not
    grow, and delivery resumes, in order, with nothing else lost."""
    conns, rate, stall = 40_000, 5_000, 5.0  # 8 s of churn, 10 events/ms
    ch = Churn(churn, "--reset", "-n", str(conns), "--rate", str(rate), *ONE_THREAD)
    try:
        # The ring holds ~340 ms of this churn: the poller, not the stalled
        # consumer, empties it, and may itself wait that long for a CPU.
        with tcpevent.Tracer(pids=[ch.pid], queue_size=1000, ring_size=1 << 19) as tracer:
            rss_before = rss_bytes()
            ch.go()
            time.sleep(stall)
            rss_after = rss_bytes()
            stalled = tracer.stats
            events: list[TcpEvent] = tracer.dequeue_batch(16384, timeout=0)
            drained = tracer.stats  # the queue has just been emptied
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                events += tracer.dequeue_batch(16384, timeout=0.1)
                st = tracer.stats
                if accounted(st) >= 2 * conns and st.queued == 0:
                    break
            summary = ch.finish()
            # A failed connect() (a retry) is one more socket, one more event.
            produced = 2 * conns + summary["retries"]
            events += collect(tracer, produced - len(events) - st.dropped_queue - st.missed)
            final = tracer.stats
    finally:
        ch.kill()

    assert summary["connections"] == conns
    # During the stall: the queue held exactly its size; the rest was dropped.
    assert stalled.queued == 1000 and stalled.delivered == 0
    assert stalled.dropped_queue > 10_000, stalled
    assert len(events) > 1000
    assert rss_after - rss_before < 2 * MB, (rss_before, rss_after)
    # Every event accounted for, each loss where it happened.
    assert_stats_accounted(final, produced)
    assert final.delivered + final.dropped_queue + final.queued == final.received, final
    assert final.queued == 0 and final.delivered == len(events)
    assert all(ev.pid == ch.pid and ev.kind == "close" for ev in events)
    # Once back, the consumer gets what comes after (whether it keeps up with
    # every event depends on the CPU it is given: any loss is counted above).
    assert final.delivered > drained.delivered + 1000, (drained, final)
    assert final.dropped_kernel == 0, final
    # FIFO: the 1000 that waited came first, the rest after, in order.
    assert out_of_order(client_times(events)) == 0
    assert events[999].time_ns < events[-1].time_ns - int((stall / 2) * 1e9)
    print(
        f"\nstall: dropped_queue={final.dropped_queue} delivered={final.delivered} "
        f"rss +{(rss_after - rss_before) / 1024:.0f} KiB"
    )


STOPPED_CONSUMER = r"""
import json, sys, time
import tcpevent

pid, produced = int(sys.argv[1]), int(sys.argv[2])
with tcpevent.Tracer(pids=[pid], queue_size=1000, ring_size=65536) as t:
    print("READY", flush=True)
    counted, client_times = 0, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for ev in t.dequeue_batch(4096, timeout=0.1):
            counted += 1
            if ev.direction == "outbound":
                client_times.append(ev.time_ns)
        st = t.stats
        if st.received + st.dropped_kernel + st.missed >= produced and st.queued == 0:
            break
    counted += len(t.dequeue_batch(4096, timeout=0.5))  # a retry's event, if any
    st = t.stats
    summary = {"counted": counted, "client_times": client_times, **st.to_dict()}
    print(json.dumps(summary), flush=True)
"""


def test_stopped_process_overflows_the_ring_and_counts_it(churn: Path) -> None:
    """The whole consumer process stopped (SIGSTOP: its poller too) while
    churn runs: the 64 KiB ring buffer fills and the kernel counts each
    record it could not write, in dropped_kernel, exactly."""
    conns, rate = 30_000, 10_000
    produced = 2 * conns
    ch = Churn(churn, "--reset", "-n", str(conns), "--rate", str(rate), *ONE_THREAD)
    consumer = subprocess.Popen(
        [sys.executable, "-c", STOPPED_CONSUMER, str(ch.pid), str(produced)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert consumer.stdout is not None
    try:
        assert consumer.stdout.readline().strip() == "READY"
        ch.go()
        time.sleep(0.5)
        consumer.send_signal(signal.SIGSTOP)
        time.sleep(1.5)
        consumer.send_signal(signal.SIGCONT)
        summary = ch.finish()
        out, err = consumer.communicate(timeout=120)
        assert consumer.returncode == 0, err
    finally:
        ch.kill()
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert summary["connections"] == conns
    st = json.loads(out)
    produced += summary["retries"]  # a failed connect() is one more event
    # 1.5 s at 20 events/ms against a ring of ~540 records (120 bytes each).
    assert st["dropped_kernel"] > 10_000, st
    counters = {k: v for k, v in st.items() if k not in ("counted", "client_times")}
    assert_stats_accounted(tcpevent.TracerStats(**counters), produced)
    assert st["delivered"] + st["dropped_queue"] + st["queued"] == st["received"], st
    assert st["counted"] == st["delivered"] and st["queued"] == 0, st
    assert out_of_order(st["client_times"]) == 0, counters
    print(f"\nstopped: dropped_kernel={st['dropped_kernel']} dropped_queue={st['dropped_queue']}")


# ---- the socket table full -------------------------------------------------


Pair = tuple[socket.socket, socket.socket, int]  # client, server, client port


def open_pair(ls: socket.socket) -> Pair:
    client = socket.create_connection(ls.getsockname()[:2])
    server, _ = ls.accept()
    return client, server, client.getsockname()[1]


def close_pairs(pairs: list[Pair]) -> None:
    for client, server, _ in pairs:
        client.close()
        assert server.recv(1) == b""
        server.close()


def test_full_socket_table_tracks_nothing_more_and_counts_it() -> None:
    """max_sockets=64 and 100 connections (200 sockets) held open: the 64
    first sockets are tracked, the 136 others counted in ``untracked`` and
    never reported; 100 foreign connections (other ports) take no slot."""
    ls, foreign_ls = listener(), listener()
    port = ls.getsockname()[1]
    foreign = [open_pair(foreign_ls) for _ in range(50)]
    pairs: list[Pair] = []
    try:
        with tcpevent.Tracer(ports=[port], max_sockets=64) as tracer:
            sockets = bpfutil.map_named(os.getpid(), "sockets")
            foreign += [open_pair(foreign_ls) for _ in range(50)]  # born while tracing
            assert len(bpfutil.map_entries(sockets)) == 0
            pairs = [open_pair(ls) for _ in range(100)]
            full = len(bpfutil.map_entries(sockets))
            untracked = tracer.stats.untracked
            close_pairs(pairs)
            events: list[TcpEvent] = []
            while batch := tracer.dequeue_batch(1024, timeout=1 if len(events) < 64 else 0.3):
                events += batch
            # The slots are free again: a new connection is tracked.
            late_pair = open_pair(ls)
            close_pairs([late_pair])
            late = tracer.dequeue_batch(16, timeout=2)
            late += tracer.dequeue_batch(16, timeout=0.3)
            stats = tracer.stats
            left = len(bpfutil.map_entries(sockets))
    finally:
        for client, server, _ in foreign + pairs:
            client.close()
            server.close()
        ls.close()
        foreign_ls.close()

    assert full == 64
    assert untracked == 200 - 64
    # Sockets are born in order: a connection's client, then its server.
    expected = set()
    for _, _, cport in pairs[:32]:
        expected |= {(cport, port), (port, cport)}
    got = {(e.sport, e.dport) for e in events}
    assert len(events) == 64 and got == expected, (len(events), got ^ expected)
    me, uid = os.getpid(), os.getuid()
    assert all((e.pid, e.uid) == (me, uid) for e in events)  # never a wrong owner
    assert {(e.sport, e.dport, e.pid) for e in late} == {
        (late_pair[2], port, me),
        (port, late_pair[2], me),
    }
    assert stats.untracked == 136  # not one more: the late sockets were tracked
    assert left == 0


# ---- threads and close -----------------------------------------------------


def test_eight_python_threads_and_a_close() -> None:
    """Eight threads dequeue (three with dequeue(), three with
    dequeue_batch(), two iterating) while this process makes connections;
    a ninth closes the tracer: all eight return at once, no event twice."""
    me = os.getpid()
    tracer = tcpevent.Tracer(pids=[me])
    got: list[list[tuple[int, int, int, str]]] = [[] for _ in range(8)]
    released = [0.0] * 8
    errors: list[str] = []

    def consume(i: int) -> None:
        mine = got[i]
        try:
            if i < 3:
                while True:
                    try:
                        ev = tracer.dequeue()
                    except TracerClosedError:
                        break
                    assert ev is not None
                    mine.append((ev.time_ns, ev.sport, ev.dport, ev.kind))
            elif i < 6:
                while True:
                    try:
                        batch = tracer.dequeue_batch(7)
                    except TracerClosedError:
                        break
                    mine += [(e.time_ns, e.sport, e.dport, e.kind) for e in batch]
            else:
                for ev in tracer:
                    mine.append((ev.time_ns, ev.sport, ev.dport, ev.kind))
        except BaseException:
            errors.append(traceback.format_exc())
        released[i] = time.monotonic()

    stop = threading.Event()
    made = [0]

    def traffic() -> None:
        while not stop.is_set():
            connection(client_sends=1, server_sends=1)
            made[0] += 1

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    maker = threading.Thread(target=traffic)
    maker.start()
    try:
        assert wait_until(lambda: made[0] >= 300, timeout=30)
        closed_at = [0.0]

        def close() -> None:
            closed_at[0] = time.monotonic()
            tracer.close()

        closer = threading.Thread(target=close)
        closer.start()
        closer.join(5)
        for t in threads:
            t.join(5)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop.set()
        maker.join(10)
        tracer.close()

    assert not errors, errors
    latency = max(released) - closed_at[0]
    assert latency < PROMPTLY, latency  # blocked callers are released at once
    print(f"\nclose released 8 threads in {latency * 1000:.1f} ms")
    keys = [k for g in got for k in g]
    assert len(keys) > 300 and len(set(keys)) == len(keys)  # none twice
    assert sum(1 for g in got if g) >= 4  # really shared among the threads
    final = tracer.stats
    assert final.delivered == len(keys) + final.buffered
    assert final.delivered + final.dropped_queue + final.queued == final.received


def test_eight_legacy_threads_and_a_cleanup(reliability_driver: Path, libpath: Path) -> None:
    """The same through the original calls: 8 threads in DequeuePerfEvent(),
    cleanup() from a ninth while connections keep coming."""
    proc = subprocess.run(
        [str(reliability_driver), str(libpath), "threads-close"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    r = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert r["status"] == "1" and r["status_after"] == "0"
    assert int(r["connections"]) >= 2000
    assert int(r["ours"]) >= 2 * 1000  # most of our own connections' events came
    assert int(r["duplicates"]) == 0
    assert int(r["consumers_used"]) >= 4
    assert float(r["release_seconds"]) < PROMPTLY, r  # woken, not left blocked
    print(f"\ncleanup released 8 threads in {float(r['release_seconds']) * 1000:.1f} ms")
    assert r["threads_left"] == "1"  # consumers, traffic and poller all gone
    assert proc.stdout.rstrip().endswith("DONE")


# ---- fork ------------------------------------------------------------------


def child_of_traced_parent(tracer: tcpevent.Tracer, ls: socket.socket) -> dict[str, Any]:
    """Runs in the fork child: what the inherited tracer does, and a new one."""
    r: dict[str, Any] = {"pid": os.getpid()}
    uses = {
        "dequeue": lambda: tracer.dequeue(timeout=0),
        "dequeue_batch": lambda: tracer.dequeue_batch(10, timeout=0.1),
        "iterate": lambda: next(iter(tracer)),
        "stats": lambda: tracer.stats,
        "fileno": lambda: tracer.fileno(),
    }
    for name, use in uses.items():
        try:
            use()
            r[name] = "no error"
        except TracerError as exc:
            r[name] = [type(exc).__name__, exc.errno, str(exc)]
    # A connection on the parent's port, made by the child: the parent's.
    client = socket.create_connection(ls.getsockname()[:2])
    server, _ = ls.accept()
    r["conn"] = client.getsockname()[1]
    client.close()
    server.recv(1)
    server.close()
    time.sleep(0.2)  # time to steal them, were the child able to
    tracer.close()  # only the child's copies
    r["closed"] = tracer.closed
    with listener() as own_ls, tcpevent.Tracer(ports=[own_ls.getsockname()[1]]) as own:
        client = socket.create_connection(own_ls.getsockname()[:2])
        server, _ = own_ls.accept()
        r["own_conn"] = client.getsockname()[1]
        client.close()
        server.recv(1)
        server.close()
        r["own"] = sorted([e.pid, e.sport, e.dport] for e in collect(own, 2))
        r["own_port"] = own_ls.getsockname()[1]
    return r


def test_fork_child_cannot_use_or_steal_the_parents_tracer() -> None:
    ls = listener()
    port = ls.getsockname()[1]
    me = os.getpid()
    with tcpevent.Tracer(ports=[port]) as tracer:
        held = bpfutil.held_by(me)
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(rfd)
                result = child_of_traced_parent(tracer, ls)
                os.write(wfd, json.dumps(result).encode())
                code = 0
            except BaseException:
                os.write(wfd, json.dumps({"crash": traceback.format_exc()}).encode())
            finally:
                os._exit(code)
        os.close(wfd)
        with os.fdopen(rfd) as f:
            r = json.loads(f.read() or "{}")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, r
        # The parent still holds all it had, its probes still attached.
        assert bpfutil.held_by(me) == held
        c = connection()  # not on our port: not reported
        ours = socket.create_connection(ls.getsockname()[:2])
        srv, _ = ls.accept()
        ours_port = ours.getsockname()[1]
        ours.close()
        srv.recv(1)
        srv.close()
        events = collect(tracer, 4)
        stats = tracer.stats
    ls.close()

    for name in ("dequeue", "dequeue_batch", "iterate", "stats", "fileno"):
        kind, errno_, text = r[name]
        assert kind == "TracerError" and errno_ == 77, (name, r[name])  # EBADFD
        assert "opened by the parent process before fork()" in text
    assert r["closed"] is True
    # The child's own tracer works, and sees the child's connection.
    own_port, own_conn = r["own_port"], r["own_conn"]
    assert r["own"] == sorted([[pid, own_conn, own_port], [pid, own_port, own_conn]])
    got = sorted((e.pid, e.sport, e.dport) for e in events)
    assert got == sorted(
        [
            (pid, r["conn"], port),
            (pid, port, r["conn"]),
            (me, ours_port, port),
            (me, port, ours_port),
        ]
    ), got
    assert stats.delivered == 4 and stats.dropped_queue == 0
    assert c.client.port not in {e.sport for e in events}


def test_fork_legacy_child_starts_without_a_tracer(reliability_driver: Path, libpath: Path) -> None:
    """The original calls in a fork child: the inherited default tracer is
    not the child's (getStatus() 0, DequeuePerfEvent() zeroed at once);
    AddProbe() attaches anew there; the parent keeps receiving, including
    the child's connections, which the child never took."""
    proc = subprocess.run(
        [str(reliability_driver), str(libpath), "fork"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    r = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert r["parent_status"] == "1" and r["parent_before_fork"] == "0"
    assert r["child_status_inherited"] == "0"
    assert r["child_dequeue_zeroed"] == "1" and float(r["child_dequeue_seconds"]) < PROMPTLY
    assert r["child_status_new"] == "1" and r["child_own_events"] == "0"
    assert r["child_status_cleanup"] == "0"
    assert r["child_exit"] == "0"
    assert r["parent_sees_child"] == "0"  # both sides, owned by the child
    assert r["parent_status_after"] == "1" and r["parent_after_fork"] == "0"
    assert "TIMEOUT" not in proc.stdout and proc.stdout.rstrip().endswith("DONE")
