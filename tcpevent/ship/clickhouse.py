"""A small client of ClickHouse's HTTP interface: statements, and
``INSERT ... FORMAT JSONEachRow`` with a gzip body.

Only the standard library (``http.client``, ``ssl``): one request per call
on a fresh connection, so that a server restarted between two batches is
just a refused connection, never a stale socket. Credentials go in the
``Authorization`` header (HTTP basic, which ClickHouse 18.16 takes), never
in the URL, where the server's query log and proxies would keep them.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.parse
from dataclasses import dataclass, field

__all__ = ["DEFAULT_TIMEOUT", "ClickHouseClient", "ClickHouseError", "parse_url"]

#: Seconds a request may take, connecting included: past it a batch is
#: retried (the server may have committed it: the table deduplicates).
DEFAULT_TIMEOUT = 30.0
#: Enough of the server's error text to say what is wrong.
_MAX_ERROR = 500


class ClickHouseError(Exception):
    """The server refused a request (``status`` > 0: its HTTP status and the
    first line of its message) or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    port: int
    path: str
    params: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_url(url: str) -> _Url:
    """``http[s]://HOST[:PORT][/PATH][?SETTINGS]``; ``ValueError`` for
    anything else, and for credentials in the URL (``--user`` and a
    password file or variable say them instead)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "no credentials in the URL: give --user, and the password in a file "
            "(--password-file) or an environment variable (--password-env)"
        )
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    try:
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
    except ValueError:
        raise ValueError(f"not a port number in {url!r}") from None
    params = tuple(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return _Url(parts.scheme, parts.hostname, port, parts.path or "/", params)


@dataclass
class ClickHouseClient:
    """Where and as whom to reach ClickHouse."""

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        self._url = parse_url(self.url)
        self._context: ssl.SSLContext | None = None
        if self._url.scheme == "https":
            self._context = ssl.create_default_context(cafile=self.ca_file)
        elif self.ca_file is not None:
            raise ValueError("a CA file is for an https:// URL")
        self._headers: dict[str, str] = {}
        if self.user is not None or self.password is not None:
            token = f"{self.user or 'default'}:{self.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()

    @property
    def where(self) -> str:
        """The server's URL without settings (for messages)."""
        return str(self._url)

    def execute(self, sql: str) -> bytes:
        """Run one statement; its output."""
        return self._post({}, sql.encode(), {})

    def insert(self, table_sql: str, gzip_body: bytes) -> None:
        """``INSERT INTO table_sql FORMAT JSONEachRow`` with a gzip'd body."""
        query = {"query": f"INSERT INTO {table_sql} FORMAT JSONEachRow"}
        self._post(query, gzip_body, {"Content-Encoding": "gzip"})

    def _post(self, params: dict[str, str], body: bytes, headers: dict[str, str]) -> bytes:
        u = self._url
        path = u.path + "?" + urllib.parse.urlencode([*u.params, *params.items()])
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(
                u.host, u.port, timeout=self.timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(u.host, u.port, timeout=self.timeout)
        try:
            conn.request("POST", path, body, {**self._headers, **headers})
            resp = conn.getresponse()
            data = resp.read()
        except ssl.SSLError as exc:
            raise ClickHouseError(f"TLS with {self.where} failed: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ClickHouseError(f"cannot reach ClickHouse at {self.where}: {reason}") from None
        finally:
            conn.close()
        if resp.status != 200:
            text = data.decode("utf-8", "replace").strip().splitlines()
            first = text[0][:_MAX_ERROR] if text else resp.reason
            raise ClickHouseError(
                f"ClickHouse at {self.where} answered {resp.status}: {first}", resp.status
            )
        return data
