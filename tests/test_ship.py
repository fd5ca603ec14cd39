"""``tcpevent ship`` and ``tcpevent.ship`` against a real ClickHouse: known
traffic arrives exactly as the Python Tracer sees it, once.

Debian's ``clickhouse-server`` (18.16, installed by ``make test``) runs on
127.0.0.1 for the module (tests/support/clickhouse.py); each test ships
into a table of its own and filters its tracer to the ports of its own
listener and to its own pid, so other suites' connections (one that
happens to reach our port included) never reach its rows.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from clickhouse import PASSWORD, USER, ClickHouse
from shiputil import ARRIVAL_TIMEOUT, Ship, Traffic

from tcpevent import TcpEvent, Tracer
from tcpevent.ship import (
    COLUMNS,
    ClickHouseClient,
    HostIdentity,
    RowEncoder,
    Shipper,
    Spool,
    SpoolError,
    create_table_sql,
    event_id,
    parse_size,
)

ALL_KINDS = ("close", "connect", "accept")


def table_name() -> str:
    return f"t_{os.getpid()}_{secrets.token_hex(4)}"


def wait_rows(ch: ClickHouse, table: str, count: int, timeout: float = ARRIVAL_TIMEOUT) -> int:
    """Wait until ``table`` holds ``count`` distinct events; how many it holds."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = ch.scalar(f"SELECT count() FROM {table} FINAL") if exists(ch, table) else 0
        if n >= count:
            return n
        time.sleep(0.2)
    return n


def exists(ch: ClickHouse, table: str) -> bool:
    return ch.scalar(f"EXISTS TABLE {table}") == 1


def expected_row(ev: TcpEvent, ident: HostIdentity) -> dict[str, Any]:
    """What the table must hold for ``ev``, written out from the event's own
    fields (docs/fleet.md's schema), not through the shipper's encoder."""
    names = ev.cgroup_names()
    return {
        "time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ev.time_ns // 10**9)),
        "time_ns": ev.time_ns,
        "host": socket.gethostname(),
        "host_id": Path("/etc/machine-id").read_text().strip(),
        "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "event_id": event_id(ev, ident),
        "kind": ev.kind,
        "direction": ev.direction,
        "pid": ev.pid,
        "uid": ev.uid,
        "task": ev.task,
        "family": "AF_INET6" if ev.family == socket.AF_INET6 else "AF_INET",
        "saddr": ev.saddr,
        "sport": ev.sport,
        "daddr": ev.daddr,
        "dport": ev.dport,
        "rx_bytes": ev.rx_bytes,
        "tx_bytes": ev.tx_bytes,
        "segs_out": ev.segs_out,
        "segs_in": ev.segs_in,
        "rtt_us": ev.rtt_us,
        "retrans": ev.retrans,
        "state": ev.state.name,
        "error": errno.errorcode[ev.error] if ev.error else "",
        "lifetime_ns": ev.lifetime_ns,
        "handshake_ns": ev.handshake_ns,
        "accept_wait_ns": ev.accept_wait_ns,
        "cgroup_id": ev.cgroup_id,
        "cgroup": names["cgroup"] or "",
        "container_id": names["container_id"] or "",
        "pod_uid": names["pod_uid"] or "",
        "netns": ev.netns,
    }


def known_traffic(v4: Traffic, v6: Traffic, refused_port: int) -> int:
    """Connections of both families, known payloads, a reset and refused
    connects; how many events of all kinds they make."""
    v4.many(20)
    v6.many(10)
    for _ in range(3):  # refused: one close each (SYN_SENT, ECONNREFUSED)
        s = socket.socket()
        with s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", refused_port))
    # A reset: the client aborts with RST after the exchange.
    client = socket.create_connection(("127.0.0.1", v4.port))
    server, _ = v4.listener.accept()
    client.sendall(b"x" * 10)
    server.recv(10)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    client.close()
    time.sleep(0.05)
    server.close()
    # Each connection: connect + accept + two closes; a refused one: a close.
    return 4 * (20 + 10 + 1) + 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def take(tracer: Tracer, count: int, timeout: float = 30) -> list[TcpEvent]:
    events: list[TcpEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += tracer.dequeue_batch(1024, timeout=0.2)
    # Anything more that was coming (there must be none).
    events += tracer.dequeue_batch(1024, timeout=0.5)
    return events


# ---- the embedded API: every field of every event, exactly --------------------------------


@pytest.mark.bpf
def test_known_traffic_arrives_exactly_as_the_tracer_sees_it(
    clickhouse: ClickHouse, tmp_path: Path
) -> None:
    v4, v6, refused = Traffic(), Traffic(socket.AF_INET6), free_port()
    table = table_name()
    client = ClickHouseClient(clickhouse.url, user=USER, password=PASSWORD)
    ident = HostIdentity.of_this_host()
    try:
        with (
            Tracer(
                pids=[os.getpid()], ports=[v4.port, v6.port, refused], events=ALL_KINDS
            ) as tracer,
            Spool(tmp_path / "spool", 1 << 26) as spool,
        ):
            shipper = Shipper(client, spool, table, batch_rows=7, batch_seconds=0.2).start()
            produced = known_traffic(v4, v6, refused)
            events = take(tracer, produced)
            # Batches of 7 rows, the last one by time: several inserts.
            shipper.add(events[:50])
            time.sleep(0.3)
            shipper.flush_due()
            shipper.add(events[50:])
            assert shipper.close(drain_timeout=ARRIVAL_TIMEOUT), shipper.stats
            stats = tracer.stats
            ship_stats = shipper.stats
    finally:
        v4.close()
        v6.close()
    assert len(events) <= produced and produced - len(events) <= stats.missed + 2, (
        len(events),
        produced,
        stats,
    )
    assert {e.kind for e in events} == set(ALL_KINDS)
    assert any(e.error_name == "ECONNREFUSED" for e in events)
    assert any(e.family == socket.AF_INET6 for e in events)
    rows = clickhouse.rows(f"SELECT * FROM {table} ORDER BY time_ns")
    assert len(rows) == len(events), (len(rows), len(events))
    assert [c.name for c in COLUMNS] == list(rows[0])
    by_id = {r["event_id"]: r for r in rows}
    assert len(by_id) == len(rows), "event ids are unique"
    for ev in events:
        assert by_id[event_id(ev, ident)] == expected_row(ev, ident), ev
    assert ship_stats.sent == len(events)
    assert (ship_stats.spooled, ship_stats.retried, ship_stats.dropped) == (0, 0, 0)
    assert ship_stats.spool_rows == 0 and ship_stats.up


# ---- the command: what a tracer of the test's own sees -----------------------------------


@pytest.mark.bpf
def test_the_command_ships_every_event_of_the_kinds_asked(
    clickhouse: ClickHouse, tmp_path: Path
) -> None:
    v4, v6, refused = Traffic(), Traffic(socket.AF_INET6), free_port()
    table = table_name()
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    ident = HostIdentity.of_this_host()
    ports = [v4.port, v6.port, refused]
    try:
        with Tracer(pids=[os.getpid()], ports=ports, events=ALL_KINDS) as tracer:
            ship = Ship(
                [
                    *("--clickhouse", clickhouse.url, "--table", table, "--user", USER),
                    *("--password-file", str(tmp_path / "pw"), "--spool", str(tmp_path / "s")),
                    *("--events", ",".join(ALL_KINDS), "--batch-seconds", "0.2"),
                    *(arg for p in ports for arg in ("--port", str(p))),
                    *("--pid", str(os.getpid())),
                ]
            )
            try:
                produced = known_traffic(v4, v6, refused)
                events = take(tracer, produced)
                assert wait_rows(clickhouse, table, len(events)) == len(events)
            finally:
                assert ship.stop() == 0, ship.log()
    finally:
        v4.close()
        v6.close()
    assert PASSWORD not in ship.log()
    assert f"stopped: sent {len(events)}, spooled 0, retried 0, dropped 0" in ship.log()
    rows = clickhouse.rows(f"SELECT * FROM {table}")
    assert len(rows) == len(events)
    key = ("kind", "saddr", "sport", "daddr", "dport")
    shipped = {tuple(r[k] for k in key): r for r in rows}
    assert len(shipped) == len(rows)
    for ev in events:
        row = dict(shipped[tuple(getattr(ev, k) for k in key)])
        # Two tracers are two BPF programs: each stamps the socket's birth,
        # handshake and close when its own program runs on the tracepoint,
        # and turns boot time into wall-clock time with its own measure of
        # the clocks' offset. The same instants, microseconds apart: within
        # a millisecond, each zero exactly when the other is. Every other
        # field is the same, the id computed from the shipper's time.
        timed = ("time_ns", "lifetime_ns", "handshake_ns", "accept_wait_ns")
        for name in timed:
            mine = getattr(ev, name)
            assert abs(row[name] - mine) < 1_000_000 and (row[name] == 0) == (mine == 0), (
                name,
                row,
                ev,
            )
        seen = replace(ev, **{name: row[name] for name in timed})
        assert row == expected_row(seen, ident)


# ---- the parts, without BPF -------------------------------------------------------------


def test_the_schema_creates_on_clickhouse_18_and_matches_the_rows(clickhouse: ClickHouse) -> None:
    table = table_name()
    clickhouse.query(create_table_sql(table))
    clickhouse.query(create_table_sql(table))  # IF NOT EXISTS: a second start is fine
    text = clickhouse.query(f"DESCRIBE {table}")
    described = [line.split("\t")[:2] for line in text.splitlines()]
    assert described == [[c.name, c.type] for c in COLUMNS]
    engine = clickhouse.query(f"SELECT engine FROM system.tables WHERE name = '{table}'")
    assert engine.strip() == "ReplacingMergeTree"


def test_a_batch_sent_twice_counts_once_with_final(clickhouse: ClickHouse) -> None:
    from tcpevent.event import ZERO_EVENT

    table = table_name()
    clickhouse.query(create_table_sql(table))
    ident = HostIdentity("h", "0" * 32, "b")
    enc = RowEncoder(ident)
    evs = [replace(ZERO_EVENT, time_ns=1_700_000_000_000_000_000 + i, sport=i) for i in range(100)]
    body = gzip.compress("".join(enc.line(e) for e in evs).encode())
    client = ClickHouseClient(clickhouse.url)
    client.insert(f"`{table}`", body)
    client.insert(f"`{table}`", body)  # a timeout after the server committed it
    assert clickhouse.scalar(f"SELECT count() FROM {table}") == 200
    assert clickhouse.scalar(f"SELECT count() FROM {table} FINAL") == 100
    clickhouse.query(f"OPTIMIZE TABLE {table} FINAL")
    assert clickhouse.scalar(f"SELECT count() FROM {table}") == 100


def test_event_ids_are_deterministic_and_tell_events_apart() -> None:
    from tcpevent.event import ZERO_EVENT

    a, b = HostIdentity("h", "1" * 32, "boot-a"), HostIdentity("h", "1" * 32, "boot-b")
    ev = replace(ZERO_EVENT, time_ns=123, saddr="127.0.0.1", sport=1, daddr="127.0.0.1", dport=2)
    assert event_id(ev, a) == event_id(replace(ev), a) == RowEncoder(a).row(ev)["event_id"]
    others = [
        event_id(ev, b),
        event_id(ev, HostIdentity("h", "2" * 32, "boot-a")),
        event_id(replace(ev, time_ns=124), a),
        event_id(replace(ev, kind="connect"), a),
        event_id(replace(ev, sport=3), a),
        event_id(replace(ev, netns=7), a),
    ]
    assert len({event_id(ev, a), *others}) == 7
    assert all(0 <= i < 2**64 for i in others)


def test_a_command_name_that_is_not_utf8_is_shipped_as_escapes() -> None:
    from tcpevent.event import ZERO_EVENT

    enc = RowEncoder(HostIdentity("h", "1" * 32, "b"))
    ev = replace(ZERO_EVENT, task="caf\udce9")
    line = enc.line(ev)
    assert json.loads(line)["task"] == "caf\\xe9"
    line.encode("ascii")  # nothing ClickHouse could misread


def test_the_spool_is_durable_ordered_bounded_and_exclusive(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    with Spool(d, 100) as spool:
        assert spool.put(b"a" * 40, 4) and spool.put(b"b" * 40, 5)
        assert not spool.put(b"c" * 40, 6)  # 120 > 100: refused, nothing written
        assert (spool.rows, spool.bytes, spool.batches) == (9, 80, 2)
        with pytest.raises(SpoolError, match="in use by another shipper"):
            Spool(d, 100)
        (d / "00000000000000000099-3.jsonl.gz.tmp").write_bytes(b"half")  # a crash mid-write
    with Spool(d, 100) as spool:  # a restart finds both batches, in order
        assert not list(d.glob("*.tmp"))
        first = spool.oldest(0)
        assert first is not None and first.body() == b"a" * 40 and first.rows == 4
        spool.remove(first)
        second = spool.oldest(0)
        assert second is not None and second.body() == b"b" * 40
        assert spool.put(b"d" * 10, 1)
        spool.remove(second)
        third = spool.oldest(0)
        assert third is not None and third.body() == b"d" * 10 and third.sequence > second.sequence
        spool.remove(third)
        assert spool.oldest(0) is None and spool.wait_empty(0)


def test_sizes_parse() -> None:
    assert parse_size("1G") == 1 << 30
    assert parse_size("512M") == 512 << 20
    assert parse_size("64KiB") == 64 << 10
    assert parse_size("1000") == 1000
    for bad in ("", "1X", "-1", "0", "1.5G"):
        with pytest.raises(ValueError):
            parse_size(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clickhouse", "http://u:p@127.0.0.1:8123"], "no credentials in the URL"),
        (["--clickhouse", "ftp://127.0.0.1"], "not an http:// or https:// URL"),
        (["--clickhouse", "http://127.0.0.1", "--table", "a-b"], "not a table name"),
        (["--clickhouse", "http://127.0.0.1", "--spool-size", "lots"], "not a size"),
        (["--clickhouse", "http://127.0.0.1", "--password-env", "TE_NO_SUCH_VAR"], "not set"),
        (["--clickhouse", "http://127.0.0.1", "--web.config.file", "x"], "applies to --metrics"),
        (["--clickhouse", "http://127.0.0.1", "--events", "nope"], "--events takes"),
        (["--clickhouse", "http://127.0.0.1", "--ca-file", "/etc/hosts"], "https://"),
        (["--table", "x"], "--clickhouse"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TE_NO_SUCH_VAR"}
    proc = subprocess.run(
        [sys.executable, "-m", "tcpevent", "ship", "--spool", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_spool_in_use_is_a_clear_failure(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", 1000):
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "tcpevent", "ship"),
                *("--clickhouse", "http://127.0.0.1:1", "--spool", str(tmp_path / "s")),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1, proc
    assert "in use by another shipper" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_before_anything_is_a_clean_exit(tmp_path: Path) -> None:
    """Not a test of BPF: of the command's end when ClickHouse is unreachable."""
    if os.geteuid() != 0:
        pytest.skip("needs root to trace")
    ship = Ship(["--clickhouse", "http://127.0.0.1:1", "--spool", str(tmp_path / "s")])
    assert ship.stop(signal.SIGTERM) == 0, ship.log()
    assert "stopped: sent 0" in ship.log()


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts examples/systemd/tcpevent-ship.service
    and reads it as a non-root user with no new privileges and a bounding
    set of the three tracing capabilities (as the exporter's unit; systemd is
    not PID 1 here, so the unit is checked as systemd reads it)."""
    import shutil

    unit_src = Path(__file__).resolve().parent.parent / "examples/systemd/tcpevent-ship.service"
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed: make deps installs systemd"
    tcpevent = tmp_path / "tcpevent"
    tcpevent.write_text(f'#!/bin/sh\nexec {sys.executable} -m tcpevent "$@"\n')
    tcpevent.chmod(0o755)
    text = unit_src.read_text()
    assert "ExecStart=/usr/local/bin/tcpevent ship" in text
    assert "--password" not in text.replace("--password-file %d/", "")  # never a password
    unit = tmp_path / unit_src.name
    unit.write_text(text.replace("/usr/local/bin/tcpevent", str(tcpevent)))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r
    r = subprocess.run(
        [analyze, "security", "--offline=true", "--json=short", str(unit)],
        capture_output=True,
        text=True,
    )
    checks = {c["json_field"]: c["set"] for c in json.loads(r.stdout)}
    assert checks["UserOrDynamicUser"] is True
    assert checks["NoNewPrivileges"] is True
    kept = {k for k, ok in checks.items() if k.startswith("CapabilityBoundingSet_") and not ok}
    assert kept == {
        "CapabilityBoundingSet_CAP_BPF",
        "CapabilityBoundingSet_CAP_DAC_FOWNER_IPC_OWNER",
    }
    # The command line systemd would run parses (a usage error would be 2).
    args = text.split("ExecStart=/usr/local/bin/tcpevent ship", 1)[1].split("\n[")[0]
    args = args.split("LoadCredential")[0].replace("\\\n", " ")
    argv = args.replace("%d", str(tmp_path)).replace("%S", str(tmp_path)).split()
    from tcpevent.ship.command import build_parser

    parsed = build_parser().parse_args(argv)
    assert parsed.spool == f"{tmp_path}/tcpevent/spool" and parsed.metrics is not None


def test_the_queries_of_the_docs_run_on_clickhouse_18(clickhouse: ClickHouse) -> None:
    """Every SELECT and ALTER of docs/fleet.md, on a table of the documented
    schema holding a close, a failed connect and a duplicate."""
    import re

    from tcpevent.event import ZERO_EVENT, TcpState

    docs = (Path(__file__).resolve().parent.parent / "docs" / "fleet.md").read_text()
    queries = [q for q in re.findall(r"```sql\n(.*?)```", docs, re.S) if "CREATE" not in q]
    assert len(queries) >= 5, queries
    table = table_name()
    clickhouse.query(create_table_sql(table))
    enc = RowEncoder(HostIdentity("h", "1" * 32, "b"))
    now = time.time_ns()
    evs = [
        replace(ZERO_EVENT, time_ns=now, daddr="10.1.2.3", dport=5432, rx_bytes=10, tx_bytes=5),
        replace(
            ZERO_EVENT,
            time_ns=now + 1,
            daddr="10.1.2.4",
            dport=80,
            direction="outbound",
            state=TcpState.SYN_SENT,
            error=errno.ECONNREFUSED,
        ),
    ]
    body = gzip.compress("".join(enc.line(e) for e in evs + evs[:1]).encode())
    ClickHouseClient(clickhouse.url).insert(f"`{table}`", body)
    results = []
    for q in queries:
        sql = re.sub(r"\btcp_events\b", table, q).strip().rstrip(";")
        sql = sql.replace("'2026-12-01 00:00:00'", "'1970-01-01 00:00:00'").replace(
            "'2026-12-02 00:00:00'", "'2100-01-01 00:00:00'"
        )
        results.append(clickhouse.query(sql))
    assert results[0] == "2\n"  # three rows, one of them twice: two events
    assert results[1].split("\t")[:3] == ["10.1.2.3", "5432", "1"]  # top talkers, deduplicated
    assert results[2].split("\t")[3:6] == ["1", "5", "10"]  # the peer's history: sent, received
    assert results[3].split("\t")[:3] == ["80", "ECONNREFUSED", "1"]  # failed connects


def test_a_line_is_its_row_as_json() -> None:
    """The fast line writer and the row agree, for every kind of value."""
    from tcpevent.event import ZERO_EVENT, TcpState

    enc = RowEncoder(HostIdentity('h"\\', "1" * 32, "b"))
    odd = [
        replace(
            ZERO_EVENT, task='a"b\\c\udcff\n', state=TcpState.SYN_SENT, error=errno.ECONNREFUSED
        ),
        replace(ZERO_EVENT, family=socket.AF_INET6, saddr="::1", daddr="::ffff:10.0.0.1"),
        replace(ZERO_EVENT, kind="accept", direction="inbound", cgroup_id=1, netns=2**32 - 1),
        replace(ZERO_EVENT, time_ns=2**63 - 1, rx_bytes=2**64 - 1, state=TcpState(14)),
    ]
    for ev in odd * 2:  # the second time from what it remembered
        line = enc.line(ev)
        assert line.endswith("\n") and line.count("\n") == 1
        assert json.loads(line) == enc.row(ev)
        assert list(json.loads(line)) == [c.name for c in COLUMNS]


@pytest.mark.bpf
def test_https_with_a_ca_file_and_a_wrong_ca_kept_in_the_spool(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """ClickHouse over HTTPS: a CA that did not sign its certificate is a
    clear TLS error and the rows wait; the right CA file sends them, once."""
    from tlsutil import make_certs

    certs = make_certs(tmp_path_factory.mktemp("ch-certs"))
    server = ClickHouse(
        tmp_path_factory.mktemp("clickhouse-tls"),
        tls=(certs.path("server.crt"), certs.path("server.key")),
    )
    traffic = Traffic()
    table = table_name()
    (tmp_path / "pw").write_text(PASSWORD)
    base = [
        *("--clickhouse", server.https_url, "--table", table, "--user", USER),
        *("--password-file", str(tmp_path / "pw"), "--spool", str(tmp_path / "spool")),
        *("--port", str(traffic.port), "--pid", str(os.getpid()), "--batch-seconds", "0.2"),
    ]
    try:
        wrong = Ship([*base, "--ca-file", certs.path("other-ca.crt")])
        try:
            ports = traffic.many(10)
            wrong.wait_log(
                r"TLS with https://127\.0\.0\.1:\d+/ failed: .*CERTIFICATE_VERIFY_FAILED"
            )
        finally:
            assert wrong.stop() == 0, wrong.log()
        right = Ship([*base, "--ca-file", certs.path("ca.crt")])
        try:
            assert right.waiting() == 20
            assert wait_rows(server, table, 20) == 20, right.log()
        finally:
            assert right.stop() == 0, right.log()
        rows = server.rows(f"SELECT direction, sport, dport FROM {table} FINAL")
        got = sorted(
            (r["direction"], r["sport"] if r["direction"] == "outbound" else r["dport"])
            for r in rows
        )
        assert got == sorted((d, p) for p in ports for d in ("outbound", "inbound"))
    finally:
        traffic.close()
        server.stop()
