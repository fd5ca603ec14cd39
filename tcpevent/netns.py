"""Network namespaces by inode number (``TcpEvent.netns``).

A network namespace is named by the inode number of its nsfs file:
``readlink /proc/PID/ns/net`` shows ``net:[INODE]``; ``ip netns add NAME``
bind-mounts one at ``/run/netns/NAME``.
"""

from __future__ import annotations

import fcntl
import os

__all__ = ["RUN_NETNS", "netns_inode"]

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
