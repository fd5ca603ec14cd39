"""Trace UDP flows: :class:`UdpTracer`, one :class:`~tcpevent.UdpFlow` per flow report."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from tcpevent._aio import FdWaiter, drain_eventfd, signal_eventfd
from tcpevent._options import (
    MAX_PID,
    MAX_PORT,
    FamilyArg,
    _bounded,
    _cgroups,
    _id_list,
    _netns,
    parse_family,
)
from tcpevent._udp_core import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_FLOWS,
    DEFAULT_QUEUE_SIZE,
    MAX_FLOWS,
    MAX_QUEUE_SIZE,
    MIN_FLUSH_INTERVAL,
    ffi,
    last_error,
    lib,
)
from tcpevent.errors import TracerClosedError, error_from_code
from tcpevent.tracer import CgroupArg, NetnsArg
from tcpevent.udp_flow import UdpFlow, UdpStats, flows_from_buffer

__all__ = ["UdpTracer"]

_SLICE_MS = 50  # blocking calls wake up this often for signal handlers
_EBADF = 9


class UdpTracer:
    """Trace UDP flows: a report per flow (socket, remote address, remote
    port) every ``flush_interval`` seconds in which it moved, and a final
    one when its socket is released (docs/udp.md)::

        with tcpevent.UdpTracer(ports=[53]) as tracer:
            for flow in tracer:
                print(flow.task, flow.peer, flow.rx_datagrams, flow.tx_datagrams)

    Filters, as :class:`~tcpevent.Tracer`'s (combined with AND): ``pids``,
    ``ports`` (local or remote), ``family``, ``cgroups`` (ids or paths) and
    ``netns`` (inodes, paths or ``ip netns`` names). ``queue_size`` reports
    are held (beyond, dropped and counted in :meth:`stats`), ``max_flows``
    flows tracked in the kernel at once.

    :meth:`close` detaches the programs and makes the last reports (what
    every flow moved since its previous one); they stay dequeueable, and
    only then do the dequeue calls raise
    :class:`~tcpevent.TracerClosedError` (iteration ends).
    Thread-safe; blocking calls release the GIL and wake every 50 ms for
    signal handlers.
    """

    def __init__(
        self,
        pids: int | Iterable[int] | None = None,
        ports: int | Iterable[int] | None = None,
        family: FamilyArg = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_flows: int = DEFAULT_MAX_FLOWS,
        cgroups: CgroupArg | Iterable[CgroupArg] | None = None,
        netns: NetnsArg | Iterable[NetnsArg] | None = None,
    ) -> None:
        if isinstance(flush_interval, bool) or not isinstance(flush_interval, (int, float)):
            raise TypeError(f"flush_interval must be a number of seconds, not {flush_interval!r}")
        if not MIN_FLUSH_INTERVAL <= flush_interval <= 86400:
            raise ValueError(
                f"flush_interval must be {MIN_FLUSH_INTERVAL}..86400 seconds, not {flush_interval}"
            )
        self._lock = threading.Lock()
        self._aio_waiters: dict[asyncio.AbstractEventLoop, FdWaiter] = {}
        self._closed = False
        copts = ffi.new("struct udpevent_options *")
        lib.udpevent_options_init(copts)
        copts.flush_interval_ms = round(flush_interval * 1000)
        copts.queue_size = _bounded("queue_size", queue_size, 1, MAX_QUEUE_SIZE)
        copts.max_flows = _bounded("max_flows", max_flows, 1, MAX_FLOWS)
        copts.family = parse_family(family)
        keep = []
        lists = (
            ("pids", "uint32_t[]", _id_list("pids", pids, 1, MAX_PID, "pid")),
            ("ports", "uint16_t[]", _id_list("ports", ports, 1, MAX_PORT, "port")),
            ("cgroups", "uint64_t[]", _cgroups(cgroups)),
            ("netns", "uint32_t[]", _netns(netns)),
        )
        for name, ctype, values in lists:
            if values:
                keep.append(ffi.new(ctype, values))
                setattr(copts, name, keep[-1])
                setattr(copts, f"n_{name}", len(values))
        out = ffi.new("struct udpevent **")
        rc = lib.udpevent_open(copts, out)
        if rc:
            raise error_from_code(rc, last_error())
        self._handle: Any = ffi.gc(out[0], lib.udpevent_free)
        self.flush_interval = float(flush_interval)
        #: What works less well than it could on this kernel ("" if nothing).
        self.warnings = str(ffi.string(lib.udpevent_warnings(self._handle)).decode())
        if self.warnings:
            warnings.warn(f"tcpevent: {self.warnings}", RuntimeWarning, stacklevel=2)

    # ---- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Detach the programs and make the last reports. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        lib.udpevent_close(self._handle)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> UdpTracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<UdpTracer {state} flush_interval={self.flush_interval}>"

    # ---- dequeue -------------------------------------------------------------------------

    def _fetch(self, count: int, timeout_ms: int) -> list[UdpFlow]:
        buf = ffi.new("struct udpevent_report[]", count)
        rc = lib.udpevent_dequeue_batch(self._handle, buf, count, timeout_ms)
        if rc == -_EBADF:
            raise TracerClosedError("the UDP tracer is closed and its reports are all taken")
        if rc < 0:
            raise error_from_code(rc, last_error())
        return flows_from_buffer(buf, rc)

    def _dequeue(self, count: int, timeout: float | None) -> list[UdpFlow]:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            left_ms = _SLICE_MS if deadline is None else max(0, int((deadline - now) * 1000))
            flows = self._fetch(count, min(left_ms, _SLICE_MS))
            if flows or (deadline is not None and time.monotonic() >= deadline):
                return flows

    def dequeue(self, timeout: float | None = None) -> UdpFlow | None:
        """The next report; wait at most ``timeout`` seconds (None: for ever),
        None if nothing came. Raises :class:`~tcpevent.TracerClosedError`
        once closed and drained."""
        flows = self._dequeue(1, timeout)
        return flows[0] if flows else None

    def dequeue_batch(self, max_flows: int = 1024, timeout: float | None = None) -> list[UdpFlow]:
        """Up to ``max_flows`` reports at once, waiting as :meth:`dequeue` for the first."""
        if not 1 <= max_flows <= 1 << 20:
            raise ValueError(f"max_flows must be 1..{1 << 20}, not {max_flows}")
        return self._dequeue(max_flows, timeout)

    def __iter__(self) -> Iterator[UdpFlow]:
        """Every report until the tracer is closed and drained."""
        while True:
            try:
                yield from self._dequeue(256, None)
            except TracerClosedError:
                return

    # ---- asyncio -------------------------------------------------------------------------

    def fileno(self) -> int:
        """An eventfd readable while reports may be queued (for selectors)."""
        fd = int(lib.udpevent_fd(self._handle))
        if fd < 0:
            raise error_from_code(fd, last_error())
        return fd

    async def dequeue_batch_async(
        self, max_flows: int = 1024, timeout: float | None = None
    ) -> list[UdpFlow]:
        """As :meth:`dequeue_batch`, awaiting readiness instead of blocking a thread."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        fd = self.fileno()
        while True:
            flows = self._fetch(max_flows, 0)
            if flows:
                signal_eventfd(fd)  # others may wait on what is left
                return flows
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return []
            waiter = self._aio_waiters.get(loop)
            if waiter is None:
                waiter = self._aio_waiters[loop] = FdWaiter(loop, fd)
            waiter.users += 1
            fut = waiter.wait()
            try:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(fut), left)
            finally:
                waiter.discard(fut)
                waiter.users -= 1
                if not waiter.users and self._aio_waiters.get(loop) is waiter:
                    del self._aio_waiters[loop]
            drain_eventfd(fd)

    async def dequeue_async(self, timeout: float | None = None) -> UdpFlow | None:
        flows = await self.dequeue_batch_async(1, timeout)
        return flows[0] if flows else None

    async def flows(self, batch_size: int = 256) -> AsyncIterator[UdpFlow]:
        """Every report, asynchronously, until closed and drained."""
        while True:
            try:
                batch = await self.dequeue_batch_async(batch_size)
            except TracerClosedError:
                return
            for flow in batch:
                yield flow

    # ---- counters ------------------------------------------------------------------------

    def stats(self) -> UdpStats:
        st = ffi.new("struct udpevent_stats *")
        rc = lib.udpevent_stats(self._handle, st)
        if rc:
            raise error_from_code(rc, last_error())
        return UdpStats.from_c(st)
