"""Snapshot events: live established connections sampled every interval."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import bpfutil
import pytest
from liveness import ATTACH_TIMEOUT, PROMPTLY
from nativeutil import NativeTracer
from netutil import listener, recv_exact, wait_until
from procutil import start

SNAPSHOT, CLOSE = 1, 0
INTERVAL = 0.25


@pytest.mark.bpf
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_held_connection_is_sampled_until_it_closes(family: int) -> None:
    ls = listener(family)
    port = ls.getsockname()[1]
    with NativeTracer(ports=[port], snapshot_interval_ms=int(INTERVAL * 1000)) as tracer:
        client = socket.create_connection(ls.getsockname()[:2])
        server, _ = ls.accept()
        client.sendall(b"a" * 3000)
        recv_exact(server, 3000)
        server.sendall(b"b" * 700)
        recv_exact(client, 700)
        cport = client.getsockname()[1]
        events = tracer.collect(lambda evs: sum(e["kind"] == SNAPSHOT for e in evs) >= 8, timeout=5)
        snaps = [e for e in events if e["kind"] == SNAPSHOT]
        assert len(snaps) >= 8, len(snaps)  # two sockets a round, four rounds at least
        # Periodic: no more rounds than intervals went by (a busy machine
        # may only make fewer, and late).
        rounds = sorted({e["time_ns"] for e in snaps if e["sport"] == cport})
        assert len(rounds) - 1 <= (rounds[-1] - rounds[0]) / (INTERVAL * 1e9) + 1, rounds
        for e in snaps:
            assert e["pid"] == os.getpid() and e["state"] == 1  # ESTABLISHED
        client_side = [e for e in snaps if e["sport"] == cport]
        server_side = [e for e in snaps if e["sport"] == port]
        assert len(client_side) >= 4 and len(server_side) >= 4
        assert {(e["tx_bytes"], e["rx_bytes"]) for e in client_side} == {(3001, 700)}
        assert {(e["tx_bytes"], e["rx_bytes"]) for e in server_side} == {(700, 3000)}

        client.close()
        server.close()
        done = tracer.collect(lambda evs: sum(e["kind"] == CLOSE for e in evs) >= 2, timeout=5)
        closes = [e for e in done if e["kind"] == CLOSE]
        assert {e["sport"] for e in closes} == {cport, port}
        # After the close events, no more snapshots of this connection.
        seen = len(tracer.events)
        time.sleep(3 * INTERVAL)
        later = tracer.collect(lambda evs: False, timeout=0.1)[seen:]
        assert not [e for e in later if e["kind"] == SNAPSHOT]
        assert tracer.stats()["snapshots"] >= 8
    ls.close()


@pytest.mark.bpf
def test_no_snapshots_unless_asked() -> None:
    ls = listener()
    port = ls.getsockname()[1]
    with NativeTracer(ports=[port]) as tracer:
        client = socket.create_connection(ls.getsockname()[:2])
        server, _ = ls.accept()
        time.sleep(0.5)
        assert tracer.collect(lambda evs: False, timeout=0.3) == []
        assert tracer.stats()["snapshots"] == 0
        client.close()
        server.close()
    ls.close()


@pytest.mark.bpf
def test_legacy_abi_snapshots_only_with_the_environment_variable(libpath) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "python" / "ctypes_client.py"
    ls = listener()
    client = socket.create_connection(ls.getsockname()[:2])
    server, _ = ls.accept()
    cport = client.getsockname()[1]

    def reports(env_value: str | None) -> int:
        env = dict(os.environ)
        env.pop("TCPEVENT_SNAPSHOT_INTERVAL", None)
        if env_value:
            env["TCPEVENT_SNAPSHOT_INTERVAL"] = env_value
        proc, out = start([sys.executable, str(example), str(libpath)], env=env)
        try:
            assert wait_until(
                lambda: proc.poll() is not None or bpfutil.attached(proc.pid),
                timeout=ATTACH_TIMEOUT,
            )
            # Attached: three samples come within a liveness bound when they
            # are on; when off, none in the time five intervals take.
            timeout = 10 * PROMPTLY if env_value else 5 * 0.2
            out.wait_for(lambda t: t.count(f'"SPT": {cport}') >= 3, timeout=timeout)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(5)
        lines = [json.loads(x) for x in out.text().splitlines() if x.startswith("{")]
        return sum(1 for e in lines if e["SPT"] == cport and e["DPT"] == ls.getsockname()[1])

    assert reports("0.2") >= 3  # the held connection, sampled again and again
    assert reports(None) == 0  # off by default: events only when connections close
    client.close()
    server.close()
    ls.close()
