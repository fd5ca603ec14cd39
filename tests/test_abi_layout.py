"""The ABI is byte-exact: size, offsets, and the exported symbols."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
from pathlib import Path

from tcpevent import abi

ROOT = Path(__file__).resolve().parent.parent


def test_c_layout_matches_contract(build_c, csrc: Path) -> None:
    exe = build_c(Path(__file__).parent / "support" / "c" / "layout.c", "layout")
    layout = json.loads(subprocess.run([exe], check=True, capture_output=True).stdout)
    assert layout.pop("sizeof") == abi.EVENT_SIZE == 430
    assert layout == abi.OFFSETS


def test_ctypes_layout_matches_contract() -> None:
    assert ctypes.sizeof(abi.TcpEventT) == 430
    offsets = {name: getattr(abi.TcpEventT, name).offset for name, _ in abi.TcpEventT._fields_}
    assert offsets == abi.OFFSETS
    assert list(offsets) == list(abi.OFFSETS)  # same order as the C struct


def test_contract_offsets_are_packed() -> None:
    """Each field starts where the previous one ends: no padding anywhere."""
    sizes = {name: ctypes.sizeof(ctype) for name, ctype in abi.TcpEventT._fields_}
    names = list(abi.OFFSETS)
    for prev, name in zip(names, names[1:]):
        assert abi.OFFSETS[name] == abi.OFFSETS[prev] + sizes[prev]
    assert abi.OFFSETS["DADDR"] + 128 == 430


LEGACY = {"AddProbe", "setupBPF", "DequeuePerfEvent", "printCharArray", "cleanup", "getStatus"}


def exported(path: Path) -> dict[str, str]:
    """Every symbol the library defines in its dynamic table, with its nm type."""
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return {line.split()[-1]: line.split()[-2] for line in out.splitlines() if line.strip()}


def check_exports(path: Path) -> None:
    """Exactly the original six calls and the tcpevent_* API, all functions."""
    symbols = exported(path)
    assert {s for s in symbols if not s.startswith("tcpevent_")} == LEGACY, symbols
    assert {"tcpevent_open", "tcpevent_last_error", "tcpevent_free"} <= set(symbols)
    assert set(symbols.values()) == {"T"}, symbols


def test_only_the_api_is_exported(libpath: Path) -> None:
    check_exports(libpath)


def test_install_lib_installs_the_api_and_the_csharp_name(libpath: Path, tmp_path: Path) -> None:
    """`make install-lib`: libtcpEvent.so, and libevent.so (the name C#'s
    [DllImport("event")] loads) as a relative symlink to it. `-o build`:
    the library under test is installed as built, not rebuilt."""
    libdir = tmp_path / "lib"
    subprocess.run(
        [
            *("make", "-s", "-o", "build", "install-lib", f"LIBDIR={libdir}"),
            *(f"LIB_SO={libpath}", f"UDP_LIB_SO={libpath.parent / 'libudpEvent.so'}"),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    installed = libdir / "libtcpEvent.so"
    assert installed.read_bytes() == libpath.read_bytes()
    assert os.readlink(libdir / "libevent.so") == "libtcpEvent.so"
    assert sorted(p.name for p in libdir.iterdir()) == [
        "libevent.so",
        "libtcpEvent.so",
        "libudpEvent.so",  # the UDP flow tracer's, beside it (tests/test_udp_abi.py)
    ]
    assert (libdir / "libudpEvent.so").read_bytes() == (
        libpath.parent / "libudpEvent.so"
    ).read_bytes()
    check_exports(installed)
    check_exports(libdir / "libevent.so")


def test_library_needs_only_libc_libelf_zlib(libpath: Path) -> None:
    # libbpf is linked in (csrc/vendor/libbpf.py): never the system's.
    out = subprocess.run(["ldd", str(libpath)], check=True, capture_output=True, text=True).stdout
    needed = {line.split()[0] for line in out.splitlines() if "=>" in line}
    allowed = {"libc.so.6", "libelf.so.1", "libz.so.1"}
    if os.environ.get("TCPEVENT_ASAN"):  # make test-asan: the sanitizers' runtimes
        allowed |= {"libasan.so.8", "libubsan.so.1", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1"}
    assert needed <= allowed, needed - allowed
