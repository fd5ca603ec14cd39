"""``--web.config.file``: the exporter's and the shipper's metrics behind TLS
and basic auth, scraped by a real Prometheus (Debian's, as in
test_exporter.py) and refused to anyone else.

The certificates are made by the test (tests/support/tlsutil.py). One
Prometheus scrapes each server three ways: with the client certificate and
the right password (up), with a wrong password (401), and without a client
certificate (the TLS handshake fails); and the server logs each refusal
without the secret.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from promutil import SCRAPES_TIMEOUT, Exporter, Prometheus
from shiputil import Ship
from tlsutil import Certs, make_certs

from tcpevent.webconfig import WebConfigError, load_web_config

USER = "prom"
PASSWORD = "scrape-me-9f2c"
WRONG = "guess-0000"
#: (job, client certificate?, password) of each way Prometheus scrapes.
JOBS = (("good", True, PASSWORD), ("wrongpw", True, WRONG), ("nocert", False, PASSWORD))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    assert shutil.which("openssl"), "the openssl command is needed"
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def web_config(certs: Certs) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode()
    path = certs.dir / "web.yml"
    path.write_text(
        "tls_server_config:\n"
        "  cert_file: server.crt\n"  # relative: to the file's directory
        "  key_file: server.key\n"
        "  client_ca_file: ca.crt\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "basic_auth_users:\n"
        f"  {USER}: {hashed}\n"
    )
    return path


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Prometheus]:
    assert shutil.which("prometheus"), "Debian's prometheus is needed: make deps installs it"
    work = tmp_path_factory.mktemp("prometheus-tls")
    jobs = ""
    for job, with_cert, password in JOBS:
        (work / job).mkdir()
        tls = f"      ca_file: {certs.path('ca.crt')}\n"
        if with_cert:
            tls += f"      cert_file: {certs.path('client.crt')}\n"
            tls += f"      key_file: {certs.path('client.key')}\n"
        jobs += (
            f"  - job_name: {job}\n"
            "    scheme: https\n"
            "    tls_config:\n" + tls + "    basic_auth:\n"
            f"      username: {USER}\n"
            f"      password: {password}\n"
            "    file_sd_configs:\n"
            f"      - files: ['{work / job}/*.json']\n"
            "        refresh_interval: 1s\n"
        )
    server = Prometheus(work, extra_jobs=jobs)
    try:
        yield server
    finally:
        server.stop()


def client_context(certs: Certs, with_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
    if with_cert:
        ctx.load_cert_chain(certs.path("client.crt"), certs.path("client.key"))
    return ctx


def get(url: str, ctx: ssl.SSLContext, user: str | None, password: str) -> tuple[int, Any]:
    req = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers


def scraped_three_ways(prom: Prometheus, name: str, hostport: str, metric: str) -> None:
    """Point the three jobs at ``hostport``; the good one reads ``metric``,
    the other two are refused, each for its reason."""
    for job, _, _ in JOBS:
        target = prom.dir / job / f"{name}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [hostport], "labels": {"test": name}}]))
        tmp.rename(target)
    deadline = time.monotonic() + SCRAPES_TIMEOUT
    health: dict[str, tuple[str, str]] = {}
    while time.monotonic() < deadline:
        health = {
            t["labels"]["job"]: (t["health"], t["lastError"])
            for t in prom.api("targets")["activeTargets"]
            if t["labels"].get("test") == name
        }
        settled = len(health) == 3 and all(h != "unknown" for h, _ in health.values())
        if settled and health["good"][0] == "up":
            break
        time.sleep(0.5)
    assert health["good"] == ("up", ""), health
    assert prom.query(f'{metric}{{job="good",test="{name}"}}'), metric
    assert health["wrongpw"][0] == "down" and "HTTP status 401" in health["wrongpw"][1], health
    # Refused before any HTTP: with TLS 1.3 the client's side of the
    # handshake is done when the server refuses it, so Prometheus may see
    # the refusal as the TLS alert or as the connection closed under its
    # request (the server's log, checked by the callers, says which).
    # (No HTTP status in it: a bare "401" could be part of the port.)
    error = health["nocert"][1].lower()
    assert health["nocert"][0] == "down" and "http status" not in error, health
    seen = ("tls", "certificate", "broken pipe", "connection reset", "eof")
    assert any(word in error for word in seen), health


#: How a refused TLS connection may surface in the client, depending on
#: when the server's alert or close reaches it (with TLS 1.3 a client
#: certificate is refused after the client's side of the handshake is done).
REFUSED = (ssl.SSLError, ConnectionError, urllib.error.URLError, http.client.HTTPException)


def check_refusals(url: str, certs: Certs, log: str) -> None:
    good = client_context(certs)
    status, body = get(url, good, USER, PASSWORD)
    assert status == 200 and "tcpevent_build_info" in body
    status, headers = get(url, good, USER, WRONG)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert get(url, good, None, "")[0] == 401
    assert get(url, good, "mallory", PASSWORD)[0] == 401
    with pytest.raises(REFUSED):
        get(url, client_context(certs, with_cert=False), USER, PASSWORD)
    stranger = ssl.create_default_context(cafile=certs.path("ca.crt"))
    stranger.load_cert_chain(certs.path("stranger.crt"), certs.path("stranger.key"))
    with pytest.raises(REFUSED):
        get(url, stranger, USER, PASSWORD)
    plain = url.replace("https://", "http://")
    with pytest.raises((*REFUSED, OSError)):
        urllib.request.urlopen(plain, timeout=10).read()


def wait_logged(read_log: Any, *needles: str) -> str:
    deadline = time.monotonic() + SCRAPES_TIMEOUT
    while time.monotonic() < deadline:
        text: str = read_log()
        if all(n in text for n in needles):
            return text
        time.sleep(0.2)
    raise AssertionError((needles, read_log()))


@pytest.mark.bpf
def test_the_exporter_behind_tls_and_basic_auth(
    prometheus: Prometheus, certs: Certs, web_config: Path
) -> None:
    exporter = Exporter(["--web.config.file", str(web_config), "--pid", str(os.getpid())])
    try:
        url = f"https://{exporter.hostport}/metrics"
        assert f"serving {url}" in exporter.stderr()
        scraped_three_ways(prometheus, "exporter", exporter.hostport, "tcpevent_events_total")
        check_refusals(url, certs, exporter.stderr())
        log = wait_logged(
            exporter.stderr,
            f"wrong password for user '{USER}'",
            "unknown user 'mallory'",
            "no basic-auth credentials",
            "TLS handshake failed",
        )
    finally:
        assert exporter.stop() == 0, exporter.stderr()
    assert PASSWORD not in log and WRONG not in log


@pytest.mark.bpf
def test_the_shippers_metrics_behind_tls_and_basic_auth(
    prometheus: Prometheus, certs: Certs, web_config: Path, tmp_path: Path
) -> None:
    with socket.socket() as s:  # ClickHouse nowhere: its counters say so
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
        ship = Ship(
            [
                *("--clickhouse", nowhere, "--spool", str(tmp_path / "spool")),
                *("--metrics", "127.0.0.1:0", "--web.config.file", str(web_config)),
                *("--pid", str(os.getpid())),
            ]
        )
    try:
        assert ship.metrics_url and ship.metrics_url.startswith("https://127.0.0.1:")
        hostport = ship.metrics_url.split("/")[2]
        scraped_three_ways(prometheus, "ship", hostport, "tcpevent_ship_rows_sent_total")
        check_refusals(ship.metrics_url, certs, ship.log())
        log = wait_logged(ship.log, f"wrong password for user '{USER}'", "TLS handshake failed")
    finally:
        assert ship.stop() == 0, ship.log()
    assert PASSWORD not in log and WRONG not in log


# ---- the file itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config:\n  cert_file: server.crt\n", "needs cert_file and key_file"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  nonsense: 1\n", "nonsense"),
        ("http_server_config:\n  http2: true\n", "unsupported keys: http_server_config"),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_ca_file: ca.crt\n",
            "client_auth_type is NoClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_ca_file: ca.crt\n  client_auth_type: RequireAnyClientCert\n",
            "not supported",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  min_version: SSL3\n",
            "min_version",
        ),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "unusable"),
        ("basic_auth_users:\n  prom: plaintext\n", "not a bcrypt hash"),
        ("- a list\n", "mapping"),
        ("basic_auth_users: [\n", "not YAML"),
    ],
)
def test_a_bad_web_config_is_a_clear_error(
    text: str, message: str, certs: Certs, tmp_path: Path
) -> None:
    path = certs.dir / f"bad-{abs(hash(text))}.yml"
    path.write_text(text)
    with pytest.raises(WebConfigError, match=message):
        load_web_config(path)
    with pytest.raises(WebConfigError, match="cannot read"):
        load_web_config(tmp_path / "missing.yml")


def test_the_exporter_refuses_a_bad_web_config_with_exit_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text("basic_auth_users:\n  prom: plaintext\n")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "tcpevent", "exporter", "--listen", "127.0.0.1:0"),
            *("--web.config.file", str(bad)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc
    assert "not a bcrypt hash" in proc.stderr and "Traceback" not in proc.stderr


def test_an_empty_web_config_serves_plain_http(tmp_path: Path) -> None:
    from tcpevent.webserver import MetricsServer

    path = tmp_path / "web.yml"
    path.write_text("")
    server = MetricsServer("127.0.0.1", 0, lambda: (b"x 1\n", "text/plain"), load_web_config(path))
    try:
        with urllib.request.urlopen(server.url, timeout=10) as resp:
            assert resp.read() == b"x 1\n"
    finally:
        server.close()
