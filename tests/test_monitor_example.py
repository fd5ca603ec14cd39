"""The seed's complete monitoring example, built and run against our library.

It passes the original BCC program text to AddProbe (we accept it and load
the built-in program) and prints the seed's event blocks.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest
from netutil import connection
from procutil import check_pair, parse_blocks, start, wait_until_tracing

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "pid": "pid",
    "uid": "uid",
    "task": "task",
    "saddr": "saddr",
    "sport": "sport",
    "daddr": "daddr",
    "dport": "dport",
    "rx": "rx",
    "tx": "tx",
    "segs_out": "segs_out",
    "segs_in": "segs_in",
    "time": "time",
}


@pytest.fixture(scope="module")
def monitor(build_c, libpath: Path) -> Path:
    return build_c(
        ROOT / "examples" / "c" / "monitor.c",
        "monitor",
        f'-DSOFILE="{libpath}"',
        "-Wno-format",
        "-ldl",
    )


def port_seen(text: str, port: int) -> bool:
    return any(b["sport"] == port for b in parse_blocks(text))


@pytest.mark.bpf
def test_monitor_reports_ipv4_and_ipv6_connections(monitor: Path) -> None:
    proc, out = start(["stdbuf", "-oL", str(monitor)])
    try:
        wait_until_tracing(out, port_seen)
        conns = [
            connection(socket.AF_INET, client_sends=1000, server_sends=2500),
            connection(socket.AF_INET6, client_sends=4321, server_sends=77),
        ]
        assert out.wait_for(
            lambda t: all(
                port_seen(t, c.client.port) and port_seen(t, c.server.port) for c in conns
            )
        ), out.text()
        events = parse_blocks(out.text())
        for conn in conns:
            check_pair(events, conn, KEYS)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(5)
    # The original text is accepted, not compiled: one notice says so.
    stderr = proc.stderr.read() if proc.stderr else ""
    assert stderr.count("not compiled") == 1, stderr
    assert "Interrupted by signal 2" in out.text()
