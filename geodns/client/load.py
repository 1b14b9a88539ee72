"""Steady load through a FailoverClient, to watch (and count) a failover.

    python -m geodns.client.load --service inference.example.com --dns 127.0.0.1:5300 \\
        --scheme http --duration 30 --rate 20

prints one line a second (requests per region, failures, retries), then a summary with
every switch of region: when trouble began, when the next region answered, and how many
requests failed in between. With --rum-url (and $GEODNS_RUM_TOKEN) it reports every
request's latency to geodns, and probes every region every --probe-interval seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from geodns.client.breaker import BreakerConfig
from geodns.client.failover import FailoverClient
from geodns.client.rum import RumReporter


@dataclass(frozen=True)
class RequestRecord:
    """One request of the load, times in seconds since the load started."""

    sent: float
    done: float
    region: str | None  # the region that answered; None when the request failed
    error: str | None  # why it failed (the client's exception), None when it did not
    retried: tuple[tuple[str, str], ...] = ()  # regions tried or skipped first, with why

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def troubled(self) -> bool:
        """It failed, or a region failed it before another answered."""
        return not self.ok or any(what.startswith("failed") for _, what in self.retried)


@dataclass(frozen=True)
class Switch:
    """Traffic moved from one region to another."""

    from_region: str
    to_region: str
    trouble_at: float  # sent time of the first troubled request after from_region's last success
    answered_at: float  # when the first request answered by to_region completed
    failed: int  # requests that failed (the caller saw an error) in between
    retried: int  # requests that succeeded, but only after a region failed them

    @property
    def took(self) -> float:
        """Seconds from the first sign of trouble to the first answer from the new region."""
        return max(0.0, self.answered_at - self.trouble_at)


@dataclass(frozen=True)
class Tick:
    """One second of load, for `on_tick`."""

    second: int  # 1, 2, ...
    regions: dict[str, int]  # answered requests per region in this second
    failed: int
    retried: int
    in_flight: int

    def line(self) -> str:
        regions = "  ".join(f"{r} {n}" for r, n in sorted(self.regions.items())) or "-"
        return (
            f"{self.second:4d}s  {regions}  failed {self.failed}  retried {self.retried}"
            f"  in flight {self.in_flight}"
        )


@dataclass
class LoadReport:
    """What a load run saw: every request, and totals."""

    duration: float
    rate: float
    records: list[RequestRecord] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.records)

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.records)

    @property
    def retried(self) -> int:
        return sum(r.ok and r.troubled for r in self.records)

    @property
    def failures(self) -> list[tuple[float, str]]:
        """(sent time, error) of every failed request."""
        return [(r.sent, r.error) for r in self.records if r.error is not None]

    def by_region(self) -> dict[str, int]:
        return dict(Counter(r.region for r in self.records if r.region is not None))

    def switches(self) -> list[Switch]:
        """Every change of answering region, in order of completion.

        A switch's window runs from the last clean answer of the old region to the first
        answer of the new one; its trouble starts when the earliest request that ended in
        that window with a failure (seen by the caller or retried) was sent.
        """
        done = sorted(self.records, key=lambda r: r.done)
        out: list[Switch] = []
        current: str | None = None
        last_clean = float("-inf")  # when the current region last answered without trouble
        for record in done:
            if record.region is None:
                continue
            if current is None or record.region == current:
                current = record.region
                if not record.troubled:
                    last_clean = record.done
                continue
            window = [r for r in done if last_clean < r.done <= record.done]
            troubled = [r for r in window if r.troubled]
            trouble_at = min((r.sent for r in troubled), default=record.sent)
            failed = sum(not r.ok for r in window)
            retried = sum(r.ok and r.troubled for r in window)
            out.append(Switch(current, record.region, trouble_at, record.done, failed, retried))
            current = record.region
            last_clean = record.done
        return out

    def summary(self) -> str:
        lines = [
            f"{len(self.records)} requests in {self.duration:g} s at {self.rate:g}/s: "
            f"{self.ok} ok, {self.failed} failed, {self.retried} retried on another region",
            "answered by: "
            + (", ".join(f"{r} {n}" for r, n in sorted(self.by_region().items())) or "none"),
        ]
        for s in self.switches():
            lines.append(
                f"switch {s.from_region} -> {s.to_region} at {s.answered_at:.2f} s: "
                f"failover took {s.took * 1000:.0f} ms, {s.failed} requests failed "
                f"during the switch, {s.retried} retried"
            )
        for sent, error in self.failures[:10]:
            lines.append(f"failed at {sent:.2f} s: {error}")
        if len(self.failures) > 10:
            lines.append(f"... and {len(self.failures) - 10} more failures")
        return "\n".join(lines)


async def run_load(
    client: FailoverClient,
    duration: float,
    rate: float,
    on_tick: Callable[[Tick], None] | None = None,
    *,
    method: str = "GET",
    path: str = "/",
) -> LoadReport:
    """Send `rate` requests a second for `duration` seconds, each on time, not after the last.

    Requests are independent tasks, so a hanging region does not slow the schedule;
    the report waits for the last of them. `on_tick` gets each second's counts.
    """
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    report = LoadReport(duration, rate)
    start = time.monotonic()
    in_flight: set[asyncio.Task[None]] = set()

    async def one(sent: float) -> None:
        try:
            response = await client.request(method, path)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # any failure is counted, none stops the load
            choice_attempts = getattr(e, "attempts", ())
            report.records.append(
                RequestRecord(sent, time.monotonic() - start, None, str(e), tuple(choice_attempts))
            )
            return
        report.records.append(
            RequestRecord(
                sent, time.monotonic() - start, response.region, None, response.choice.attempts
            )
        )

    ticks = _Ticker(report, start, in_flight, on_tick)
    ticker = asyncio.create_task(ticks.run())
    count = int(duration * rate)
    try:
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(time.monotonic() - start))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.sleep(max(0.0, start + duration - time.monotonic()))
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
    finally:
        ticker.cancel()
        for task in list(in_flight):
            task.cancel()
    ticks.flush()  # the seconds not reported yet, a last partial one included
    report.records.sort(key=lambda r: r.sent)
    return report


class _Ticker:
    """Calls on_tick once a second with that second's counts (by completion time)."""

    def __init__(
        self,
        report: LoadReport,
        start: float,
        in_flight: set[asyncio.Task[None]],
        on_tick: Callable[[Tick], None] | None,
    ) -> None:
        self.report = report
        self.start = start
        self.in_flight = in_flight
        self.on_tick = on_tick
        self.reported = 0  # seconds reported so far

    async def run(self) -> None:
        while self.on_tick is not None:
            await asyncio.sleep(max(0.0, self.start + self.reported + 1 - time.monotonic()))
            self.emit(self.reported + 1)

    def emit(self, second: int) -> None:
        assert self.on_tick is not None
        this = [r for r in self.report.records if second - 1 <= r.done < second]
        regions = Counter(r.region for r in this if r.region is not None)
        failed = sum(not r.ok for r in this)
        retried = sum(r.ok and r.troubled for r in this)
        self.on_tick(Tick(second, dict(regions), failed, retried, len(self.in_flight)))
        self.reported = second

    def flush(self) -> None:
        if self.on_tick is None:
            return
        last_done = max((r.done for r in self.report.records), default=0.0)
        end = max(self.report.duration, last_done)
        while self.reported < end:
            self.emit(self.reported + 1)


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 53
    return host.strip("[]"), int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geodns.client.load",
        description="Steady requests to a geodns service through geodns.client, one line a "
        "second, then how many failed during each switch of region.",
    )
    parser.add_argument("--service", required=True, help="service name: inference.example.com")
    parser.add_argument(
        "--dns", default="127.0.0.1:5300", help="name server HOST:PORT (default 127.0.0.1:5300)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s (default 20)")
    parser.add_argument("--scheme", choices=("http", "https"), default="http")
    parser.add_argument("--path", default="/", help="request path (default /)")
    parser.add_argument("--timeout", type=float, default=2.0, help="per try, s (default 2)")
    parser.add_argument("--failures", type=int, default=2, help="to open a breaker (default 2)")
    parser.add_argument("--cooldown", type=float, default=5.0, help="breaker cool-down, s")
    parser.add_argument(
        "--rum-url",
        metavar="URL",
        help="report every request's latency to this geodns ingest, "
        "http://HOST:PORT/api/rum (docs/rum.md); the token from $GEODNS_RUM_TOKEN",
    )
    parser.add_argument(
        "--rum-client",
        metavar="PREFIX",
        help="report for this client network (24.5.6.0/24): geodns takes it from trusted "
        "gateways only (--rum-gateway)",
    )
    parser.add_argument(
        "--probe-interval",
        type=float,
        default=2.0,
        metavar="S",
        help="with --rum-url, GET --path from every region this often, so that all of them "
        "are measured, not only the one in use (default 2)",
    )
    args = parser.parse_args(argv)
    if args.rum_url and not os.environ.get("GEODNS_RUM_TOKEN"):
        parser.error("--rum-url needs the RUM token in $GEODNS_RUM_TOKEN")
    try:
        host, port = _host_port(args.dns)
    except ValueError:
        parser.error(f"--dns {args.dns!r} is not HOST:PORT")
    return asyncio.run(_main(args, host, port))


async def _main(args: argparse.Namespace, host: str, port: int) -> int:
    rum = None
    if args.rum_url:
        token = os.environ["GEODNS_RUM_TOKEN"]
        rum = RumReporter(args.rum_url, token, client=args.rum_client, interval=1.0)
    async with FailoverClient(
        args.service,
        nameservers=[host],
        dns_port=port,
        scheme=args.scheme,
        breaker=BreakerConfig(failures=args.failures, cooldown=args.cooldown),
        request_timeout=args.timeout,
        rum=rum,
    ) as client:
        prober = None
        if rum is not None:
            prober = asyncio.ensure_future(_probe(client, args.path, args.probe_interval))
        print(
            f"load: {args.rate:g} requests/s to {args.service} for {args.duration:g} s "
            f"(DNS {host}:{port})",
            flush=True,
        )
        report = await run_load(
            client,
            args.duration,
            args.rate,
            lambda tick: print(tick.line(), flush=True),
            path=args.path,
        )
        if prober is not None:
            prober.cancel()
    print(report.summary(), flush=True)
    if rum is not None:
        print(f"RUM: {rum.sent} samples reported, {rum.dropped} dropped", flush=True)
    return 0 if report.failed == 0 else 1


async def _probe(client: FailoverClient, path: str, interval: float) -> None:
    while True:
        try:
            await client.probe(path)
        except Exception as exc:  # a probe is a measurement, never the load's failure
            print(f"probe: {exc}", file=sys.stderr, flush=True)
        await asyncio.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
