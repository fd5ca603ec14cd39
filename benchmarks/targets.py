"""The speed targets of tcpevent, checked against a ``make bench`` report.

Speeds depend on how busy the machine is, so they are measured here, in the
benchmark run, never asserted by the test suite (which checks correctness
with generous liveness bounds). Each target is printed with what was
measured and whether it was met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    measure: Callable[[dict[str, Any]], float | None]  # None: not measured
    goal: float
    higher_is_better: bool = True
    unit: str = ""

    def check(self, report: dict[str, Any]) -> dict[str, Any]:
        value = self.measure(report)
        met = None
        if value is not None:
            met = value >= self.goal if self.higher_is_better else value <= self.goal
        sign = ">=" if self.higher_is_better else "<="
        return {
            "target": f"{self.name} {sign} {self.goal:,g}{self.unit}",
            "value": value,
            "met": met,
        }


def _row(section: str, config: str, key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(report: dict[str, Any]) -> float | None:
        sec = report.get(section)
        rows = sec["rows"] if isinstance(sec, dict) else sec or []
        for row in rows:
            if row.get("config") == config:
                return float(row[key])
        return None

    return get


def _ratio(report: dict[str, Any], regime: str, a: str, b: str) -> float | None:
    """Row a's churn rate over row b's, in one regime of one run."""
    ra, rb = _row(regime, a, "rate")(report), _row(regime, b, "rate")(report)
    return ra / rb if ra is not None and rb else None


def _lost(regime: str) -> Callable[[dict[str, Any]], float | None]:
    """Events of the churn neither delivered nor counted, over every run."""

    def get(report: dict[str, Any]) -> float | None:
        rows = report.get(regime, {}).get("rows", [])
        lost = 0
        for row in rows:
            for captured, expected, dropped in zip(
                row.get("captured", []), row.get("expected", []), row.get("dropped", [])
            ):
                lost += max(0, expected - captured - dropped)
        return float(lost) if rows else None

    return get


def _lifecycle_lost(report: dict[str, Any]) -> float | None:
    """connect + accept events of the churn missing, beyond what missed counts."""
    for row in report.get("no TIME_WAIT", {}).get("rows", []):
        if "lifecycle" in row:
            want = 2 * report["connections"]
            return float(
                sum(max(0, want - got - d) for got, d in zip(row["lifecycle"], row["dropped"]))
            )
    return None


TARGETS = (
    Target(
        "no-TIME_WAIT churn ratio, C consumer", _row("no TIME_WAIT", "C consumer", "ratio"), 0.85
    ),
    Target(
        "no-TIME_WAIT churn ratio, Python batch",
        _row("no TIME_WAIT", "Python batch", "ratio"),
        0.75,
    ),
    Target("default churn ratio, C consumer", _row("default", "C consumer", "ratio"), 0.95),
    Target(
        "no-TIME_WAIT churn ratio, Python with connect+accept+close / close only",
        lambda r: _ratio(r, "no TIME_WAIT", "Python, all events", "Python batch"),
        0.9,
    ),
    Target(
        "loopback handshake p99, connect events",
        _row("no TIME_WAIT", "Python, all events", "handshake_p99_us"),
        5000,
        higher_is_better=False,
        unit=" us",
    ),
    Target("events lost uncounted, default", _lost("default"), 0, higher_is_better=False),
    Target("events lost uncounted, no TIME_WAIT", _lost("no TIME_WAIT"), 0, higher_is_better=False),
    Target("connect+accept events lost uncounted", _lifecycle_lost, 0, higher_is_better=False),
    Target(
        "Python conversion",
        lambda r: r.get("conversion", {}).get("events_per_cpu_s"),
        300_000,
        unit=" events/CPU-s",
    ),
    Target(
        "Python dequeue_batch drain",
        _row("dequeue", "Python batch", "events_per_s"),
        300_000,
        unit=" events/s",
    ),
    Target(
        "close->dequeue p99 at 10k conn/s, C",
        _row("latency", "C consumer", "p99_us"),
        5000,
        higher_is_better=False,
        unit=" us",
    ),
    Target(
        "close->dequeue p99 at 10k conn/s, Python batch",
        _row("latency", "Python batch", "p99_us"),
        5000,
        higher_is_better=False,
        unit=" us",
    ),
    Target(
        # No syscall tracepoint by default (issue 20): nothing measurable.
        "getppid() of others, default tracer / untraced",
        _row("host_syscall", "C consumer", "ratio"),
        1.03,
        higher_is_better=False,
    ),
    Target(
        "getppid() of others, tracer without accept hooks / untraced",
        _row("host_syscall", "C, no accept hooks", "ratio"),
        1.08,
        higher_is_better=False,
    ),
    Target(
        # Mostly the kernel's verifier: a program it walks in seconds shows.
        "Tracer() open, median",
        lambda r: r.get("open", {}).get("median_s"),
        0.5,
        higher_is_better=False,
        unit=" s",
    ),
)


def check(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target, with the value measured and whether it was met."""
    return [t.check(report) for t in TARGETS]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | met |", "|---|---:|---|"]
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:,.2f}"
        met = {True: "yes", False: "NO", None: "not measured"}[r["met"]]
        lines.append(f"| {r['target']} | {value} | {met} |")
    return "\n".join(lines)
