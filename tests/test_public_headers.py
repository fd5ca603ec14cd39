"""The installed headers are exactly the public API: every function they
declare is exported by the library, and every function it exports is declared
in them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tcpevent import abi

INCLUDE = abi.library_path().parent.parent / "include"


def declared_functions(include: Path, pattern: str = "*.h") -> set[str]:
    """Functions declared (not defined inline) by the headers in ``include``
    (those matching ``pattern``), as the C preprocessor sees them, system
    headers left out."""
    source = "".join(f'#include "{h.name}"\n' for h in sorted(include.glob(pattern)))
    text = subprocess.run(
        ["cc", "-E", f"-I{include}", "-x", "c", "-"],
        input=source,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    ours, keep = [], False
    for line in text.splitlines():
        marker = re.match(r'# \d+ "([^"]+)"', line)
        if marker:
            keep = Path(marker.group(1)).parent == include
        elif keep and not line.startswith("#"):  # pragmas stay in the output
            ours.append(line)
    code = "\n".join(ours)
    code = re.sub(r"\)\s*\{[^{}]*\}", ");", code)  # an inline body: that is a definition
    while "{" in code:
        code = re.sub(r"\{[^{}]*\}", "", code)  # struct and enum bodies
    names, function_types = set(), set()
    for statement in code.split(";"):
        m = re.search(r"\b([A-Za-z_]\w*)\s*\((?:[^()]|\([^()]*\))*\)\s*$", statement)
        if m and re.match(r"\s*typedef\b", statement):
            function_types.add(m.group(1))  # typedef RET NAME(ARGS): a function type
        elif m and not re.match(r"\s*static\b", statement):
            names.add(m.group(1))
    for statement in code.split(";"):
        # A function declared from its type: "NAME_fn NAME;".
        m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s+([A-Za-z_]\w*)\s*", statement)
        if m and m.group(1) in function_types:
            names.add(m.group(2))
    return names


def exported_functions(lib: Path) -> set[str]:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(lib)], check=True, capture_output=True, text=True
    ).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()[1] == "T"}


def test_installed_headers_declare_exactly_the_exported_functions() -> None:
    assert sorted(p.name for p in INCLUDE.glob("*.h")) == [
        "common.h",
        "tcpevent.h",
        "tcpevent_conn.h",
        "tcpevent_legacy.h",
        "tcpevent_record.h",
        "udpevent.h",
        "udpevent_legacy.h",
        "udpevent_record.h",
    ]
    declared = declared_functions(INCLUDE) - declared_functions(INCLUDE, "udpevent*.h")
    exported = exported_functions(abi.library_path())
    assert {"AddProbe", "DequeuePerfEvent", "tcpevent_open", "tcpevent_connections"} <= declared
    assert declared - exported == set(), "declared, not exported"
    assert exported - declared == set(), "exported, not declared"


def test_udp_headers_declare_exactly_the_udpevent_api() -> None:
    """udpevent.h declares the udpevent_* API of libudpEvent.so; its four
    original calls are only typed (udpevent_legacy.h): their names are
    libtcpEvent.so's too, with other signatures, and both headers may be
    included in one program."""
    assert (INCLUDE / "udp" / "common.h").is_file()
    declared = declared_functions(INCLUDE, "udpevent*.h")
    exported = exported_functions(abi.library_path().parent / "libudpEvent.so")
    assert {"udpevent_open", "udpevent_dequeue_batch", "udpevent_close"} <= declared
    assert declared - exported == set(), "declared, not exported"
    assert exported - declared == {"AddProbe", "DequeuePerfEvent", "getStatus", "cleanup"}
