"""dequeue_batch throughput: >= 300,000 events/s into Python.

Measured with examples/python/bench_dequeue.py (so the example stays
working): the conversion alone on a synthetic batch, and the real core's
queue, pre-filled by loopback connection churn, drained by dequeue_batch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from accounting import assert_accounted

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "python" / "bench_dequeue.py"
TARGET = 300_000


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_dequeue", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conversion_throughput() -> None:
    rate = load_example().bench_convert(batch=1024, seconds=0.6, cpu_time=True)
    print(f"conversion: {rate:,.0f} events/s")
    assert rate >= TARGET


@pytest.mark.bpf
def test_dequeue_batch_throughput(tmp_path: Path) -> None:
    bench = load_example()
    churn = bench.build_churn(str(tmp_path))
    events, expected, missed, rate, cpu_rate = bench.bench_drain(20000, 1024, churn)
    print(f"dequeue_batch: {rate:,.0f} events/s ({cpu_rate:,.0f}/CPU s) over {events} events")
    assert expected >= 40000
    # Every close event of the churn, or (rarely: docs/reliability.md)
    # counted in missed.
    assert_accounted(events, missed, expected)
    # Per CPU second of the draining thread: what this code costs, whatever
    # else the machine is running meanwhile.
    assert cpu_rate >= TARGET
