"""The original calls under every awkward use: bad programs, repeated
and out-of-order calls, cleanup() from a signal handler, many consumers.

Each scenario runs in its own process (tests/support/c/legacy_driver.c, or a
ctypes script), so a crash would be caught as a crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bpfutil
import pytest
from liveness import PROMPTLY
from netutil import wait_until
from unprivileged import run_unprivileged

HERE = Path(__file__).resolve().parent
BCC_TEXT = "int kprobe__tcp_set_state(struct pt_regs *ctx) { return 0; }\n"


@pytest.fixture(scope="module")
def driver(legacy_driver: Path) -> Path:
    return legacy_driver


def run(driver: Path, libpath: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(driver), str(libpath), *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "DONE" in proc.stdout
    return proc


@pytest.mark.bpf
@pytest.mark.parametrize("program", [None, "", "   \n"], ids=["NULL", "empty", "blank"])
def test_no_program_loads_the_builtin_quietly(driver, libpath, program) -> None:
    args = ["addprobe"] + ([] if program is None else [program])
    proc = run(driver, libpath, *args)
    assert "status=1" in proc.stdout
    assert proc.stderr == bpfutil.kernel_stderr()


@pytest.mark.bpf
@pytest.mark.parametrize("text", [BCC_TEXT, "garbage that is not a program"])
def test_program_text_loads_the_builtin_with_one_notice(driver, libpath, text) -> None:
    proc = run(driver, libpath, "addprobe", text)
    assert "status=1" in proc.stdout
    notice, *rest = proc.stderr.splitlines(keepends=True)
    assert "not compiled" in notice and "built-in" in notice, proc.stderr
    assert "".join(rest) == bpfutil.kernel_stderr(), proc.stderr


@pytest.mark.bpf
def test_missing_object_path_is_an_error_and_attaches_nothing(driver, libpath) -> None:
    proc = run(driver, libpath, "addprobe", "/nonexistent/dir/tracer.bpf.o")
    assert "status=0" in proc.stdout
    assert "AddProbe failed" in proc.stderr
    assert "/nonexistent/dir/tracer.bpf.o" in proc.stderr
    assert "No such file or directory" in proc.stderr


@pytest.mark.bpf
def test_non_bpf_file_is_an_error_and_attaches_nothing(driver, libpath, tmp_path) -> None:
    bogus = tmp_path / "not-bpf.o"
    bogus.write_text("this is not an ELF file\n")
    proc = run(driver, libpath, "addprobe", str(bogus))
    assert "status=0" in proc.stdout
    assert "AddProbe failed" in proc.stderr
    assert "not a valid BPF ELF object" in proc.stderr
    assert str(bogus) in proc.stderr


@pytest.mark.parametrize(
    "text, first", [("hello, world", "Array: hello, world"), (None, "Array: (null)")]
)
def test_print_char_array_prints_as_the_original(driver, libpath, text, first) -> None:
    proc = run(driver, libpath, "print", *([] if text is None else [text]))
    assert proc.stdout.splitlines() == [first, "Array: ", "DONE"]


@pytest.mark.bpf
def test_second_addprobe_changes_nothing(driver, libpath) -> None:
    proc = run(driver, libpath, "addprobe-twice", "/nonexistent.o")
    assert proc.stdout.count("status=1") == 2
    assert "already attached" in proc.stderr


@pytest.mark.bpf
def test_cleanup_before_addprobe_and_dequeue_without_tracer(driver, libpath) -> None:
    proc = run(driver, libpath, "cleanup-first")
    lines = proc.stdout.splitlines()
    assert lines[0] == "status=0"
    assert lines[1].startswith("before-addprobe zeroed=1")
    assert float(lines[1].split("seconds=")[1]) < PROMPTLY
    assert lines[2] == "status=1"


@pytest.mark.bpf
def test_cleanup_twice_then_dequeue_returns_zeroed_at_once(driver, libpath) -> None:
    proc = run(driver, libpath, "cleanup-twice")
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["status=1", "status=0"]
    assert lines[2].startswith("after-cleanup zeroed=1")
    assert float(lines[2].split("seconds=")[1]) < PROMPTLY
    assert lines[3] == "status=1"  # AddProbe attaches again after cleanup


@pytest.mark.bpf
def test_cleanup_from_sigint_handler_releases_dequeue_and_detaches(driver, libpath) -> None:
    proc = subprocess.Popen(
        [str(driver), str(libpath), "sigint"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "status=1"
        assert proc.stdout.readline().strip() == "READY"
        ours = bpfutil.held_by(proc.pid)
        assert ours["prog_id"] and ours["link_id"], ours
        assert ours["prog_id"] <= bpfutil.kernel_ids()["prog_id"]
        time.sleep(0.2)  # let the main thread block in DequeuePerfEvent
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        returned = proc.stdout.readline().strip()
        assert time.monotonic() - t0 < PROMPTLY
        assert returned == "RETURNED status=0"
        assert proc.stdout.readline().startswith("after-cleanup zeroed=1")
        # Still alive, and nothing of ours is loaded or attached any more.
        assert proc.poll() is None
        left = bpfutil.held_by(proc.pid)
        assert not left["prog_id"] and not left["link_id"], left
        # The kernel frees a detached program after an RCU grace period.
        assert wait_until(lambda: not bpfutil.owned_by_kernel(ours), timeout=10 * PROMPTLY)
        assert bpfutil.count_threads(proc.pid) == 1  # the poller is gone
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(5) == 0
    finally:
        proc.kill()


@pytest.mark.bpf
def test_seed_example_exits_within_a_second_on_sigint(build_c, libpath) -> None:
    exe = build_c(
        HERE.parent / "examples" / "c" / "monitor.c",
        "monitor_sigint",
        f'-DSOFILE="{libpath}"',
        "-Wno-format",
        "-ldl",
    )
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: bpfutil.held_by(proc.pid)["link_id"], timeout=10 * PROMPTLY)
        ours = bpfutil.held_by(proc.pid)
        time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(PROMPTLY) == signal.SIGINT  # the example exits with signum
        assert time.monotonic() - t0 < PROMPTLY
    finally:
        proc.kill()
    assert wait_until(lambda: not bpfutil.owned_by_kernel(ours), timeout=10 * PROMPTLY)


THREADS_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    sys.path.insert(0, sys.argv[2])
    from netutil import connection
    from tcpevent import abi

    lib = abi.load_library(sys.argv[1])
    n = int(sys.argv[3])
    lib.AddProbe(None)
    while not lib.getStatus():
        time.sleep(0.05)
    got = [[] for _ in range(4)]

    def consume(i):
        while True:
            ev = lib.DequeuePerfEvent()
            if ev.family == 0:
                return
            got[i].append((ev.SPT, ev.DPT))

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    ours = set()
    for _ in range(n):
        c = connection(client_sends=10, server_sends=10)
        ours |= {(c.client.port, c.server.port), (c.server.port, c.client.port)}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = [p for g in got for p in list(g) if p in ours]
        if len(seen) >= len(ours):
            break
        time.sleep(0.05)
    time.sleep(0.2)  # time for a duplicate to show up, if there were one
    lib.cleanup()
    for t in threads:
        t.join(5)
    print(json.dumps({
        "alive": [t.is_alive() for t in threads],
        "ours": sorted(ours),
        "per_thread": [[p for p in g if p in ours] for g in got],
    }))
    """
)


@pytest.mark.bpf
def test_four_threads_dequeue_each_event_exactly_once(libpath) -> None:
    n = 300
    proc = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT, str(libpath), str(HERE / "support"), str(n)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["alive"] == [False] * 4  # cleanup() released every thread
    delivered = [tuple(p) for g in result["per_thread"] for p in g]
    ours = {tuple(p) for p in result["ours"]}
    assert len(ours) == 2 * n
    assert sorted(delivered) == sorted(ours)  # each exactly once
    assert sum(1 for g in result["per_thread"] if g) >= 2  # really shared


@pytest.mark.bpf
def test_without_privileges_the_error_names_the_capability(libpath) -> None:
    proc = run_unprivileged(libpath, "lib.AddProbe(None)", 'print("status=%d" % lib.getStatus())')
    assert proc.returncode == 0, proc.stderr
    assert "status=0" in proc.stdout and "alive" in proc.stdout
    for text in (proc.stderr, proc.stdout):
        assert "CAP_BPF" in text and "CAP_PERFMON" in text
        assert "sudo" in text and "setcap" in text
    assert proc.stderr.count("AddProbe failed") == 1
    assert os.geteuid() == 0
