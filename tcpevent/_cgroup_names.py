"""A tracer's cgroup names: the path of each event's cgroup, stored in the event.

The core learns the path of every cgroup v2 id as the cgroup is made (its
BPF program's ``cgroup_mkdir`` hook) and of every cgroup that existed when
it opened, and keeps them after the cgroups are gone, up to
``TCPEVENT_CGROUP_NAMES_MAX`` ids (``tcpevent_cgroup_path()``,
docs/containers.md). A cgroup's mkdir reaches the core before any event of
a socket made in it, so by the time an event is dequeued its cgroup's name
is known, however short the cgroup's life.

In front of that call, a dict per tracer: the hot path of filling an event
is one dict hit (:func:`tcpevent._convert.events_from_buffer`). A miss asks
the core, then (an id the core does not know: its hook could not attach, a
custom program without it, its record lost to a full ring buffer) the
process-wide :class:`tcpevent.cgroups.CgroupResolver`, as before.
"""

from __future__ import annotations

from typing import Any

from tcpevent._core import ffi, lib
from tcpevent.cgroups import cgroup_path

__all__ = ["NAMES_MAX", "PATH_LEN", "CgroupPaths", "core_cgroup_path"]

#: Most ids the core (and each tracer's dict) remembers: tcpevent.h's.
NAMES_MAX: int = int(lib.TCPEVENT_CGROUP_NAMES_MAX)
#: The longest path, its NUL included: tcpevent_record.h's.
PATH_LEN: int = int(lib.TCPEVENT_CGROUP_PATH_LEN)


def core_cgroup_path(handle: Any, cgroup_id: int) -> str | None:
    """``tcpevent_cgroup_path()``: the core's path of ``cgroup_id``, or None
    if it does not know it. ``handle`` is an open (or closed, not freed)
    ``struct tcpevent *``."""
    buf = ffi.new("char[]", PATH_LEN)
    if lib.tcpevent_cgroup_path(handle, cgroup_id, buf, PATH_LEN) != 0:
        return None
    return str(ffi.string(buf).decode("utf-8", "surrogateescape"))


class CgroupPaths:
    """cgroup id -> path, for one tracer's events.

    :attr:`known` is read by the conversion loop directly; :meth:`miss` is
    called for an id it lacks. Only found paths are kept (an id unknown now
    may be resolved later by the :class:`~tcpevent.cgroups.CgroupResolver`'s
    next walk). Bounded: past :data:`NAMES_MAX` ids it starts again, empty
    (the core still has them). Used under the GIL only: a dict's get and
    set are atomic there.
    """

    __slots__ = ("known",)

    def __init__(self) -> None:
        self.known: dict[int, str | None] = {0: None}

    def miss(self, handle: Any, cgroup_id: int) -> str | None:
        """The path of an id :attr:`known` lacks, learnt into it if found."""
        path = core_cgroup_path(handle, cgroup_id)
        if path is None:
            path = cgroup_path(cgroup_id)
            if path is None:
                return None
        known = self.known
        if len(known) >= NAMES_MAX:
            known.clear()
            known[0] = None
        known[cgroup_id] = path
        return path
