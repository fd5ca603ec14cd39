"""``tcpevent --connections``: the live connections, as a table or JSON lines.

Needs no BPF. Real loopback sockets held by this test (127.0.0.1 and ::1
only); every check looks for this test's own ports.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from connutil import Held, own_comm, stable
from nsutil import own_cgroup

from tcpevent import TcpState
from tcpevent.cgroups import cgroup2_mount
from tcpevent.cli import command as cli
from tcpevent.cli import common as _cmdline
from tcpevent.cli import render as _render
from tcpevent.connections import Connection, SocketMemory, TcpInfo

TITLES = ["State", "Local", "Peer", "Process", "RTT/var", "ms", "Cwnd", "Sent", "Acked"]


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def held(request: pytest.FixtureRequest) -> Iterator[Held]:
    with Held(request.param) as h:
        h.exchange(1500, 4000)
        yield h


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(["--connections", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def ours(rows: list[dict[str, Any]], h: Held) -> dict[tuple[int, int], dict[str, Any]]:
    return {(d["sport"], d["dport"]): d for d in rows if h.port in (d["sport"], d["dport"])}


def endpoint(h: Held, port: int) -> str:
    return f"[{h.addr}]:{port}" if h.family == socket.AF_INET6 else f"{h.addr}:{port}"


def table_lines(text: str, h: Held) -> list[list[str]]:
    """The table's rows (split on blanks) that involve the held connection."""
    ends = {endpoint(h, h.port), endpoint(h, h.cport)}
    return [line.split() for line in text.splitlines() if ends & set(line.split())]


# ---- JSON ------------------------------------------------------------------------------


def test_json_lines_have_the_held_connection(
    held: Held, capsys: pytest.CaptureFixture[str]
) -> None:
    text, cinfo, sinfo = stable(held, lambda: run(capsys, "--json", "--port", str(held.port)))
    rows = json_lines(text)
    assert all(text.endswith("\n") for text in text.splitlines(keepends=True))
    got = ours(rows, held)
    assert set(got) == {(held.cport, held.port), (held.port, held.cport)}
    assert len(rows) == 2  # the filter left nothing else
    family = "AF_INET" if held.family == socket.AF_INET else "AF_INET6"
    for (sport, _), kinfo in (((held.cport, held.port), cinfo), ((held.port, held.cport), sinfo)):
        d = got[(sport, held.port if sport == held.cport else held.cport)]
        assert d["family"] == family and d["state"] == "ESTABLISHED"
        assert d["saddr"] == d["daddr"] == held.addr
        assert d["pid"] == os.getpid() and d["task"] == own_comm() and d["uid"] == os.getuid()
        assert d["cmdline"] is None
        info = d["info"]
        assert info["bytes_acked"] == kinfo["bytes_acked"]
        assert info["bytes_received"] == kinfo["bytes_received"]
        assert info["rtt_us"] > 0 and info["snd_cwnd"] > 0
        assert set(info) == {f for f in TcpInfo.__dataclass_fields__}
        assert set(d["skmem"]) == set(SocketMemory.__dataclass_fields__)
        resolved = {"cgroup", "container_id", "pod_uid"}
        assert set(d) == set(Connection.__dataclass_fields__) | resolved
        # This process made the socket: its cgroup v2 is the socket's.
        assert d["cgroup"] == own_cgroup()
        assert d["cgroup_id"] == os.stat(f"{cgroup2_mount()}{own_cgroup()}").st_ino
        assert d["container_id"] is None and d["pod_uid"] is None
    assert got[(held.cport, held.port)]["info"]["bytes_received"] == 4000
    assert got[(held.port, held.cport)]["info"]["bytes_received"] == 1500


def test_json_filters(held: Held, capsys: pytest.CaptureFixture[str]) -> None:
    both = {(held.cport, held.port), (held.port, held.cport)}
    same = "-4" if held.family == socket.AF_INET else "-6"
    other = "-6" if held.family == socket.AF_INET else "-4"
    pid = str(os.getpid())

    def keys(*argv: str) -> set[tuple[int, int]]:
        return set(ours(json_lines(run(capsys, "--json", *argv)), held))

    assert keys() == both
    assert keys(same) == both
    assert keys(other) == set()
    assert keys("--pid", pid) == both
    assert keys("-p", pid, "-P", str(held.cport)) == both
    assert keys("--pid", "1") == set()
    other_port = 1 if held.port != 1 else 2
    assert keys("--port", str(other_port)) == set()
    assert keys("--state", "listen", "-P", str(held.port)) == {(held.port, 0)}
    assert keys("-s", "established", "-s", "LISTEN", "-P", str(held.port)) == both | {
        (held.port, 0)
    }
    assert keys("--state", "all", "-P", str(held.port)) >= both | {(held.port, 0)}


# ---- the table -----------------------------------------------------------------------------


def test_table_shows_the_held_connection(held: Held, capsys: pytest.CaptureFixture[str]) -> None:
    text = run(capsys, "--port", str(held.port))
    lines = text.splitlines()
    assert lines[0].split()[: len(TITLES)] == TITLES
    rows = table_lines(text, held)
    assert len(rows) == 2 and len(lines) == 3
    by_local = {row[1]: row for row in rows}
    client = by_local[endpoint(held, held.cport)]
    server = by_local[endpoint(held, held.port)]
    assert client[0] == server[0] == "ESTAB"
    assert client[2] == endpoint(held, held.port) and server[2] == endpoint(held, held.cport)
    assert client[3] == server[3] == f"{os.getpid()}/{own_comm()}"
    rtt, rttvar = (float(x) for x in client[4].split("/"))
    assert rtt > 0 and rttvar >= 0
    assert int(client[5]) > 0  # cwnd
    # bytes: sent (with retransmissions), acked, received; exact below 10000
    assert client[6] == "1500" and client[7] in ("1500", "1501") and client[8] == "4000"
    assert server[6] == "4000" and server[7] in ("4000", "4001") and server[8] == "1500"
    assert client[9].count("/") == 1  # retrans in flight / total
    assert client[10] and client[10] != "-"  # congestion control
    # columns line up: every row as wide as its cells, the header too
    starts = [lines[0].index(title) for title in ("Local", "Peer", "Process")]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2 : start] == "  " and line[start] != " "


def test_table_filters(held: Held, capsys: pytest.CaptureFixture[str]) -> None:
    other = "-6" if held.family == socket.AF_INET else "-4"
    assert len(table_lines(run(capsys, "--pid", str(os.getpid())), held)) == 2
    assert table_lines(run(capsys, other, "--port", str(held.port)), held) == []
    assert table_lines(run(capsys, "--pid", "1", "--port", str(held.port)), held) == []
    listening = table_lines(run(capsys, "--state", "LISTEN", "--port", str(held.port)), held)
    assert [row[0] for row in listening] == ["LISTEN"]


def test_the_command_itself(held: Held) -> None:
    """`python -m tcpevent --connections`, a separate process: the owner is us."""
    proc = subprocess.run(
        [sys.executable, "-m", "tcpevent", "--connections", "--json", "-P", str(held.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    got = ours(json_lines(proc.stdout), held)
    assert {d["pid"] for d in got.values()} == {os.getpid()}
    proc = subprocess.run(
        [sys.executable, "-m", "tcpevent", "-c", "-P", str(held.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and len(table_lines(proc.stdout, held)) == 2


def test_formatting_without_kernel() -> None:
    info = TcpInfo(*([None] * len(TcpInfo.__dataclass_fields__)))
    base: dict[str, Any] = dict.fromkeys(Connection.__dataclass_fields__)
    base.update(
        family=socket.AF_INET6,
        saddr="2001:db8::1",
        sport=443,
        daddr="2001:db8::2",
        dport=50000,
        state=TcpState.CLOSE_WAIT,
        uid=0,
        inode=1,
        pid=0,
        task="",
        recv_q=0,
        send_q=0,
        timer_expires_ms=0,
        timer_retrans=0,
        ifindex=0,
        cookie=1,
    )
    absent = Connection(**{**base, "info": info})
    none = Connection(**{**base, "info": None, "state": TcpState.TIME_WAIT})
    text = _render.format_connections_table([absent, none])
    rows = [line.split() for line in text.splitlines()[1:]]
    assert rows[0] == ["CLOSE-WAIT", "[2001:db8::1]:443", "[2001:db8::2]:50000", *["-"] * 8]
    assert rows[1][0] == "TIME-WAIT" and rows[1][3:] == ["-"] * 8
    line = _render.format_connection_json(none)
    assert line.endswith("\n") and json.loads(line)["state"] == "TIME_WAIT"
    assert _render.format_connections_table([]).split() == [
        "State",
        "Local",
        "Peer",
        "Process",
        "RTT/var",
        "ms",
        "Cwnd",
        "Sent",
        "Acked",
        "Received",
        "Retrans",
        "Cong",
    ]


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0"), (9999, "9999"), (10000, "9.8K"), (5 * 2**20, "5.0M"), (3 * 2**40, "3.0T")],
)
def test_sizes(n: int, text: str) -> None:
    assert _render._size(n) == text


@pytest.mark.parametrize(
    "argv",
    [
        ["--state", "listen"],  # only with --connections
        ["--connections", "--count", "1"],
        ["--connections", "--duration", "1"],
        ["--connections", "--program", "/x.o"],
        ["--connections", "--install-lib", "/tmp/x"],
        ["--connections", "--state", "bogus"],
        ["--connections", "--port", "0"],
        ["--connections", "-4", "-6"],
    ],
)
def test_bad_combinations_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage: tcpevent" in capsys.readouterr().err


def test_failure_exit_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tcpevent.errors import TracerError, TracerPermissionError

    def denied(**kwargs: Any) -> list[Connection]:
        raise TracerPermissionError(1, "connections: not allowed")

    def broken(**kwargs: Any) -> list[Connection]:
        raise TracerError(22, "connections: malformed sock_diag reply")

    monkeypatch.setattr(cli, "connections", denied)
    assert cli.main(["--connections"]) == _cmdline.EXIT_NOPERM
    assert "not allowed" in capsys.readouterr().err
    monkeypatch.setattr(cli, "connections", broken)
    assert cli.main(["--connections", "--json"]) == _cmdline.EXIT_FAILURE
    assert "malformed sock_diag reply" in capsys.readouterr().err
