"""The accept() hooks can be left out, through every interface.

While any syscall tracepoint is attached, every system call on the host goes
through the kernel's syscall-tracing path (`make bench` measures it with
benchmarks/syscalls.c). ``accept_hooks=False`` (Python), ``TCPEVENT_OPT_NO_ACCEPT_HOOKS`` (C),
``TCPEVENT_NO_ACCEPT_HOOKS=1`` (the original ABI) and ``--no-accept-hooks``
(the CLI) leave them out: not loaded, not attached. The price is the owner of
a passive socket that ends in softirq before its process closed it.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bpfutil
import pytest
from netutil import listener, set_reset_on_close, wait_until

import tcpevent
from tcpevent import _core

pytestmark = pytest.mark.bpf

HERE = Path(__file__).resolve().parent
ACCEPT_PROGRAMS = {"tcpevent_accept", "tcpevent_accept4"}


def reset_by_peer(tracer: tcpevent.Tracer) -> tcpevent.TcpEvent:
    """Accept a connection, reset it from the client: the accepted side goes
    to TCP_CLOSE in softirq, never through this process's close(). Returns
    that side's event."""
    with listener() as ls:
        client = socket.create_connection(ls.getsockname())
        server, _ = ls.accept()
        port = server.getsockname()[1], server.getpeername()[1]
        set_reset_on_close(client)
        client.close()
        events: list[tcpevent.TcpEvent] = []

        def arrived() -> bool:
            events.extend(tracer.dequeue_batch(64, timeout=0))
            return any((e.sport, e.dport) == port for e in events)

        assert wait_until(arrived, timeout=5)
        server.close()
    return next(e for e in events if (e.sport, e.dport) == port)


def test_python_option_leaves_the_hooks_out_and_the_owner_unknown() -> None:
    me = os.getpid()
    with listener() as probe:
        port = probe.getsockname()[1]
    with tcpevent.Tracer(ports=[port]):
        assert bpfutil.program_names(me) >= ACCEPT_PROGRAMS
    with tcpevent.Tracer(accept_hooks=False) as tracer:
        held = bpfutil.program_names(me)
        assert "tcpevent_state" in held and not held & ACCEPT_PROGRAMS
        assert tracer.warnings == ""
        ev = reset_by_peer(tracer)
    assert (ev.pid, ev.task) == (0, "")  # nobody known to own it
    with tcpevent.Tracer() as tracer:
        ev = reset_by_peer(tracer)
    assert ev.pid == me and ev.task  # the accept() hook named this process


def test_python_option_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="accept_hooks must be a bool, not str"):
        tcpevent.Tracer(accept_hooks="no")  # type: ignore[arg-type]


def test_c_option_rejects_unknown_flags() -> None:
    ffi, lib = _core.ffi, _core.lib
    opts = ffi.new("struct tcpevent_options *")
    lib.tcpevent_options_init(opts)
    opts.flags = lib.TCPEVENT_OPT_NO_ACCEPT_HOOKS | 0x80
    out = ffi.new("struct tcpevent **")
    assert lib.tcpevent_open(opts, out) == -errno.EINVAL
    message = ffi.string(lib.tcpevent_last_error()).decode()
    assert message == "options.flags 0x81 has unknown bits 0x80"


LEGACY_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from tcpevent import abi

    lib = abi.load_library(sys.argv[1])
    lib.AddProbe(None)
    while not lib.getStatus():
        time.sleep(0.02)
    print("ATTACHED", flush=True)
    sys.stdin.readline()
    lib.cleanup()
    """
)


@pytest.mark.parametrize("value", ["1", "0"])
def test_legacy_environment_variable(libpath: Path, value: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LEGACY_SCRIPT, str(libpath)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TCPEVENT_NO_ACCEPT_HOOKS": value},
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ATTACHED"
        held = bpfutil.program_names(proc.pid)
        proc.stdin.write("\n")
        proc.stdin.flush()
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and err == ""
    assert "tcpevent_state" in held
    assert bool(held & ACCEPT_PROGRAMS) == (value == "0")


def test_cli_flag() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpevent", "--no-accept-hooks", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        attached = wait_until(
            lambda: proc.poll() is not None or "tcpevent_state" in bpfutil.program_names(proc.pid),
            timeout=30,
        )
        assert attached and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
        assert not bpfutil.program_names(proc.pid) & ACCEPT_PROGRAMS
    finally:
        proc.kill()
        proc.wait()


def attached_tracepoints(pid: int) -> set[str]:
    """The tracepoints the process has BPF programs attached to (bpftool perf)."""
    return {e["tracepoint"] for e in bpfutil.bpftool("perf", "show") or [] if e["pid"] == pid}


def test_the_syscall_hooks_are_attached_only_while_a_hooked_tracer_is_open() -> None:
    """The reason for the option: every system call on the host pays while a
    syscall tracepoint has a program (make bench measures how much). So they
    are attached only by a tracer that wants them, and only while it is open."""
    me = os.getpid()
    syscall_hooks = {"sys_exit_accept4", "sys_exit_accept"}
    assert not attached_tracepoints(me)
    with tcpevent.Tracer(ports=[1]):
        assert attached_tracepoints(me) == {"inet_sock_set_state", *syscall_hooks}
    assert not attached_tracepoints(me)
    with tcpevent.Tracer(ports=[1], accept_hooks=False):
        assert attached_tracepoints(me) == {"inet_sock_set_state"}
    assert not attached_tracepoints(me)
