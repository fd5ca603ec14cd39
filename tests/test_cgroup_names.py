"""Names that outlive their cgroup (issue 20): every event carries its
cgroup's path, container id and pod uid, learnt as the cgroup was made (the
``cgroup_mkdir`` hook, docs/containers.md), however short the cgroup's life.

Real podman containers (runc, a busybox root filesystem, ``--network=none``:
loopback only) whose events are dequeued only after ``podman rm``, when
their cgroup is gone and could no longer be looked up by its id; and the
core's ``tcpevent_cgroup_path()`` itself, on cgroups the tests make under
the cgroup v2 mount. The tracepoint sees the whole host: every check keeps
to the tests' own ports and cgroups.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import time
from dataclasses import dataclass
from pathlib import Path

import bpfutil
import pytest
from liveness import PROMPTLY
from nsutil import _remove_tree as remove_tree
from nsutil import cgroup_root, mount
from podmanutil import podman, remove
from test_containers import collect, pair

import tcpevent
from tcpevent._cgroup_names import NAMES_MAX, PATH_LEN, core_cgroup_path
from tcpevent._core import ffi, lib
from tcpevent.cgroups import CgroupResolver
from tcpevent.cli.render import format_json
from tcpevent.exporter.metrics import container_of

pytestmark = pytest.mark.bpf

ROOT = Path(__file__).resolve().parent.parent
#: Liveness bound for the events of a container that is gone.
EVENTS_WAIT = 10 * PROMPTLY


@dataclass
class Finished:
    """A container that ran, and was removed, while a tracer was open."""

    id: str
    port: int
    cgroup: str | None  # its cgroup path, if the test saw it alive
    cgroup_id: int | None  # that cgroup's inode


def _run(rootfs: Path, tmp_path: Path, name: str, script: str, watch: bool) -> Finished:
    """Run ``script`` in a container (``-d``), wait for it to exit, remove
    it. ``watch``: look up its cgroup while it lives (podman inspect)."""
    port = random.randint(10000, 30000)
    cidfile = tmp_path / f"{name}.cid"
    remove(name)
    cgroup = cgroup_id = None
    try:
        podman(
            *("run", "-d", "--name", name, "--runtime", "runc", "--cidfile", str(cidfile)),
            *("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"),
            *("--network=none", "--rootfs", str(rootfs)),
            *("/bin/sh", "-c", script.format(port=port)),
        )
        cid = cidfile.read_text().strip()
        if watch:
            found = podman("inspect", "--format", "{{.State.CgroupPath}}", name).stdout.strip()
            assert found, "podman did not say where the container's cgroup is"
            cgroup, cgroup_id = found, os.stat(f"{mount()}{found}").st_ino
        assert podman("wait", name).stdout.strip() == "0"
    finally:
        remove(name)
    assert len(cid) == 64
    return Finished(cid, port, cgroup, cgroup_id)


def _events(tracer: tcpevent.Tracer, port: int, want: int) -> list[tcpevent.TcpEvent]:
    """The closes of the connection on ``port``: both sides."""
    events: list[tcpevent.TcpEvent] = []
    deadline = time.monotonic() + EVENTS_WAIT
    while len(events) < want and time.monotonic() < deadline:
        events += [
            ev for ev in tracer.dequeue_batch(256, timeout=0.2) if port in (ev.sport, ev.dport)
        ]
    return events


def _check_named(events: list[tcpevent.TcpEvent], c: Finished) -> None:
    assert len(events) == 2, events
    assert sorted(ev.sport == c.port for ev in events) == [False, True]
    for ev in events:
        assert ev.container_id == c.id, (ev.cgroup, c.id)
        assert ev.cgroup is not None and ev.cgroup.endswith(f"/libpod-{c.id}"), ev.cgroup
        assert ev.pod_uid is None
        if c.cgroup is not None:
            assert ev.cgroup == c.cgroup
            assert ev.cgroup_id == c.cgroup_id
        # Gone: nobody could look its id up any more.
        assert not os.path.exists(f"{mount()}{ev.cgroup}")
        assert CgroupResolver().path(ev.cgroup_id) is None


def test_a_container_read_after_podman_rm(rootfs: Path, tmp_path: Path) -> None:
    """Its loopback connection closes 2 s before it exits; its events are
    dequeued after ``podman rm`` and name its cgroup and its id."""
    script = (
        "nc -l -p {port} -e /bin/cat & usleep 300000; "
        "echo hello | nc 127.0.0.1 {port}; wait; sleep 2"
    )
    with tcpevent.Tracer() as tracer:
        c = _run(rootfs, tmp_path, f"tcpevent-names-{os.getpid()}", script, watch=True)
        events = _events(tracer, c.port, 2)
    _check_named(events, c)
    # The names travel with the event.
    for ev in events:
        again = pickle.loads(pickle.dumps(ev))
        assert again == ev and again.cgroup == ev.cgroup and again.container_id == c.id
        assert ev.cgroup_path == ev.cgroup and ev.to_dict()["cgroup_path"] == ev.cgroup
        row = json.loads(format_json(ev))
        assert (row["cgroup"], row["container_id"], row["pod_uid"]) == (ev.cgroup, c.id, None)
        assert container_of(ev) == c.id[:12]


def test_a_container_that_lives_50_ms(rootfs: Path, tmp_path: Path) -> None:
    """A container whose whole work takes about 50 ms: connect, send, exit."""
    script = "nc -l -p {port} -e /bin/cat & usleep 20000; echo hi | nc 127.0.0.1 {port}"
    with tcpevent.Tracer() as tracer:
        c = _run(rootfs, tmp_path, f"tcpevent-brief-{os.getpid()}", script, watch=False)
        events = _events(tracer, c.port, 2)
    _check_named(events, c)


# ---- the core's table ---------------------------------------------------------


def _core_path(tracer: tcpevent.Tracer, cgroup_id: int) -> tuple[int, str]:
    buf = ffi.new("char[]", PATH_LEN)
    rc = lib.tcpevent_cgroup_path(tracer._handle, cgroup_id, buf, PATH_LEN)
    return rc, ffi.string(buf).decode() if rc == 0 else ""


def _wait_known(tracer: tcpevent.Tracer, cgroup_id: int) -> tuple[int, str]:
    deadline = time.monotonic() + EVENTS_WAIT
    while True:
        rc, path = _core_path(tracer, cgroup_id)
        if rc == 0 or time.monotonic() > deadline:
            return rc, path
        time.sleep(0.05)


def test_core_names_cgroups_made_before_and_after_it_opened() -> None:
    with cgroup_root() as top:
        before = top.child("before")
        with tcpevent.Tracer() as tracer:
            assert _core_path(tracer, before.id) == (0, before.path)  # the walk's
            assert _core_path(tracer, os.stat(mount()).st_ino) == (0, "/")
            after = top.child("after")
            assert _wait_known(tracer, after.id) == (0, after.path)  # the hook's
            after.dir.rmdir()
            assert _core_path(tracer, after.id) == (0, after.path)  # gone, still known
            # Unknown ids, and a buffer too small.
            assert _core_path(tracer, 0)[0] == -errno.ENOENT
            assert _core_path(tracer, (1 << 63) + 12345)[0] == -errno.ENOENT
            small = ffi.new("char[]", 2)
            assert lib.tcpevent_cgroup_path(tracer._handle, before.id, small, 2) == -errno.ERANGE
            assert core_cgroup_path(tracer._handle, before.id) == before.path


def test_the_table_forgets_the_cgroups_learnt_longest_ago_first() -> None:
    """At most TCPEVENT_CGROUP_NAMES_MAX ids are kept: past that, each new
    one replaces the one learnt longest ago, and every other stays found
    (its bucket's chain intact). 500 more cgroups than the table holds are
    made (and removed at once: their names outlive them); the host's own
    mkdirs meanwhile only push older ones out sooner."""
    extra = 500
    with cgroup_root() as top, tcpevent.Tracer() as tracer:
        first = top.child("first")
        assert _wait_known(tracer, first.id) == (0, first.path)
        made: list[tuple[int, str]] = []
        for i in range(NAMES_MAX + extra):
            c = top.child(f"c{i}")
            c.dir.rmdir()
            made.append((c.id, c.path))
            if i % 1024 == 1023:  # the poller keeps up: no record is lost
                assert _wait_known(tracer, c.id) == (0, c.path)
        assert _wait_known(tracer, made[-1][0]) == (0, made[-1][1])
        assert tracer.stats.dropped_kernel == 0
        assert _core_path(tracer, first.id)[0] == -errno.ENOENT
        oldest = made[:extra]
        assert [cid for cid, _ in oldest if _core_path(tracer, cid)[0] != -errno.ENOENT] == []
        kept = made[-(NAMES_MAX - 2 * extra) :]
        assert [_core_path(tracer, cid) for cid, _ in kept] == [(0, path) for _, path in kept]


def test_events_of_cgroups_removed_before_they_are_read() -> None:
    """Two processes in cgroups of the test's own hold a loopback
    connection; both cgroups are removed before its events are dequeued:
    the events still name them."""
    with cgroup_root() as top, tcpevent.Tracer() as tracer:
        server_cg, client_cg = top.child("server"), top.child("client")
        sides = list(pair(server_cg, client_cg, None))
        for cg in (server_cg, client_cg):
            remove_tree(cg.dir)
            assert not cg.dir.exists()
        found = collect(tracer, sides)
    for i, side in enumerate(sides):
        assert found[i].cgroup_id == side.cgroup.id
        assert found[i].cgroup == side.cgroup.path
        assert found[i].container_id is None


@pytest.mark.bpf
def test_a_custom_program_without_the_hook_still_works(compile_bpf) -> None:
    """An object without the mkdir hook (the second record layout's): it
    loads, and the core knows the cgroups of its start only."""
    program = compile_bpf(ROOT / "tests" / "support" / "bpf" / "v2_layout.bpf.c")
    with cgroup_root() as top:
        before = top.child("before")
        with tcpevent.Tracer(program=str(program)) as tracer:
            assert _core_path(tracer, before.id) == (0, before.path)
            after = top.child("after")
            time.sleep(0.5)
            assert _core_path(tracer, after.id)[0] == -errno.ENOENT
            # Its events still name a live cgroup (the resolver's way).
            assert tracer.warnings == ""


@pytest.mark.parametrize("build", bpfutil.builds())
def test_the_hook_in_each_build_of_the_program(compile_bpf, build: str) -> None:
    """The built-in program's source, in each build this kernel loads (the
    default one and the portable one), loaded as a custom object: its mkdir
    hook names a cgroup made after it opened, and nothing warns."""
    program = compile_bpf(ROOT / "csrc" / "bpf" / "tcp.bpf.c", *bpfutil.build_defines(build))
    with cgroup_root() as top, tcpevent.Tracer(program=str(program)) as tracer:
        made = top.child(f"made-{build}")
        assert _wait_known(tracer, made.id) == (0, made.path)
        assert tracer.warnings == ""
