"""The original UDP test client (examples/c/udp_monitor.c), unchanged but for
SOFILE, built and run against our libudpEvent.so: it prints exact flows of
known traffic."""

from __future__ import annotations

import os
import re
import signal
import socket
from collections import defaultdict
from pathlib import Path

import pytest
from procutil import start
from udputil import exchange

from tcpevent import udp_abi

ROOT = Path(__file__).resolve().parent.parent

BLOCK_RE = re.compile(
    r"---\n"
    r"PID: (?P<pid>\d+)\n"
    r"UID: (?P<uid>\d+)\n"
    r"Command: (?P<task>.*)\n"
    r"Source: (?P<saddr>.*):(?P<sport>\d+)\n"
    r"Destination: (?P<daddr>.*):(?P<dport>\d+)\n"
    r"Bytes received: (?P<rx>\d+)\n"
    r"Bytes sent: (?P<tx>\d+)\n"
    r"Packets received: (?P<rxp>\d+)\n"
    r"Packets sent: (?P<txp>\d+)\n"
    r"Event time: (?P<time>\d+)\n"
    r"---"
)


def blocks(text: str) -> list[dict[str, str]]:
    return [m.groupdict() for m in BLOCK_RE.finditer(text + "\n")]


def sums(text: str) -> dict[tuple[int, int], list[int]]:
    """Per (local port, remote port): rx bytes, tx bytes, rx and tx datagrams, summed."""
    out: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for b in blocks(text):
        s = out[int(b["sport"]), int(b["dport"])]
        for i, key in enumerate(("rx", "tx", "rxp", "txp")):
            s[i] += int(b[key])
    return out


@pytest.fixture(scope="module")
def udp_monitor(build_c, csrc: Path) -> Path:
    return build_c(
        ROOT / "examples" / "c" / "udp_monitor.c",
        "udp_monitor",
        # Its "common.h" is the UDP one (csrc/include has the TCP one).
        f"-iquote{csrc / 'include' / 'udp'}",
        f'-DSOFILE="{udp_abi.library_path()}"',
        "-Wno-format",
        "-ldl",
    )


@pytest.mark.bpf
def test_udp_monitor_prints_exact_flows(udp_monitor: Path) -> None:
    proc, out = start(
        ["stdbuf", "-oL", str(udp_monitor)], env={**os.environ, "UDPEVENT_FLUSH_INTERVAL": "1"}
    )
    try:
        # It prints nothing until the first report: exchange until one shows.
        for _ in range(30):
            probe = exchange(socket.AF_INET, [1], [1])
            if out.wait_for(lambda t, p=probe: (p.client_port, p.server_port) in sums(t), 0.5):
                break
            assert proc.poll() is None, out.text()
        else:
            raise AssertionError(f"no report of a probe exchange: {out.text()!r}")
        runs = [
            exchange(socket.AF_INET, [100, 200, 300], [1000, 17]),
            exchange(socket.AF_INET6, [5, 6, 7, 8], [4321]),
            exchange(socket.AF_INET, [64] * 50, [32] * 20, connected=False),
        ]

        def complete(text: str) -> bool:
            s = sums(text)
            return all(
                s.get((r.client_port, r.server_port), [0])[0] == r.server_bytes
                and s.get((r.server_port, r.client_port), [0])[0] == r.client_bytes
                for r in runs
            )

        assert out.wait_for(complete, 10), out.text()
        s = sums(out.text())
        for r in runs:
            assert s[r.client_port, r.server_port] == [
                r.server_bytes,
                r.client_bytes,
                r.server_datagrams,
                r.client_datagrams,
            ]
            assert s[r.server_port, r.client_port] == [
                r.client_bytes,
                r.server_bytes,
                r.client_datagrams,
                r.server_datagrams,
            ]
        mine = [b for b in blocks(out.text()) if int(b["sport"]) == runs[0].client_port]
        assert mine and all(b["saddr"] == "127.0.0.1" for b in mine)
        assert {int(b["pid"]) for b in mine} == {os.getpid()}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    assert "Interrupted by signal 2" in out.text()
    assert proc.returncode == signal.SIGINT
