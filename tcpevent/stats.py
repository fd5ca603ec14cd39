"""Counters of a tracer: :class:`TracerStats`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["TracerStats"]


@dataclass(frozen=True)
class TracerStats:
    """A snapshot of a tracer's counters (``struct tcpevent_stats``).

    Every count is since the tracer was opened. Events that the built-in
    program's filters reject in the kernel are not counted anywhere (they
    cost nothing); ``filtered`` counts those rejected in user space.
    """

    __slots__ = (
        "buffered",
        "delivered",
        "dropped_kernel",
        "dropped_queue",
        "filtered",
        "malformed",
        "missed",
        "queued",
        "received",
        "snapshot_errors",
        "snapshots",
        "untracked",
    )

    received: int
    """Records read from the kernel ring buffer."""
    dropped_kernel: int
    """Records lost because the kernel ring buffer was full."""
    dropped_queue: int
    """Records lost because the user-space queue was full."""
    queued: int
    """Events waiting in the core's queue now."""
    delivered: int
    """Events handed over by the core (to Python, including :attr:`buffered`)."""
    malformed: int
    """Records rejected as malformed (custom programs)."""
    untracked: int
    """Sockets the kernel side could not track: its table was full."""
    filtered: int
    """Records dropped by the filters in user space."""
    snapshots: int
    """Snapshot events queued."""
    snapshot_errors: int
    """Periodic snapshot listings that failed."""
    missed: int
    """Events the kernel may never have shown the program, counted once
    known: hook runs the kernel skipped because one of the tracer's programs
    was already running on that CPU (its ``recursion_misses``; each may have
    cost an event), and closes of tracked sockets that no program saw
    (docs/reliability.md, "What the kernel does not show"). An upper bound,
    never less than what was lost: a skipped close counts twice (the skip,
    then its socket's stale entry)."""
    buffered: int
    """Events taken from the core but not handed out yet: left over by an
    iteration that stopped early, they come first from the next call."""

    @property
    def dropped(self) -> int:
        """Everything lost for lack of room: ``dropped_kernel + dropped_queue``."""
        return self.dropped_kernel + self.dropped_queue

    def to_dict(self) -> dict[str, int]:
        """The counters as a ``dict`` (JSON-ready)."""
        return asdict(self)
