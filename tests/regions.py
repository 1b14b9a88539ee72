"""Simulated regions (geodns.demo.region) for tests: in the test's own event loop, or in a
thread of their own for tests that drive a server with blocking calls (dnspython, urllib)
while the regions keep answering."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from geodns.demo.region import SimulatedRegion, start_region


@asynccontextmanager
async def simulated(*names: str) -> AsyncIterator[dict[str, SimulatedRegion]]:
    """Regions on 127.0.0.1, any free port each, closed on exit."""
    regions = {name: await start_region(name, "127.0.0.1", 0) for name in names}
    try:
        yield regions
    finally:
        for region in regions.values():
            await region.close()


@contextmanager
def regions_in_thread(*names: str, version: str = "41") -> Iterator[dict[str, SimulatedRegion]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> dict[str, SimulatedRegion]:
        out = {}
        for name in names:
            region = await start_region(name, "127.0.0.1", 0)
            region.version = version
            out[name] = region
        return out

    regions = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        # Plain attribute changes (mode, version, utilization) are safe from the test's
        # thread: each handler reads them once per request.
        yield regions
    finally:

        async def stop() -> None:
            for region in regions.values():
                await region.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate` from an event loop until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
