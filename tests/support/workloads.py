"""What the tests that run a workload script in a namespace of their own
share (test_health.py, test_lifecycle.py): running the script and reading
the tracer's events until what it did has been seen."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from netutil import wait_until
from nsutil import Netns

import tcpevent
from tcpevent import TcpEvent


def run_workload(ns: Netns, script: Path, *args: str) -> dict:
    """Run ``script ARGS`` in ``ns``; the JSON object it prints last, saying what it did."""
    out = ns.run(sys.executable, str(script), *args)
    result: dict = json.loads(out.splitlines()[-1])
    return result


def collect_events(
    tracer: tcpevent.Tracer,
    done: Callable[[list[TcpEvent]], bool],
    timeout: float,
    settle: float,
) -> list[TcpEvent]:
    """Events until done(events) (for ``timeout`` at most: a liveness
    bound), then whatever else comes within ``settle`` seconds."""
    events: list[TcpEvent] = []

    def more() -> bool:
        events.extend(tracer.dequeue_batch(1024, timeout=0.05))
        return done(events)

    wait_until(more, timeout=timeout)
    events.extend(tracer.dequeue_batch(1024, timeout=settle))
    return events
