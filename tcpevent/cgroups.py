"""cgroup v2 ids and paths.

A socket's cgroup id (``TcpEvent.cgroup_id``) is the id of the kernfs node
of the cgroup v2 directory it was made in, which is that directory's inode
number. Paths are given relative to the cgroup v2 mount: ``/sys/fs/cgroup``
on unified hosts, ``/sys/fs/cgroup/unified`` on hybrid ones.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

__all__ = ["cgroup2_mount", "cgroup_id_of"]


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
