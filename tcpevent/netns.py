"""Network namespaces by inode number (``TcpEvent.netns``).

A network namespace is named by the inode number of its nsfs file:
``readlink /proc/PID/ns/net`` shows ``net:[INODE]``; ``ip netns add NAME``
bind-mounts one at ``/run/netns/NAME``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

__all__ = ["RUN_NETNS", "netns_inode", "netns_path"]

_NS_GET_NSTYPE = 0xB703  # ioctl of nsfs files (linux/nsfs.h): the namespace's type
_CLONE_NEWNET = 0x40000000

#: Where ``ip netns`` keeps its named namespaces.
RUN_NETNS = "/run/netns"


def netns_inode(value: int | str | os.PathLike[str]) -> int:
    """The inode number of a network namespace given as that number, a path
    to its nsfs file (``/proc/PID/ns/net``, ``/run/netns/NAME``) or an
    ``ip netns`` name. Raises ``ValueError`` (``TypeError``) naming it when
    it is none of these."""
    if isinstance(value, bool):
        raise TypeError("a network namespace must be an inode number, a path or a name, not bool")
    if isinstance(value, int):
        if not 0 < value < 2**32:
            raise ValueError(f"network namespace inode {value} is out of range")
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            "a network namespace must be an inode number, a path or a name, "
            f"not {type(value).__name__}"
        )
    text = os.fspath(value)
    if text.isdigit():
        return netns_inode(int(text))
    path = text if "/" in text else os.path.join(RUN_NETNS, text)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"network namespace {text!r}: {path}: {exc.strerror}") from None
    try:
        kind = fcntl.ioctl(fd, _NS_GET_NSTYPE)
        inode = os.fstat(fd).st_ino
    except OSError:
        kind = 0
    finally:
        os.close(fd)
    if kind != _CLONE_NEWNET:
        raise ValueError(f"network namespace {text!r}: {path} is not a network namespace")
    return inode


def _holders() -> list[str]:
    """Paths that may hold a network namespace: ``ip netns`` names, then
    every process's ``/proc/PID/ns/net`` (ours first)."""
    paths = ["/proc/self/ns/net"]
    with contextlib.suppress(OSError):
        paths += sorted(os.path.join(RUN_NETNS, n) for n in os.listdir(RUN_NETNS))
    pids = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    return paths + [f"/proc/{pid}/ns/net" for pid in pids]


def netns_path(value: int | str | os.PathLike[str]) -> str:
    """A path through which the network namespace ``value`` can be entered:
    the path itself, ``/run/netns/NAME`` for an ``ip netns`` name, and for
    an inode number the first ``/run/netns`` entry or process that holds
    that namespace. Raises ``ValueError`` (``TypeError``) naming it when
    there is no such namespace."""
    inode = netns_inode(value)  # checks the path or name, and the type
    if isinstance(value, int) or os.fspath(value).isdigit():
        for path in _holders():
            try:
                if os.stat(path).st_ino == inode and netns_inode(path) == inode:
                    return path
            except (OSError, ValueError):
                continue  # gone meanwhile, or not ours to see
        raise ValueError(f"network namespace {inode}: no process and no {RUN_NETNS} entry holds it")
    text = os.fspath(value)
    return text if "/" in text else os.path.join(RUN_NETNS, text)
