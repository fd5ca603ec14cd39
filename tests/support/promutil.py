"""A real Prometheus server (Debian's ``prometheus``) and exporters it scrapes.

:class:`Prometheus` runs the server as a plain process on 127.0.0.1, with a
scrape interval of 1 s and file-based discovery: a test adds its exporter
as a target file whose label ``test`` names it, and queries by that label.
:class:`Exporter` runs ``python -m tcpevent exporter`` on a free loopback
port and knows where it serves. Both are stopped (killed if need be) by
their ``stop()``, which the fixtures call whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from procutil import LoggedChild, without_preload

SERVING_RE = re.compile(r"serving https?://(\S+)/metrics")
#: Liveness bound for anything that should happen within a few scrapes.
SCRAPES_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Prometheus:
    """Debian's prometheus server, scraping every second what tests add."""

    def __init__(self, workdir: Path, extra_jobs: str = "") -> None:
        """``extra_jobs``: more entries of ``scrape_configs`` (YAML, indented
        as list items under it), e.g. jobs with TLS and basic auth."""
        self.dir = workdir
        self.targets = workdir / "targets"
        self.targets.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "prometheus.log"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: tcpevent\n"
            "    file_sd_configs:\n"
            f"      - files: ['{self.targets}/*.json']\n"
            "        refresh_interval: 1s\n" + extra_jobs
        )
        for _attempt in range(5):  # the free port may be taken before prometheus binds it
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            with self.log.open("wb") as log:
                self.proc = subprocess.Popen(
                    [
                        "prometheus",
                        f"--config.file={config}",
                        f"--storage.tsdb.path={workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                    env=without_preload(),
                )
            if self._wait_ready():
                return
            self.stop()
        raise AssertionError(f"prometheus did not start: {self.log.read_text()[-2000:]}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + SCRAPES_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                if http_get(self.url + "/-/ready", timeout=2)[0] == 200:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # ---- targets -----------------------------------------------------------------

    def add_target(self, test: str, hostport: str) -> None:
        """Scrape ``hostport`` with the label ``test``; wait until it is up."""
        tmp = self.targets / f".{test}.tmp"
        tmp.write_text(json.dumps([{"targets": [hostport], "labels": {"test": test}}]))
        tmp.rename(self.targets / f"{test}.json")
        deadline = time.monotonic() + SCRAPES_TIMEOUT
        while time.monotonic() < deadline:
            if self.query(f'up{{test="{test}"}} == 1'):
                return
            time.sleep(0.2)
        raise AssertionError(f"target {test} ({hostport}) never up: {self.api('targets')}")

    def remove_target(self, test: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.targets / f"{test}.json").unlink()

    # ---- queries -----------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url)
        reply = json.loads(body)
        assert status == 200 and reply["status"] == "success", (path, params, reply)
        return reply["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of each resulting series."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def by(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """An instant query's values keyed by the values of ``labels``."""
        out: dict[tuple[str, ...], float] = {}
        for metric, value in self.query(expr):
            key = tuple(metric.get(name, "") for name in labels)
            assert key not in out, (expr, key)
            out[key] = value
        return out

    def scalar(self, expr: str) -> float:
        """The value of a query that yields one series (0 if none)."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return result[0][1] if result else 0.0

    def wait_scrapes(self, test: str, after: float, count: int = 2) -> None:
        """Wait until ``count`` scrapes of ``test`` started after ``after``
        (``time.time()``) are stored."""
        seen: set[float] = set()
        deadline = time.monotonic() + SCRAPES_TIMEOUT
        while time.monotonic() < deadline:
            for _, ts in self.query(f'timestamp(up{{test="{test}"}})'):
                if ts > after:
                    seen.add(ts)
            if len(seen) >= count:
                return
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} scrapes of {test} after {after}: {seen}")


class Exporter(LoggedChild):
    """``python -m tcpevent exporter ARGS`` on a free loopback port, with
    the package the tests import (the environment and working directory
    are inherited). ``prefix`` goes before the interpreter (``setpriv ...``).
    """

    stop_timeout = 15.0

    def __init__(self, args: Sequence[str], prefix: Sequence[str] = ()) -> None:
        super().__init__(
            [
                *prefix,
                *(sys.executable, "-m", "tcpevent", "exporter"),
                *("--listen", "127.0.0.1:0", *args),
            ]
        )
        self.hostport = self._wait_serving()
        self.url = f"http://{self.hostport}/metrics"

    def stderr(self) -> str:
        """What it has written to stderr so far."""
        return self.log()

    def _wait_serving(self) -> str:
        deadline = time.monotonic() + SCRAPES_TIMEOUT
        while time.monotonic() < deadline:
            m = SERVING_RE.search(self.stderr())
            if m:
                return m[1]
            if self.proc.poll() is not None:
                self._reader.join(2)
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the exporter did not start: {self.stderr()!r}")

    def scrape(self) -> str:
        status, body = http_get(self.url)
        assert status == 200, (status, body[:500])
        return body.decode()
