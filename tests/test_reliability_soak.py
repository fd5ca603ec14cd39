"""Months in an agent, compressed: a million connections, and a hundred
open/close cycles of each API, leave nothing behind.

- test_million_connections_soak (slow, ~18 s): 1,000,000 connections of
  benchmarks/churn.c drained through ``Tracer(pids=[churn])``: every event
  delivered or counted as missed (the rare close the kernel does not show
  the program), by the stats and by what the consumer counted, no drop,
  flat RSS after warm-up, the kernel's socket table back to its baseline.
- test_legacy_cycles_leak_nothing (~17 s): 100 x AddProbe/cleanup in one
  process (tests/support/c/reliability_driver.c): no fd, thread, BPF program, map or
  link left, in the process or in the kernel.
- test_tracer_cycles_leak_nothing (~17 s): the same for 100 Python Tracers.
- test_drivers_clean_under_sanitizers (~4 s): the legacy lifecycles under
  ASan, LeakSanitizer and UBSan.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import bpfutil
import pytest
from accounting import assert_accounted
from liveness import PROMPTLY
from netutil import wait_until

import tcpevent

pytestmark = pytest.mark.bpf

HERE = Path(__file__).resolve().parent
READY_RE = re.compile(r"^READY pid=(\d+) port=(\d+) family=([46])$")
MB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_million_connections_soak(churn: Path) -> None:
    n = 1_000_000
    proc = subprocess.Popen(
        [str(churn), "--wait", "--reset", "-n", str(n), "-t", "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        m = READY_RE.match(proc.stdout.readline().strip())
        assert m, "churn did not start"
        pid, port = int(m[1]), int(m[2])
        with tcpevent.Tracer(pids=[pid]) as tracer:
            sockets = bpfutil.map_named(os.getpid(), "sockets")
            baseline = len(bpfutil.map_entries(sockets))
            proc.stdin.write("\n")
            proc.stdin.flush()
            counted = client_side = server_side = wrong = 0
            warm_rss = peak_rss = 0

            def take(timeout: float) -> bool:
                nonlocal counted, client_side, server_side, wrong, warm_rss, peak_rss
                batch = tracer.dequeue_batch(16384, timeout=timeout)
                counted += len(batch)
                for ev in batch:
                    if ev.pid != pid or ev.kind != "close":
                        wrong += 1
                    elif ev.dport == port:
                        client_side += 1
                    elif ev.sport == port:
                        server_side += 1
                if not warm_rss and counted >= 200_000:
                    warm_rss = rss_bytes()
                elif warm_rss:
                    peak_rss = max(peak_rss, rss_bytes())
                return bool(batch)

            t0 = time.monotonic()
            while counted < 2 * n and take(10):
                pass
            seconds = time.monotonic() - t0
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            summary = json.loads(out)
            assert summary["connections"] == n
            # A connect() that failed after SYN_SENT (a retry) is a socket
            # that was born and closed: one event more each.
            produced = 2 * n + summary["retries"]
            while counted < produced and take(5):
                pass
            # Nothing more comes.
            assert tracer.dequeue_batch(16384, timeout=0.5) == []

            # Every socket that closed left the table (a close no program
            # saw is counted by the sweep within a second or two, which
            # frees its entry); only foreign sockets in flight (the host is
            # shared) may come and go.
            assert wait_until(lambda: not bpfutil.owned_entries(sockets, pid), timeout=5)
            assert wait_until(
                lambda: len(bpfutil.map_entries(sockets)) <= baseline,
                timeout=10 * PROMPTLY,
                interval=0.2,
            ), (len(bpfutil.map_entries(sockets)), baseline)
            stats = tracer.stats
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    growth = (peak_rss - warm_rss) / MB
    print(
        f"\n{n} connections: {seconds:.1f} s, rss after warm-up {growth:+.2f} MB, "
        f"missed {stats.missed}, client {client_side}, server {server_side}"
    )
    assert wrong == 0, stats
    # Every event delivered once, or counted as missed: on this VM about one
    # close in a million is never shown to the program (docs/reliability.md,
    # "What the kernel does not show"). A loss that is not counted, or more
    # of them than that rate explains in two million, fails here.
    assert client_side <= n + summary["retries"] and server_side <= n, stats
    assert counted == client_side + server_side == stats.delivered, stats
    assert_accounted(counted, stats.missed, produced, stats, lost_max=4)
    assert stats.received == stats.delivered, stats
    assert stats.delivered + stats.dropped_queue + stats.queued == stats.received
    assert (stats.dropped_kernel, stats.dropped_queue) == (0, 0), stats
    assert stats.queued == 0 and stats.malformed == 0
    # ASan's quarantine keeps freed memory on purpose: RSS means nothing there.
    if not os.environ.get("TCPEVENT_ASAN"):
        assert warm_rss and peak_rss - warm_rss < 5 * MB


def test_legacy_cycles_leak_nothing(reliability_driver: Path, libpath: Path) -> None:
    cycles = 100
    proc = subprocess.Popen(
        [str(reliability_driver), str(libpath), "cycles", str(cycles)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or lines[-1] != "INSPECT":
            line = proc.stdout.readline()
            assert line, lines
            lines.append(line.strip())
        held_after = bpfutil.held_by(proc.pid)
        proc.stdin.write("\n")
        proc.stdin.flush()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = dict(line.split("=", 1) for line in lines if "=" in line)
    loaded: dict[str, set[int]] = {key: set() for key in bpfutil.KINDS.values()}
    for line in lines:
        if line.startswith("HELD "):
            _, kind, ident = line.split()
            loaded[kind].add(int(ident))
    assert int(r["ok"]) == 2 * cycles  # attached each time, detached each time
    # Each cycle loaded a program set of its own (so the counts below see
    # real loads), and the process held none of them at the end.
    assert len(loaded["prog_id"]) >= 2 * cycles and len(loaded["link_id"]) >= 2 * cycles
    assert held_after == {key: set() for key in bpfutil.KINDS.values()}
    assert int(r["fds_attached"]) > int(r["fds_before"])
    assert int(r["threads_attached"]) == int(r["threads_before"]) + 1
    assert r["fds_after"] == r["fds_before"]
    assert r["threads_after"] == r["threads_before"]
    # The kernel freed every one of them (after an RCU grace period).
    left = bpfutil.owned_by_kernel
    assert wait_until(lambda: not left(loaded), timeout=5), left(loaded)
    print(f"\n{cycles} AddProbe/cleanup cycles: {r['seconds']} s")


def test_tracer_cycles_leak_nothing() -> None:
    cycles = 100
    me = os.getpid()
    fds, threads = bpfutil.count_fds(me), bpfutil.count_threads(me)
    held_before = bpfutil.held_by(me)
    ids: dict[str, set[int]] = {key: set() for key in bpfutil.KINDS.values()}
    t0 = time.monotonic()
    for i in range(cycles):
        tracer = tcpevent.Tracer(ports=[1])
        try:
            tracer.fileno()  # the eventfd, created on demand
            assert tracer.dequeue(timeout=0) is None
            assert tracer.stats.received == 0
            if i == 0:
                assert bpfutil.count_threads(me) == threads + 1
            held = bpfutil.held_by(me)
            for key in ids:
                ids[key] |= held[key] - held_before[key]
        finally:
            tracer.close()
        assert tracer.closed
    seconds = time.monotonic() - t0
    assert bpfutil.count_fds(me) == fds
    assert bpfutil.count_threads(me) == threads
    assert bpfutil.held_by(me) == held_before
    assert len(ids["prog_id"]) >= 2 * cycles and len(ids["link_id"]) >= 2 * cycles
    # The kernel frees them (after an RCU grace period).
    left = bpfutil.owned_by_kernel
    assert wait_until(lambda: not left(ids), timeout=5), left(ids)
    print(f"\n{cycles} Tracer open/close cycles: {seconds:.1f} s")


SAN_FLAGS = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:exitcode=99",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
SANITIZED_RUNS = [
    ("reliability_driver", ["cycles", "10"]),
    ("reliability_driver", ["threads-close"]),
    ("reliability_driver", ["fork"]),
    ("legacy_driver", ["addprobe"]),
    ("legacy_driver", ["addprobe-twice", "/nonexistent.o"]),
    ("legacy_driver", ["cleanup-first"]),
    ("legacy_driver", ["cleanup-twice"]),
    ("legacy_driver", ["setupbpf"]),
    ("legacy_driver", ["setupbpf-race"]),
    ("legacy_driver", ["addprobe-setupbpf"]),
]


@pytest.fixture(scope="module")
def sanitized_drivers(build_c: Any) -> dict[str, Path]:
    return {
        name: build_c(
            HERE / "support" / "c" / f"{name}.c", f"{name}_san", "-ldl", "-pthread", *SAN_FLAGS
        )
        for name in ("reliability_driver", "legacy_driver")
    }


@pytest.mark.parametrize(
    "name, args", SANITIZED_RUNS, ids=[" ".join([n, *a]) for n, a in SANITIZED_RUNS]
)
def test_drivers_clean_under_sanitizers(
    sanitized_drivers: dict[str, Path], libpath: Path, name: str, args: list[str]
) -> None:
    """The legacy calls' lifecycles, with LeakSanitizer on at exit (and, with
    ``make test-asan``, an ASan/UBSan build of the library itself): no leak,
    no error. Memory the library mallocs is checked even in a plain build."""
    proc = subprocess.run(
        [str(sanitized_drivers[name]), str(libpath), *args],
        input="\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **SAN_ENV),
    )
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout.rstrip().endswith("DONE")
