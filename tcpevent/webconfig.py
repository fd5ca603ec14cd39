"""Serving metrics behind TLS and basic auth: the web configuration file of
Prometheus's exporters (the exporter-toolkit format, ``--web.config.file``),
and the HTTP(S) server that applies it.

Used by ``tcpevent exporter`` and ``tcpevent ship --metrics``. The file is
YAML (PyYAML); the passwords are bcrypt hashes (the ``bcrypt`` package):
both in the extra ``tcpevent[web]``. What is taken::

    tls_server_config:
      cert_file: server.crt          # PEM; with key_file, TLS is on
      key_file: server.key
      client_ca_file: clients-ca.crt # with client_auth_type below
      client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
      min_version: TLS12             # TLS10..TLS13; default TLS12
      max_version: TLS13
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt (htpasswd -B, python -m tcpevent.webconfig)

Any other key is an error rather than a setting silently not applied.
Relative paths are relative to the file's directory. A refused request is
logged with the peer, the user name and why, never the password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.server
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MetricsServer",
    "TlsConfig",
    "WebConfig",
    "WebConfigError",
    "load_web_config",
]

#: client_auth_type values and what Python's ssl does with each. Go's
#: RequestClientCert and RequireAnyClientCert take a certificate without
#: verifying it; OpenSSL through Python cannot, so they are refused.
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_AUTH = ("RequestClientCert", "RequireAnyClientCert")
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
}
_TOP_KEYS = {"tls_server_config", "basic_auth_users"}
#: A slow or silent client holds a thread no longer than this.
CONNECTION_TIMEOUT = 10.0
#: Credentials checked once are remembered (bcrypt costs ~0.1 s a check):
#: by a hash of user and password, at most this many.
_CACHE_MAX = 256
_REALM = 'Basic realm="tcpevent", charset="UTF-8"'


class WebConfigError(ValueError):
    """The web configuration file cannot be used: the message says why."""


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str | None = None

    def context(self) -> ssl.SSLContext:
        """A server-side context; ``WebConfigError`` if a file is unusable."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = _VERSIONS[self.min_version]
        if self.max_version:
            ctx.maximum_version = _VERSIONS[self.max_version]
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                ctx.load_verify_locations(cafile=self.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"TLS certificate, key or CA unusable: {exc}") from None
        ctx.verify_mode = _CLIENT_AUTH[self.client_auth_type]
        return ctx


@dataclass(frozen=True)
class WebConfig:
    """What the file says: TLS (or None: plain HTTP) and the users."""

    tls: TlsConfig | None = None
    users: dict[str, bytes] = field(default_factory=dict)


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        package = {"yaml": "PyYAML"}.get(module, module)
        raise WebConfigError(
            f"--web.config.file needs {package}: pip install 'tcpevent[web]'"
        ) from None


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and check a web configuration file; ``WebConfigError`` says what
    is wrong (a missing file, an unknown key, a hash that is not bcrypt...)."""
    yaml = _need("yaml")
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text())
    except OSError as exc:
        raise WebConfigError(f"cannot read {source}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{source} is not YAML: {exc}") from None
    if data is None:
        return WebConfig()
    if not isinstance(data, dict):
        raise WebConfigError(f"{source}: expected a mapping at the top")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise WebConfigError(f"{source}: unknown or unsupported keys: {', '.join(sorted(unknown))}")
    tls = _tls(source, data.get("tls_server_config"))
    users = _users(source, data.get("basic_auth_users"))
    if tls is not None:
        tls.context()  # the files are checked now, not at the first scrape
    return WebConfig(tls, users)


def _tls(source: Path, raw: Any) -> TlsConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise WebConfigError(f"{source}: tls_server_config must be a mapping")
    unknown = set(raw) - _TLS_KEYS
    if unknown:
        raise WebConfigError(
            f"{source}: unknown or unsupported tls_server_config keys: {', '.join(sorted(unknown))}"
        )

    def path(key: str) -> Path | None:
        value = raw.get(key)
        if value in (None, ""):
            return None
        return source.parent / str(value)

    cert, key, ca = path("cert_file"), path("key_file"), path("client_ca_file")
    if cert is None or key is None:
        raise WebConfigError(f"{source}: tls_server_config needs cert_file and key_file")
    auth = str(raw.get("client_auth_type") or "NoClientCert")
    if auth in _UNSUPPORTED_AUTH:
        raise WebConfigError(
            f"{source}: client_auth_type {auth} (a certificate taken unverified) is not "
            "supported: use RequireAndVerifyClientCert or VerifyClientCertIfGiven"
        )
    if auth not in _CLIENT_AUTH:
        raise WebConfigError(
            f"{source}: client_auth_type must be one of {', '.join(_CLIENT_AUTH)}, not {auth!r}"
        )
    if ca is None and auth != "NoClientCert":
        raise WebConfigError(f"{source}: client_auth_type {auth} needs client_ca_file")
    if ca is not None and auth == "NoClientCert":
        raise WebConfigError(
            f"{source}: client_ca_file is set but client_auth_type is NoClientCert: "
            "say VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )
    versions = {}
    for key_name, default in (("min_version", "TLS12"), ("max_version", None)):
        value = raw.get(key_name, default)
        if value is not None and value not in _VERSIONS:
            raise WebConfigError(
                f"{source}: {key_name} must be one of {', '.join(_VERSIONS)}, not {value!r}"
            )
        versions[key_name] = value
    return TlsConfig(
        cert, key, ca, auth, versions["min_version"] or "TLS12", versions["max_version"]
    )


def _users(source: Path, raw: Any) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise WebConfigError(f"{source}: basic_auth_users must map user names to bcrypt hashes")
    _need("bcrypt")
    users = {}
    for user, hashed in raw.items():
        text = str(hashed)
        if not text.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"{source}: the password of user {user!r} is not a bcrypt hash")
        users[str(user)] = text.encode()
    return users


# ---- the server -----------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "tcpevent"
    sys_version = ""

    def do_GET(self) -> None:
        srv = self.server
        if not srv.authorized(self):
            return
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, content_type = srv.render()
            self._reply(200, body, content_type)
        elif path == "/":
            self._reply(200, b'<a href="/metrics">/metrics</a>\n', "text/html")
        else:
            self._reply(404, b"not found: try /metrics\n", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def refuse(self) -> None:
        self._reply(401, b"Unauthorized\n", "text/plain", WWW_Authenticate=_REALM)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: refusals are logged by the server


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        config: WebConfig,
        render: Callable[[], tuple[bytes, str]],
        log: Callable[[str], None],
    ) -> None:
        self.address_family = family
        super().__init__(address, _Handler)
        self.config = config
        self.render = render
        self.log = log
        self._context = config.tls.context() if config.tls else None
        self._cache: set[bytes] = set()
        self._cache_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(CONNECTION_TIMEOUT)
        if self._context is not None:
            # The handshake runs in the request's thread (finish_request),
            # never in the accepting one: a silent client stalls no one.
            sock = self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
                self.log(f"refused {_peer(client_address)}: TLS handshake failed: {reason}")
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        self.log(f"request from {_peer(client_address)} failed: {exc}")

    def authorized(self, handler: _Handler) -> bool:
        users = self.config.users
        if not users:
            return True
        peer = _peer(handler.client_address)
        header = handler.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            self.log(f"refused {peer}: no basic-auth credentials")
            handler.refuse()
            return False
        try:
            user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, sep, password = "", "", ""
        if not sep:
            self.log(f"refused {peer}: malformed basic-auth credentials")
            handler.refuse()
            return False
        hashed = users.get(user)
        if hashed is None:
            self.log(f"refused {peer}: unknown user {user[:64]!r}")
            handler.refuse()
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._cache_lock:
            known = key in self._cache
        if not known:
            import bcrypt

            if not bcrypt.checkpw(password.encode(), hashed):
                self.log(f"refused {peer}: wrong password for user {user[:64]!r}")
                handler.refuse()
                return False
            with self._cache_lock:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache.add(key)
        return True


def _peer(address: Any) -> str:
    try:
        host, port = address[0], address[1]
    except (TypeError, IndexError):
        return str(address)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class MetricsServer:
    """Serves ``render()`` (body, content type) on ``/metrics`` at
    ``address:port`` in a thread, applying ``config`` (None: plain HTTP, no
    auth). ``OSError`` when it cannot listen."""

    def __init__(
        self,
        address: str,
        port: int,
        render: Callable[[], tuple[bytes, str]],
        config: WebConfig | None = None,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    ) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.config = config or WebConfig()
        self._server = _HTTPServer((address, port), family, self.config, render, log)
        self.address = address
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tcpevent-metrics", daemon=True
        )
        self._thread.start()

    @property
    def scheme(self) -> str:
        return "https" if self.config.tls else "http"

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}/metrics"

    def shutdown(self) -> None:
        """Stop serving (as ``socketserver``'s, which the exporter also uses)."""
        self._server.shutdown()
        self._thread.join(5)

    def server_close(self) -> None:
        """Close the listening socket."""
        self._server.server_close()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def _hash_main() -> int:
    """``python -m tcpevent.webconfig``: a bcrypt hash of a password read
    from stdin (never an argument), for basic_auth_users."""
    import getpass

    bcrypt = _need("bcrypt")
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline()
    password = password.rstrip("\n")
    if not password:
        print("an empty password", file=sys.stderr)
        return 2
    print(bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_hash_main())
