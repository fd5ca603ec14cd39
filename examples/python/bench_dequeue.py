#!/usr/bin/env python3
"""How fast does ``Tracer.dequeue_batch`` hand events to Python?

Two measurements:

1. ``convert``: the Python side alone, on a synthetic array of
   ``struct tcpevent_event`` (no kernel, no root needed);
2. ``drain`` (root): loopback connection churn (``benchmarks/churn.c``) fills
   a large queue first, then the queue is drained with ``dequeue_batch``:
   the core's copy and the conversion together, per event.

Usage: ``python examples/python/bench_dequeue.py [--connections N] [--batch B]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tcpevent
from tcpevent._convert import events_from_buffer
from tcpevent._core import ffi

ROOT = Path(__file__).resolve().parents[2]


def bench_convert(batch: int = 1024, seconds: float = 1.0, cpu_time: bool = False) -> float:
    """Events/s of the conversion of a synthetic batch (best of 3 runs).

    ``cpu_time``: per second of this thread's CPU time instead of wall time.
    """
    clock = time.thread_time if cpu_time else time.perf_counter
    buf = ffi.new("struct tcpevent_event[]", batch)
    for i in range(batch):
        e = buf[i]
        e.time_ns, e.pid, e.uid, e.family = 1_700_000_000_000_000_000 + i, 4242, 1000, 2
        e.sport, e.dport, e.rx_bytes, e.tx_bytes = 30000 + i % 30000, 443, 1500, 300
        e.segs_out, e.segs_in, e.state = 3, 4, 4
        e.task, e.saddr, e.daddr = b"python3", b"127.0.0.1", b"127.0.0.1"
    best = 0.0
    for _ in range(3):
        n, start = 0, clock()
        while clock() - start < seconds / 3:
            n += len(events_from_buffer(buf, batch))
        best = max(best, n / (clock() - start))
    return best


def build_churn(directory: str) -> str:
    binary = os.path.join(directory, "churn")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise SystemExit("a C compiler is needed to build benchmarks/churn.c")
    src = str(ROOT / "benchmarks" / "churn.c")
    subprocess.run([gcc, "-O2", "-pthread", "-o", binary, src], check=True)
    return binary


def bench_drain(
    connections: int, batch: int, churn: str, iterate: bool = False
) -> tuple[int, int, int, float, float]:
    """Drain a pre-filled queue with dequeue_batch (or iteration).

    Returns (events drained, events the churn produced, events the tracer
    counted as missed, events per wall-clock second, events per second
    of this thread's CPU time). The second figure does not depend on what
    else the machine runs: it is the cost of the core's copy and the
    conversion into TcpEvent objects.
    """
    proc = subprocess.Popen(
        [churn, "-n", str(connections), "--wait"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    ready = dict(kv.split("=") for kv in proc.stdout.readline().split()[1:])
    room = 2 * connections + 4096  # a failed connect() is a closed socket too
    with tcpevent.Tracer(ports=[int(ready["port"])], queue_size=room) as tracer:
        proc.stdin.write("go\n")
        proc.stdin.close()
        summary = json.loads(proc.stdout.read().strip().splitlines()[-1])
        proc.wait(timeout=120)
        # Two sockets per connection, and one per connect() that failed and
        # was retried (out of ephemeral ports, say): it was born and closed.
        expected = 2 * connections + summary["retries"]
        deadline = time.monotonic() + 10
        while tracer.stats.queued < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = tracer.stats.queued
        got, start, cpu = 0, time.perf_counter(), time.thread_time()
        if iterate:
            for _ in tracer:
                got += 1
                if got == queued:
                    break
        else:
            while got < queued:
                got += len(tracer.dequeue_batch(batch, timeout=0))
        elapsed = time.perf_counter() - start
        cpu = time.thread_time() - cpu
        stats = tracer.stats
    if got != expected:
        print(f"warning: {got} events of {expected} expected: {stats}", file=sys.stderr)
    return got, expected, stats.missed, got / elapsed, got / max(cpu, 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50000)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    print(f"convert: {bench_convert(args.batch):,.0f} events/s (synthetic, batch {args.batch})")
    if os.geteuid() != 0:
        print("drain: skipped (needs root)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        churn = build_churn(tmp)
        n, _, _, rate, cpu_rate = bench_drain(args.connections, args.batch, churn)
        print(
            f"drain: {rate:,.0f} events/s, {cpu_rate:,.0f} per CPU second "
            f"({n} events, dequeue_batch({args.batch}))"
        )
        n, _, _, rate, cpu_rate = bench_drain(args.connections, args.batch, churn, iterate=True)
        print(
            f"iterate: {rate:,.0f} events/s, {cpu_rate:,.0f} per CPU second "
            f"({n} events, for ev in tracer)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
