"""A real ClickHouse server (Debian's ``clickhouse-server``, 18.16) for a test.

:class:`ClickHouse` runs it as a plain process on free 127.0.0.1 ports with
a data directory of the test's own, and users of the test's own: ``default``
(no password, the tests' own queries) and :data:`USER` with
:data:`PASSWORD` (what the shipper under test logs in as). ``stop()`` and
``start()`` take it down and bring it back on the same ports and data, for
the outage tests. Queries go over the HTTP interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from procutil import without_preload

SERVER = "clickhouse-server"
CONFIG = Path("/etc/clickhouse-server/config.xml")
USER = "shipper"
PASSWORD = "s3cret-for-tests-only"
#: Liveness bound for the server to start or stop (seconds).
START_TIMEOUT = 60.0

_USERS_XML = """<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <{user}>
      <password_sha256_hex>{sha}</password_sha256_hex>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </{user}>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries>
    <errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows>
    <execution_time>0</execution_time></interval></default></quotas>
</yandex>
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def available() -> bool:
    return shutil.which(SERVER) is not None and CONFIG.exists()


class ClickHouse:
    """One server of the test's own; ``url`` is its HTTP interface."""

    def __init__(self, workdir: Path, tls: tuple[str, str] | None = None) -> None:
        """``tls``: a certificate and key (PEM) to serve HTTPS with too
        (``https_url``)."""
        self.dir = workdir
        self.tls = tls
        self.data = workdir / "data"
        (self.data / "tmp").mkdir(parents=True)
        self.users = workdir / "users.xml"
        sha = hashlib.sha256(PASSWORD.encode()).hexdigest()
        self.users.write_text(_USERS_XML.format(user=USER, sha=sha))
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        for _attempt in range(5):  # a free port may be taken before the server binds it
            self.http_port, self.tcp_port, self.inter_port, self.https_port = _free_ports(4)
            if self.start(must=False):
                return
        raise AssertionError(f"clickhouse-server did not start: {self.tail()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        assert self.tls, "started without tls="
        return f"https://127.0.0.1:{self.https_port}"

    def tail(self) -> str:
        text = ""
        for name in ("server.log", "error.log", "stdout.log"):
            with contextlib.suppress(OSError):
                text += f"--- {name}\n" + (self.dir / name).read_text()[-3000:]
        return text

    def start(self, must: bool = True) -> bool:
        """Start it (on its ports, with its data); whether it answers."""
        assert self.proc is None
        tls: list[str] = []
        if self.tls:
            # No Diffie-Hellman parameters file: ECDHE only (the default
            # configuration names one that Debian does not ship).
            tls = [
                f"--https_port={self.https_port}",
                f"--openSSL.server.certificateFile={self.tls[0]}",
                f"--openSSL.server.privateKeyFile={self.tls[1]}",
                "--openSSL.server.dhParamsFile=",
            ]
        with (self.dir / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(SERVER, f"--config-file={CONFIG}", "--"),
                    f"--http_port={self.http_port}",
                    f"--tcp_port={self.tcp_port}",
                    f"--interserver_http_port={self.inter_port}",
                    f"--path={self.data}/",
                    f"--tmp_path={self.data}/tmp/",
                    f"--users_config={self.users}",
                    f"--logger.log={self.log}",
                    f"--logger.errorlog={self.dir / 'error.log'}",
                    "--logger.level=warning",
                    "--listen_host=127.0.0.1",
                    *tls,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                # Not under `make test-asan`'s preloaded sanitizer: it is
                # there for our library, and ClickHouse 18.16 double-frees
                # a string at exit under it (its own static destructors).
                env=without_preload(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/ping", timeout=2) as resp,
            ):
                if resp.read() == b"Ok.\n":
                    return True
            time.sleep(0.1)
        self.stop()
        if must:
            raise AssertionError(f"clickhouse-server did not start: {self.tail()}")
        return False

    def stop(self) -> None:
        """Stop it (SIGTERM; killed if it lingers) and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # ---- queries ---------------------------------------------------------------

    def query(self, sql: str, user: str = "default", password: str = "") -> str:
        """Run ``sql`` as ``user``; its output as text. An error raises
        AssertionError with the server's message."""
        params = urllib.parse.urlencode(
            {"user": user, "password": password, "output_format_json_quote_64bit_integers": 0}
        )
        req = urllib.request.Request(f"{self.url}/?{params}", data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return str(resp.read().decode())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{sql!r}: {exc.code} {exc.read().decode()[:1000]}") from None

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """``sql`` (without FORMAT) as dicts, 64-bit integers as ints."""
        text = self.query(sql + " FORMAT JSONEachRow")
        return [json.loads(line) for line in text.splitlines() if line]

    def scalar(self, sql: str) -> int:
        return int(self.query(sql).strip() or 0)
