"""The admin HTTP side (aiohttp): dashboard, /api/state, /api/explain, /api/audit, /healthz,
/metrics, and the token-protected routes that force region states, reload the zones, or drive
the demo; each of those is recorded in the audit log under its token's name.

Every request must name this server in `Host:` (geodns.admin.hosts: DNS rebinding), and
every reply forbids framing (clickjacking of the dashboard's buttons).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from geodns.admin.hosts import HostPolicy
from geodns.admin.listener import Listener
from geodns.admin.metrics import AdminActionsCollector, LoadPushCollector, registry_for
from geodns.admin.scrape import metrics_response
from geodns.admin.tokens import AdminTokens
from geodns.admin.view import StateView, without_paths
from geodns.control.audit import AuditLog, AuditRecord, result_of
from geodns.control.plane import ControlPlane
from geodns.errors import GeodnsError
from geodns.geo.rumformat import MAX_BODY
from geodns.health import load
from geodns.health.monitor import UnknownRegion
from geodns.routing import capacity
from geodns.server.explain import (
    explain,
    explain_body,
    latency_json,
    live_state,
    measured_json,
)
from geodns.server.sockets import ListenAddress
from geodns.store.kv import StoreUnavailable
from geodns.versions import rollout as rollouts
from geodns.versions.rollout import RolloutNotFound, RolloutRefused
from geodns.zones.model import Service

log = logging.getLogger("geodns.admin")
rollout_log = logging.getLogger("geodns.rollout")

DEFAULT_ADMIN = "127.0.0.1:8053"
TOKEN_ENV = "GEODNS_ADMIN_TOKEN"
STATIC = Path(str(resources.files("geodns") / "admin" / "static"))
# On every reply: no page of another site may frame the dashboard (CSP Level 2
# frame-ancestors; X-Frame-Options for browsers that predate it), and no reply is read as
# another content type than the one it says.
SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
BY_MAX = 200  # characters of an operator's `by` kept with a force
MAX_LOAD_BODY = 4096  # bytes of a pushed load: a few signal values, never more
LOAD_RESULTS = ("accepted", "bad_request", "unauthorized", "not_found", "too_large")
AUDIT_LIMIT = 100  # records GET /api/audit returns unless ?limit= says otherwise
# What each state-changing route is called in the audit log.
AUDIT_ACTIONS = {
    "force": "force",
    "push_load": "load push",
    "reload": "reload",
    "demo_region": "demo region",
    "rollout_start": "rollout start",
    "rollout_action": "rollout",
    "rollout_begin": "rollout begin",
}
AUDIT_ACTION_NAMES = (
    *(a for a in AUDIT_ACTIONS.values() if a != "rollout"),
    "rollout validate",
    "rollout abort",
)


class DemoControls(Protocol):
    """The demo's simulated regions, as the dashboard may change them."""

    def set(
        self,
        region: str,
        mode: str | None = None,
        utilization: float | None = None,
        version: str | None = None,
    ) -> dict[str, Any]: ...


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(listen: ListenAddress, tokens: AdminTokens | None) -> None:
    """The admin side can drain every region: off loopback only behind a token."""
    if not tokens and not is_loopback(listen.host):
        raise GeodnsError(
            f"--http {listen}: refusing to serve the admin API beyond loopback without a token"
            f" (--admin-tokens-file FILE, --admin-token-file FILE or {TOKEN_ENV})"
        )


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _store_down(exc: StoreUnavailable) -> web.Response:
    # Not applied here alone: the fleet would disagree, and a restart would undo it.
    log.error("admin API: change refused, the store cannot take it: %s", exc)
    return _error(
        503,
        f"nothing was changed: the store cannot be reached or written: {without_paths(str(exc))}",
        **{"Retry-After": "5"},
    )


class AdminApp:
    def __init__(
        self,
        plane: ControlPlane,
        tokens: AdminTokens | None,
        demo: DemoControls | None = None,
        hosts: HostPolicy | None = None,
    ) -> None:
        self.plane = plane
        self.tokens = tokens or AdminTokens({})
        # In the fleet's store when there is one, so that every node lists every change.
        self.audit = AuditLog(
            None if plane.embedded else plane.shared.store, plane.node, plane.clock
        )
        self.demo = demo
        self.hosts = hosts or HostPolicy()
        self.view = StateView(plane)
        self.registry = registry_for(plane)
        self.load_pushes = dict.fromkeys(LOAD_RESULTS, 0)
        self.registry.register(LoadPushCollector(self.load_pushes))
        self.actions = {
            (action.replace(" ", "_"), result): 0
            for action in AUDIT_ACTION_NAMES
            for result in ("ok", "refused", "failed")
        }
        self.registry.register(AdminActionsCollector(self.actions))

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._host, self._auth])
        app.on_response_prepare.append(_secure)
        app.add_routes(
            [
                web.get("/", self.index),
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.metrics),
                web.get("/api/state", self.state),
                web.get("/api/explain", self.explain),
                web.get("/api/audit", self.audit_list),
                web.post("/api/rum", self.rum),
                web.post("/api/services/{service}/regions/{region}/state", self.force),
                web.post(
                    "/api/services/{service}/regions/{region}/load", self.push_load, name="load"
                ),
                web.post("/api/reload", self.reload),
                web.post("/api/demo/regions/{region}", self.demo_region),
                web.post("/api/services/{service}/rollouts", self.rollout_start),
                web.get("/api/services/{service}/rollouts/current", self.rollout_status),
                web.post(
                    "/api/services/{service}/rollouts/current/{action:validate|abort}",
                    self.rollout_action,
                ),
                web.post(
                    "/api/services/{service}/rollouts/current/regions/{region}/begin",
                    self.rollout_begin,
                ),
                web.get(
                    "/api/services/{service}/rollouts/current/regions/{region}",
                    self.rollout_region,
                ),
                web.static("/static", STATIC),
            ]
        )
        return app

    @web.middleware
    async def _host(self, request: web.Request, handler: Any) -> web.StreamResponse:
        header = request.headers.get("Host")
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local = sockname[0] if sockname else None
        if not self.hosts.allows(header, local):
            log.debug("admin HTTP: refused Host %r from %s", header, request.remote)
            # 421 Misdirected Request (RFC 9110 15.5.20): not a name this server answers for.
            return _error(
                421,
                f"Host {header!r} is not a name of this server; allow it with"
                " `geodns serve --http-host NAME`",
            )
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # Reports of measured latency carry their own token (RumIngest.authorized): the
        # clients that send them must not hold the token that can drain regions.
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.path != "/api/rum":
            if not self.tokens:
                return _error(
                    403,
                    "changes through the admin API are off: no admin token is configured"
                    f" (--admin-tokens-file FILE, --admin-token-file FILE or {TOKEN_ENV})",
                )
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            who = self.tokens.who(given.strip()) if scheme.lower() == "bearer" else None
            if who is None:
                # Not audited: who is unknown, and a flood of them would push the real
                # changes out of the bounded list. The log has them at debug.
                log.debug("admin API: %s %s refused: no valid token", request.method, request.path)
                if request.match_info.route.name == "load":
                    self.load_pushes["unauthorized"] += 1
                return _error(
                    401, "a valid bearer token is required", **{"WWW-Authenticate": "Bearer"}
                )
            request["who"] = who
            return await self._audited(request, handler, who)
        return await handler(request)

    async def _audited(self, request: web.Request, handler: Any, who: str) -> web.StreamResponse:
        """Run a state-changing request and record who asked what, and the result."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            await self._audit(request, who, exc.status, _error_text(exc.text))
            raise
        except Exception as exc:
            await self._audit(request, who, 500, f"internal error: {exc!r}")
            raise
        error = None
        if response.status >= 400 and isinstance(response, web.Response) and response.body:
            error = _error_text(response.body)
        await self._audit(request, who, response.status, error)
        return response

    async def _audit(self, request: web.Request, who: str, status: int, error: str | None) -> None:
        info = request.match_info
        handler = getattr(info.handler, "__name__", "")
        action = AUDIT_ACTIONS.get(handler, f"{request.method} {request.path}")
        if "action" in info:
            action = f"{action} {info['action']}"
        target = "/".join(info[k] for k in ("service", "region") if k in info)
        record = AuditRecord(
            at=self.plane.clock(),
            who=who,
            action=action,
            target=target,
            detail=request.get("audit", ""),
            result=result_of(status),
            status=status,
            error=error,
            node=self.plane.node,
            remote=request.remote,
        )
        key = (action.replace(" ", "_"), record.result)
        if key in self.actions:
            self.actions[key] += 1
        await self.audit.record(record)

    async def audit_list(self, request: web.Request) -> web.Response:
        """The newest admin actions, newest first: ?limit=N (default 100, at most the
        number kept)."""
        text = request.query.get("limit", str(AUDIT_LIMIT))
        try:
            limit = int(text)
        except ValueError:
            return _error(400, f"limit {text!r} is not a whole number")
        if not 1 <= limit <= self.audit.keep:
            return _error(400, f"limit must be between 1 and {self.audit.keep}")
        records, error = await self.audit.recent(limit)
        return web.json_response(
            {
                "kept_in": self.audit.kind,
                "keep": self.audit.keep,
                "error": error,
                "records": records,
            }
        )

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def healthz(self, request: web.Request) -> web.Response:
        # 200 whether or not the store answers: DNS goes on from the last shared state, and a
        # readiness probe that failed with etcd would take every node out at once.
        follower = self.plane.shared
        store = {
            "kind": "embedded" if self.plane.embedded else "etcd",
            "connected": follower.connected,
            "since": follower.since,
            "error": None if follower.error is None else without_paths(follower.error),
        }
        return web.json_response(
            {
                "status": "ok" if follower.connected else "degraded",
                "config_version": self.plane.config_version,
                "node": self.plane.node,
                "store": store,
            }
        )

    async def metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self.registry)

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(self.view.state(demo=self.demo is not None))

    async def explain(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        client = request.query.get("client")
        if not name or not client:
            return _error(400, "name and client are required: /api/explain?name=...&client=IP")
        prefix_text = request.query.get("prefix")
        plane = self.plane
        local = plane.local
        if local is None:
            return _error(503, "not serving yet")
        geo = local.answerer.geo
        try:
            prefix = int(prefix_text) if prefix_text else None
            result = explain(geo, name, client, prefix)
        except ValueError:
            return _error(400, f"prefix {prefix_text!r} is not a number")
        except GeodnsError as exc:
            return _error(400, str(exc))
        merged = plane.scopes is not None and plane.scopes.merged
        # The worker's own state: the one this server's answers are decided on now.
        state = live_state(geo.state.version, plane.published_at)
        # The checks behind each region's health: every live node's vote and the quorum.
        health = plane.fleet_view()["votes"].get(result.decision.service.key, {})
        now = plane.clock()
        latency = latency_json(geo, result, now)
        areas = measured_json(geo, result, now)
        return web.json_response(explain_body(result, merged, state, health, latency, areas))

    async def rum(self, request: web.Request) -> web.Response:
        """A report of measured latency (docs/rum.md): 202 with the samples accepted, or a
        4xx saying why not, counted in geodns_rum_reports_total."""
        ingest = self.plane.rum
        refusal = ingest.authorized(request.headers.get("Authorization", ""))
        sender = request.remote or ""
        if refusal is None:
            refusal = ingest.admit(sender, self.plane.clock())
        if refusal is None:
            # At most one byte over the limit is read: the parser refuses the rest unread.
            body = await request.content.read(MAX_BODY + 1)
            refusal, accepted = ingest.ingest(body, sender, self.plane.clock())
            if refusal is None:
                return web.json_response({"accepted": accepted}, status=202)
        headers = {}
        if refusal.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        elif refusal.status == 429:
            headers["Retry-After"] = "1"
        return _error(refusal.status, refusal.message, **headers)

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(
                text='{"error": "the body must be JSON"}', content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text='{"error": "the body must be a JSON object"}', content_type="application/json"
            )
        return body

    async def force(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        service = request.match_info["service"]
        region = request.match_info["region"]
        mode = body.get("state")
        by = body.get("by")
        if by is not None and not isinstance(by, str):
            return _error(400, "`by` must be text: who sets this state, or why")
        by = (by or "").strip()[:BY_MAX] or f"{request['who']} (admin API from {request.remote})"
        request["audit"] = f"{mode} by {by}" if body.get("by") else str(mode)
        try:
            snapshot = await self.plane.force(service, region, str(mode), by)
        except UnknownRegion as exc:
            return _error(404, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        except StoreUnavailable as exc:
            return _store_down(exc)
        st = snapshot.get(service.rstrip("."), region)
        log.info("admin API: %s of %s set to %s by %s", region, service, mode, by)
        return web.json_response(
            {
                "ok": True,
                "service": service,
                "region": region,
                "state": str(st.health),
                "forced": None if st.forced is None else str(st.forced),
            }
        )

    async def push_load(self, request: web.Request) -> web.Response:
        """A region's load signals from its autoscaler or a metrics job (docs/capacity.md)."""
        response = await self._push_load(request)
        result = {200: "accepted", 404: "not_found", 413: "too_large"}.get(
            response.status, "bad_request"
        )
        self.load_pushes[result] += 1
        return response

    async def _push_load(self, request: web.Request) -> web.Response:
        raw = await request.content.read(MAX_LOAD_BODY + 1)
        if len(raw) > MAX_LOAD_BODY:
            return _error(413, f"a pushed load is at most {MAX_LOAD_BODY} bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "the body must be JSON")
        if not isinstance(body, dict):
            return _error(400, 'the body must be a JSON object: {"utilization": 0.9, ...}')
        request["audit"] = json.dumps(body, sort_keys=True, separators=(",", ":"))[:200]
        service, region = request.match_info["service"], request.match_info["region"]
        spec = next(
            (s for s in self.plane.zones.services() if s.key == service.rstrip(".").lower()),
            None,
        )
        if spec is None:
            return _error(404, f"no service {service!r}")
        try:
            values, expires = load.pushed_values(body, spec.capacity)
            self.plane.monitor.push_load(spec.key, region, values, expires)
        except UnknownRegion as exc:
            return _error(404, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        st = self.plane.state.get(spec.key, region)
        share, accept = capacity.share(st, spec.capacity)
        return web.json_response(
            {
                "ok": True,
                "service": spec.key,
                "region": region,
                "values": values,
                "expires": expires,
                "shed": share,
                "accept": accept,
            }
        )

    async def reload(self, request: web.Request) -> web.Response:
        result = await self.plane.reload("admin API")
        body = {
            "ok": result.ok,
            "config_version": self.plane.config_version,
            "errors": list(result.errors),
        }
        return web.json_response(body, status=200 if result.ok else 422)

    async def demo_region(self, request: web.Request) -> web.Response:
        if self.demo is None:
            return _error(404, "not running as `geodns demo`")
        body = await self._json_body(request)
        request["audit"] = json.dumps(body, sort_keys=True, separators=(",", ":"))[:200]
        region = request.match_info["region"]
        try:
            state = self.demo.set(
                region,
                mode=body.get("mode"),
                utilization=body.get("utilization"),
                version=body.get("version"),
                latency=body.get("latency"),
            )
        except KeyError:
            return _error(404, f"no simulated region {region!r}")
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return web.json_response({"ok": True, "region": region, **state})

    # --- rollouts (docs/rollouts.md) -------------------------

    def _service(self, request: web.Request) -> Service:
        key = request.match_info["service"].rstrip(".")
        for service in self.plane.zones.services():
            if service.key == key:
                return service
        raise RolloutNotFound(f"no service {key!r}")

    async def _rollout_call(
        self, request: web.Request, act: Any, status: int = 200
    ) -> web.Response:
        """Run one rollout operation and turn its refusals into replies that say why."""
        try:
            body = await act(self._service(request))
        except RolloutRefused as exc:
            return _error(409, str(exc))
        except RolloutNotFound as exc:
            return _error(404, str(exc))
        except StoreUnavailable as exc:
            return _store_down(exc)
        return web.json_response(body, status=status)

    async def rollout_start(self, request: web.Request) -> web.Response:
        spec = await self._json_body(request)
        to, min_old, soak = spec.get("to"), spec.get("min_old", 2), spec.get("soak_seconds")
        if not isinstance(to, str | int) or isinstance(to, bool) or not str(to).strip():
            return _error(400, "`to` must name the new version")
        if isinstance(min_old, bool) or not isinstance(min_old, int):
            return _error(400, "`min_old` must be a whole number")
        if soak is not None and (isinstance(soak, bool) or not isinstance(soak, int | float)):
            return _error(400, "`soak_seconds` must be a number of seconds or null")
        request["audit"] = f"to {str(to).strip()}"
        plane = self.plane

        async def act(service: Service) -> dict[str, Any]:
            rollout = await plane.guard.start(service, str(to).strip(), min_old, soak)
            rollout_log.info("rollout of %s to %s started", service.key, rollout.to)
            return rollouts.rollout_reply(rollout, service, plane.clock())

        return await self._rollout_call(request, act, status=201)

    async def rollout_status(self, request: web.Request) -> web.Response:
        plane = self.plane

        async def act(service: Service) -> dict[str, Any]:
            return rollouts.rollout_reply(plane.guard.get(service.key), service, plane.clock())

        return await self._rollout_call(request, act)

    async def rollout_action(self, request: web.Request) -> web.Response:
        plane = self.plane
        action = request.match_info["action"]

        async def act(service: Service) -> dict[str, Any]:
            change = plane.guard.validate if action == "validate" else plane.guard.abort
            rollout = await change(service)
            done = "validated" if action == "validate" else "aborted"
            rollout_log.info("rollout of %s to %s: %s by operator", service.key, rollout.to, done)
            return rollouts.rollout_reply(plane.guard.get(service.key), service, plane.clock())

        return await self._rollout_call(request, act)

    async def rollout_begin(self, request: web.Request) -> web.Response:
        plane = self.plane
        region = request.match_info["region"]

        async def act(service: Service) -> dict[str, Any]:
            await plane.guard.begin(service, region)
            rollout_log.info("rollout of %s: %s begun (drained)", service.key, region)
            rollout = plane.guard.get(service.key)
            return rollouts.region_reply(rollout, service, region, plane.clock())

        return await self._rollout_call(request, act)

    async def rollout_region(self, request: web.Request) -> web.Response:
        plane = self.plane
        region = request.match_info["region"]

        async def act(service: Service) -> dict[str, Any]:
            return rollouts.region_reply(
                plane.guard.get(service.key), service, region, plane.clock()
            )

        return await self._rollout_call(request, act)


class AdminServer(Listener):
    """Serves AdminApp on one address for as long as the control plane runs."""

    option = "--http"

    def __init__(
        self,
        plane: ControlPlane,
        listen: ListenAddress,
        tokens: AdminTokens | None,
        demo: DemoControls | None = None,
        host_names: tuple[str, ...] = (),
        access_log: bool = False,
    ) -> None:
        check_bind(listen, tokens)
        super().__init__(listen)
        self.access_log = access_log
        self.app = AdminApp(plane, tokens, demo, HostPolicy(host_names))

    async def start(self) -> None:
        access = logging.getLogger("aiohttp.access") if self.access_log else None
        await self.serve(self.app.build(), access)
        log.info("admin HTTP on %s", self.url())
        self.app.plane.advertise(http=str(ListenAddress(self.listen.host, self.port)))


def _error_text(body: bytes | str | None) -> str | None:
    """The `error` (or `errors`) of a JSON error reply, shortened for the audit log."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return str(body)[:300]
    if not isinstance(data, dict):
        return None
    errors = data.get("errors") or []
    text = data.get("error") or "; ".join(str(e) for e in errors)
    return str(text)[:300] or None


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
