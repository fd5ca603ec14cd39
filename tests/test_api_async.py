"""asyncio: events through the core's eventfd, without threads or polling."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import netutil
import pytest
from liveness import PROMPTLY

import tcpevent
from tcpevent import TcpEvent, Tracer

pytestmark = pytest.mark.bpf


async def in_thread(family: socket.AddressFamily = socket.AF_INET) -> netutil.Connection:
    """A loopback connection made off the loop (its recv() calls block)."""
    return await asyncio.get_running_loop().run_in_executor(None, netutil.connection, family)


def test_async_for_while_the_loop_serves_other_tasks() -> None:
    async def main() -> tuple[list[TcpEvent], list[netutil.Connection], int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        with Tracer(pids=[os.getpid()]) as tracer:
            tick_task = asyncio.create_task(ticker())
            conns: list[netutil.Connection] = []

            async def produce() -> None:
                for family in (socket.AF_INET, socket.AF_INET6, socket.AF_INET):
                    await asyncio.sleep(0.05)
                    conns.append(await in_thread(family))

            producer = asyncio.create_task(produce())
            events: list[TcpEvent] = []
            ticks_while_waiting = 0
            async for ev in tracer.events():
                events.append(ev)
                if len(events) == 6:
                    break
            ticks_while_waiting = ticks
            await producer
            tick_task.cancel()
            threads = threading.active_count()
        return events, conns, ticks_while_waiting, threads

    events, conns, ticks, _ = asyncio.run(main())
    assert len(events) == 6
    pairs = {(ev.sport, ev.dport) for ev in events}
    for conn in conns:
        assert (conn.client.port, conn.server.port) in pairs
        assert (conn.server.port, conn.client.port) in pairs
    assert all(ev.pid == os.getpid() for ev in events)
    assert ticks >= 10  # the loop kept running while events were awaited


def test_dequeue_async_timeout_and_reader_removed() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with Tracer(pids=[os.getpid()]) as tracer:
            fd = tracer.fileno()
            threads = threading.active_count()
            start = time.monotonic()
            assert await tracer.dequeue_async(timeout=0.2) is None
            assert 0.19 <= time.monotonic() - start < 0.2 + PROMPTLY
            assert threading.active_count() == threads  # no thread per call
            assert loop.remove_reader(fd) is False  # nothing left registered
            assert await tracer.dequeue_batch_async(10, timeout=0) == []

            conn = await in_thread()
            got = await tracer.dequeue_batch_async(10, timeout=2)
            got += await tracer.dequeue_batch_async(10, timeout=0.5) if len(got) < 2 else []
            assert {(ev.sport, ev.dport) for ev in got} == {
                (conn.client.port, conn.server.port),
                (conn.server.port, conn.client.port),
            }
            assert loop.remove_reader(fd) is False

            # A cancelled wait unregisters too.
            task = asyncio.create_task(tracer.dequeue_async())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert loop.remove_reader(fd) is False

    asyncio.run(main())


def test_concurrent_waiters_share_the_fd() -> None:
    """Two coroutines waiting on one tracer both get events (one reader per fd)."""

    async def main() -> list[TcpEvent | None]:
        with Tracer(pids=[os.getpid()]) as tracer:
            waiters = [asyncio.create_task(tracer.dequeue_async(timeout=3)) for _ in range(2)]
            await asyncio.sleep(0.05)
            await in_thread()
            return list(await asyncio.gather(*waiters))

    results = asyncio.run(main())
    assert all(ev is not None for ev in results)
    assert len({(ev.sport, ev.dport) for ev in results if ev}) == 2


def test_many_waiters_and_batches_lose_nothing() -> None:
    """Waiters taking one event each while more keep coming: none is stranded."""

    async def main() -> tuple[int, int, dict[object, object]]:
        with Tracer(pids=[os.getpid()]) as tracer:
            waiters = [asyncio.create_task(tracer.dequeue_async(timeout=5)) for _ in range(8)]
            batcher = asyncio.create_task(tracer.dequeue_batch_async(2, timeout=5))
            await asyncio.sleep(0.05)
            for _ in range(5):
                await in_thread()
            singles = await asyncio.gather(*waiters)
            batch = await batcher
            return sum(ev is not None for ev in singles), len(batch), dict(tracer._aio_waiters)

    singles, batched, left = asyncio.run(main())
    assert singles == 8 and 1 <= batched <= 2
    assert left == {}  # per-loop state is dropped when nobody waits


def test_close_wakes_async_waiters() -> None:
    async def main() -> None:
        tracer = Tracer(pids=[os.getpid()])
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, tracer.close)
        start = time.monotonic()
        with pytest.raises(tcpevent.TracerClosedError):
            await tracer.dequeue_async()
        assert time.monotonic() - start < PROMPTLY
        assert [ev async for ev in tracer.events()] == []
        with pytest.raises(tcpevent.TracerClosedError):
            await tracer.dequeue_async(timeout=0)

        tracer2 = Tracer(pids=[os.getpid()])
        threading.Timer(0.1, tracer2.close).start()  # from another thread
        assert [ev async for ev in tracer2.events()] == []
        assert netutil.wait_until(lambda: tracer2._handle is None, timeout=10 * PROMPTLY)  # freed

    asyncio.run(main())
