"""Reading container ids and pod uids from cgroup paths, and cgroup ids back
to paths.

The path shapes are those the runtimes and the kubelet make on real hosts
(docker, podman, containerd, CRI-O; systemd and cgroupfs drivers; kind and
other nested set-ups). The id -> path resolution runs against real cgroups
made under the cgroup v2 hierarchy, with both of its methods.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from nsutil import cgroup_root, mount

from tcpevent.cgroups import CgroupResolver, cgroup_dirs, cgroup_id_of, cgroup_path
from tcpevent.containers import container_id_of, find_container, pod_uid_of, short_id

ID = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b"
ID2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
UID = "2b7a4c1e-9f0d-4e3a-8b6c-5d1f0e2a3b4c"
UID_ = UID.replace("-", "_")
STATIC_UID = "6e7b5f4a3c2d1e0f9a8b7c6d5e4f3a2b"  # a static pod: its manifest's hash

# (path, container id, pod uid)
SHAPES = [
    # docker
    (f"/system.slice/docker-{ID}.scope", ID, None),
    (f"/docker/{ID}", ID, None),
    (f"/system.slice/docker-{ID}.scope/init.scope", ID, None),  # systemd in a container
    (f"/docker/{ID2}/docker/{ID}", ID, None),  # docker in docker: the inner one
    # podman
    (f"/libpod_parent/libpod-{ID}", ID, None),
    (f"/machine.slice/libpod-{ID}.scope", ID, None),
    (f"/machine.slice/libpod-{ID}.scope/container", ID, None),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope", ID, None),
    (f"/machine.slice/libpod-conmon-{ID}.scope", None, None),
    ("/libpod_parent/conmon", None, None),
    (f"/machine.slice/machine-libpod_pod_{ID2}.slice/libpod-{ID}.scope", ID, None),
    # containerd
    (
        "/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope",
        ID,
        UID,
    ),
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope", ID, UID),
    (
        "/kubepods.slice/kubepods-besteffort.slice/"
        f"kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope",
        ID,
        UID,
    ),
    (f"/default/{ID}", ID, None),  # ctr / nerdctl with cgroupfs
    (f"/system.slice/nerdctl-{ID}.scope", ID, None),
    # CRI-O
    (
        "/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope",
        ID,
        UID,
    ),
    (
        "/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope/container",
        ID,
        UID,
    ),
    (
        "/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID_}.slice/crio-conmon-{ID}.scope",
        None,
        UID,
    ),
    (f"/kubepods/burstable/pod{UID}/crio-{ID}", ID, UID),
    # kubelet's cgroupfs driver (docker or containerd underneath)
    (f"/kubepods/burstable/pod{UID}/{ID}", ID, UID),
    (f"/kubepods/besteffort/pod{UID}/{ID}", ID, UID),
    (f"/kubepods/pod{UID}/{ID}", ID, UID),  # guaranteed QoS
    (f"/kubepods/burstable/pod{UID}", None, UID),  # the pod itself, no container
    (f"/kubepods/burstable/pod{STATIC_UID}/{ID}", ID, STATIC_UID),
    # kind, k3s and other nested kubelets
    (f"/kubelet/kubepods/burstable/pod{UID}/{ID}", ID, UID),
    (
        "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
        f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope",
        ID,
        UID,
    ),
    (
        f"/docker/{ID2}/kubelet.slice/kubelet-kubepods.slice/"
        f"kubelet-kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope",
        ID,
        UID,
    ),
    (f"/kubepods.slice/kubepods-pod{UID}.slice/cri-containerd-{ID}.scope", ID, UID),  # dashes
    # not containers, not pods
    ("/", None, None),
    ("/user.slice/user-1000.slice/session-3.scope", None, None),
    ("/system.slice/ssh.service", None, None),
    ("/system.slice/containerd.service", None, None),
    (f"/pod{UID}/{ID}", ID, None),  # a pod-like name outside kubepods is not a pod
    (f"/docker/{ID[:63]}", None, None),  # too short
    (f"/docker/{ID}0", None, None),  # too long
    (f"/docker/{ID.upper()}", None, None),  # ids are lowercase
    (f"/system.slice/docker-{ID}.service", None, None),
    (f"/kubepods/burstable/pod{UID[:-1]}/x", None, None),
]


@pytest.mark.parametrize(("path", "container", "pod"), SHAPES, ids=range(len(SHAPES)))
def test_path_shapes(path: str, container: str | None, pod: str | None) -> None:
    assert container_id_of(path) == container
    assert pod_uid_of(path) == pod


def test_empty_and_none() -> None:
    for value in (None, ""):
        assert container_id_of(value) is None
        assert pod_uid_of(value) is None


def test_short_id() -> None:
    assert short_id(ID) == ID[:12] == "4f3c2b1a0e9d"


# ---- against real cgroups --------------------------------------------------------------


@pytest.mark.bpf
@pytest.mark.parametrize("use_handles", [True, False], ids=["handles", "walk"])
def test_resolver_finds_paths_and_remembers_removed_ones(use_handles: bool) -> None:
    with cgroup_root() as top:
        a = top.child("a")
        b = a.child("b")
        gone = top.child("gone-unseen")
        gone_id = gone.id
        os.rmdir(gone.dir)
        r = CgroupResolver(use_handles=use_handles, walk_interval=0)
        assert r.path(b.id) == b.path
        assert r.path(a.id) == a.path
        assert r.path(cgroup_id_of("/")) == "/"
        assert r.method == ("handles" if use_handles else "walk")
        # Removed after it was seen: still known. Removed before: unknown.
        os.rmdir(b.dir)
        assert r.path(b.id) == b.path
        assert r.path(gone_id) is None
        assert r.path(0) is None
        # A fresh resolver never saw b.
        assert CgroupResolver(use_handles=use_handles, walk_interval=0).path(b.id) is None
        # A cgroup made after the first lookups is found.
        c = a.child("c")
        assert r.path(c.id) == c.path
        r.close()


@pytest.mark.bpf
def test_resolver_cache_is_bounded() -> None:
    with cgroup_root() as top:
        kids = [top.child(f"k{i}") for i in range(5)]
        r = CgroupResolver(cache_size=3, walk_interval=0)
        for k in kids:
            assert r.path(k.id) == k.path
        assert len(r._cache) == 3  # the least recently used went out
        os.rmdir(kids[0].dir)
        assert r.path(kids[0].id) is None  # evicted, then removed: unknown
        assert r.path(kids[4].id) == kids[4].path


@pytest.mark.bpf
def test_walk_is_rate_limited_on_misses() -> None:
    with cgroup_root() as top:
        r = CgroupResolver(use_handles=False, walk_interval=3600)
        assert r.path(top.id) == top.path  # the first miss walks
        late = top.child("late")
        assert r.path(late.id) is None  # a second walk so soon is not made
        r.walk_interval = 0
        assert r.path(late.id) == late.path


@pytest.mark.bpf
def test_without_cap_dac_read_search_the_mount_is_walked() -> None:
    """open_by_handle_at() needs CAP_DAC_READ_SEARCH: without it, the same answers."""
    with cgroup_root() as top:
        kid = top.child("kid")
        code = (
            "import sys; from tcpevent.cgroups import CgroupResolver; r = CgroupResolver(); "
            f"print(r.path({kid.id}), r.method)"
        )
        out = subprocess.run(
            ["setpriv", "--bounding-set=-dac_read_search", sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert out == [kid.path, "walk"]
        same = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
        assert same == [kid.path, "handles"]


@pytest.mark.bpf
def test_process_wide_resolver_and_cgroup_dirs() -> None:
    with cgroup_root() as top:
        kid = top.child("kid")
        assert cgroup_path(kid.id) == kid.path
        index = dict(cgroup_dirs(mount()))
        assert index[kid.id] == kid.path and index[top.id] == top.path
        assert index[os.stat(mount()).st_ino] == "/"


@pytest.mark.bpf
def test_find_container_by_id_or_prefix() -> None:
    with cgroup_root() as top:
        outer = top.child(f"libpod-{ID}")
        outer.child("container")  # below it: covered by the subtree
        top.child(f"libpod-conmon-{ID2}")  # not a container
        k8s = top.child(f"kubepods-pod{UID_}.slice").child(f"cri-containerd-{ID2}.scope")
        for given in (ID, ID[:12], ID[:5].upper(), f" podman://{ID}"):
            found = find_container(given)
            assert found.container_id == ID
            assert found.paths == (outer.path,)
        assert find_container(f"containerd://{ID2[:20]}").paths == (k8s.path,)
        with pytest.raises(LookupError, match="no cgroup"):
            find_container("fedcba9876")
        with pytest.raises(ValueError, match="hex digits"):
            find_container("not-an-id")
        with pytest.raises(ValueError, match="hex digits"):
            find_container(ID + "0")
        # Two containers whose ids share a prefix: ambiguous, both named.
        twin = top.child(f"docker-{ID[:8]}{'0' * 56}.scope")
        with pytest.raises(LookupError, match="ambiguous") as err:
            find_container(ID[:8])
        assert ID in str(err.value) and f"{ID[:8]}{'0' * 56}" in str(err.value)
        assert find_container(ID[:10]).container_id == ID
        os.rmdir(twin.dir)


def test_id_zero_is_never_looked_up() -> None:
    r = CgroupResolver(use_handles=False)
    assert r.path(0) is None
    assert r._last_walk == -float("inf")  # no walk was made for it
