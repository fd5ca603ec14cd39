"""Whole-process behaviour: Ctrl-C, teardown, and an unprivileged process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bpfutil
import netutil
import pytest
from accounting import assert_accounted
from liveness import PROMPTLY

import tcpevent

pytestmark = pytest.mark.bpf

#: The default tracer's programs (as root): the accept() hooks are loaded
#: only for accept events; the release hook replaces them (docs/attribution.md).
OUR_PROGRAMS = bpfutil.tcp_programs()


def held_prog_ids(pid: int) -> set[int]:
    """Ids of the BPF programs (and links' programs) a process holds fds of."""
    return {i for info in bpfutil.fdinfos(pid) for i in bpfutil.prog_ids(info)}


def attached_prog_ids(pid: int) -> set[int]:
    """Ids of the programs behind the BPF links a process holds."""
    return {
        i for info in bpfutil.fdinfos(pid) if "link_type:" in info for i in bpfutil.prog_ids(info)
    }


def loaded_programs() -> dict[int, str]:
    return {p["id"]: p.get("name", "") for p in bpfutil.bpftool("prog", "show")}


CHILD = """
import sys, tcpevent
try:
    with tcpevent.Tracer(ports=[1]) as tracer:
        print("ready", flush=True)
        if sys.argv[1] == "iterate":
            for ev in tracer:
                pass
        else:
            tracer.dequeue()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.stdin.readline()  # stay alive while the parent looks at us
"""


def test_nested_hit_program_waits_in_standby(churn: Path) -> None:
    """Loaded, not attached, until the kernel reports a skipped run of the
    main program: only then is the nested-hit program's cost on every hit
    paid (docs/reliability.md). A churn's events all come (or, rarely, are
    counted in missed), and the nested program is attached if and only if
    the kernel skipped the main one meanwhile (rare here; under load it
    happens). A kernel that does not count skips (before 5.12) would never
    wake it: there it is attached from the start."""
    standby = bpfutil.kernel_counts_skips()
    with tcpevent.Tracer() as tracer:
        loaded = loaded_programs()
        ids = attached_prog_ids(os.getpid())
        attached = {loaded.get(i) for i in ids}
        # (tcpevent_sweep is never attached: the poller runs it.)
        waiting = {"tcpevent_state_nested"} if standby else set()
        assert attached == OUR_PROGRAMS - waiting - {"tcpevent_sweep", "tcpevent_census"}
        (main,) = (i for i in ids if loaded.get(i) == "tcpevent_state")
        run = subprocess.run(
            [str(churn), "-n", "20000", "-t", "2"], capture_output=True, text=True, check=True
        )
        churn_pid = json.loads(run.stdout.splitlines()[-1])["pid"]
        got = 0

        def drained() -> bool:
            nonlocal got
            got += sum(e.pid == churn_pid for e in tracer.dequeue_batch(4096, timeout=0))
            return got + tracer.stats.missed >= 40_000

        assert netutil.wait_until(drained, timeout=10 * PROMPTLY)
        assert_accounted(got, tracer.stats.missed, 40_000, tracer.stats)

        def standby_matches_skips() -> bool:
            """The poller looks at the skip count once a second."""
            nested = "tcpevent_state_nested" in {
                loaded.get(i) for i in attached_prog_ids(os.getpid())
            }
            return nested == (not standby or bpfutil.recursion_misses(main) > 0)

        assert netutil.wait_until(standby_matches_skips, timeout=10 * PROMPTLY)


@pytest.mark.parametrize("how", ["iterate", "dequeue"])
def test_ctrl_c_interrupts_and_detaches(how: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "ready\n"
        held = held_prog_ids(child.pid)
        loaded = loaded_programs()
        assert {loaded.get(i) for i in held} == OUR_PROGRAMS
        time.sleep(0.2)  # well inside the blocking wait
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline() == "interrupted\n"
        assert time.monotonic() - start < PROMPTLY
        # Leaving the with block detached and unloaded everything it had.
        assert held_prog_ids(child.pid) == set()
        assert netutil.wait_until(lambda: not held & set(loaded_programs()), timeout=10 * PROMPTLY)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=5) == 0
    finally:
        child.kill()
        child.wait()


def test_uncaught_ctrl_c_exits_promptly() -> None:
    code = (
        "import tcpevent\n"
        "with tcpevent.Tracer(ports=[1]) as t:\n"
        "    print('ready', flush=True)\n"
        "    for ev in t: pass\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.1)
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=5)
    finally:  # a child that did not stop must not stay attached
        child.kill()
        child.wait()
    assert time.monotonic() - start < PROMPTLY
    assert "KeyboardInterrupt" in err
    assert child.returncode != 0


UNPRIVILEGED = """
import json, os, sys
import tcpevent
# The interpreter lives under /root: start as root, then become nobody,
# which drops every capability.
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
try:
    tcpevent.Tracer()
except tcpevent.TracerPermissionError as exc:
    print(json.dumps({"errno": exc.errno, "message": str(exc),
                      "permission": isinstance(exc, PermissionError)}))
"""


def test_unprivileged_process_gets_permission_error() -> None:
    out = subprocess.run(
        [sys.executable, "-c", UNPRIVILEGED], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["permission"] is True
    assert result["errno"] in (1, 13)
    message = result["message"]
    assert "CAP_BPF" in message and "CAP_PERFMON" in message
    assert "root" in message and "setcap" in message  # the remedy
