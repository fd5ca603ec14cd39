"""The tracer: :class:`Tracer` loads the BPF program and delivers events."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import partial
from types import TracebackType
from typing import Any, Union

from tcpevent._aio import FdWaiter, drain_eventfd, signal_eventfd
from tcpevent._cgroup_names import CgroupPaths
from tcpevent._convert import events_from_buffer
from tcpevent._core import (
    DEFAULT_MAX_SOCKETS,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_RETRANSMIT_INTERVAL_US,
    DEFAULT_RING_SIZE,
    STATS_FIELDS,
    ffi,
    last_error,
    lib,
    set_array,
)
from tcpevent._enums import EVENT_BITS
from tcpevent._options import FamilyArg, Options, parse_options
from tcpevent.errors import TracerClosedError, TracerError, error_from_code
from tcpevent.event import TcpEvent
from tcpevent.stats import TracerStats

__all__ = ["Tracer"]

#: Longest wait of one blocking C call: between two calls Python runs its
#: signal handlers, so Ctrl-C interrupts a blocked dequeue within this time.
WAIT_SLICE_MS = 50
#: Most events one C call converts (the per-thread buffer is this big at most).
MAX_CALL_EVENTS = 16384
#: Events fetched per C call by iteration.
ITER_BATCH = 256

_alloc = ffi.new_allocator(should_clear_after_alloc=False)
_tls = threading.local()

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: A cgroup: its v2 id, or its path (under the cgroup v2 mount, or relative to it).
CgroupArg = Union[int, str, "os.PathLike[str]"]
#: A network namespace: its inode number, a path to it, or an ``ip netns`` name.
NetnsArg = Union[int, str, "os.PathLike[str]"]


def _take_buffer(count: int) -> Any:
    """This thread's ``struct tcpevent_event[]`` of at least ``count``.

    Taken out of the thread-local slot while in use, so that a re-entrant
    call (a signal handler) gets a buffer of its own.
    """
    buf = _tls.__dict__.pop("buf", None)
    if buf is None or len(buf) < count:
        buf = _alloc("struct tcpevent_event[]", max(count, 64))
    return buf


def _give_back(buf: Any) -> None:
    _tls.buf = buf


def _deadline(timeout: float | None) -> float | None:
    """``time.monotonic()`` deadline of ``timeout`` seconds; None: never."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")
    if math.isinf(timeout):
        return None
    return time.monotonic() + timeout


def _slice_ms(deadline: float | None, now: float) -> int:
    """Milliseconds for the next C call: a slice, or what is left, or 0."""
    if deadline is None:
        return WAIT_SLICE_MS
    left = deadline - now
    if left <= 0:
        return 0
    return min(WAIT_SLICE_MS, max(1, math.ceil(left * 1000)))


def _check_max(max_events: int) -> int:
    if isinstance(max_events, bool) or not isinstance(max_events, int):
        raise TypeError(f"max_events must be an int, not {type(max_events).__name__}")
    if max_events < 1:
        raise ValueError(f"max_events must be >= 1, not {max_events}")
    return min(max_events, MAX_CALL_EVENTS)


_STATS_KNOWN = [name for name in STATS_FIELDS if name in TracerStats.__dataclass_fields__]


def _make_stats(st: Any) -> TracerStats:
    """A :class:`TracerStats` from a ``struct tcpevent_stats *`` (None: zeros).

    A counter the core has and this class lacks is left out; one this class
    has and the core lacks is 0 (tests check that both agree).
    """
    values = dict.fromkeys(TracerStats.__dataclass_fields__, 0)
    if st is not None:
        for name in _STATS_KNOWN:
            values[name] = int(getattr(st, name))
    return TracerStats(**values)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Tracer:
    """Trace TCP connections: a :class:`TcpEvent` per closed connection (by
    default; see ``events`` and ``snapshot_interval`` for the other kinds).

    Opening loads and attaches the BPF program (root, or ``CAP_BPF``,
    ``CAP_PERFMON`` and ``CAP_DAC_READ_SEARCH``: docs/privileges.md);
    closing detaches it. Use it as a context manager::

        with tcpevent.Tracer(ports=[443]) as tracer:
            for ev in tracer:
                print(ev.task, ev.daddr, ev.rx_bytes)

    Filters (all optional, combined with AND):

    - ``pids``: only connections owned by these processes (an iterable of
      at most 1024 pids; a single int is accepted too);
    - ``ports``: only connections whose local or remote port is one of these
      (at most 1024, each 1..65535);
    - ``family``: ``None`` (both), ``socket.AF_INET``/``2``/``"ipv4"`` or
      ``socket.AF_INET6``/``10``/``"ipv6"``.

    Sizes: ``queue_size`` events are held in user space (1..2**24; beyond,
    events are dropped and counted in :attr:`stats`), ``ring_size`` bytes of
    kernel ring buffer (a power of two >= 4096), ``max_sockets`` sockets
    tracked in the kernel at once. ``program`` is the path of a custom BPF
    object (see docs/custom-programs.md), ``snapshot_interval`` the period in
    seconds of snapshot events of live connections (passed to the core).

    Containers and namespaces (in the kernel, at the socket's birth, like the
    filters above): ``cgroups`` (cgroup v2 ids or paths; with
    ``cgroup_subtree=True`` also every cgroup below them) and ``netns``
    (network namespaces: inode numbers, paths such as ``/proc/PID/ns/net``,
    or ``ip netns`` names). A socket belongs to the cgroup and namespace it
    was made in (docs/containers.md).

    ``events``: which kinds of events to deliver, any of ``"close"`` (the
    default), ``"connect"`` (the active side's handshake completed) and
    ``"accept"`` (accept() handed the passive side out); with connect or
    accept events, handshake times are measured (docs/lifecycle.md);
    ``"retransmit"``, ``"reset"`` and ``"drop"`` tell what a connection goes
    through, and then close events carry its counts too (docs/health.md).
    ``retransmit_interval``: at most one retransmit event per connection in
    this many seconds (default 0.01; ``None`` or 0: no limit); the ones left
    out are counted in the next (:attr:`TcpEvent.skipped`).

    ``accept_hooks=False`` forbids the two ``accept()`` syscall hooks:
    while any syscall tracepoint is attached, every system call of every
    process on the host is slower (docs/performance.md says by how much).
    They are attached only for accept events, or where the release hook (a
    cgroup program: ``CAP_NET_ADMIN``) cannot be loaded; without both, a
    passive connection that ends in softirq (reset by its peer) before its
    process closed or shut it down has no owner (``pid`` 0). Which process
    an event names: docs/attribution.md.

    Arguments are validated before anything is loaded (``TypeError``,
    ``ValueError``, :class:`~tcpevent.ProgramNotFoundError`); a failure to
    load raises a :class:`~tcpevent.TracerError`, e.g.
    :class:`~tcpevent.TracerPermissionError` with the core's explanation.

    Thread-safe: any number of threads may dequeue, iterate or read stats
    while another closes. Blocking calls release the GIL and wake up every
    50 ms for signal handlers, so Ctrl-C interrupts them promptly.
    """

    def __init__(
        self,
        pids: int | Iterable[int] | None = None,
        ports: int | Iterable[int] | None = None,
        family: FamilyArg = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        *,
        program: PathArg | None = None,
        ring_size: int = DEFAULT_RING_SIZE,
        max_sockets: int = DEFAULT_MAX_SOCKETS,
        snapshot_interval: float | None = None,
        accept_hooks: bool = True,
        events: Iterable[str] = ("close",),
        cgroups: CgroupArg | Iterable[CgroupArg] | None = None,
        cgroup_subtree: bool = False,
        netns: NetnsArg | Iterable[NetnsArg] | None = None,
        retransmit_interval: float | None = DEFAULT_RETRANSMIT_INTERVAL_US / 1e6,
    ) -> None:
        self._lock = threading.RLock()  # re-entrant: close() from a signal handler
        self._close_lock = threading.RLock()
        self._handle: Any = None
        self._closed = True  # until opened
        self._users = 0
        self._pending: deque[TcpEvent] = deque()
        self._names = CgroupPaths()  # each event's cgroup path, stored in it
        self._final_stats: TracerStats | None = None
        self._aio_waiters: dict[asyncio.AbstractEventLoop, FdWaiter] = {}
        self._options: Options = parse_options(
            pids=pids,
            ports=ports,
            family=family,
            queue_size=queue_size,
            ring_size=ring_size,
            max_sockets=max_sockets,
            snapshot_interval=snapshot_interval,
            program=program,
            accept_hooks=accept_hooks,
            events=events,
            cgroups=cgroups,
            cgroup_subtree=cgroup_subtree,
            netns=netns,
            retransmit_interval=retransmit_interval,
        )
        self._handle = self._open(self._options)
        self._closed = False
        self._warnings = str(
            ffi.string(lib.tcpevent_warnings(self._handle)).decode("utf-8", "replace")
        )
        self._build = str(ffi.string(lib.tcpevent_build(self._handle)).decode("ascii"))
        if self._warnings:
            warnings.warn(f"tcpevent: {self._warnings}", RuntimeWarning, stacklevel=2)

    @staticmethod
    def _open(o: Options) -> Any:
        copts = ffi.new("struct tcpevent_options *")
        lib.tcpevent_options_init(copts)
        keep = []  # cdata that must outlive tcpevent_open()
        if o.program is not None:
            keep.append(ffi.new("char[]", os.fsencode(o.program)))
            copts.program = keep[-1]
        copts.queue_size = o.queue_size
        copts.ring_size = o.ring_size
        copts.max_sockets = o.max_sockets
        copts.snapshot_interval_ms = o.snapshot_interval_ms
        copts.family = o.family
        if not o.accept_hooks:
            copts.flags |= lib.TCPEVENT_OPT_NO_ACCEPT_HOOKS
        if o.cgroup_subtree:
            copts.flags |= lib.TCPEVENT_OPT_CGROUP_SUBTREE
        copts.events = sum(EVENT_BITS[kind] for kind in o.events)
        copts.retransmit_interval_us = o.retransmit_interval_us
        for name in ("cgroups", "netns", "pids", "ports"):  # Options' names are the struct's
            set_array(copts, name, getattr(o, name), keep)
        out = ffi.new("struct tcpevent **")
        rc = lib.tcpevent_open(copts, out)
        if rc < 0:
            raise error_from_code(rc, last_error(), program=o.program)
        # Freed when the last reference goes: see _leave().
        return ffi.gc(out[0], lib.tcpevent_free)

    # ---- handle lifetime ---------------------------------------------------
    #
    # tcpevent_close() may run while other threads are blocked in the core;
    # tcpevent_free() may not. Every call holds a "user" count; close() marks
    # the tracer closed and the last user to leave frees the handle (and
    # should a user never leave, e.g. an exception at the wrong time, the
    # ffi.gc() finalizer frees it with the Tracer).

    def _enter(self) -> Any:
        """Register a call on the open handle and return it."""
        with self._lock:
            if self._closed or self._handle is None:
                raise TracerClosedError()
            self._users += 1
            return self._handle

    def _try_enter(self) -> Any:
        """As :meth:`_enter`, but a closed, not yet freed handle will do; None if freed."""
        with self._lock:
            if self._handle is None:
                return None
            self._users += 1
            return self._handle

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or not self._closed or self._handle is None:
                return
            handle, self._handle = self._handle, None
        with contextlib.suppress(TracerError):
            self._final_stats = self._read_stats(handle)
        ffi.release(handle)  # tcpevent_free(), now that nothing uses it

    def close(self) -> None:
        """Detach the probes and stop; wake every blocked call.

        Idempotent and thread-safe: blocked :meth:`dequeue` calls raise
        :class:`~tcpevent.TracerClosedError`, iterations end. When it
        returns, nothing of this tracer is attached any more.
        """
        with self._close_lock:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                self._users += 1
                handle = self._handle
            try:
                lib.tcpevent_close(handle)
            finally:
                self._leave()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Tracer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        o = self._options
        parts = [f"<Tracer {'closed' if self._closed else 'open'}"]
        if o.pids:
            parts.append(f"pids={list(o.pids)}")
        if o.ports:
            parts.append(f"ports={list(o.ports)}")
        if o.family:
            parts.append(f"family={o.family}")
        if o.program:
            parts.append(f"program={o.program!r}")
        return " ".join(parts) + ">"

    # ---- dequeuing -----------------------------------------------------------

    def _fetch(self, handle: Any, count: int, timeout_ms: int) -> list[TcpEvent]:
        """One call into the core: up to ``count`` events (GIL released)."""
        buf = _take_buffer(count)
        try:
            rc = lib.tcpevent_dequeue_batch(handle, buf, count, timeout_ms)
            if rc < 0:
                raise error_from_code(rc, last_error())
            names = self._names
            return events_from_buffer(buf, rc, names.known, partial(names.miss, handle))
        finally:
            _give_back(buf)

    def _pop_pending(self, count: int) -> list[TcpEvent]:
        out: list[TcpEvent] = []
        pending = self._pending
        try:
            while len(out) < count:
                out.append(pending.popleft())
        except IndexError:
            pass
        return out

    def _dequeue(self, count: int, timeout: float | None) -> list[TcpEvent]:
        deadline = _deadline(timeout)
        if self._pending and not self._closed:
            batch = self._pop_pending(count)
            if batch:
                return batch
        handle = self._enter()
        try:
            while True:
                ms = _slice_ms(deadline, time.monotonic())
                batch = self._fetch(handle, count, ms)
                if batch or ms == 0:
                    return batch
        finally:
            self._leave()

    def dequeue(self, timeout: float | None = None) -> TcpEvent | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever).

        Returns None on timeout (``timeout=0`` never waits). Raises
        :class:`~tcpevent.TracerClosedError` once the tracer is closed,
        including in a call blocked when another thread closes it.
        """
        batch = self._dequeue(1, timeout)
        return batch[0] if batch else None

    def dequeue_batch(self, max_events: int = 1024, timeout: float | None = None) -> list[TcpEvent]:
        """Up to ``max_events`` events, waiting up to ``timeout`` for the first.

        Returns what is queued at once if anything is, else waits as
        :meth:`dequeue`; an empty list on timeout. One call returns at most
        16384 events. The fast path: use it when throughput matters.
        """
        return self._dequeue(_check_max(max_events), timeout)

    def __iter__(self) -> Iterator[TcpEvent]:
        """Every event, blocking; the iteration ends when the tracer is closed.

        Events are fetched in batches; those not consumed when a loop
        breaks are kept for the next call, not lost.
        """
        while True:
            yield from self._drain_pending()
            try:
                batch = self._dequeue(ITER_BATCH, None)
            except TracerClosedError:
                return
            self._pending.extend(batch)

    def _drain_pending(self) -> Iterator[TcpEvent]:
        """The events fetched and not consumed yet, until there are none.

        Shared by every iterator of this tracer (another thread's may take
        some first): what a loop breaking out of leaves stays for the next."""
        pending = self._pending
        while pending:
            try:
                ev = pending.popleft()
            except IndexError:
                return
            yield ev

    # ---- asyncio -------------------------------------------------------------

    async def _dequeue_async(self, count: int, timeout: float | None) -> list[TcpEvent]:
        deadline = _deadline(timeout)
        if self._pending and not self._closed:
            batch = self._pop_pending(count)
            if batch:
                return batch
        loop = asyncio.get_running_loop()
        handle = self._enter()
        try:
            fd = lib.tcpevent_fd(handle)
            if fd < 0:
                raise error_from_code(fd, last_error())
            # One FdWaiter per loop while any coroutine of that loop is in
            # here: add_reader() keeps a single callback per fd.
            waiter = self._aio_waiters.get(loop)
            if waiter is None:
                waiter = self._aio_waiters[loop] = FdWaiter(loop, fd)
            waiter.users += 1
            try:
                return await self._wait_async(handle, fd, waiter, count, deadline)
            finally:
                waiter.users -= 1
                if not waiter.users and self._aio_waiters.get(loop) is waiter:
                    del self._aio_waiters[loop]
        finally:
            self._leave()

    async def _wait_async(
        self, handle: Any, fd: int, waiter: FdWaiter, count: int, deadline: float | None
    ) -> list[TcpEvent]:
        loop = asyncio.get_running_loop()
        while True:
            # Re-arm first, then take: an event queued after the take makes
            # the fd readable again, so no wake-up is lost.
            drain_eventfd(fd)
            batch = self._fetch(handle, count, 0)
            if batch:
                if len(batch) == count:
                    signal_eventfd(fd)  # there may be more, for other waiters
                return batch
            timer = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return batch
            fut = waiter.wait()
            if deadline is not None:
                timer = loop.call_later(left, _wake, fut)
            try:
                await fut
            finally:
                if timer is not None:
                    timer.cancel()
                waiter.discard(fut)

    async def dequeue_async(self, timeout: float | None = None) -> TcpEvent | None:
        """As :meth:`dequeue`, without blocking the event loop.

        Waits on the core's eventfd with ``loop.add_reader`` (no thread, no
        polling). Raises :class:`~tcpevent.TracerClosedError` once closed.
        """
        batch = await self._dequeue_async(1, timeout)
        return batch[0] if batch else None

    async def dequeue_batch_async(
        self, max_events: int = 1024, timeout: float | None = None
    ) -> list[TcpEvent]:
        """As :meth:`dequeue_batch`, without blocking the event loop."""
        return await self._dequeue_async(_check_max(max_events), timeout)

    async def events(self, batch_size: int = ITER_BATCH) -> AsyncIterator[TcpEvent]:
        """Every event, for ``async for``; ends when the tracer is closed."""
        count = _check_max(batch_size)
        while True:
            for ev in self._drain_pending():
                yield ev
            try:
                batch = await self._dequeue_async(count, None)
            except TracerClosedError:
                return
            self._pending.extend(batch)

    def fileno(self) -> int:
        """The core's eventfd: readable when events may be waiting or on close.

        For other event loops (selectors, trio, ...): read it to re-arm, then
        :meth:`dequeue_batch` with ``timeout=0`` until empty. Valid until
        :meth:`close`.
        """
        handle = self._enter()
        try:
            fd = int(lib.tcpevent_fd(handle))
            if fd < 0:
                raise error_from_code(fd, last_error())
            return fd
        finally:
            self._leave()

    # ---- state ---------------------------------------------------------------

    @staticmethod
    def _read_stats(handle: Any) -> TracerStats:
        st = ffi.new("struct tcpevent_stats *")
        rc = lib.tcpevent_stats(handle, st)
        if rc < 0:
            raise error_from_code(rc, last_error())
        return _make_stats(st)

    @property
    def stats(self) -> TracerStats:
        """The counters now (after :meth:`close`: their final values)."""
        handle = self._try_enter()
        if handle is not None:
            try:
                current = self._read_stats(handle)
            finally:
                self._leave()
        else:
            current = self._final_stats or _make_stats(None)
        if self._pending:
            current = TracerStats(
                **{**current.to_dict(), "buffered": len(self._pending)},
            )
        return current

    @property
    def build(self) -> str:
        """Which BPF object is loaded: ``"default"`` (the built-in program's
        build for Linux 6.2+), ``"portable"`` (its build for older kernels,
        loaded where the kernel refuses the default one; docs/kernels.md) or
        ``"custom"`` (``program=``)."""
        return self._build

    @property
    def warnings(self) -> str:
        """What works less well than it could on this kernel, or ``""``.

        Also emitted once as a :class:`RuntimeWarning` when the tracer opens.
        """
        return self._warnings
