"""Debian roots made with debootstrap, and commands run inside them.

``make wheel`` builds in a Debian 11 root (glibc 2.31: the wheel's floor);
``make test-wheel`` installs the wheel in roots of Debian 11, 12 and 13.
A root is made once and cached under :data:`CACHE` (outside the clone, so
that every run on this machine shares it); it is made again when missing,
when its package list changes, or after :data:`MAX_AGE` days. The mirror
is the one this machine's apt sources name, never a fixed host.

:func:`chroot` bind-mounts what tracing needs (/proc, /sys with tracefs and
debugfs, /dev) and the local package indexes pip's configuration names, and
unmounts all of it on the way out, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "csrc" / "vendor"))
import debian_apt

CACHE = Path(os.environ.get("TCPEVENT_ROOTS", "/var/cache/tcpevent/roots"))
MAX_AGE = 30  # days: then the root is made again, with the suite's updates
#: Debian's archive key ring (the debian-archive-keyring package).
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: Neither of these may be in a test root: the wheel must bring its own.
FORBIDDEN = ("clang", "libbpf-dev", "libbpf0", "libbpf1")


@dataclass(frozen=True)
class Root:
    name: str  # directory under CACHE
    suite: str  # Debian's codename
    packages: tuple[str, ...]  # on top of debootstrap's minbase

    @property
    def path(self) -> Path:
        return CACHE / self.name

    def spec(self) -> dict[str, object]:
        return {"suite": self.suite, "packages": sorted(self.packages)}


#: Every root has Python, venv and a C compiler (the seed's C client is
#: built with the root's gcc); the build root also the headers and static
#: libraries the native library is built with.
TEST_PACKAGES = ("python3", "python3-venv", "gcc", "libc6-dev", "ca-certificates")
BUILD = Root(
    "bullseye-build",
    "bullseye",
    (*TEST_PACKAGES, "python3-dev", "make", "libelf-dev", "zlib1g-dev"),
)
TEST_ROOTS = (
    Root("bullseye", "bullseye", TEST_PACKAGES),
    Root("bookworm", "bookworm", TEST_PACKAGES),
    Root("trixie", "trixie", TEST_PACKAGES),
)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt sources name (not the security one)."""
    return debian_apt.debian_archive()[0]


def _run(cmd: Sequence[str], **kw: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def _fresh(root: Root) -> bool:
    stamp = root.path / ".tcpevent-root.json"
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    age = (time.time() - float(data.get("created", 0))) / 86400
    return data.get("spec") == root.spec() and age < MAX_AGE


def ensure(root: Root) -> Path:
    """The root, made (or made again) if missing or stale."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time, others wait
        if _fresh(root):
            return root.path
        tmp = CACHE / f"{root.name}.new"
        _remove(tmp)
        start = time.monotonic()
        try:
            _run(
                [
                    *("debootstrap", "--variant=minbase", f"--keyring={KEYRING}"),
                    f"--include={','.join(root.packages)}",
                    *(root.suite, str(tmp), debian_mirror()),
                ],
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            # debootstrap mounts /proc (and more) inside while it works.
            _kill_inside(tmp)
            for m in reversed(_mounts()):
                if m.startswith(f"{tmp}/"):
                    subprocess.run(["umount", "-R", "-l", m], check=False)
            raise
        # Nothing installs these, but a root must be able to show it.
        installed = _installed(tmp)
        bad = [p for p in FORBIDDEN if p in installed]
        if bad and root is not BUILD:
            raise RuntimeError(f"{root.name}: {bad} installed")
        for cache in ("var/cache/apt/archives",):
            for deb in (tmp / cache).glob("*.deb"):
                deb.unlink()
        (tmp / ".tcpevent-root.json").write_text(
            json.dumps({"spec": root.spec(), "created": time.time()})
        )
        _remove(root.path)
        tmp.rename(root.path)
        print(f"made {root.path} in {time.monotonic() - start:.0f} s", flush=True)
        return root.path


def _installed(path: Path) -> set[str]:
    out = subprocess.run(
        ["dpkg-query", f"--admindir={path}/var/lib/dpkg", "-W", "-f=${Package}\\n"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def _remove(path: Path) -> None:
    """Remove a root, refusing while anything is still mounted inside it."""
    if not path.exists():
        return
    mounted = [m for m in _mounts() if m == str(path) or m.startswith(f"{path}/")]
    if mounted:
        raise RuntimeError(f"still mounted, not removed: {mounted}")
    shutil.rmtree(path)


def _mounts() -> list[str]:
    # /proc/self/mounts escapes spaces as \040: our paths have none.
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]


def _kill_inside(path: Path) -> None:
    """SIGKILL every process whose root directory is ``path`` (only the
    commands run inside this root can have it)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(proc / "root") == str(path):
                    os.kill(int(proc.name), signal.SIGKILL)


def pip_config_paths() -> list[Path]:
    """The host's pip configuration files (global, per user, $PIP_CONFIG_FILE)."""
    home = Path.home()
    candidates = [Path("/etc/pip.conf"), *Path("/etc/xdg/pip").glob("*"), home / ".pip/pip.conf"]
    candidates += [home / ".config/pip/pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        candidates.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return [p for p in candidates if p.is_file()]


def pip_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("PIP_")}


def _local_dirs(texts: Sequence[str]) -> list[Path]:
    """Local directories that pip's configuration points at (find-links, file:// indexes)."""
    found = []
    for text in texts:
        for token in re.findall(r"(?:file://)?(/[^\s,;'\"]+)", text):
            path = Path(token)
            while path != path.parent and not path.exists():
                path = path.parent
            if path.name == "simple":  # a PEP 503 index: its files lie beside it
                path = path.parent
            if path.is_dir() and path != Path("/") and path not in found:
                found.append(path)
    return found


@contextlib.contextmanager
def chroot(path: Path) -> Iterator[Path]:
    """Mount what tracing and pip need inside ``path``; unmount it all after.

    One user of a root at a time: a second run waits here (and ``ensure``
    waits for this one before making the root again).
    """
    with open(CACHE / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _mounted(path) as inside:
            yield inside


@contextlib.contextmanager
def _mounted(path: Path) -> Iterator[Path]:
    mounted: list[Path] = []

    def bind(src: Path, recursive: bool = False, readonly: bool = False) -> None:
        dst = path / str(src).lstrip("/")
        dst.mkdir(parents=True, exist_ok=True)
        _run(["mount", "--rbind" if recursive else "--bind", str(src), str(dst)])
        mounted.append(dst)
        # Unmounting inside must never reach the host's mounts.
        _run(["mount", "--make-rslave", str(dst)])
        if readonly:
            _run(["mount", "-o", "remount,bind,ro", str(dst)])

    try:
        dst = path / "proc"
        _run(["mount", "-t", "proc", "proc", str(dst)])
        mounted.append(dst)
        bind(Path("/sys"), recursive=True)  # BTF, tracefs, debugfs, bpffs, cgroups
        bind(Path("/dev"), recursive=True)
        # pip reaches the host's registry: its CA bundle, config and local indexes.
        for conf in pip_config_paths():
            target = path / str(conf).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(conf, target)
        ca = Path("/etc/ssl/certs/ca-certificates.crt")
        (path / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ca, path / "etc/ssl/certs/ca-certificates.crt")
        shutil.copy2("/etc/resolv.conf", path / "etc/resolv.conf")
        texts = [p.read_text() for p in pip_config_paths()] + list(pip_env().values())
        for local in _local_dirs(texts):
            if not str(local).startswith(("/etc", "/root", "/home")):
                bind(local, readonly=True)
        yield path
    finally:
        _kill_inside(path)  # a check that hung leaves no process behind
        errors = []
        for dst in reversed(mounted):
            done = subprocess.run(["umount", "-R", str(dst)], capture_output=True, text=True)
            if done.returncode:  # busy: detach it, it goes when its last user does
                lazy = subprocess.run(["umount", "-R", "-l", str(dst)], capture_output=True)
                if lazy.returncode:
                    errors.append(f"{dst}: {done.stderr.strip()}")
        if errors:
            raise RuntimeError("could not unmount: " + "; ".join(errors))


def run_in(path: Path, cmd: Sequence[str], env: dict[str, str] | None = None, **kw: object) -> None:
    """Run ``cmd`` inside the root (chroot), with a clean environment."""
    base = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        **pip_env(),
        **(env or {}),
    }
    _run(
        ["chroot", str(path), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in base.items()), *cmd],
        **kw,
    )


def main() -> int:
    """Make every root (``python3 tests/wheel/roots.py``), in parallel."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for made in pool.map(ensure, [BUILD, *TEST_ROOTS]):
            print(made)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
