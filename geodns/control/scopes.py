"""Keeps the merged ECS scopes (geodns.geo.scopes) built for the database and services served.

Once a second it compares what is served (the GeoIP file's version, the services' class
fingerprints) with what it last built; when they differ it takes the runs from the cache,
or builds them in a child process at the lowest priority, and hands the files to every DNS
worker. Until then, and whenever a build fails, scopes stay the GeoIP networks: correct,
only narrower.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from geodns.control.scopebuild import PARENT_ENV, BuildRequest, ClassSpec, cached
from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.scopes import ScopeFiles, ScopeRuns
from geodns.routing.classes import class_fingerprint
from geodns.server.geoanswer import latency_for
from geodns.zones.model import ZoneSet

log = logging.getLogger("geodns.scopes")


def build_request(geoip: GeoIPDatabase, zones: ZoneSet, cache_dir: str) -> BuildRequest:
    """One entry per class of service that has more than one region to choose from."""
    specs: dict[str, ClassSpec] = {}
    for service in zones.services():
        if len(service.regions) <= 1:
            continue
        latency = latency_for(service)
        fp = class_fingerprint(service, latency)
        specs.setdefault(fp, ClassSpec(fp, service, latency))
    return BuildRequest(geoip.path, geoip.file_key, tuple(specs.values()), cache_dir)


def load_cached(
    geoip: GeoIPDatabase, zones: ZoneSet, cache_dir: str
) -> tuple[str, dict[str, ScopeRuns]] | None:
    """The runs a server has already built for this file and these services, if any."""
    files = cached(build_request(geoip, zones, cache_dir))
    if files is None:
        return None
    return geoip.file_key, {fp: ScopeRuns.load(path) for fp, path in files.items()}


@dataclass
class ScopeMerger:
    geoip: GeoIPDatabase
    cache_dir: str
    zones: Callable[[], ZoneSet]  # the zones served now
    publish: Callable[[ScopeFiles], None]
    interval: float = 1.0
    ready: ScopeFiles | None = None
    last_error: str | None = None
    building: bool = False
    _wanted: tuple[str, tuple[str, ...]] | None = field(default=None, repr=False)
    _zones_seen: object = field(default=None, repr=False)
    _request: BuildRequest | None = field(default=None, repr=False)

    def _current(self) -> BuildRequest:
        zones = self.zones()
        # Fingerprints read the latency tables: once per ZoneSet, not once a second.
        if zones is not self._zones_seen or self._request is None:
            self._request = build_request(self.geoip, zones, self.cache_dir)
            self._zones_seen = zones
        elif self._request.file_key != self.geoip.file_key:
            self._request = BuildRequest(
                self.geoip.path, self.geoip.file_key, self._request.classes, self.cache_dir
            )
        return self._request

    def status(self) -> dict[str, object]:
        """For /api/state: merged (for the file served now), building, failed or waiting."""
        current = self.merged
        if self.building:
            state = "building"
        elif self.last_error is not None:
            state = "failed"
        elif current:
            state = "merged"
        else:
            state = "waiting"
        return {
            "state": state,
            "classes": len(self.ready.files) if current and self.ready else 0,
            "error": self.last_error,
            "cache_dir": self.cache_dir,
        }

    @property
    def merged(self) -> bool:
        return self.ready is not None and self.ready.file_key == self.geoip.file_key

    async def run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(self.interval)

    async def step(self) -> None:
        """Build and publish if what is served has changed since the last build."""
        request = self._current()
        wanted = (request.file_key, tuple(sorted(s.fingerprint for s in request.classes)))
        if wanted == self._wanted:
            return
        self._wanted = wanted  # a failure is reported once per version, not every second
        if not request.classes:
            self.ready = ScopeFiles(request.file_key, {})
            self.publish(self.ready)
            return
        started = time.monotonic()
        self.building = True
        try:
            files = cached(request)
            if files is None:
                files = await _build_in_child(request)
        except (OSError, RuntimeError) as exc:
            self.last_error = str(exc)
            log.warning("ECS scopes stay the GeoIP networks: %s", exc)
            return
        except Exception as exc:  # a bug here must not stop the control plane
            self.last_error = repr(exc)
            log.exception("ECS scopes stay the GeoIP networks: the build failed")
            return
        finally:
            self.building = False
        self.last_error = None
        self.ready = ScopeFiles(request.file_key, files)
        log.info(
            "ECS scopes merged for %d service class(es) of %s in %.1f s",
            len(files),
            request.database,
            time.monotonic() - started,
        )
        self.publish(self.ready)


async def _build_in_child(request: BuildRequest) -> dict[str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "geodns.control.scopebuild",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, PARENT_ENV: str(os.getpid())},
    )
    try:
        out, err = await proc.communicate(pickle.dumps(request))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await proc.wait()
        raise
    try:
        result = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"scope build exited {proc.returncode}: {tail[0]}") from None
    if "error" in result:
        raise RuntimeError(f"scope build failed: {result['error']}")
    return dict(result["files"])
