"""libudpEvent.so's ABI is the original's, byte for byte: size, offsets, exports."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

from tcpevent import udp_abi

LEGACY = {"AddProbe", "DequeuePerfEvent", "cleanup", "getStatus"}

#: The original's udpEvent/common.h, byte for byte: what clients compiled against.
CONTRACT = {
    "family": 0,
    "pid": 2,
    "UserId": 6,
    "EventTime": 10,
    "SPT": 18,
    "DPT": 20,
    "task": 22,
    "rx_b": 38,
    "tx_b": 46,
    "rxPkts": 54,
    "txPkts": 58,
    "SADDR": 62,
    "DADDR": 126,
}


def exported(path: Path) -> dict[str, str]:
    """Every symbol the library defines in its dynamic table, with its nm type."""
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return {line.split()[-1]: line.split()[-2] for line in out.splitlines() if line.strip()}


def test_c_layout_matches_contract(build_c) -> None:
    exe = build_c(Path(__file__).parent / "support" / "c" / "udp_layout.c", "udp_layout")
    layout = json.loads(subprocess.run([exe], check=True, capture_output=True).stdout)
    assert layout.pop("sizeof") == udp_abi.EVENT_SIZE == 190
    assert layout == CONTRACT
    assert list(udp_abi.OFFSETS) == list(CONTRACT)  # cffi's view: the same order
    assert udp_abi.OFFSETS == CONTRACT


def test_ctypes_layout_matches_contract() -> None:
    assert ctypes.sizeof(udp_abi.UdpEventT) == 190
    offsets = {
        name: getattr(udp_abi.UdpEventT, name).offset for name, _ in udp_abi.UdpEventT._fields_
    }
    assert offsets == CONTRACT


def test_contract_offsets_are_packed() -> None:
    sizes = {name: ctypes.sizeof(ctype) for name, ctype in udp_abi.UdpEventT._fields_}
    names = list(CONTRACT)
    for prev, name in zip(names, names[1:]):
        assert CONTRACT[name] == CONTRACT[prev] + sizes[prev]
    assert CONTRACT["DADDR"] + 64 == 190


def test_load_library_types_the_four_calls() -> None:
    lib = udp_abi.load_library()
    assert lib.DequeuePerfEvent.restype is udp_abi.UdpEventT
    assert lib.AddProbe.argtypes == [] and lib.getStatus.restype is ctypes.c_uint


def test_only_the_four_calls_and_the_udpevent_api_are_exported() -> None:
    symbols = exported(udp_abi.library_path())
    assert {s for s in symbols if not s.startswith("udpevent_")} == LEGACY, symbols
    assert {"udpevent_open", "udpevent_dequeue_batch", "udpevent_close"} <= set(symbols)
    assert set(symbols.values()) == {"T"}, symbols


def test_no_exit_or_abort_is_linked() -> None:
    """Library code never ends its host process."""
    out = subprocess.run(
        ["nm", "-D", "--undefined-only", str(udp_abi.library_path())],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    undefined = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    assert not undefined & {"exit", "_exit", "abort", "_Exit"}, undefined
