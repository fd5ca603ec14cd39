"""setupBPF(): the original's synchronous AddProbe.

It attaches as AddProbe() does, then blocks until cleanup() is called (from
another thread, or a signal handler on its own thread) and returns 0; on
failure it returns -errno at once. However AddProbe() and setupBPF() calls
meet in one process, the tracer is loaded once. Each scenario runs in its
own process (tests/support/c/legacy_driver.c, or a ctypes script).
"""

from __future__ import annotations

import errno
import signal
import subprocess
import time
from pathlib import Path

import bpfutil
import pytest
from liveness import PROMPTLY
from netutil import wait_until
from unprivileged import run_unprivileged

pytestmark = pytest.mark.bpf

BCC_TEXT = "int kprobe__tcp_set_state(struct pt_regs *ctx) { return 0; }\n"
SERVING = "tcpevent: setupBPF: already attached; serving that tracer until cleanup()"


class Driver:
    """tests/support/c/legacy_driver.c running one scenario, read line by line."""

    def __init__(self, exe: Path, libpath: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(exe), str(libpath), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().rstrip("\n")

    def go_on(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[str, str]:
        """The rest of its output, once it exited with 0."""
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.proc.stdin.close()
        rc = self.proc.wait(30)
        out, err = self.proc.stdout.read(), self.proc.stderr.read()
        assert rc == 0, (rc, out, err)
        return out, err


def returned(line: str) -> dict[str, float]:
    """ "RETURNED seconds=S rc0=R ..." as numbers."""
    word, *fields = line.split()
    assert word == "RETURNED", line
    return {k: float(v) for k, v in (f.split("=") for f in fields)}


def one_tracer(pid: int) -> dict[str, set[int]]:
    """What pid holds, checked to be one tracer: one ring buffer, and no
    program loaded twice."""
    held = bpfutil.held_by(pid)
    assert held["prog_id"] and held["link_id"], held
    bpfutil.map_named(pid, "events")  # exactly one
    names = [bpfutil.name_of("prog", i) for i in held["prog_id"]]
    assert len(names) == len(set(names)), names
    return held


def freed(ours: dict[str, set[int]]) -> bool:
    """The kernel frees a detached program after an RCU grace period."""
    return wait_until(lambda: not bpfutil.owned_by_kernel(ours), timeout=5)


def test_blocks_until_cleanup_from_another_thread(legacy_driver: Path, libpath: Path) -> None:
    d = Driver(legacy_driver, libpath, "setupbpf", BCC_TEXT)
    try:
        assert d.line() == "status=1"
        assert d.line() == "blocking=1"  # still inside setupBPF()
        assert d.line() == "READY"
        ours = one_tracer(d.pid)
        kernel = bpfutil.kernel_ids()
        assert all(ours[k] <= kernel[k] for k in ours), (ours, kernel)
        d.go_on()  # cleanup() from the main thread
        r = returned(d.line())
        assert r["rc0"] == 0
        assert r["seconds"] < PROMPTLY  # from cleanup() to setupBPF() returning
        assert d.line() == "status=0"
        assert d.line().startswith("after-cleanup zeroed=1")
        assert d.line() == "CLEANED"
        left = bpfutil.held_by(d.pid)
        assert not left["prog_id"] and not left["link_id"] and not left["map_id"], left
        assert freed(ours), bpfutil.owned_by_kernel(ours)
        assert bpfutil.count_threads(d.pid) == 1  # setupBPF's and the poller are gone
        d.go_on()
        out, err = d.finish()
    finally:
        d.proc.kill()
    assert out.rstrip().endswith("DONE")
    # The text is accepted, not compiled: one notice, named after the call.
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tcpevent: setupBPF: the "), lines
    assert "not compiled" in lines[0] and "built-in" in lines[0]


def test_cleanup_in_a_signal_handler_on_its_own_thread(legacy_driver: Path, libpath: Path) -> None:
    """The handler interrupts setupBPF() on the thread it runs on."""
    d = Driver(legacy_driver, libpath, "setupbpf-sigint")
    try:
        assert d.line() == "READY"
        assert wait_until(lambda: bpfutil.held_by(d.pid)["link_id"], timeout=30)
        ours = bpfutil.held_by(d.pid)
        time.sleep(0.5)  # let it attach and sleep in setupBPF()
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGINT)
        line = d.line()
        assert time.monotonic() - t0 < PROMPTLY
        assert line == "RETURNED rc=0 status=0"
        out, err = d.finish()
    finally:
        d.proc.kill()
    assert out.rstrip().endswith("DONE") and err == ""
    assert freed(ours), bpfutil.owned_by_kernel(ours)


def test_missing_object_path_returns_the_error_at_once(legacy_driver: Path, libpath: Path) -> None:
    path = "/nonexistent/dir/tracer.bpf.o"
    d = Driver(legacy_driver, libpath, "setupbpf-fail", path)
    try:
        out, err = d.finish()  # returning at all: it did not serve
    finally:
        d.proc.kill()
    lines = out.splitlines()
    assert lines[0].startswith(f"rc={-errno.ENOENT} ") and lines[0].endswith(" status=0"), lines
    assert lines[1].startswith("error=") and path in lines[1]
    assert "No such file or directory" in lines[1]
    assert lines[-1] == "DONE"  # the process lives on
    assert err.count("setupBPF failed") == 1 and path in err, err


def test_without_privileges_returns_the_cause_at_once(libpath: Path) -> None:
    proc = run_unprivileged(
        libpath,
        "rc = lib.setupBPF(None)  # returning at all: it did not serve",
        'print("rc=%d status=%d" % (rc, lib.getStatus()))',
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"rc={-errno.EPERM} status=0", lines
    assert lines[-1] == "alive"
    for text in (lines[1], proc.stderr):
        assert "CAP_BPF" in text and "CAP_PERFMON" in text
    assert proc.stderr.count("setupBPF failed") == 1, proc.stderr


def test_with_addprobe_the_tracer_is_loaded_once(legacy_driver: Path, libpath: Path) -> None:
    """setupBPF() after AddProbe() serves AddProbe's tracer (twice at once
    here), and an AddProbe() meanwhile changes nothing."""
    d = Driver(legacy_driver, libpath, "addprobe-setupbpf", "/nonexistent.o")
    try:
        assert d.line() == "status=1"
        assert d.line() == "ATTACHED"
        ours = one_tracer(d.pid)
        d.go_on()
        assert d.line() == "blocking=1"
        assert d.line() == "READY"
        assert bpfutil.held_by(d.pid) == ours  # nothing loaded besides
        d.go_on()
        r = returned(d.line())
        assert (r["rc0"], r["rc1"]) == (0, 0) and r["seconds"] < PROMPTLY
        assert d.line() == "status=0"
        out, err = d.finish()
    finally:
        d.proc.kill()
    assert out.rstrip().endswith("DONE")
    lines = err.splitlines()
    assert lines.count(SERVING) == 2, lines
    rest = [line for line in lines if line != SERVING]
    assert len(rest) == 1 and rest[0].endswith("; this call changes nothing"), lines
    assert freed(ours), bpfutil.owned_by_kernel(ours)


def test_two_at_once_load_once(legacy_driver: Path, libpath: Path) -> None:
    d = Driver(legacy_driver, libpath, "setupbpf-race")
    try:
        assert d.line() == "status=1"
        assert d.line() == "blocking=1"
        assert d.line() == "READY"
        ours = one_tracer(d.pid)
        d.go_on()
        r = returned(d.line())
        assert (r["rc0"], r["rc1"]) == (0, 0) and r["seconds"] < PROMPTLY
        assert d.line() == "status=0"
        out, err = d.finish()
    finally:
        d.proc.kill()
    assert out.rstrip().endswith("DONE")
    assert err.splitlines() == [SERVING]  # the one that did not load
    assert freed(ours), bpfutil.owned_by_kernel(ours)
