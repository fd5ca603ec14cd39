"""The HTTP(S) server of ``/metrics`` for ``tcpevent exporter
--web.config.file`` and ``tcpevent ship --metrics``: a thread per request,
the TLS handshake in that thread (a silent client stalls no one), basic
auth checked against the bcrypt hashes of a :class:`~tcpevent.webconfig.WebConfig`.

A refused request is logged with the peer, the user name and why, never
the password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.server
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

from tcpevent.webconfig import WebConfig

__all__ = ["CONNECTION_TIMEOUT", "MetricsServer"]

#: A slow or silent client holds a thread no longer than this.
CONNECTION_TIMEOUT = 10.0
#: Credentials checked once are remembered (bcrypt costs ~0.1 s a check):
#: by a hash of user and password, at most this many.
_CACHE_MAX = 256
_REALM = 'Basic realm="tcpevent", charset="UTF-8"'


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
    # Request threads are joined by server_close(), never left running at
    # exit: one inside bcrypt (native code that released the GIL) when the
    # interpreter finalizes is killed by a forced unwind, and the process
    # aborts ("FATAL: exception not rethrown"). CONNECTION_TIMEOUT bounds
    # the wait.
    daemon_threads = False
    block_on_close = True

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
        """Close the listening socket; wait for the requests under way (each
        ends within CONNECTION_TIMEOUT)."""
        self._server.server_close()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
