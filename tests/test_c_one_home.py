"""The C side keeps one home for each constant and helper (issue 18): the
literals and the copies that were replaced do not come back.

Read as text: comments (and in the library, string literals) are left out,
so a sentence that names a number is not a use of it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
#: Kernel types as the kernel lays them out: not ours to name.
NOT_OURS = {"csrc/bpf/vmlinux_min.h"}


def code(path: Path, strings: bool = False) -> str:
    """A C file without its comments and (unless asked) string literals."""
    text = re.sub(r"/\*.*?\*/", " ", path.read_text(), flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return text if strings else re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)


def sources(*roots: Path, strings: bool = False) -> dict[str, str]:
    """Relative path -> code, of every C file under the roots."""
    paths = (p for root in roots for p in sorted(root.rglob("*.[ch]")))
    return {
        str(p.relative_to(ROOT)): code(p, strings)
        for p in paths
        if str(p.relative_to(ROOT)) not in NOT_OURS
    }


LIBRARY = sources(CSRC)
DRIVERS = sources(ROOT / "tests" / "support" / "c", ROOT / "benchmarks", strings=True)

# (what must not appear, the files allowed to have it, where it lives now)
ONCE = [
    (r"\b65536u?\b", {"csrc/include/tcpevent_record.h"}, "TCPEVENT_DEFAULT_*"),
    (
        r"\b4u?\s*<<\s*20\b",
        # the sock_diag receive buffer's bound is another 4 MiB
        {"csrc/include/tcpevent_record.h", "csrc/sockdiag.h"},
        "TCPEVENT_DEFAULT_RING_SIZE",
    ),
    (
        r"#define\s+\w*(?:COMM|TASK)\w*_LEN\s+\d",
        {"csrc/include/tcpevent_record.h"},
        "TCPEVENT_COMM_LEN",
    ),
    (r"\bPROCOWNER_COMM_LEN\b", set(), "TCPEVENT_COMM_LEN"),
    (r"\bfamily\s*[!=]=\s*(?:2|10)\b", set(), "AF_INET, AF_INET6"),
    (r"\bstates\s*=\s*1u?\s*<<", set(), "TCPEVENT_STATE_BIT()"),
    (r"\bmax_entries,\s*\d{3,}", set(), "TCPEVENT_DEFAULT_* in the BPF program's maps"),
    (r"\bSYS_futex\b", {"csrc/sync.h"}, "te_futex_wait(), te_futex_wake_all()"),
    (r"\bsigfillset\b", {"csrc/sync.h"}, "te_thread_start_masked()"),
    (r"\bSYS_capget\b", {"csrc/privileges.c"}, "privileges.c"),
    (r"\bte_fail\(\s*-(?:E[A-Z]|errno\b)", set(), "te_fail() takes a positive errno (error.h)"),
    (r"\bstatic\b[^;{]*\bbump\(", set(), "te_bump() (sync.h)"),
    (r"\binet_pton\b", set(), "the parser's raw addresses (sockdiag.h)"),
    (r"\bstrto[dfl]\w*\(", {"csrc/env.c"}, "te_env_u32() (env.h), both libraries'"),
    (
        r"\bint\s+\w*cmp_u\d+\(|DEFINE_CMP\(",
        {"csrc/sorted.c", "csrc/sorted.h"},
        "te_cmp_u*() (sorted.h)",
    ),
    (r"\bbsearch\(", {"csrc/sorted.c"}, "te_sorted_has() (sorted.h)"),
]


@pytest.mark.parametrize("pattern, allowed, home", ONCE, ids=[home for _, _, home in ONCE])
def test_library_literal_has_one_home(pattern: str, allowed: set[str], home: str) -> None:
    found = sorted(name for name, text in LIBRARY.items() if re.search(pattern, text))
    assert set(found) <= allowed, f"{pattern!r} in {found}: use {home}"


def test_bpf_program_sizes_its_maps_with_the_library_defaults() -> None:
    program = LIBRARY["csrc/bpf/tcp.bpf.c"]
    for name in ("TCPEVENT_DEFAULT_MAX_SOCKETS", "TCPEVENT_DEFAULT_RING_SIZE"):
        assert re.search(rf"max_entries,\s*{name}\b", program), name


def test_drivers_load_the_six_calls_through_one_header() -> None:
    header = "benchmarks/legacy_calls.h"
    found = sorted(
        name
        for name, text in DRIVERS.items()
        if name != header
        and re.search(r"\bdlsym\([^;]*(?:AddProbe|DequeuePerfEvent|cleanup)", text)
    )
    assert found == [], f"dlsym() of a legacy call outside {header}: {found}"
    users = sorted(name for name, text in DRIVERS.items() if "legacy_calls_open(" in text)
    assert users == [
        "benchmarks/consumer.c",
        "benchmarks/legacy_calls.h",
        "tests/support/c/legacy_driver.c",
        "tests/support/c/reliability_driver.c",
    ]
