#!/usr/bin/env python3
"""A monitoring-agent skeleton: a consumer thread, batches, stats, clean stop.

    sudo python examples/python/agent.py

The consumer thread takes events in batches (the fast path) and hands them
on; the main thread reports the tracer's counters every few seconds. SIGINT
or SIGTERM closes the tracer, which ends the consumer's loop at once.
"""

from __future__ import annotations

import collections
import signal
import threading
import types

import tcpevent


def consume(tracer: tcpevent.Tracer, totals: collections.Counter[str]) -> None:
    while True:
        try:
            batch = tracer.dequeue_batch(1024, timeout=1.0)
        except tcpevent.TracerClosedError:
            return
        for ev in batch:  # e.g. aggregate bytes per command
            totals[ev.task] += ev.rx_bytes + ev.tx_bytes


def main() -> None:
    stop = threading.Event()
    totals: collections.Counter[str] = collections.Counter()
    with tcpevent.Tracer(queue_size=1 << 18) as tracer:

        def on_signal(signum: int, frame: types.FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        worker = threading.Thread(target=consume, args=(tracer, totals), daemon=True)
        worker.start()
        while not stop.wait(5):
            s = tracer.stats
            top = ", ".join(f"{task}={n}" for task, n in totals.most_common(3))
            print(f"received={s.received} dropped={s.dropped} queued={s.queued} top: {top}")
        tracer.close()  # wakes the consumer, which returns
        worker.join()
    print(f"final: {tracer.stats}")


if __name__ == "__main__":
    main()
