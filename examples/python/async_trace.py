#!/usr/bin/env python3
"""Consume events in asyncio, next to other tasks, for a few seconds.

    sudo python examples/python/async_trace.py [SECONDS]

No thread is used: the tracer's eventfd wakes the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys

import tcpevent


async def heartbeat(tracer: tcpevent.Tracer) -> None:
    while True:
        await asyncio.sleep(1)
        print(f"# {tracer.stats.delivered} events so far", file=sys.stderr)


async def main(seconds: float) -> None:
    with tcpevent.Tracer() as tracer:
        beat = asyncio.create_task(heartbeat(tracer))
        asyncio.get_running_loop().call_later(seconds, tracer.close)  # ends the loop below
        async for ev in tracer.events():
            print(json.dumps(ev.to_dict()))
        beat.cancel()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0))
