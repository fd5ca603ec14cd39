"""A queue filled by a fast churn, drained with dequeue_batch: every close
event comes out once, or is counted. Done with examples/python/bench_dequeue.py
(so the example stays working); its speed is measured by `make bench`, not
asserted here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from accounting import assert_accounted

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "python" / "bench_dequeue.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_dequeue", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.bpf
def test_dequeue_batch_drains_a_full_churn(tmp_path: Path) -> None:
    bench = load_example()
    churn = bench.build_churn(str(tmp_path))
    events, expected, missed, rate, cpu_rate = bench.bench_drain(20000, 1024, churn)
    print(f"dequeue_batch: {rate:,.0f} events/s ({cpu_rate:,.0f}/CPU s) over {events} events")
    assert expected >= 40000
    # Every close event of the churn, or (rarely: docs/reliability.md)
    # counted in missed.
    assert_accounted(events, missed, expected)
