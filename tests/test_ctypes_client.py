"""An unchanged-style ctypes client (CDLL, packed Structure as restype)."""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path

import pytest
from liveness import ATTACH_TIMEOUT
from netutil import connection
from procutil import check_pair, start, wait_until_tracing

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "python" / "ctypes_client.py"
KEYS = {
    "pid": "pid",
    "uid": "UserId",
    "task": "task",
    "saddr": "SADDR",
    "sport": "SPT",
    "daddr": "DADDR",
    "dport": "DPT",
    "rx": "rx_b",
    "tx": "tx_b",
    "segs_out": "tcpi_segs_out",
    "segs_in": "tcpi_segs_in",
    "time": "EventTime",
}


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def port_seen(text: str, port: int) -> bool:
    return any(e["SPT"] == port for e in events(text))


@pytest.mark.bpf
def test_ctypes_client_reports_connections(libpath: Path) -> None:
    proc, out = start([sys.executable, str(EXAMPLE), str(libpath)])
    try:
        wait_until_tracing(out, port_seen)
        conns = [
            connection(socket.AF_INET, client_sends=10, server_sends=20000),
            connection(socket.AF_INET6, client_sends=65536, server_sends=1),
        ]
        assert out.wait_for(
            lambda t: all(
                port_seen(t, c.client.port) and port_seen(t, c.server.port) for c in conns
            )
        )
        for conn in conns:
            check_pair(events(out.text()), conn, KEYS)
            fam = {
                e["family"]
                for e in events(out.text())
                if (e["SPT"], e["DPT"]) == (conn.client.port, conn.server.port)
            }
            assert fam == {int(conn.family)}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(ATTACH_TIMEOUT) == 0  # its cleanup() detaches
