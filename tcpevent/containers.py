"""Containers and pods named by cgroup v2 paths.

Container runtimes put each container in a cgroup whose name carries the
container's id, and the kubelet puts each pod's containers under a cgroup
named after the pod's uid. This module reads them back from a path relative
to the cgroup v2 mount (``TcpEvent.cgroup``), without asking any runtime:

==========================  =======================================================
runtime, cgroup driver      path of a container's cgroup
==========================  =======================================================
docker, systemd             ``/system.slice/docker-<id>.scope``
docker, cgroupfs            ``/docker/<id>``
podman, cgroupfs            ``/libpod_parent/libpod-<id>``
podman, systemd             ``/machine.slice/libpod-<id>.scope`` (``.../container`` below it)
containerd (CRI), systemd   ``/kubepods.slice/kubepods-burstable.slice/``
                            ``kubepods-burstable-pod<uid_with_underscores>.slice/``
                            ``cri-containerd-<id>.scope``
CRI-O, systemd              ``.../kubepods-pod<uid>.slice/crio-<id>.scope``
kubelet, cgroupfs           ``/kubepods/burstable/pod<uid>/<id>``
                            (``/kubepods/pod<uid>/<id>`` for guaranteed pods)
==========================  =======================================================

A container id is the 64 lowercase hex digits that ``docker ps --no-trunc``,
``podman ps --no-trunc`` and Kubernetes' ``containerID`` (past its
``<runtime>://``) show. The innermost component that carries one wins
(``/docker/<outer>/docker/<inner>`` is ``<inner>``); a monitor's scope is not
a container (``crio-conmon-<id>.scope``, ``libpod-conmon-<id>.scope``). A pod
uid is a UUID (a static pod's is 32 hex digits without dashes), given with
dashes whether the path spells it with dashes or with underscores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tcpevent.cgroups import CACHE_SIZE, cgroup2_mount, cgroup_dirs, cgroup_path

__all__ = [
    "CgroupNames",
    "ContainerCgroups",
    "container_id_of",
    "find_container",
    "pod_uid_of",
    "short_id",
]

#: A bare container id (cgroupfs drivers), or one after a runtime's prefix
#: (``docker-``, ``cri-containerd-``, ``crio-``, ``libpod-``...) with or
#: without systemd's ``.scope``.
_CONTAINER = re.compile(r"(?:(?P<prefix>[\w.@-]+)-)?(?P<id>[0-9a-f]{64})(?:\.scope)?")
#: A conmon (the runtime's monitor process) scope is not the container.
_NOT_CONTAINERS = ("conmon",)

_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32}"
#: systemd driver: ``kubepods[-<qos>]-pod<uid>.slice`` (any prefix naming kubepods).
_POD_SLICE = re.compile(rf"(?P<prefix>[\w.@-]*kubepods[\w.@-]*)-pod(?P<uid>{_UID})\.slice")
#: cgroupfs driver: ``pod<uid>`` below a ``kubepods`` cgroup.
_POD_DIR = re.compile(rf"pod(?P<uid>{_UID})")


def _component_id(name: str) -> str | None:
    """The container id a single path component names, if it names one."""
    m = _CONTAINER.fullmatch(name)
    if m is None:
        return None
    prefix = m.group("prefix") or ""
    if prefix.endswith(_NOT_CONTAINERS):
        return None
    return m.group("id")


@lru_cache(maxsize=CACHE_SIZE)
def container_id_of(path: str | None) -> str | None:
    """The 64-hex id of the container whose cgroup ``path`` is (or is below),
    or None."""
    if not path:
        return None
    for name in reversed(path.split("/")):
        found = _component_id(name)
        if found is not None:
            return found
    return None


@lru_cache(maxsize=CACHE_SIZE)
def pod_uid_of(path: str | None) -> str | None:
    """The uid of the Kubernetes pod whose cgroup ``path`` is in (with
    dashes), or None."""
    if not path:
        return None
    names = path.split("/")
    for i in range(len(names) - 1, -1, -1):
        m = _POD_SLICE.fullmatch(names[i])
        if m is None:
            m = _POD_DIR.fullmatch(names[i])
            if m is None or not any("kubepods" in name for name in names[:i]):
                continue
        return m.group("uid").replace("_", "-")
    return None


def short_id(container_id: str) -> str:
    """The first 12 hex digits, as ``docker ps`` shows an id."""
    return container_id[:12]


@dataclass(frozen=True)
class ContainerCgroups:
    """A running container's cgroups: its full id, and the outermost cgroup
    v2 directories named after it, relative to the mount (usually one; a
    container's own processes may sit in cgroups below them)."""

    container_id: str
    paths: tuple[str, ...]


_SCHEME = re.compile(r"^[a-z0-9.+-]+://")


def _normalize(text: str) -> str:
    wanted = _SCHEME.sub("", text.strip().lower())
    if not re.fullmatch(r"[0-9a-f]{1,64}", wanted):
        raise ValueError(
            f"container {text!r}: a container id is 1 to 64 hex digits "
            "(the full id or a unique prefix of it, as docker or podman shows it)"
        )
    return wanted


def find_container(id_or_prefix: str, mount: str | Path | None = None) -> ContainerCgroups:
    """The cgroups of the container whose id is ``id_or_prefix`` or starts
    with it (``"docker://..."``-style ids too), found under the cgroup v2
    mount. Raises ``ValueError`` for text that is not an id, ``LookupError``
    when no container has such an id or more than one does (the message
    lists them)."""
    wanted = _normalize(id_or_prefix)
    root = cgroup2_mount() if mount is None else Path(mount)
    if root is None:
        raise LookupError(f"container {id_or_prefix!r}: no cgroup v2 hierarchy is mounted")
    named: dict[str, list[str]] = {}
    for _, rel in cgroup_dirs(root):
        found = _component_id(rel.rsplit("/", 1)[-1])
        if found is not None and found.startswith(wanted):
            named.setdefault(found, []).append(rel)
    if not named:
        raise LookupError(
            f"container {id_or_prefix!r}: no cgroup under {root} is named after such a "
            "container (is it running, on this host?)"
        )
    if len(named) > 1:
        ids = ", ".join(sorted(named))
        raise LookupError(
            f"container {id_or_prefix!r} is ambiguous: {len(named)} containers match "
            f"({ids}); give more of the id"
        )
    ((full, paths),) = named.items()
    paths.sort()
    outermost = [p for p in paths if not any(p.startswith(q + "/") for q in paths)]
    return ContainerCgroups(full, tuple(outermost))


class CgroupNames:
    """``cgroup``, ``container_id`` and ``pod_uid`` of a socket, read from
    its ``cgroup_id`` on access (``Connection``, ``UdpFlow``): every answer
    comes from the process-wide caches (:func:`tcpevent.cgroups.cgroup_path`
    and this module's). ``TcpEvent`` overrides ``cgroup``: the path its
    tracer stored in it (docs/containers.md); ``container_id`` and
    ``pod_uid`` are read from ``cgroup`` either way."""

    __slots__ = ()
    cgroup_id: int | None

    @property
    def cgroup(self) -> str | None:
        """The path of ``cgroup_id`` under the cgroup v2 mount
        (``"/libpod_parent/libpod-<id>"``; ``"/"`` for the root), or None if
        unknown: 0, or a cgroup removed before any of its sockets was looked
        up. Resolved on first access, then cached per id (docs/containers.md)."""
        return cgroup_path(self.cgroup_id or 0)

    @property
    def container_id(self) -> str | None:
        """The 64-hex id of the container the socket was made in, read from
        :attr:`cgroup` (docker, containerd, CRI-O, podman, systemd scopes);
        None outside containers."""
        return container_id_of(self.cgroup)

    @property
    def pod_uid(self) -> str | None:
        """The uid of the Kubernetes pod the socket was made in, read from
        :attr:`cgroup` (the kubelet's ``kubepods`` cgroups), with dashes; or None."""
        return pod_uid_of(self.cgroup)

    def cgroup_names(self) -> dict[str, str | None]:
        """``{"cgroup": ..., "container_id": ..., "pod_uid": ...}``."""
        path = self.cgroup
        return {"cgroup": path, "container_id": container_id_of(path), "pod_uid": pod_uid_of(path)}
