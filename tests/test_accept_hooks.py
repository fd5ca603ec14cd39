"""The accept() hooks are attached only where needed, and can be left out.

While any syscall tracepoint is attached, every system call on the host goes
through the kernel's syscall-tracing path (`make bench` measures it with
benchmarks/syscalls.c). So by default the tracer has none: the release hook
(a cgroup program at the socket's last close, tcpevent_release) names the
owner of a passive socket reset before its process closed it, and the
accept() hooks are loaded only for accept events (or where the release hook
cannot be loaded). ``accept_hooks=False`` (Python),
``TCPEVENT_OPT_NO_ACCEPT_HOOKS`` (C), ``TCPEVENT_NO_ACCEPT_HOOKS=1`` (the
original ABI) and ``--no-accept-hooks`` (the CLI) forbid them: never loaded,
and accept events refused.
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
from liveness import PROMPTLY
from netutil import listener, set_reset_on_close, wait_until

import tcpevent
from tcpevent import _core

pytestmark = pytest.mark.bpf

HERE = Path(__file__).resolve().parent
ACCEPT_PROGRAMS = {"tcpevent_accept", "tcpevent_accept4"}
RELEASE = "tcpevent_release"


def reset_seen(sock: socket.socket) -> bool:
    """Whether the peer's reset has reached the socket (it reads ECONNRESET
    once: that consumes the socket's error, which the event still has)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


def reset_by_peer(tracer: tcpevent.Tracer, close_server: bool = True) -> tcpevent.TcpEvent:
    """Accept a connection, reset it from the client: the accepted side goes
    to TCP_CLOSE in softirq, never through this process's close(). Then
    close the accepted socket (or, ``close_server=False``, keep it open
    until the event came). Returns that side's event."""
    with listener() as ls:
        client = socket.create_connection(ls.getsockname())
        server, _ = ls.accept()
        port = server.getsockname()[1], server.getpeername()[1]
        set_reset_on_close(client)
        client.close()
        assert wait_until(lambda: reset_seen(server))
        events: list[tcpevent.TcpEvent] = []

        def arrived() -> bool:
            events.extend(tracer.dequeue_batch(4096, timeout=0))
            return any((e.sport, e.dport, e.kind) == (*port, "close") for e in events)

        if close_server:
            server.close()
        # A close held for a release that does not come is flushed by the
        # sweep within about two seconds.
        assert wait_until(arrived, timeout=10 * PROMPTLY)
        server.close()
    return next(e for e in events if (e.sport, e.dport, e.kind) == (*port, "close"))


def test_default_tracer_has_no_accept_hooks_and_names_the_reset_sides_closer() -> None:
    me = os.getpid()
    with tcpevent.Tracer() as tracer:
        held = bpfutil.program_names(me)
        assert {"tcpevent_state", RELEASE} <= held and not held & ACCEPT_PROGRAMS
        assert tracer.warnings == bpfutil.kernel_warnings()
        ev = reset_by_peer(tracer)
    # Reset in softirq, held until this process closed it: its owner.
    comm = Path(f"/proc/{me}/comm").read_text().strip()
    assert (ev.pid, ev.task, ev.error_name) == (me, comm, "ECONNRESET")
    assert ev.origin_pid == me


def test_python_option_leaves_the_hooks_out() -> None:
    me = os.getpid()
    with tcpevent.Tracer(events={"accept", "close"}):
        assert bpfutil.program_names(me) >= ACCEPT_PROGRAMS | {RELEASE}
    with tcpevent.Tracer(accept_hooks=False) as tracer:
        held = bpfutil.program_names(me)
        assert {"tcpevent_state", RELEASE} <= held and not held & ACCEPT_PROGRAMS
        assert tracer.warnings == bpfutil.kernel_warnings()
        ev = reset_by_peer(tracer)
        assert ev.pid == me  # the release hook still names it
        if not bpfutil.kernel_has_sweep():
            # What follows is the sweep's flush of a close held for a release
            # that does not come. With no sweep (before 5.13) it is told at
            # its release, by its closer (test_unseen_birth.py), as above.
            return
        # Never closed while the tracer waits: flushed, nobody known to own it.
        ev = reset_by_peer(tracer, close_server=False)
    assert (ev.pid, ev.task) == (0, "")
    assert ev.origin_pid == me and ev.error_name == "ECONNRESET"
    with tcpevent.Tracer(events={"accept", "close"}) as tracer:
        ev = reset_by_peer(tracer, close_server=False)
    assert ev.kind == "close" and ev.pid == me and ev.task  # the accept() hook named it


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
        _, err = proc.communicate(timeout=10 * PROMPTLY)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and err == bpfutil.kernel_stderr()
    assert {"tcpevent_state", RELEASE} <= held
    # The original ABI makes close events only: the release hook suffices.
    assert not held & ACCEPT_PROGRAMS


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


def release_links(pid: int) -> list[dict]:
    """The cgroup links (bpftool link) of the process's release hook."""
    ids = bpfutil.held_by(pid)["link_id"]
    return [
        link
        for link in bpfutil.bpftool("link", "show") or []
        if link["id"] in ids and link.get("attach_type") == "cgroup_inet_sock_release"
    ]


def test_the_syscall_hooks_are_attached_only_while_a_hooked_tracer_is_open() -> None:
    """The reason: every system call on the host pays while a syscall
    tracepoint has a program (make bench measures how much). So they are
    attached only by a tracer that makes accept events, and only while it
    is open; the default tracer has none, only the state-change tracepoint,
    the cgroup_mkdir one (it runs only when a cgroup is made:
    docs/containers.md) and the release hook on the cgroup v2 root."""
    me = os.getpid()
    syscall_hooks = {"sys_exit_accept4", "sys_exit_accept"}
    default = {"inet_sock_set_state", "cgroup_mkdir"}
    assert not attached_tracepoints(me)
    with tcpevent.Tracer(ports=[1]):
        assert attached_tracepoints(me) == default
        assert len(release_links(me)) == 1
    assert not attached_tracepoints(me) and not release_links(me)
    with tcpevent.Tracer(ports=[1], events={"accept", "close"}):
        assert attached_tracepoints(me) == {*default, *syscall_hooks}
    assert not attached_tracepoints(me)
    with tcpevent.Tracer(ports=[1], accept_hooks=False):
        assert attached_tracepoints(me) == default
    assert not attached_tracepoints(me)
