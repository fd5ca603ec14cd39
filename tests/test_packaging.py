"""`pip install .` gives a self-contained package: the wheel carries
libtcpEvent.so, the headers, and a cffi extension that finds the library
next to itself (no second copy of the native code)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

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
