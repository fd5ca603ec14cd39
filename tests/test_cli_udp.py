"""``tcpevent --udp``: a line per flow report, or JSON; exact against known traffic."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest
from nsutil import netns
from procutil import start
from udp_truth import workload

from tcpevent.cli.command import main

CMD = [sys.executable, "-m", "tcpevent"]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def test_udp_options_that_do_not_apply_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--udp", "--connections"],
        ["--udp", "--events", "connect"],
        ["--udp", "--format", "seed"],
        ["--flush-interval", "1"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv


@pytest.mark.bpf
@pytest.mark.parametrize("fmt", ["json", "line"])
def test_udp_mode_prints_exact_flows(fmt: str) -> None:
    with netns() as ns:
        flags = ["--json"] if fmt == "json" else []
        proc, out = start(
            [*CMD, "--udp", "--netns", ns.name, "--flush-interval", "1", *flags], env=ENV
        )
        try:
            # It prints nothing before its first report: traffic until one shows.
            deadline = time.monotonic() + 20
            while True:
                probe = str(workload(ns, "v4_connected")["flows"][0]["sport"])
                if out.wait_for(lambda t, p=probe: p in t, 1):
                    break
                assert time.monotonic() < deadline and proc.poll() is None, out.text()
            expected = workload(ns, "v6_unconnected_many")
            ports = {(f["sport"], f["dport"]) for f in expected["flows"]}

            def finals(text: str) -> set[tuple[int, int]]:
                if fmt == "json":
                    objs = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
                    return {(o["sport"], o["dport"]) for o in objs if o["final"]}
                return {
                    (int(c[3].rsplit(":", 1)[1]), int(c[4].rsplit(":", 1)[1]))
                    for c in (line.split() for line in text.splitlines()[1:])
                    if len(c) >= 12 and c[11] == "end"
                }

            assert out.wait_for(lambda t: ports <= finals(t), 10), out.text()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        text = out.text()
        if fmt == "json":
            objs = [json.loads(line) for line in text.splitlines()]
            for f in expected["flows"]:
                mine = [o for o in objs if (o["sport"], o["dport"]) == (f["sport"], f["dport"])]
                assert sum(o["tx_datagrams"] for o in mine) == f["tx"]
                assert sum(o["rx_bytes"] for o in mine) == f["rx_bytes"]
                assert {o["pid"] for o in mine} == {expected["pid"]}
                assert {o["family"] for o in mine} == {"AF_INET6"}
                assert {o["netns"] for o in mine} == {ns.inode}
        else:
            lines = text.splitlines()
            assert lines[0].split() == [
                *("TIME", "PID", "COMM", "LOCAL", "REMOTE", "TX_DG", "RX_DG"),
                *("TX_B", "RX_B", "DROPS", "SECS", "END"),
            ]
            for f in expected["flows"]:
                cols = [
                    c
                    for c in (line.split() for line in lines[1:])
                    if c[3].endswith(f":{f['sport']}") and c[4].endswith(f":{f['dport']}")
                ]
                assert sum(int(c[5]) for c in cols) == f["tx"]
                assert sum(int(c[8]) for c in cols) == f["rx_bytes"]
                assert {c[1] for c in cols} == {str(expected["pid"])}
