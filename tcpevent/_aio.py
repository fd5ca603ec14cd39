"""asyncio readiness of a tracer's eventfd, shared by the coroutines of one loop.

``loop.add_reader`` keeps one callback per fd: two coroutines waiting on the
same tracer must share it. :class:`FdWaiter` registers the reader while at
least one coroutine waits, wakes all of them on readiness and unregisters
(the eventfd is level-triggered: a registered reader nobody drains would
spin the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

__all__ = ["FdWaiter", "drain_eventfd", "signal_eventfd"]

_ONE = (1).to_bytes(8, sys.byteorder)


def drain_eventfd(fd: int) -> None:
    """Reset a non-blocking eventfd's counter (re-arm it); EAGAIN is fine."""
    with contextlib.suppress(BlockingIOError, InterruptedError):
        os.read(fd, 8)


def signal_eventfd(fd: int) -> None:
    """Make the eventfd readable again (events may be left for other waiters)."""
    # EAGAIN: the counter is saturated, so it is readable anyway.
    with contextlib.suppress(BlockingIOError, InterruptedError):
        os.write(fd, _ONE)


class FdWaiter:
    """Futures resolved when ``fd`` becomes readable, on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self._loop = loop
        self._fd = fd
        self._waiters: set[asyncio.Future[None]] = set()
        #: Coroutines using this object (the tracer drops it at 0).
        self.users = 0

    def wait(self) -> asyncio.Future[None]:
        """A future that completes at the next readiness of the fd."""
        fut: asyncio.Future[None] = self._loop.create_future()
        if not self._waiters:
            self._loop.add_reader(self._fd, self._fire)
        self._waiters.add(fut)
        return fut

    def discard(self, fut: asyncio.Future[None]) -> None:
        """Forget ``fut`` (done, timed out or cancelled)."""
        if fut in self._waiters:
            self._waiters.discard(fut)
            if not self._waiters:
                self._loop.remove_reader(self._fd)

    def _fire(self) -> None:
        self._loop.remove_reader(self._fd)
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
