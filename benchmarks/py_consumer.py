"""Drain the Python ``Tracer`` the way an agent would, and measure it.

The same protocol as ``consumer.c`` (see benchmarks/run.py)::

    py_consumer.py --mode batch|single [--hold] [--queue-size N] [--events KINDS]

Prints ``READY`` once attached, then reads commands on stdin: ``pid N``
(count that process's events; answers ``PID N``), ``go`` (with ``--hold``:
start draining, to measure raw dequeue throughput), ``stop`` (drain until
200 ms pass without an event, print one JSON object, exit). With
``--events connect,accept,close``, the target's close events are counted as
always and its connect and accept events apart, with their handshake times.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time

import tcpevent

LATENCY_BUCKET_US = 10
LATENCY_SAMPLE = 16


class Counter:
    def __init__(self, lifecycle_kinds: bool = False) -> None:
        self.lifecycle_kinds = lifecycle_kinds  # connect/accept events come too
        self.target_pid = -1
        self.total = 0
        self.targeted = 0
        self.latency: dict[int, int] = {}
        self.lifecycle = 0  # the target's connect and accept events
        self.handshake: dict[int, int] = {}  # of its connect events, by bucket
        self.first = 0.0
        self.last_target = 0.0
        self.last_event = time.monotonic()
        # The first events of other processes (or of none), to explain a
        # difference between events and target_events.
        self.others: list[str] = []

    def add(self, events: list[tcpevent.TcpEvent]) -> None:
        """Count the target's events; sample the latency (1 in 16) so that
        measuring costs the consumer little next to what it measures."""
        now_ns = time.time_ns()
        self.total += len(events)
        pid = self.target_pid
        ours = [ev for ev in events if ev.pid == pid]
        if len(ours) != len(events) and len(self.others) < 10:
            self.others += [
                f"pid={ev.pid} task={ev.task} {ev.sport}->{ev.dport} {ev.state.name}"
                for ev in events
                if ev.pid != pid
            ][: 10 - len(self.others)]
        if self.lifecycle_kinds:
            lifecycle = [ev for ev in ours if ev.kind != "close"]
            ours = [ev for ev in ours if ev.kind == "close"]
            self.lifecycle += len(lifecycle)
            for ev in lifecycle:
                if ev.kind == "connect":
                    bucket = ev.handshake_ns // (LATENCY_BUCKET_US * 1000)
                    self.handshake[bucket] = self.handshake.get(bucket, 0) + 1
        self.targeted += len(ours)
        for ev in ours[::LATENCY_SAMPLE]:
            bucket = (now_ns - ev.time_ns) // (LATENCY_BUCKET_US * 1000)
            self.latency[bucket] = self.latency.get(bucket, 0) + 1
        self.last_event = time.monotonic()
        if ours:
            self.last_target = self.last_event

    def percentile(self, p: float, histogram: dict[int, int] | None = None) -> float:
        hist = self.latency if histogram is None else histogram
        n = sum(hist.values())
        if not n:
            return -1.0
        want, seen = int(p * n), 0
        for bucket in sorted(hist):
            seen += hist[bucket]
            if seen > want:
                return float(bucket * LATENCY_BUCKET_US)
        return -1.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["batch", "single"], default="batch")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--queue-size", type=int, default=tcpevent.DEFAULT_QUEUE_SIZE)
    parser.add_argument("--events", default="close", help="kinds, comma-separated")
    args = parser.parse_args()

    counter = Counter(lifecycle_kinds=args.events != "close")
    go = threading.Event()
    stop = threading.Event()
    if not args.hold:
        go.set()

    with tcpevent.Tracer(queue_size=args.queue_size, events=args.events.split(",")) as tracer:

        def drain() -> None:
            go.wait()
            counter.first = time.monotonic()
            while not stop.is_set():
                if args.mode == "batch":
                    batch = tracer.dequeue_batch(4096, timeout=0.05)
                else:
                    ev = tracer.dequeue(timeout=0.05)
                    batch = [ev] if ev is not None else []
                if batch:
                    counter.add(batch)

        worker = threading.Thread(target=drain)
        worker.start()
        start = resource.getrusage(resource.RUSAGE_SELF)  # loading is not per event
        print("READY", flush=True)
        for line in sys.stdin:
            if line.startswith("pid "):
                counter.target_pid = int(line.split()[1])
                print(f"PID {counter.target_pid}", flush=True)
            elif line.startswith("go"):
                go.set()
            elif line.startswith("stop"):
                break
        go.set()
        counter.last_event = time.monotonic()
        while time.monotonic() - counter.last_event < 0.2:
            time.sleep(0.02)
        stats = tracer.stats
        stop.set()
        worker.join()

    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "events": counter.total,
                "target_events": counter.targeted,
                "others": counter.others,
                "drain_seconds": max(counter.last_target - counter.first, 0.0),
                "latency_p50_us": counter.percentile(0.5),
                "latency_p99_us": counter.percentile(0.99),
                "lifecycle_events": counter.lifecycle,
                "handshake_p99_us": counter.percentile(0.99, counter.handshake),
                "cpu_user": usage.ru_utime - start.ru_utime,
                "cpu_sys": usage.ru_stime - start.ru_stime,
                "maxrss_kb": usage.ru_maxrss,
                "received": stats.received,
                "dropped_kernel": stats.dropped_kernel,
                "dropped_queue": stats.dropped_queue,
                "untracked": stats.untracked,
                "missed": stats.missed,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
