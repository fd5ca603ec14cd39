"""``tcpevent ship`` when things go wrong, against a real ClickHouse: the
server stopped for 20 s under churn, the shipper killed with SIGKILL and
restarted, the server refusing (a wrong password, a table of another
shape), and a spool too small. Every event kept is in the table exactly
once afterwards (``FINAL``), and what could not be kept is counted.

The traffic is loopback connections to a listener of each test's own
(tests/support/shiputil.py), the shipper filtered to its port and to the
test's pid (another process may connect to that port too): each
connection is two close events, ``outbound`` (client port = ``sport``) and
``inbound`` (client port = ``dport``).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from accounting import assert_accounted
from clickhouse import PASSWORD, USER, ClickHouse
from shiputil import (
    ARRIVAL_TIMEOUT,
    End,
    Ship,
    Traffic,
    both_ends,
    client_end,
    excess,
    scrape,
    spool_rows,
    spooled_events,
    within,
)

pytestmark = pytest.mark.bpf

#: How long ClickHouse stays down in the outage test, as the issue asks.
OUTAGE = 20.0


@pytest.fixture
def traffic() -> Iterator[Traffic]:
    t = Traffic()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def table() -> str:
    return f"t_{os.getpid()}_{secrets.token_hex(4)}"


def ship_args(ch_url: str, table: str, spool: Path, traffic: Traffic, *more: str) -> list[str]:
    pw = spool.parent / "password"
    pw.write_text(PASSWORD + "\n")
    return [
        *("--clickhouse", ch_url, "--table", table, "--user", USER),
        *("--password-file", str(pw), "--spool", str(spool), "--port", str(traffic.port)),
        # Our pid too: another process of the host may connect to our port
        # (a test of its own that probes "free" ports), and would be counted.
        *("--pid", str(os.getpid())),
        *("--batch-seconds", "0.2", "--log-interval", "1", *more),
    ]


def ends(ch: ClickHouse, table: str) -> Counter[End]:
    """(direction, client port) of every event in the table, deduplicated
    as queries see it (FINAL), counted."""
    rows = ch.rows(f"SELECT direction, sport, dport FROM {table} FINAL")
    return Counter(client_end(r) for r in rows)


def wait_for(
    predicate: Callable[[], bool], timeout: float = ARRIVAL_TIMEOUT, interval: float = 0.2
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def table_count(ch: ClickHouse, table: str) -> int:
    if ch.scalar(f"EXISTS TABLE {table}") != 1:
        return 0
    return ch.scalar(f"SELECT count() FROM {table} FINAL")


def assert_once(ch: ClickHouse, table: str) -> Counter[End]:
    """No event twice, as queries see them (FINAL: one row per id); the
    rows' (direction, client port), counted. An event sent twice under two
    ids would be one connection counted twice: the callers compare these
    counts with the connections made."""
    got = ends(ch, table)
    assert ch.scalar(f"SELECT uniqExact(event_id) FROM {table}") == sum(got.values())
    return got


def test_clickhouse_stopped_for_20_s_mid_churn_loses_nothing(
    clickhouse: ClickHouse, traffic: Traffic, table: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    ship = Ship(ship_args(clickhouse.url, table, spool, traffic, "--metrics", "127.0.0.1:0"))
    try:
        traffic.start(per_second=50)
        assert wait_for(lambda: table_count(clickhouse, table) >= 20), ship.log()
        clickhouse.stop()
        down = time.monotonic()
        try:
            ship.wait_log("cannot reach ClickHouse")
            assert wait_for(lambda: spool_rows(spool) > 0)
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
            during = spool_rows(spool)
        finally:
            clickhouse.start()
        time.sleep(3)
        traffic.stop()
        produced = 2 * len(traffic.ports())
        assert wait_for(lambda: table_count(clickhouse, table) >= produced, interval=1), ship.log()
        assert wait_for(lambda: spool_rows(spool) == 0)
        metrics = scrape(str(ship.metrics_url))
    finally:
        assert ship.stop() == 0, ship.log()
    got = assert_once(clickhouse, table)
    made = both_ends(traffic.ports())
    assert within(got, made), (excess(got, made)[:10], sum(got.values()), sum(made.values()))
    missed = int(metrics["tcpevent_events_missed_total"])
    assert_accounted(sum(got.values()), missed, produced, ship.log())
    assert during > 50 * OUTAGE * 0.5, (during, ship.log())  # the spool held the outage
    assert metrics["tcpevent_ship_retries_total"] > 0
    assert metrics["tcpevent_ship_rows_spooled_total"] >= during
    assert metrics["tcpevent_ship_rows_dropped_total"] == 0
    assert metrics["tcpevent_ship_clickhouse_up"] == 1
    assert "takes batches again" in ship.log()


def test_ship_killed_and_restarted_loses_nothing_it_kept_and_doubles_nothing(
    clickhouse: ClickHouse, traffic: Traffic, table: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    args = ship_args(clickhouse.url, table, spool, traffic, "--batch-seconds", "0.1")
    first = Ship(args)
    kept: Counter[End] = Counter()
    try:
        # 1. Killed mid-stream, ClickHouse up: batches go every 0.1 s, so the
        # kill finds one being formed, written or sent.
        traffic.start(per_second=100)
        assert wait_for(lambda: table_count(clickhouse, table) >= 100), first.log()
        first.stop(signal.SIGKILL)
        # What it had kept: the table now, and its spool (no one writes them).
        # A batch both sent and still in the spool (killed before it was
        # removed) is one set of events: the union, not the sum.
        kept = ends(clickhouse, table) | Counter(map(client_end, spooled_events(spool)))
        second = Ship(args)
        attached = time.monotonic()
        time.sleep(2)
        traffic.stop()
        watched = traffic.between(attached, time.monotonic())
        assert wait_for(lambda: within(both_ends(watched), ends(clickhouse, table))), second.log()

        # 2. Killed with ClickHouse down and the spool holding batches: the
        # next shipper sends them first.
        clickhouse.stop()
        try:
            held = traffic.many(100)
            assert wait_for(lambda: spool_rows(spool) >= 200), second.log()
            second.stop(signal.SIGKILL)
            in_spool = spool_rows(spool)
        finally:
            clickhouse.start()
        third = Ship(args)
        try:
            assert third.waiting() == in_spool
            assert wait_for(lambda: spool_rows(spool) == 0), third.log()
            after = traffic.many(100)
            total = sum(kept.values()) + 400
            assert wait_for(lambda: table_count(clickhouse, table) >= total), third.log()
        finally:
            assert third.stop() == 0, third.log()
    finally:
        first.stop(signal.SIGKILL)
    got = assert_once(clickhouse, table)
    assert within(got, both_ends(traffic.ports())), "an event counted twice"
    assert within(kept, got), "an event kept by the killed shipper is lost"
    # What the second and third shippers were attached for, all of it; the
    # ranges are disjoint in time, so their connections add up.
    assert within(both_ends(watched) + both_ends(held) + both_ends(after), got), third.log()


def test_a_wrong_password_keeps_everything_in_the_spool(
    clickhouse: ClickHouse, traffic: Traffic, table: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    args = ship_args(clickhouse.url, table, spool, traffic)
    wrong = "not-the-password-42"
    (tmp_path / "wrong").write_text(wrong)
    bad = [*args, "--password-file", str(tmp_path / "wrong")]
    bad.pop(bad.index("--password-file") + 1)  # the first --password-file and its value
    bad.remove("--password-file")
    ship = Ship(bad)
    try:
        ports = traffic.many(30)
        ship.wait_log(r"answered \d+: Code: 193, .*Wrong password for user shipper")
        assert wait_for(lambda: spool_rows(spool) == 60), ship.log()
    finally:
        assert ship.stop() == 0, ship.log()
    assert wrong not in ship.log() and PASSWORD not in ship.log()
    assert "the spool keeps the rest" in ship.log()
    assert spool_rows(spool) == 60
    assert clickhouse.scalar(f"EXISTS TABLE {table}") == 0
    right = Ship(args)
    try:
        assert right.waiting() == 60
        assert wait_for(lambda: table_count(clickhouse, table) == 60), right.log()
    finally:
        assert right.stop() == 0, right.log()
    assert assert_once(clickhouse, table) == both_ends(ports)
    assert spool_rows(spool) == 0


def test_a_table_of_another_shape_keeps_everything_until_it_is_fixed(
    clickhouse: ClickHouse, traffic: Traffic, table: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    clickhouse.query(f"CREATE TABLE {table} (x UInt8) ENGINE = Memory")
    ship = Ship(ship_args(clickhouse.url, table, spool, traffic))
    try:
        ports = traffic.many(30)
        ship.wait_log("Unknown field found while parsing JSONEachRow format")
        assert wait_for(lambda: spool_rows(spool) == 60), ship.log()
        clickhouse.query(f"DROP TABLE {table}")  # the shipper makes its own
        assert wait_for(lambda: table_count(clickhouse, table) == 60), ship.log()
        assert wait_for(lambda: spool_rows(spool) == 0)
    finally:
        assert ship.stop() == 0, ship.log()
    assert assert_once(clickhouse, table) == both_ends(ports)
    assert "takes batches again" in ship.log()


def test_a_full_spool_drops_and_counts(traffic: Traffic, table: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    size = 16 << 10
    with socket.socket() as s:  # a port bound, never listening: refused
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
        more = ("--spool-size", str(size), "--batch-rows", "20", "--metrics", "127.0.0.1:0")
        ship = Ship(ship_args(nowhere, table, spool, traffic, *more))
    try:
        produced = 2 * len(traffic.many(300))

        def settled() -> bool:
            m = scrape(str(ship.metrics_url))
            held = m["tcpevent_ship_rows_dropped_total"] + m["tcpevent_ship_spool_rows"]
            return held >= m["tcpevent_events_total"] >= produced - 2

        assert wait_for(settled), ship.log()
        m = scrape(str(ship.metrics_url))
    finally:
        assert ship.stop() == 0, ship.log()
    dropped, held = int(m["tcpevent_ship_rows_dropped_total"]), int(m["tcpevent_ship_spool_rows"])
    assert dropped > 0 and held > 0
    assert held == spool_rows(spool)
    assert m["tcpevent_ship_spool_bytes"] <= size
    assert sum(p.stat().st_size for p in spool.glob("*.jsonl.gz")) <= size
    assert_accounted(dropped + held, int(m["tcpevent_events_missed_total"]), produced, ship.log())
    assert "the spool is full" in ship.log()
    assert f"dropped {dropped}" in ship.log().splitlines()[-1]


def test_a_clickhouse_that_stops_answering_is_retried_after_the_timeout(
    clickhouse: ClickHouse, traffic: Traffic, table: str, tmp_path: Path
) -> None:
    """A server that takes the connection but does not answer (SIGSTOP: the
    kernel still accepts into its backlog): each insert times out after
    --timeout and is sent again; one that the server committed before it
    froze then arrives twice, and counts once."""
    spool = tmp_path / "spool"
    ship = Ship(ship_args(clickhouse.url, table, spool, traffic, "--timeout", "2"))
    assert clickhouse.proc is not None
    try:
        first = traffic.many(20)
        assert wait_for(lambda: table_count(clickhouse, table) == 40), ship.log()
        clickhouse.proc.send_signal(signal.SIGSTOP)
        try:
            frozen = traffic.many(50)
            ship.wait_log("timed out")
            assert wait_for(lambda: spool_rows(spool) >= 100), ship.log()
        finally:
            clickhouse.proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: table_count(clickhouse, table) == 140), ship.log()
        assert wait_for(lambda: spool_rows(spool) == 0)
    finally:
        assert ship.stop() == 0, ship.log()
    assert assert_once(clickhouse, table) == both_ends(first) + both_ends(frozen)
    assert "takes batches again" in ship.log()
