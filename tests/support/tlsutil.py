"""Certificates for a test, made with the ``openssl`` command in its own
directory: a CA, a server certificate for 127.0.0.1 and a client
certificate, both signed by the CA; and a second CA no one trusts."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _run(
        *("req", "-x509", *_KEY, "-days", "2", "-subj", f"/CN={name}"),
        *("-keyout", f"{name}.key", "-out", f"{name}.crt"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        cwd=d,
    )


def _leaf(d: Path, name: str, ca: str, usage: str, san: str) -> None:
    (d / f"{name}.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
        f"keyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
    )
    _run(
        "req", *_KEY, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d
    )
    _run(
        *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key"),
        *("-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext"),
        cwd=d,
    )


@dataclass(frozen=True)
class Certs:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)


def make_certs(d: Path) -> Certs:
    """ca.crt; server.crt/.key (IP:127.0.0.1); client.crt/.key; other-ca.crt
    and stranger.crt/.key, a client the CA never signed."""
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "server", "ca", "serverAuth", "IP:127.0.0.1")
    _leaf(d, "client", "ca", "clientAuth", "DNS:prometheus")
    _leaf(d, "stranger", "other-ca", "clientAuth", "DNS:stranger")
    return Certs(d)
