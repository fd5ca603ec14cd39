"""`pip install .` gives a self-contained package: the wheel carries
libtcpEvent.so, the headers, and a cffi extension that finds the library
next to itself (no second copy of the native code). The extension is built
for the limited API (one wheel for every Python >= 3.9), libbpf is linked
in, and the sdist carries what it needs to build offline without clang."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation"),
            *("--no-deps", "-w", str(tmp_path), str(ROOT)),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tcpevent-*.whl")
    # The limited API: cp39-abi3, whichever Python built it.
    assert wheel.name.endswith("-cp39-abi3-linux_x86_64.whl"), wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tcpevent/lib/libtcpEvent.so" in names
    assert "tcpevent/lib/libudpEvent.so" in names
    # The public API is a folder: every header of csrc/include/ is installed, nothing else.
    include = ROOT / "csrc" / "include"
    public = {str(p.relative_to(include)) for p in include.rglob("*.h")}
    assert "tcpevent.h" in public and "common.h" in public
    assert {n.removeprefix("tcpevent/include/") for n in names if "/include/" in n} == public
    # Every module of the source tree, subpackages included, is in the wheel.
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "tcpevent").rglob("*.py")}
    assert "tcpevent/cli/command.py" in modules and "tcpevent/exporter/command.py" in modules
    assert modules <= names, sorted(modules - names)
    assert "tcpevent/py.typed" in names
    (native,) = [n for n in names if n.startswith("tcpevent/_native") and n.endswith(".so")]
    assert native == "tcpevent/_native.abi3.so", native

    zipfile.ZipFile(wheel).extractall(tmp_path / "unpacked")
    dynamic = subprocess.run(
        ["readelf", "-d", str(tmp_path / "unpacked" / native)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "libtcpEvent.so" in dynamic  # linked, not compiled in again
    assert "$ORIGIN/lib" in dynamic
    # The extension's code is only the binding: the core lives in the library.
    symbols = subprocess.run(
        ["nm", "-D", "--defined-only", str(tmp_path / "unpacked" / native)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "tcpevent_open" not in symbols

    # libbpf is inside libtcpEvent.so (the pinned release, static): the
    # system's libbpf.so is needed neither here nor anywhere it is installed.
    lib_dynamic = subprocess.run(
        ["readelf", "-d", str(tmp_path / "unpacked" / "tcpevent/lib/libtcpEvent.so")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", lib_dynamic)
    assert "libc.so.6" in needed, lib_dynamic
    assert not [n for n in needed if "bpf" in n], needed


def test_sdist_builds_offline(tmp_path: Path) -> None:
    """The sdist carries the C sources, the pinned libbpf's verified tarball
    and the two compiled BPF objects (so its build needs no network, no
    libbpf-dev and no clang)."""
    sys.path.insert(0, str(ROOT / "csrc" / "vendor"))
    import libbpf  # csrc/vendor/libbpf.py

    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (sdist,) = tmp_path.glob("tcpevent-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tarball = tar.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/csrc/vendor/{libbpf.ORIG}")
        assert tarball is not None
        import hashlib

        assert hashlib.sha256(tarball.read()).hexdigest() == libbpf.SHA256
    for obj in ("tcp.bpf.o", "tcp-portable.bpf.o", "udp.bpf.o", "udp-portable.bpf.o"):
        assert f"csrc/bpf/prebuilt/{obj}" in names
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.[ch]")}
    assert sources <= names, sorted(sources - names)
    assert {"setup.py", "pyproject.toml", "README.md", "csrc/vendor/libbpf.py"} <= names


def test_release_wheel_tag(tmp_path: Path) -> None:
    """`make wheel`'s wheel (dist/): one abi3 wheel whose manylinux tag is
    glibc 2.31 or lower, with libelf and zlib bundled and no libbpf at all."""
    wheels = sorted((ROOT / "dist").glob("tcpevent-*-cp39-abi3-*.whl"))
    if not wheels:
        pytest.skip("no dist/ wheel: `make wheel` makes it (`make test-wheel` checks it in CI)")
    m = re.search(r"-cp39-abi3-manylinux_2_(\d+)_x86_64(\.[\w.]+)?\.whl$", wheels[-1].name)
    assert m, wheels[-1].name
    assert int(m.group(1)) <= 31, wheels[-1].name
    names = zipfile.ZipFile(wheels[-1]).namelist()
    bundled = [n for n in names if n.startswith("tcpevent.libs/")]
    assert any("libelf" in n for n in bundled) and any("libz" in n for n in bundled), bundled
    assert not [n for n in names if "libbpf" in n], names
    # A client that dlopen()s the library by path finds the bundled ones
    # through its own rpath; --install-lib's copies through $ORIGIN.
    zipfile.ZipFile(wheels[-1]).extract("tcpevent/lib/libtcpEvent.so", tmp_path)
    dynamic = subprocess.run(
        ["readelf", "-d", str(tmp_path / "tcpevent/lib/libtcpEvent.so")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (rpath,) = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r\w*path: \[(.+?)\]", dynamic)
    assert set(rpath.split(":")) == {"$ORIGIN", "$ORIGIN/../../tcpevent.libs"}, rpath
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)
    bundled_names = {n.rsplit("/", 1)[1] for n in bundled}
    glibc = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1"}
    assert set(needed) <= bundled_names | glibc | {"ld-linux-x86-64.so.2"}, needed
