"""The ``tcpevent`` command."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import netutil
import pytest
from cliutil import start
from liveness import PROMPTLY

from tcpevent import TcpEvent, abi
from tcpevent.cli import command as cli
from tcpevent.cli import render as _render

COMM = Path("/proc/self/comm").read_text().strip()
SEED_EXAMPLE = """\
---
PID: 1177932
UID: 1000
Bytes received: 2988
Bytes sent: 3301
Segments out: 20
Segments in: 18
Command: ssh
Source: 2001:aaa:fff:eee:ccc:a627:f45f:9c0c:58532
Destination: 2601:xxx:yyy:zzz:aaa:db60:46cd:971c:22
Event time: 1628184562000000000
---
"""
BLOCK_RE = [
    re.compile(p)
    for p in (
        r"^---$",
        r"^PID: (\d+)$",
        r"^UID: (\d+)$",
        r"^Bytes received: (\d+)$",
        r"^Bytes sent: (\d+)$",
        r"^Segments out: (\d+)$",
        r"^Segments in: (\d+)$",
        r"^Command: (.*)$",
        r"^Source: (.+):(\d+)$",
        r"^Destination: (.+):(\d+)$",
        r"^Event time: (\d+)$",
        r"^---$",
    )
]


def seed_event() -> TcpEvent:
    """The original documentation's example event (its output: SEED_EXAMPLE)."""
    return _render.EXAMPLE_EVENT


# ---- without the kernel ------------------------------------------------------------


def test_block_format_is_the_seeds() -> None:
    assert _render.format_block(seed_event()) == SEED_EXAMPLE


def test_json_format() -> None:
    line = _render.format_json(seed_event())
    assert line.endswith("\n") and line.count("\n") == 1
    d = json.loads(line)
    assert d == seed_event().to_dict(resolve=True)
    # The resolved names come on top of the fields (none for cgroup id 0).
    assert {k: d.pop(k) for k in ("cgroup", "container_id", "pod_uid")} == dict.fromkeys(
        ("cgroup", "container_id", "pod_uid")
    )
    assert d == seed_event().to_dict()


def test_line_format_is_aligned_like_tcplife(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        ev = dataclasses.replace(
            seed_event(),
            time_ns=1628184562_512_999_999,
            tx_bytes=5 * 1024 + 1023,
            rx_bytes=1023,
        )
        v4 = dataclasses.replace(
            ev, family=socket.AF_INET, saddr="127.0.0.1", daddr="127.0.0.2", pid=0, task=""
        )
        header = _render.LINE_HEADER
        lines = [_render.format_line(ev), _render.format_line(v4)]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert header.split() == ["TIME", "PID", "COMM", "LOCAL", "REMOTE", "TX_KB", "RX_KB", "MS"]
    assert lines[0].split() == [
        "17:29:22.512",
        "1177932",
        "ssh",
        "[2001:aaa:fff:eee:ccc:a627:f45f:9c0c]:58532",
        "[2601:xxx:yyy:zzz:aaa:db60:46cd:971c]:22",
        "5",  # whole KiB, as tcplife
        "0",
        "5417.30",
    ]
    # An unknown owner is "-"; IPv4 lines keep every column under its title.
    assert lines[1].split()[1:5] == ["-", "-", "127.0.0.1:58532", "127.0.0.2:22"]
    for title in ("PID", "TX_KB", "RX_KB", "MS"):  # numbers end where their title ends
        end = header.index(title) + len(title)
        assert lines[1][end - 1] != " " and lines[1][end] in " \n"
    assert len(lines[1]) == len(header)


def test_help_shows_an_example_of_each_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for name in ("line", "seed", "json"):
        assert f"--format {name}:" in text
    assert "TIME " in text and "Command: ssh" in text and '"task":"ssh"' in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "0"],
        ["--port", "70000"],
        ["--pid", "abc"],
        ["--pid", "0"],
        ["-4", "-6"],
        ["--count", "0"],
        ["--duration", "-1"],
        ["--queue-size", "0"],
        ["--bogus"],
        ["extra"],
    ],
)
def test_bad_arguments_exit_2_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage: tcpevent" in capsys.readouterr().err


def test_install_lib(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target_dir = tmp_path / "opt" / "RealTimeKql" / "lib"
    assert cli.main(["--install-lib", str(target_dir)]) == 0
    installed = target_dir / "libtcpEvent.so"
    assert capsys.readouterr().out.strip() == str(installed)
    assert installed.read_bytes() == abi.library_path().read_bytes()
    assert os.access(installed, os.X_OK)
    assert [p.name for p in target_dir.iterdir()] == ["libtcpEvent.so"]  # no temp file left
    # Again, over the existing file.
    assert cli.main(["--install-lib", str(target_dir)]) == 0
    assert cli.build_parser().parse_args(["--install-lib"]).install_lib == "/opt/RealTimeKql/lib"


def test_install_lib_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["--install-lib", str(blocker / "sub")]) == 1
    assert "cannot install" in capsys.readouterr().err


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tcpevent", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("tcpevent ")


# ---- with the kernel ------------------------------------------------------------------


def check_json_event(d: dict[str, object], conn: netutil.Connection, since_ns: int) -> None:
    assert d["pid"] == os.getpid() and d["uid"] == os.getuid() and d["task"] == COMM
    assert d["family"] == ("AF_INET" if conn.family == socket.AF_INET else "AF_INET6")
    ends = {
        (conn.client.port, conn.server.port): (conn.client_sent, conn.server_sent),
        (conn.server.port, conn.client.port): (conn.server_sent, conn.client_sent),
    }
    sent, received = ends[(d["sport"], d["dport"])]  # type: ignore[index]
    assert sent <= d["tx_bytes"] <= sent + 2  # type: ignore[operator]
    assert received <= d["rx_bytes"] <= received + 2  # type: ignore[operator]
    assert d["saddr"] == d["daddr"] == conn.client.addr
    assert since_ns <= d["time_ns"] <= time.time_ns()  # type: ignore[operator]
    assert d["kind"] == "close"


@pytest.mark.bpf
def test_json_lines_and_count() -> None:
    proc = start("--json", "--pid", str(os.getpid()), "--count", "4")
    since = time.time_ns()
    conns = [netutil.connection(socket.AF_INET, 111, 222), netutil.connection(socket.AF_INET6)]
    out, err = proc.communicate(timeout=10 * PROMPTLY)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 4  # --count 4: exits by itself after 4
    events = [json.loads(line) for line in lines]
    for d in events:
        conn = next(c for c in conns if {d["sport"], d["dport"]} == {c.client.port, c.server.port})
        check_json_event(d, conn, since)


@pytest.mark.bpf
def test_seed_format_and_sigint() -> None:
    proc = start("--format", "seed", "--pid", str(os.getpid()), "-6")
    since = time.time_ns()
    netutil.connection(socket.AF_INET)  # filtered out by -6
    conn = netutil.connection(socket.AF_INET6, 300, 700)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().rstrip("\n") for _ in range(24)]  # two blocks
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10 * PROMPTLY)
    assert proc.returncode == 0, err
    assert out == "", out  # nothing else: the IPv4 connection was filtered out
    assert len(lines) == 24, out  # two blocks of 12 lines
    blocks = [lines[:12], lines[12:]]
    ports = set()
    for block in blocks:
        fields = []
        for pattern, line in zip(BLOCK_RE, block):
            m = pattern.match(line)
            assert m, (pattern.pattern, line)
            fields.append(m.groups())
        assert int(fields[1][0]) == os.getpid()
        assert int(fields[2][0]) == os.getuid()
        assert fields[7][0] == COMM
        assert fields[8][0] == "::1" and fields[9][0] == "::1"
        ports.add((int(fields[8][1]), int(fields[9][1])))
        sent, received = (300, 700) if int(fields[8][1]) == conn.client.port else (700, 300)
        assert received <= int(fields[3][0]) <= received + 2
        assert sent <= int(fields[4][0]) <= sent + 2
        assert since <= int(fields[10][0]) <= time.time_ns()
    assert ports == {
        (conn.client.port, conn.server.port),
        (conn.server.port, conn.client.port),
    }


@pytest.mark.bpf
def test_default_line_format() -> None:
    proc = start("--pid", str(os.getpid()), "--count", "2")
    conn = netutil.connection(socket.AF_INET6, 3000, 7000)
    out, err = proc.communicate(timeout=10 * PROMPTLY)
    assert proc.returncode == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["TIME", "PID", "COMM", "LOCAL", "REMOTE", "TX_KB", "RX_KB", "MS"]
    assert len(lines) == 2, out
    seen = set()
    for line in lines:
        clock, pid, comm, local, remote, tx_kb, rx_kb, ms = line.split()
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", clock)
        assert int(pid) == os.getpid() and comm == COMM
        seen.add((local, remote))
        sent = conn.client_sent if local == f"[::1]:{conn.client.port}" else conn.server_sent
        received = conn.client_sent + conn.server_sent - sent
        assert int(tx_kb) == sent // 1024 and int(rx_kb) == received // 1024
        assert 0 < float(ms) < 10_000
    client, server = f"[::1]:{conn.client.port}", f"[::1]:{conn.server.port}"
    assert seen == {(client, server), (server, client)}


@pytest.mark.bpf
def test_sigterm_and_duration() -> None:
    proc = start("--port", "1")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10 * PROMPTLY)
    assert proc.returncode == 0, err
    assert out == ""
    start_time = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tcpevent", "--port", "1", "--duration", "0.3"],
        capture_output=True,
        text=True,
        timeout=10 * PROMPTLY,
    )
    assert done.returncode == 0, done.stderr
    assert 0.3 <= time.monotonic() - start_time < 0.3 + 10 * PROMPTLY


@pytest.mark.bpf
def test_broken_pipe_exits_quietly() -> None:
    proc = start("--json", "--pid", str(os.getpid()))
    assert proc.stdout is not None
    netutil.connection()
    assert proc.stdout.readline().startswith("{")
    proc.stdout.close()  # the reader goes away, like `| head -1`
    for _ in range(5):
        netutil.connection()
    try:
        proc.wait(timeout=10 * PROMPTLY)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert proc.stderr is not None
    assert proc.stderr.read() == ""


@pytest.mark.bpf
def test_missing_program_fails_with_the_cause(tmp_path: Path) -> None:
    missing = tmp_path / "missing.bpf.o"
    out = subprocess.run(
        [sys.executable, "-m", "tcpevent", "--program", str(missing)],
        capture_output=True,
        text=True,
        timeout=10 * PROMPTLY,
    )
    assert out.returncode == 1
    assert str(missing) in out.stderr and "does not exist" in out.stderr
    assert out.stdout == ""


UNPRIVILEGED = """
import os, sys
from tcpevent.cli import command as cli
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(cli.main(["--count", "1"]))
"""


@pytest.mark.bpf
def test_unprivileged_exits_77_with_the_reason() -> None:
    out = subprocess.run(
        [sys.executable, "-c", UNPRIVILEGED], capture_output=True, text=True, timeout=10 * PROMPTLY
    )
    assert out.returncode == 77
    assert "CAP_BPF" in out.stderr and "CAP_PERFMON" in out.stderr
    assert "Traceback" not in out.stderr


# ---- what the commands share (tcpevent/cli/common.py) ---------------------------------


def test_argument_type_makes_a_value_error_argparses() -> None:
    import argparse

    from tcpevent.cli.common import argument_type
    from tcpevent.exporter import parse_listen

    listen = argument_type(parse_listen)
    assert str(listen("127.0.0.1:9")) == "127.0.0.1:9"
    with pytest.raises(argparse.ArgumentTypeError, match="not a port number"):
        listen("127.0.0.1:http")


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "soon"])
def test_positive_seconds_refuses(text: str) -> None:
    import argparse

    from tcpevent.cli.common import positive_seconds

    with pytest.raises(argparse.ArgumentTypeError, match="seconds"):
        positive_seconds(text)


def test_run_budget_counts_and_times() -> None:
    from tcpevent.cli.common import RunBudget

    unbounded = RunBudget(None, None)
    assert unbounded and unbounded.want(256) == 256 and unbounded.timeout(0.1) == 0.1
    counted = RunBudget(300, None)
    counted.took(256)
    assert counted and counted.want(256) == 44
    counted.took(44)
    assert not counted
    timed = RunBudget(None, 0.0)
    assert timed.timeout(0.1) <= 0
    assert 0 < RunBudget(None, 60.0).timeout(0.1) <= 0.1
