"""RumReporter: batches of latency samples sent to geodns (POST /api/rum) in the background.

A FailoverClient given one records a sample for every request it makes to a region
(geodns.geo.rumformat is the format). Recording never blocks and never fails: the queue is
bounded (the oldest samples go first when it is full), and a report that cannot be sent is
dropped after one try, counted, and logged at debug.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import aiohttp

log = logging.getLogger("geodns.client.rum")

MAX_BATCH = 500  # the server's limit per report (geodns.geo.rumformat.MAX_SAMPLES)


class RumReporter:
    """Sends samples to `url` (the admin side's /api/rum) with the RUM bearer `token`.

    `client`: the clients' network to report for ("24.5.6.0/24"), which geodns accepts only
    from a trusted gateway (--rum-gateway); None, the usual: the server takes the address
    the report comes from.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        client: str | None = None,
        interval: float = 5.0,
        batch: int = 100,
        queue: int = 2_000,
        timeout: float = 5.0,
    ) -> None:
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be 1..{MAX_BATCH}")
        self.url = url
        self.token = token
        self.client = client
        self.interval = interval
        self.batch = batch
        self.timeout = timeout
        self._queue: deque[dict[str, Any]] = deque(maxlen=queue)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0  # samples the server accepted
        self.dropped = 0  # samples lost: queue full, or a report that failed
        self.failures = 0  # reports that failed (network, or a 4xx/5xx)
        self.last_error: str | None = None

    def record(
        self, region: str, connect_ms: float | None, ttfb_ms: float | None, ok: bool
    ) -> None:
        """Queue one sample; never blocks, never raises. Starts the sender on first use."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(
            {
                "region": region,
                "connect_ms": None if connect_ms is None else round(connect_ms, 3),
                "ttfb_ms": None if ttfb_ms is None else round(ttfb_ms, 3),
                "ok": ok,
                "t": round(time.time(), 3),
            }
        )
        if self._task is None:
            with contextlib.suppress(RuntimeError):  # no running loop: sent by flush()
                self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self._queue) >= self.batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        """Send everything queued now, a batch per report."""
        while self._queue:
            samples = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
            await self._send(samples)

    async def close(self) -> None:
        """Stop the sender after one last flush (bounded by `timeout` per report)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the caller's requests must never see this
                log.debug("RUM report failed: %s", exc)

    async def _send(self, samples: list[dict[str, Any]]) -> None:
        body: dict[str, Any] = {"version": 1, "samples": samples}
        if self.client is not None:
            body["client"] = self.client
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.url,
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                answer = await resp.read()
                if resp.status != 202:
                    raise RuntimeError(f"HTTP {resp.status}: {answer[:200]!r}")
                self.sent += len(samples)
        except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as exc:
            self.failures += 1
            self.dropped += len(samples)
            self.last_error = str(exc) or type(exc).__name__
            log.debug("RUM report of %d samples failed: %s", len(samples), self.last_error)
