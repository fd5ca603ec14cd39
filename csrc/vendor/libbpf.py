"""The pinned libbpf: fetched from Debian's archive, verified, built static.

``libtcpEvent.so`` links this libbpf as a static, position-independent
archive, and the BPF program is compiled against this release's headers
(``bpf_helpers.h`` and the rest): the system's libbpf, if any, is used
neither at build time nor at run time.

Where the source comes from, first found wins:

1. ``csrc/vendor/<ORIG>`` — an sdist carries the tarball there (``sdist.py``),
   so that the sdist builds offline;
2. ``build/vendor/<ORIG>`` — the cache of an earlier fetch;
3. Debian's source package, fetched with ``apt-get source --download-only``
   under a private apt configuration in ``build/vendor/apt/`` (its own
   sources list, lists, cache and no dpkg status: the system's apt state is
   untouched; ``debian_apt.py``). The mirror and its key ring are this
   machine's (its apt sources); only the suite is ours (:data:`SUITE`).

Whichever it is, its SHA-256 must be :data:`SHA256` or the build stops.
The Debian revision around the upstream tarball does not matter: only the
``.orig`` tarball, which is upstream's release, is used (no Debian patch).

Built with ``make -C src BUILD_STATIC_ONLY=1 EXTRA_CFLAGS=-fPIC`` into
``build/vendor/libbpf-<VERSION>-<key>/``, where the key names the compiler
and flags, so that a build with another compiler never reuses its objects.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import debian_apt

VERSION = "1.5.0"
#: Debian's name of upstream's release tarball, and its SHA-256 (the
#: trixie source package libbpf 1:1.5.0-3; the same bytes as upstream's).
ORIG = f"libbpf_{VERSION}.orig.tar.gz"
SHA256 = "53492aff6dd47e4da04ef5e672d753b9743848bdb38e9d90eafbe190b7983c44"
#: The Debian suite whose source package carries this release.
SUITE = "trixie"

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Libbpf:
    include_dir: Path  # bpf/*.h and linux/bpf.h (this release's UAPI)
    archive: Path  # libbpf.a, built with -fPIC


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path) -> Path:
    got = _sha256(path)
    if got != SHA256:
        raise RuntimeError(f"{path}: SHA-256 {got}, expected {SHA256} (libbpf {VERSION})")
    return path


def fetch(cache: Path) -> Path:
    """Debian's source package of libbpf, downloaded into ``cache``."""
    try:
        options = debian_apt.options(cache / "apt", "deb-src", SUITE)
    except RuntimeError as e:
        raise RuntimeError(f"{e}: put {ORIG} (SHA-256 {SHA256}) in build/vendor/ by hand") from e
    print(f"fetching libbpf {VERSION} (Debian's source package, {SUITE})", flush=True)
    subprocess.run(["apt-get", *options, "update"], check=True)
    download = cache / "apt" / "source"
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir()
    subprocess.run(
        ["apt-get", *options, "source", "--download-only", "libbpf"], check=True, cwd=download
    )
    got = download / ORIG
    if not got.exists():
        found = sorted(p.name for p in download.iterdir())
        raise RuntimeError(f"Debian's {SUITE} has no {ORIG} (got {found}): update the pin")
    _verified(got)
    target = cache / ORIG
    shutil.move(str(got), target)
    shutil.rmtree(download, ignore_errors=True)
    return target


def tarball(root: Path) -> Path:
    """The verified release tarball: the sdist's, the cached one, or fetched."""
    for candidate in (HERE / ORIG, root / "build" / "vendor" / ORIG):
        if candidate.exists():
            return _verified(candidate)
    # An sdist must build offline: make test-wheel forbids the fetch there.
    if os.environ.get("TCPEVENT_LIBBPF_OFFLINE"):
        raise RuntimeError(f"{ORIG} is not here and TCPEVENT_LIBBPF_OFFLINE is set")
    cache = root / "build" / "vendor"
    cache.mkdir(parents=True, exist_ok=True)
    return fetch(cache)


def build(root: Path, cc: list[str], extra_cflags: list[str] | None = None) -> Libbpf:
    """libbpf.a (position-independent) and its headers, built once per compiler."""
    flags = ["-fPIC", *(extra_cflags or [])]
    version = subprocess.run([*cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([SHA256, *cc, version, *flags]).encode()).hexdigest()[:12]
    out = root / "build" / "vendor" / f"libbpf-{VERSION}-{key}"
    done = Libbpf(include_dir=out / "include", archive=out / "lib" / "libbpf.a")
    if (out / ".built").exists():
        return done
    source = tarball(root)
    shutil.rmtree(out, ignore_errors=True)
    (out / "src").mkdir(parents=True)
    with tarfile.open(source) as tar:
        tar.extractall(out / "src")
    (top,) = (out / "src").iterdir()
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    subprocess.run(
        [
            *("make", "-s", "-j", jobs, "-C", str(top / "src")),
            *("BUILD_STATIC_ONLY=1", "NO_PKG_CONFIG=1", f"CC={' '.join(cc)}"),
            f"EXTRA_CFLAGS={' '.join(flags)}",
            *(f"OBJDIR={out / 'obj'}", f"DESTDIR={out}", "PREFIX=", "LIBDIR=/lib"),
            *("INCLUDEDIR=/include", "UAPIDIR=/include"),
            *("install", "install_uapi_headers"),
        ],
        check=True,
    )
    shutil.rmtree(out / "src")
    shutil.rmtree(out / "obj")
    if not done.archive.exists() or not (done.include_dir / "bpf" / "bpf_helpers.h").exists():
        raise RuntimeError(f"libbpf {VERSION}'s build left no {done.archive}")
    (out / ".built").write_text(f"libbpf {VERSION} {SHA256}\n")
    return done


def headers(root: Path) -> Path:
    """This release's headers alone (bpf/*.h, linux/*.h), for the BPF program.

    The same files ``make install_headers install_uapi_headers`` installs,
    copied from the verified tarball; no compiler needed.
    """
    out = root / "build" / "vendor" / f"libbpf-{VERSION}-headers"
    if (out / ".done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    prefix = f"libbpf-{VERSION}/"
    wanted = {f"{prefix}src/": out / "bpf", f"{prefix}include/uapi/linux/": out / "linux"}
    with tarfile.open(tarball(root)) as tar:
        for member in tar.getmembers():
            for where, dest in wanted.items():
                name = member.name.removeprefix(where)
                ours = name != member.name and "/" not in name and name.endswith(".h")
                if member.isfile() and ours:
                    dest.mkdir(parents=True, exist_ok=True)
                    data = tar.extractfile(member)
                    assert data is not None
                    (dest / name).write_bytes(data.read())
    if not (out / "bpf" / "bpf_helpers.h").exists():
        raise RuntimeError(f"{ORIG} has no src/bpf_helpers.h")
    (out / ".done").write_text(f"libbpf {VERSION} {SHA256}\n")
    return out
