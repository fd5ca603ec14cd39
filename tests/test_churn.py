"""Tests for benchmarks/churn.c, the loopback TCP connection-churn generator."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from liveness import PROMPTLY

SOURCE = Path(__file__).resolve().parent.parent / "benchmarks" / "churn.c"
READY_RE = re.compile(r"^READY pid=(\d+) port=(\d+) family=([46])$")
TCP_TIME_WAIT = 0x06
TCP_LISTEN = 0x0A


def have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def parse_ready(line: str) -> dict[str, int]:
    m = READY_RE.match(line.rstrip("\n"))
    assert m, f"bad READY line: {line!r}"
    return {"pid": int(m[1]), "port": int(m[2]), "family": int(m[3])}


def start(
    binary: Path, *args: str, stdin: int | None = None
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """Start churn and return (process, parsed READY line)."""
    proc = subprocess.Popen(
        [str(binary), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, parse_ready(proc.stdout.readline())


def finish(proc: subprocess.Popen[str], input: str | None = None) -> dict[str, Any]:
    """Wait for churn to exit successfully and return its JSON summary."""
    out, err = proc.communicate(input=input, timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out
    summary: dict[str, Any] = json.loads(lines[0])
    return summary


def run(binary: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, int], dict[str, Any]]:
    proc, ready = start(binary, *args)
    return proc, ready, finish(proc)


def tcp_sockets(family: int) -> Iterator[tuple[int, int, int]]:
    """Yield (local port, remote port, state) for every TCP socket in our netns."""
    name = "/proc/net/tcp6" if family == 6 else "/proc/net/tcp"
    with open(name) as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            yield (
                int(local.rsplit(":", 1)[1], 16),
                int(remote.rsplit(":", 1)[1], 16),
                int(state, 16),
            )


def time_wait(family: int, port: int) -> set[tuple[int, int]]:
    """TIME_WAIT (local, remote) port pairs with @port at either end."""
    return {
        (lp, rp) for lp, rp, st in tcp_sockets(family) if st == TCP_TIME_WAIT and port in (lp, rp)
    }


def tw_buckets_left() -> int:
    """How many more TIME_WAIT sockets the kernel will keep before dropping them."""
    limit = int(Path("/proc/sys/net/ipv4/tcp_max_tw_buckets").read_text())
    used = sum(st == TCP_TIME_WAIT for f in (4, 6) for _, _, st in tcp_sockets(f))
    return limit - used


@pytest.mark.parametrize("family", [4, 6])
def test_churn_payload(churn: Path, family: int) -> None:
    assert family == 4 or have_ipv6_loopback(), "::1 is needed"
    args = ["-n", "2000", "-t", "2", "-s", "100"] + (["-6"] if family == 6 else [])
    proc, ready, summary = run(churn, *args)

    assert ready["pid"] == proc.pid
    assert ready["port"] != 0
    assert ready["family"] == family
    assert summary["pid"] == proc.pid
    assert summary["port"] == ready["port"]
    assert summary["family"] == family
    assert summary["connections"] == 2000
    assert summary["threads"] == 2
    assert summary["payload"] == 100
    assert summary["seconds"] > 0
    assert summary["rate"] > 0
    assert summary["retries"] >= 0
    assert summary["cpu_user"] >= 0
    assert summary["cpu_sys"] >= 0


def test_rate_limit(churn: Path) -> None:
    t0 = time.monotonic()
    _, _, summary = run(churn, "--rate", "2000", "-n", "1000")
    wall = time.monotonic() - t0

    assert summary["connections"] == 1000
    # Never faster than the rate; slower only by what a busy machine adds.
    assert 0.4 <= summary["seconds"] <= 0.5 + PROMPTLY
    assert 0.4 <= wall <= 0.5 + 2 * PROMPTLY
    # Absolute deadlines: the last connection starts at 999/2000 s, never
    # earlier, so the achieved rate cannot overshoot the target.
    assert summary["rate"] <= 2010


def test_wait_for_stdin(churn: Path) -> None:
    proc, ready = start(churn, "--wait", "-n", "100", stdin=subprocess.PIPE)
    try:
        time.sleep(0.3)
        assert proc.poll() is None, "churn started before stdin said go"
        # The listener is already up on the advertised port.
        listening = [lp for lp, _, st in tcp_sockets(4) if st == TCP_LISTEN and lp == ready["port"]]
        assert listening == [ready["port"]]
        summary = finish(proc, input="\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert summary["connections"] == 100
    assert summary["pid"] == ready["pid"] == proc.pid


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], "client"),
        (["--server-first"], "server"),
        # An RST ends both sides without TIME_WAIT, even when the server's
        # FIN went first.
        (["--reset"], None),
        (["--reset", "--server-first"], None),
    ],
)
def test_close_order_time_wait(churn: Path, args: list[str], expected: str | None) -> None:
    """Whoever closes first ends up in TIME_WAIT, once per connection."""
    n = 300
    if tw_buckets_left() < 10 * n:
        pytest.skip("TIME_WAIT bucket table nearly full; counts would be off")
    proc, ready = start(churn, "--wait", "-n", str(n), *args, stdin=subprocess.PIPE)
    port = ready["port"]
    try:
        before = time_wait(4, port)
        summary = finish(proc, input="\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert summary["connections"] == n

    def sides() -> tuple[int, int]:
        new = time_wait(4, port) - before
        return (
            len({(lp, rp) for lp, rp in new if rp == port}),
            len({(lp, rp) for lp, rp in new if lp == port}),
        )

    # The last FIN may still be in the kernel's softirq backlog when churn
    # exits (a slow VM): wait for the counts to settle, then be exact.
    want = {"client": (n, 0), "server": (0, n), None: (0, 0)}[expected]
    deadline = time.monotonic() + 10 * PROMPTLY
    while (got := sides()) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == want


@pytest.mark.parametrize(
    "args",
    [["--bogus"], ["-n", "abc"], ["-t", "0"], ["--rate", "-5"], ["extra"]],
)
def test_bad_arguments(churn: Path, args: list[str]) -> None:
    result = subprocess.run(
        [str(churn), *args], capture_output=True, text=True, timeout=10 * PROMPTLY
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip()
    if args == ["--bogus"]:
        assert "usage:" in result.stderr


def test_help(churn: Path) -> None:
    result = subprocess.run(
        [str(churn), "--help"], capture_output=True, text=True, timeout=10 * PROMPTLY
    )
    assert result.returncode == 0
    assert "usage:" in result.stdout
    assert "--server-first" in result.stdout
