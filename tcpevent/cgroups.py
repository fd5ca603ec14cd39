"""cgroup v2 ids and paths, both ways.

A socket's cgroup id (``TcpEvent.cgroup_id``) is the id of the kernfs node
of the cgroup v2 directory it was made in, which is that directory's inode
number (on 64-bit kernels the whole 64-bit id; ids are never reused). Paths
are given relative to the cgroup v2 mount: ``/sys/fs/cgroup`` on unified
hosts, ``/sys/fs/cgroup/unified`` on hybrid ones.

From an id back to its path, :func:`cgroup_path`: the kernel opens the
directory by its file handle (``open_by_handle_at``, a kernfs handle is the
id itself; needs ``CAP_DAC_READ_SEARCH``), and without that privilege the
mount is walked into an inode-to-path index, again on a miss but at most
once per :data:`WALK_INTERVAL`. Answers are kept in a bounded cache, so a
path seen once is still known after its cgroup is removed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

__all__ = [
    "CACHE_SIZE",
    "WALK_INTERVAL",
    "CgroupResolver",
    "cgroup2_mount",
    "cgroup_dirs",
    "cgroup_id_of",
    "cgroup_path",
]

#: Most cgroup ids whose answer (a path, or "gone") is remembered.
CACHE_SIZE = 16384
#: Shortest time between two walks of the cgroup mount (seconds).
WALK_INTERVAL = 1.0


@lru_cache(maxsize=1)
def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (the first mount of it in
    ``/proc/self/mountinfo``), or None if it is not."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if fields[sep + 1] == "cgroup2":
                    return Path(fields[4].replace("\\040", " "))
    except (OSError, ValueError):
        pass
    return None


def cgroup_id_of(path: str | os.PathLike[str]) -> int:
    """The cgroup id of a cgroup v2 directory: an absolute path under the
    mount (``/sys/fs/cgroup/unified/my.slice``) or one relative to it
    (``/my.slice``, ``my.slice``). Raises ``ValueError`` naming the path if
    it is not a cgroup v2 directory."""
    text = os.fspath(path)
    mount = cgroup2_mount()
    if mount is None:
        raise ValueError(f"cgroup {text!r}: no cgroup v2 hierarchy is mounted")
    given = Path(text)
    inside = given if given.is_absolute() and _is_under(given, mount) else None
    candidate = inside or mount / text.lstrip("/")
    try:
        st = os.stat(candidate)
    except OSError as exc:
        raise ValueError(f"cgroup {text!r}: {candidate}: {exc.strerror}") from None
    if not (candidate / "cgroup.procs").exists():
        raise ValueError(f"cgroup {text!r}: {candidate} is not a cgroup v2 directory")
    return st.st_ino


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


# ---- from an id to its path ------------------------------------------------------------

#: include/linux/exportfs.h: a kernfs file handle is the node's 64-bit id.
_FILEID_KERNFS = 0xFE
_HANDLE = struct.Struct("=IiQ")  # struct file_handle {handle_bytes, handle_type, f_handle}
_DELETED = " (deleted)"


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no dynamic libc
        return None


class CgroupResolver:
    """cgroup v2 id -> path relative to ``mount`` (``"/a/b"``; the root is
    ``"/"``), cached.

    ``use_handles``: ask the kernel by file handle first (exact, one system
    call, but needs ``CAP_DAC_READ_SEARCH``; without it the first refusal
    turns to walking for good). The walk reads every directory under the
    mount; one is made on a miss, at most once per ``walk_interval``
    seconds, so that ids of cgroups that are gone cost little. The cache
    holds ``cache_size`` ids, least recently used out first: an id resolved
    once keeps its path after its cgroup is removed. Thread-safe.
    """

    def __init__(
        self,
        mount: str | os.PathLike[str] | None = None,
        *,
        use_handles: bool = True,
        cache_size: int = CACHE_SIZE,
        walk_interval: float = WALK_INTERVAL,
    ) -> None:
        found = cgroup2_mount() if mount is None else Path(mount)
        self.mount: Path | None = found
        self.cache_size = cache_size
        self.walk_interval = walk_interval
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, str | None] = OrderedDict()
        self._last_walk = -float("inf")
        self._mount_fd = -1
        self._libc = _libc() if use_handles else None
        #: How ids are resolved now: "handles", "walk", or "none" (no mount).
        self.method = "none" if found is None else "handles" if self._libc else "walk"

    def close(self) -> None:
        """Release the mount's file descriptor (the cache stays)."""
        with self._lock:
            if self._mount_fd >= 0:
                os.close(self._mount_fd)
                self._mount_fd = -1

    def __del__(self) -> None:
        if getattr(self, "_mount_fd", -1) >= 0:
            os.close(self._mount_fd)

    def path(self, cgroup_id: int) -> str | None:
        """The path of cgroup ``cgroup_id`` under the mount, or None if it
        is not known: 0, gone before it was ever looked up, or not in this
        hierarchy."""
        if cgroup_id <= 0 or self.mount is None:
            return None
        with self._lock:
            if cgroup_id in self._cache:
                self._cache.move_to_end(cgroup_id)
                return self._cache[cgroup_id]
            if self.method == "handles":
                found, final = self._by_handle(cgroup_id)
                if final:
                    self._remember(cgroup_id, found)
                    return found
            return self._by_walk(cgroup_id)

    def _remember(self, cgroup_id: int, path: str | None) -> None:
        self._cache[cgroup_id] = path
        self._cache.move_to_end(cgroup_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _relative(self, absolute: str) -> str | None:
        mount = str(self.mount)
        if absolute == mount:
            return "/"
        if absolute.startswith(mount.rstrip("/") + "/"):
            return absolute[len(mount.rstrip("/")) :]
        return None  # outside our view of the hierarchy (another cgroup namespace)

    def _open_by_handle(self, cgroup_id: int) -> tuple[int, int]:
        """(fd, 0) of cgroup ``cgroup_id``'s directory opened by its kernfs
        file handle, or (-1, errno)."""
        assert self._libc is not None
        handle = ctypes.create_string_buffer(_HANDLE.pack(8, _FILEID_KERNFS, cgroup_id))
        fd = self._libc.open_by_handle_at(
            self._mount_fd, handle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        )
        return (fd, 0) if fd >= 0 else (-1, ctypes.get_errno())

    def _handles_work(self) -> bool:
        """Open the mount, and check once that the kernel finds its root by
        handle: a kernel without kernfs handles of this type (before 5.5)
        would answer ESTALE for every cgroup, as if none existed."""
        assert self.mount is not None
        try:
            self._mount_fd = os.open(self.mount, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            root = os.fstat(self._mount_fd).st_ino
        except OSError:
            return False
        fd, _ = self._open_by_handle(root)
        if fd < 0:
            return False  # EPERM (no CAP_DAC_READ_SEARCH), ESTALE, EOPNOTSUPP...
        os.close(fd)
        return True

    def _by_handle(self, cgroup_id: int) -> tuple[str | None, bool]:
        """(path, True), or (None, True) if the kernel says there is no such
        cgroup; (None, False) if handles cannot be used (then: walk)."""
        if self._mount_fd < 0 and not self._handles_work():
            self.method = "walk"
            return None, False
        fd, err = self._open_by_handle(cgroup_id)
        if fd < 0:
            if err in (errno.ESTALE, errno.ENOENT, errno.ENOTDIR):
                return None, True
            self.method = "walk"
            return None, False
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None, False
        finally:
            os.close(fd)
        target = target.removesuffix(_DELETED)  # removed since: its last name
        return self._relative(target), True

    def _by_walk(self, cgroup_id: int) -> str | None:
        now = time.monotonic()
        if now - self._last_walk < self.walk_interval:
            return None  # not there at the last walk, made less than walk_interval ago
        self._last_walk = now
        assert self.mount is not None
        for inode, rel in cgroup_dirs(self.mount):
            self._remember(inode, rel)
        found = self._cache.get(cgroup_id)
        if found is not None:
            self._cache.move_to_end(cgroup_id)
        return found


def cgroup_dirs(mount: Path) -> list[tuple[int, str]]:
    """(inode, path relative to mount) of every cgroup directory, the root first."""
    out = []
    try:
        out.append((os.stat(mount).st_ino, "/"))
    except OSError:
        return out
    stack = [(str(mount), "")]
    while stack:
        directory, rel = stack.pop()
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    try:
                        if not entry.is_dir(follow_symlinks=False):
                            continue
                    except OSError:
                        continue
                    child = f"{rel}/{entry.name}"
                    out.append((entry.inode(), child))
                    stack.append((entry.path, child))
        except OSError:
            continue  # removed while we walked, or not ours to read
    return out


_resolver: CgroupResolver | None = None
_resolver_lock = threading.Lock()


def cgroup_path(cgroup_id: int) -> str | None:
    """The path of cgroup v2 id ``cgroup_id`` relative to the cgroup v2
    mount (``"/libpod_parent/libpod-<id>"``; the root is ``"/"``), from one
    process-wide :class:`CgroupResolver`; None when unknown (0, gone before
    it was first looked up, no cgroup v2 mount)."""
    global _resolver
    resolver = _resolver
    if resolver is None:
        with _resolver_lock:
            if _resolver is None:
                _resolver = CgroupResolver()
            resolver = _resolver
    return resolver.path(cgroup_id)
