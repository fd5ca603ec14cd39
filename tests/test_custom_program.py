"""A BPF object file passed to AddProbe / Tracer(program=...) is loaded
instead of the built-in program (docs/custom-programs.md)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import bpfutil
import pytest
from nativeutil import NativeTracer
from netutil import connection, listener
from procutil import check_pair

import tcpevent

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "pid": "pid",
    "uid": "uid",
    "task": "task",
    "saddr": "saddr",
    "sport": "sport",
    "daddr": "daddr",
    "dport": "dport",
    "rx": "rx_bytes",
    "tx": "tx_bytes",
    "segs_out": "segs_out",
    "segs_in": "segs_in",
    "time": "time_ns",
}


@pytest.fixture(scope="module", params=bpfutil.builds())
def builtin_copy(compile_bpf, request) -> Path:
    """The built-in program's source, compiled by the test itself: the
    default build (where the kernel has bpf_rdonly_cast()), and the portable
    one the library falls back to without it (csrc/bpf/kernel_read.h)."""
    return compile_bpf(ROOT / "csrc" / "bpf" / "tcp.bpf.c", *bpfutil.build_defines(request.param))


@pytest.mark.bpf
def test_legacy_addprobe_loads_an_object_file(build_c, libpath, builtin_copy) -> None:
    driver = build_c(
        ROOT / "tests" / "support" / "c" / "legacy_driver.c", "legacy_driver_custom", "-ldl"
    )
    proc = subprocess.run(
        [str(driver), str(libpath), "addprobe", str(builtin_copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "status=1" in proc.stdout
    # A path is not "program text": no notice.
    assert proc.stderr == bpfutil.kernel_stderr()


@pytest.mark.bpf
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_custom_object_gives_correct_events(builtin_copy, family) -> None:
    with listener(family) as probe:
        port = probe.getsockname()[1]
    with NativeTracer(program=str(builtin_copy)) as tracer:
        conn = connection(family, client_sends=300, server_sends=7000)
        ports = {conn.client.port, conn.server.port}
        events = tracer.collect(
            lambda evs: len([e for e in evs if e["sport"] in ports]) >= 2, timeout=5
        )
    check_pair(events, conn, KEYS)
    assert port not in {e["sport"] for e in events}  # a closed listener is no connection


@pytest.mark.bpf
def test_custom_object_attributes_a_reset_passive_side(builtin_copy) -> None:
    """The server side of a connection the client resets ends in softirq:
    only the accept() hook can name its owner."""
    with NativeTracer(program=str(builtin_copy), pids=[os.getpid()]) as tracer:
        conn = connection(socket.AF_INET, client_sends=10, server_sends=10, reset=True)
        events = tracer.collect(lambda evs: len(evs) >= 2, timeout=5)
    server = [e for e in events if e["sport"] == conn.server.port]
    assert len(server) == 1 and server[0]["pid"] == os.getpid()


@pytest.mark.bpf
def test_a_program_of_the_first_record_layout_still_works(compile_bpf) -> None:
    """Records grow by appending: a program built with the first layout's
    112-byte record is loaded, and its events read the newer fields as 0."""
    program = compile_bpf(ROOT / "tests" / "support" / "bpf" / "v1_layout.bpf.c")
    with NativeTracer(program=str(program)) as tracer:
        conn = connection(client_sends=300, server_sends=200)
        pair = {conn.client.port, conn.server.port}

        def ours(evs: list[dict]) -> list[dict]:
            return [e for e in evs if {e["sport"], e["dport"]} == pair]

        events = ours(tracer.collect(lambda evs: len(ours(evs)) >= 2, timeout=5))
        stats = tracer.stats()
        warning = tracer.warnings()
    assert warning == "" and stats["malformed"] == 0
    assert len(events) == 2, events
    for e in events:
        assert e["kind"] == 0 and e["family"] == socket.AF_INET  # a close
        assert e["saddr"] == e["daddr"] == "127.0.0.1"
        assert e["pid"] in (0, os.getpid())
        for newer in ("cgroup_id", "netns", "handshake_ns", "accept_wait_ns", "error"):
            assert e[newer] == 0, (newer, e)
        assert e["direction"] == 0


@pytest.mark.bpf
def test_a_program_of_the_second_record_layout_still_works(compile_bpf) -> None:
    """A program built with the second layout's 144-byte record is loaded:
    its own fields arrive, the health fields of the third read 0."""
    program = compile_bpf(ROOT / "tests" / "support" / "bpf" / "v2_layout.bpf.c")
    with NativeTracer(program=str(program)) as tracer:
        conn = connection(client_sends=300, server_sends=200)
        pair = {conn.client.port, conn.server.port}

        def ours(evs: list[dict]) -> list[dict]:
            return [e for e in evs if {e["sport"], e["dport"]} == pair]

        events = ours(tracer.collect(lambda evs: len(ours(evs)) >= 2, timeout=5))
        stats = tracer.stats()
        warning = tracer.warnings()
    assert warning == "" and stats["malformed"] == 0
    assert len(events) == 2, events
    for e in events:
        assert e["kind"] == 0 and e["netns"] == 4242, e  # a close, with its own field
        for newer in ("retrans_segs", "first_retrans_ns", "resets_sent", "drops", "reason"):
            assert e[newer] == 0, (newer, e)
        assert e["cause"] == 0


@pytest.mark.bpf
def test_the_tracer_says_which_build_it_loaded(builtin_copy) -> None:
    """The built-in program's build this kernel loads (the default one where
    it has bpf_rdonly_cast(), else the portable one), or "custom"."""
    with tcpevent.Tracer(ports=[1]) as tracer:
        assert tracer.build == bpfutil.builds()[0]
    with tcpevent.Tracer(ports=[1], program=str(builtin_copy)) as tracer:
        assert tracer.build == "custom"
