"""The ABI is byte-exact: size, offsets, and the exported symbols."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
from pathlib import Path

from tcpevent import abi


def test_c_layout_matches_contract(build_c, csrc: Path) -> None:
    exe = build_c(Path(__file__).parent / "c" / "layout.c", "layout")
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


def test_only_the_api_is_exported(libpath: Path) -> None:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(libpath)], check=True, capture_output=True, text=True
    ).stdout
    symbols = {line.split()[-1] for line in out.splitlines() if line.split()[1] in "TDBR"}
    legacy = {"AddProbe", "getStatus", "DequeuePerfEvent", "cleanup"}
    assert legacy <= symbols
    assert all(s in legacy or s.startswith("tcpevent_") for s in symbols), symbols


def test_library_needs_only_libc_libbpf_libelf_zlib(libpath: Path) -> None:
    out = subprocess.run(["ldd", str(libpath)], check=True, capture_output=True, text=True).stdout
    needed = {line.split()[0] for line in out.splitlines() if "=>" in line}
    allowed = {"libc.so.6", "libbpf.so.1", "libelf.so.1", "libz.so.1"}
    if os.environ.get("TCPEVENT_ASAN"):  # make test-asan: the sanitizers' runtimes
        allowed |= {"libasan.so.8", "libubsan.so.1", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1"}
    assert needed <= allowed, needed - allowed
