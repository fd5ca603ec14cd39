"""The web configuration file of Prometheus's exporters (the
exporter-toolkit format, ``--web.config.file``): TLS and basic auth for
``/metrics``, read and checked here, applied by :mod:`tcpevent.webserver`.

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
Relative paths are relative to the file's directory.
"""

from __future__ import annotations

import os
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
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
