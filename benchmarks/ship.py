#!/usr/bin/env python3
"""What ``tcpevent ship`` costs and how fast it goes (part of ``make bench``).

A churn of N loopback connections (benchmarks/churn.c, 2N close events) in
a network namespace of its own, shipped by ``tcpevent ship --netns`` into a
real ClickHouse (Debian's 18.16, started here as the tests start it, on
loopback with a temporary data directory). Measured:

- rows/s: the events over the time from the churn's start until the last
  of them is in the table (the churn's own rate bounds it: it is printed
  next to it);
- the shipper's CPU (user + system, all its threads: tracer conversion,
  encoding, gzip, HTTP) per event, and so the events one CPU-second ships;
- what a row weighs: gzip'd in the spool and on the wire, and in
  ClickHouse's compressed parts.

    python3 benchmarks/ship.py [--connections 100000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from clickhouse import ClickHouse  # noqa: E402  (tests/support: the tests' own server)

TABLE = "bench_events"
#: No new rows for this long: the rest are not coming (lost, and counted).
STILL = 10.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ship_throughput(churn: Path, connections: int, prefix_of: Any) -> dict[str, Any]:
    """One shipped churn; ``prefix_of`` is run.py's fresh_netns."""
    with tempfile.TemporaryDirectory(prefix="tcpevent-bench-ship-") as tmp:
        work = Path(tmp)
        (work / "ch").mkdir()
        ch = ClickHouse(work / "ch")
        try:
            with prefix_of(True) as prefix:
                return _run(ch, churn, connections, prefix, work)
        finally:
            ch.stop()


def _run(ch: ClickHouse, churn: Path, n: int, prefix: list[str], work: Path) -> dict[str, Any]:
    netns = prefix[3]
    ship = subprocess.Popen(
        [
            *(sys.executable, "-m", "tcpevent", "ship", "--clickhouse", ch.url),
            *("--table", TABLE, "--spool", str(work / "spool"), "--netns", netns),
            *("--queue-size", str(1 << 20), "--log-interval", "0"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert ship.stderr is not None
    line = ship.stderr.readline()
    if "shipping" not in line:
        ship.kill()
        raise RuntimeError(f"tcpevent ship did not start: {line}{ship.stderr.read()}")
    try:
        cpu0 = _cpu_seconds(ship.pid)
        proc = subprocess.Popen(
            [*prefix, str(churn), "--wait", "-n", str(n), "-t", "2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdout.readline()  # READY
        start = time.monotonic()
        proc.stdin.write("\n")
        proc.stdin.flush()
        summary = json.loads(proc.stdout.read().strip().splitlines()[-1])
        proc.wait()
        churn_s = time.monotonic() - start
        expected = 2 * n + int(summary.get("retries", 0))
        rows, last, changed = 0, start, time.monotonic()
        while rows < expected and time.monotonic() - changed < STILL:
            time.sleep(0.2)
            got = ch.scalar(f"SELECT count() FROM {TABLE}") if _exists(ch) else 0
            if got != rows:
                rows, last, changed = got, time.monotonic(), time.monotonic()
        cpu = _cpu_seconds(ship.pid) - cpu0
    finally:
        ship.send_signal(signal.SIGTERM)
        ship.wait(timeout=60)
    sample = ch.query(f"SELECT * FROM {TABLE} LIMIT 10000 FORMAT JSONEachRow").encode()
    sample_rows = sample.count(b"\n")
    parts = ch.query(
        f"SELECT sum(rows), sum(data_compressed_bytes) FROM system.parts "
        f"WHERE table = '{TABLE}' AND active"
    ).split()
    seconds = last - start
    return {
        "connections": n,
        "expected": expected,
        "rows": rows,
        "churn_rate": round(n / churn_s),
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds) if seconds > 0 else None,
        "cpu_us_per_event": round(cpu / rows * 1e6, 2) if rows else None,
        "events_per_cpu_s": round(rows / cpu) if cpu > 0 else None,
        "gzip_bytes_per_row": round(len(gzip.compress(sample, 1)) / sample_rows, 1),
        "clickhouse_bytes_per_row": round(int(parts[1]) / int(parts[0]), 1),
    }


def _exists(ch: ClickHouse) -> bool:
    return ch.scalar(f"EXISTS TABLE {TABLE}") == 1


def main() -> int:
    import run  # benchmarks/run.py: the churn build and fresh namespaces

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100_000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks need root (BPF, namespaces)", file=sys.stderr)
        return 1
    churn, _consumer = run.build()
    result = ship_throughput(churn, args.connections, run.fresh_netns)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
