"""What BPF objects exist: per process (its fds) and in the kernel (bpftool)."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from typing import Any

from procutil import without_preload

KINDS = {"bpf-prog": "prog_id", "bpf-map": "map_id", "bpf_link": "link_id"}


def kernel_has_rdonly_cast() -> bool:
    """Whether this kernel has the bpf_rdonly_cast() kfunc (Linux 6.2+), which
    the built-in program's default build needs (csrc/bpf/kernel_read.h): its name
    is among the strings of the kernel's BTF."""
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        return b"\0bpf_rdonly_cast\0" in f.read()


def builds() -> list[str]:
    """The builds of the built-in program this kernel can load: the default
    one and the portable one, or the portable one only."""
    return ["default", "portable"] if kernel_has_rdonly_cast() else ["portable"]


def build_defines(build: str | None = None) -> list[str]:
    """clang's -D flags for a build of the built-in program: ``build``, or
    the one the library loads on this kernel."""
    if build is None:
        build = builds()[0]
    return ["-DTCPEVENT_PORTABLE"] if build == "portable" else []


#: Set, libudpEvent.so loads the portable build of the UDP program only
#: (csrc/udp/udp_bpf.c): its tests on a kernel that loads both.
UDP_PORTABLE_ENV = "UDPEVENT_PORTABLE"


def loaded_build(pid: int, program: str, marker: str) -> str:
    """Which build of a built-in program process ``pid`` holds, by the
    name (bpftool's, from BTF, or the kernel's first 15 characters) of one
    of its programs, which
    calls helper ``marker`` in both builds (else it is not the built-in
    one): the
    portable build reads the kernel with bpf_probe_read_kernel(); the
    default one with bpf_rdonly_cast(), which the verifier turns into no
    call at all, and plain loads (csrc/bpf/kernel_read.h)."""
    held = held_by(pid)["prog_id"]
    (prog,) = (i for i in held if name_of("prog", i) in (program, program[:15]))
    text = subprocess.run(
        ["bpftool", "prog", "dump", "xlated", "id", str(prog)],
        capture_output=True,
        text=True,
        check=True,
        env=without_preload(),
    ).stdout
    if f"call {marker}" not in text:
        raise RuntimeError(f"program {prog} is not the built-in one:\n{text}")
    return "portable" if "call bpf_probe_read_kernel" in text else "default"


def kernel_version() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    assert m, platform.release()
    return int(m.group(1)), int(m.group(2))


def udp_default_loads() -> bool | None:
    """Whether this kernel loads the UDP program's default build: it needs
    bpf_rdonly_cast() (6.2) and bpf_get_current_pid_tgid(), _uid_gid() and
    _comm() in cgroup_skb programs, which 6.18 has and 6.12 has not
    (bpf_get_current_uid_gid(): "program of this type cannot use helper",
    which bpftool's helper probe does not read as missing, so it cannot
    tell). None between: not measured."""
    if not kernel_has_rdonly_cast() or kernel_version() <= (6, 12):
        return False
    return True if kernel_version() >= (6, 18) else None


def udp_builds() -> list[str]:
    """The builds of the UDP program this kernel loads for certain."""
    return ["default", "portable"] if udp_default_loads() else ["portable"]


def held_by(pid: int) -> dict[str, set[int]]:
    """The ids of the BPF programs, maps and links a process holds fds to."""
    held: dict[str, set[int]] = {key: set() for key in KINDS.values()}
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except FileNotFoundError:
            continue
        for kind, key in KINDS.items():
            if target == f"anon_inode:{kind}":
                for line in info.splitlines():
                    if line.startswith(key + ":"):
                        held[key].add(int(line.split()[1]))
    return held


def fdinfos(pid: int) -> Iterator[str]:
    """The text of /proc/PID/fdinfo of each fd the process still holds."""
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                yield f.read()
        except OSError:
            continue


#: Links of an attached default built-in tracer (as root): the state-change
#: program, then the release hook on the cgroup v2 root (attached last: a
#: process holding both is wholly attached). The accept() hooks, for accept
#: events, come between them.
TRACER_LINKS = 2


def attached(pid: int, links: int = TRACER_LINKS) -> bool:
    """The process holds ``links`` BPF links: its tracer is wholly attached
    (counted, not named: older kernels show no tp_name for a perf link)."""
    return sum("link_id:" in info for info in fdinfos(pid)) >= links


def prog_ids(fdinfo: str) -> set[int]:
    """The program ids an fdinfo text names (a program's, or a link's)."""
    return {int(line.split()[1]) for line in fdinfo.splitlines() if line.startswith("prog_id:")}


def bpftool(*args: str, check: bool = True) -> Any:
    """What ``bpftool ARGS --json`` prints, parsed; None if it prints nothing."""
    out = subprocess.run(
        ["bpftool", *args, "--json"],
        capture_output=True,
        text=True,
        check=check,
        env=without_preload(),
    ).stdout
    return json.loads(out) if out else None


def _ids(what: str) -> set[int]:
    return {item["id"] for item in bpftool(what, "show") or []}


def kernel_ids() -> dict[str, set[int]]:
    """Every BPF program, map and link the kernel has now (bpftool)."""
    return {"prog_id": _ids("prog"), "map_id": _ids("map"), "link_id": _ids("link")}


def count_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def count_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def owned_by_kernel(ids: dict[str, set[int]]) -> dict[str, set[int]]:
    """Which of these programs, maps and links the kernel still has."""
    now = kernel_ids()
    return {key: ids[key] & now[key] for key in ids if ids[key] & now[key]}


def name_of(what: str, ident: int) -> str | None:
    """The name of BPF ``what`` ("prog" or "map") ``ident``; None if it is gone."""
    shown = bpftool(what, "show", "id", str(ident), check=False)
    return shown.get("name") if shown else None


def kernel_counts_skips() -> bool:
    """Whether the running kernel counts skipped program runs
    (``recursion_misses`` in ``struct bpf_prog_info``: Linux 5.12+)."""
    return kernel_version() >= (5, 12)


def kernel_has_sweep() -> bool:
    """Whether the library's sweep of stale entries runs here: it needs
    ``bpf_for_each_map_elem()`` (Linux 5.13+; docs/kernels.md). By the
    version, not by what the library found: the tests check that."""
    return kernel_version() >= (5, 13)


#: The TCP tracer's warning where the kernel has no sweep (csrc/loader.c).
NO_SWEEP_WARNING = (
    "closes the kernel never showed are counted only when their socket's memory is reused: "
    "this kernel has no bpf_for_each_map_elem() (Linux 5.13+) for the sweep"
)


def kernel_warnings() -> str:
    """The TCP tracer's warnings where nothing but the kernel limits it:
    none, or before 5.13 that it has no sweep."""
    return "" if kernel_has_sweep() else NO_SWEEP_WARNING


def kernel_stderr() -> str:
    """What the legacy calls print on stderr where nothing but the kernel
    limits the tracer: its warnings, a line "tcpevent: ..." each."""
    warnings = kernel_warnings()
    return f"tcpevent: {warnings}\n" if warnings else ""


def tcp_programs() -> set[str]:
    """The programs a default TCP tracer loads here: the sweep only where
    the kernel can run it."""
    programs = {
        "tcpevent_state",
        "tcpevent_state_nested",
        "tcpevent_release",
        "tcpevent_sweep",
        "tcpevent_census",  # run once at attach, never attached (census.c)
        "tcpevent_cgroup_mkdir",  # the names of cgroups as they are made
    }
    return programs if kernel_has_sweep() else programs - {"tcpevent_sweep"}


def recursion_misses(prog_id: int) -> int:
    """How many times the kernel skipped program ``prog_id`` because it was
    already running on the CPU (bpftool shows the count once it is not 0)."""
    misses: int = bpftool("prog", "show", "id", str(prog_id)).get("recursion_misses", 0)
    return misses


def program_names(pid: int) -> set[str]:
    """The names of the BPF programs a process holds."""
    return {n for i in held_by(pid)["prog_id"] if (n := name_of("prog", i))}


def map_named(pid: int, name: str, excluding: AbstractSet[int] = frozenset()) -> int:
    """The id of the BPF map called ``name`` among those ``pid`` holds, but
    for the ids in ``excluding`` (exactly one)."""
    found = [m for m in held_by(pid)["map_id"] - excluding if name_of("map", m) == name]
    assert len(found) == 1, f"{pid} holds {len(found)} maps named {name!r}"
    return found[0]


def map_entries(map_id: int) -> list[dict[str, object]]:
    """The entries of a map, as bpftool dumps them (BTF-formatted if it can)."""
    entries: list[dict[str, object]] = bpftool("map", "dump", "id", str(map_id)) or []
    return entries


def owned_entries(map_id: int, pid: int) -> list[dict[str, Any]]:
    """The entries of a socket table (struct sock_owner values) owned by ``pid``."""
    return [e for e in map_entries(map_id) if _value(e).get("owner", {}).get("pid") == pid]


def _value(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry's BTF-formatted value; {} for one bpftool could not read (an
    entry deleted while the dump ran)."""
    value: dict[str, Any] = entry.get("formatted", {}).get("value", {})
    return value


def map_keys(map_id: int) -> set[int]:
    """The keys of a map of 64-bit keys (bpftool's BTF-formatted dump)."""
    return {int(e["formatted"]["key"]) for e in map_entries(map_id)}  # type: ignore[index]


def entries_of(map_id: int, pid: int) -> list[dict[str, Any]]:
    """The entries of a socket table owned by ``pid``, or, not owned yet (a
    passive socket before its close), set up by it (``origin``)."""
    out = []
    for e in map_entries(map_id):
        owner = _value(e).get("owner", {}).get("pid")
        if owner == pid or (owner == 0 and _value(e).get("origin", {}).get("pid") == pid):
            out.append(e)
    return out


def map_update(map_id: int, key: list[str], value: list[str]) -> None:
    """Write one entry of a map (bytes as bpftool dumps them: "0x2a", ...)."""
    subprocess.run(
        ["bpftool", "map", "update", "id", str(map_id), "key", "hex"]
        + [b.removeprefix("0x") for b in key]
        + ["value", "hex"]
        + [b.removeprefix("0x") for b in value],
        check=True,
        capture_output=True,
    )
