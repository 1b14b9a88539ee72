"""The admin HTTP side of a real `geodns serve`: state, explain, metrics, auth, forced states,
and its defences: Host names (DNS rebinding), framing, no filesystem paths."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from http import client as http_client
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import EXAMPLE_ZONES, ROOT, ServerProcess, running_server, wait_for

TOKEN = "s3cret-admin-token"
EXTRA_NAME = "dash.example.test"  # --http-host
EXPLAIN_X = "/api/explain?name=inference.example.com&client=81.2.69.142"
GB = "81.2.69.0/24"
US = "216.160.83.0/24"


def http(
    server: ServerProcess,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[int, Any]:
    assert server.admin_url is not None
    return http_at(server.admin_url, path, body, token)


def http_at(
    base_url: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    """GET (or POST `body` as JSON) and the status with the decoded reply."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url.rstrip("/") + path, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            status, raw, kind = reply.status, reply.read(), reply.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in kind else raw.decode()


def ask(server: ServerProcess, subnet: str, name: str = "inference.example.com"):
    query = dns.message.make_query(name, "A", use_edns=0)
    address, prefix = subnet.split("/")
    query.use_edns(0, options=[dns.edns.ECSOption(address, int(prefix))])
    return server.udp(query)


def answer_of(reply: dns.message.Message) -> str | list[str]:
    if reply.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(reply.rcode())
    return sorted(r.address for rrset in reply.answer for r in rrset)


def metrics(server: ServerProcess) -> dict[str, dict[tuple, float]]:
    status, text = http(server, "/metrics")
    assert status == 200
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def state_files(directory: Path) -> tuple[str, ...]:
    """Options that keep a server's forces and rollouts in `directory`: a force set on the
    shared example zones would otherwise be kept beside them for the next server."""
    return ("--state-dir", str(directory))


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory):
    state = state_files(tmp_path_factory.mktemp("state"))
    with running_server(
        EXAMPLE_ZONES, "--http-host", EXTRA_NAME, *state, env={"GEODNS_ADMIN_TOKEN": TOKEN}
    ) as srv:
        yield srv


def test_healthz_and_state(admin_server: ServerProcess) -> None:
    status, health = http(admin_server, "/healthz")
    assert status == 200
    assert health["status"] == "ok" and health["config_version"] == 1
    assert health["store"]["kind"] == "embedded" and health["store"]["connected"] is True
    status, state = http(admin_server, "/api/state")
    assert status == 200
    service = state["services"][0]
    assert service["name"] == "inference.example.com"
    assert [r["name"] for r in service["regions"]] == ["us-east-1", "eu-west-1", "ap-northeast-1"]
    assert service["countries"]["GB"] == "eu-west-1"
    assert service["countries"]["US"] == "us-east-1"
    assert service["countries"]["JP"] == "ap-northeast-1"
    assert state["server"]["geoip"]["attribution"].startswith("IP Geolocation by DB-IP")


def test_explain_api(admin_server: ServerProcess) -> None:
    status, body = http(admin_server, "/api/explain?name=inference.example.com&client=81.2.69.142")
    assert status == 200
    assert body["client"]["country"] == "GB"
    assert body["regions"] == ["eu-west-1"]
    assert [s["step"] for s in body["steps"]] == [
        "residency",
        "health",
        "version",
        "capacity",
        "order",
        "measured",
    ]
    status, body = http(admin_server, "/api/explain?name=www.example.com&client=81.2.69.142")
    assert status == 400
    assert "not a service name" in body["error"]
    assert http(admin_server, "/api/explain?name=inference.example.com")[0] == 400


@pytest.mark.parametrize("token", [None, "wrong"])
def test_changes_need_the_right_token(admin_server: ServerProcess, token: str | None) -> None:
    path = "/api/services/inference.example.com/regions/eu-west-1/state"
    status, body = http(admin_server, path, {"state": "down"}, token=token)
    assert status == 401
    assert "bearer token" in body["error"]
    assert answer_of(ask(admin_server, GB)) == ["192.0.2.20"]


def test_forced_states_move_answers_and_auto_returns(admin_server: ServerProcess) -> None:
    path = "/api/services/inference.example.com/regions/eu-west-1/state"
    status, body = http(admin_server, path, {"state": "drain"}, token=TOKEN)
    assert (status, body["state"], body["forced"]) == (200, "drain", "drain")
    # The EU residency rule fails closed: the unavailable endpoint, never another
    # jurisdiction.
    assert answer_of(ask(admin_server, GB)) == ["192.0.2.29"]
    assert answer_of(ask(admin_server, US)) == ["192.0.2.10"]
    _, state = http(admin_server, "/api/state")
    region = state["services"][0]["regions"][1]
    assert (region["state"], region["forced"]) == ("drain", "drain")
    assert state["services"][0]["countries"]["GB"] is None
    assert state["changes"][0]["to"] == "drain"
    status, body = http(admin_server, path, {"state": "auto"}, token=TOKEN)
    assert (status, body["state"], body["forced"]) == (200, "up", None)
    assert answer_of(ask(admin_server, GB)) == ["192.0.2.20"]


def test_bad_state_changes_say_what_is_wrong(admin_server: ServerProcess) -> None:
    base = "/api/services/inference.example.com/regions"
    status, body = http(admin_server, f"{base}/eu-west-1/state", {"state": "off"}, token=TOKEN)
    assert status == 400 and "off" in body["error"]
    status, body = http(admin_server, f"{base}/mars-1/state", {"state": "down"}, token=TOKEN)
    assert status == 404 and "mars-1" in body["error"]
    status, _ = http(admin_server, "/api/services/nope.example.com/regions/x/state", {}, TOKEN)
    assert status in (400, 404)


def test_metrics_count_queries_answers_and_decisions(admin_server: ServerProcess) -> None:
    for _ in range(3):
        ask(admin_server, US)
    admin_server.udp(dns.message.make_query("www.example.com", "A"))
    admin_server.udp(dns.message.make_query("nope.example.com", "A"))
    m = metrics(admin_server)
    queries = m["geodns_queries_total"]
    key = (("qtype", "A"), ("rcode", "NOERROR"), ("transport", "udp"), ("zone", "example.com"))
    assert queries[key] >= 5
    nx = (("qtype", "A"), ("rcode", "NXDOMAIN"), ("transport", "udp"), ("zone", "example.com"))
    assert queries[nx] >= 1
    answers = m["geodns_answers_total"]
    assert answers[(("region", "us-east-1"), ("service", "inference.example.com"))] >= 3
    cache = m["geodns_decision_cache_total"]
    assert cache[(("result", "miss"),)] >= 1
    assert m["geodns_query_duration_seconds_count"][()] >= 5
    up = (("region", "us-east-1"), ("service", "inference.example.com"), ("state", "up"))
    assert m["geodns_region_state"][up] == 1
    assert m["geodns_geoip_database_build_timestamp_seconds"][()] > 1.6e9


def test_without_a_token_changes_are_off() -> None:
    with running_server() as srv:
        status, body = http(srv, "/api/reload", {}, token="anything")
        assert status == 403
        assert "no admin token is configured" in body["error"]


def test_no_admin_beyond_loopback_without_a_token() -> None:
    refused = pytest.raises(RuntimeError, match="refusing to serve the admin API beyond loopback")
    with refused, running_server(http="0.0.0.0:0", startup_timeout=10):
        pass


def test_two_workers_follow_forced_states_and_report_counts(tmp_path: Path) -> None:
    with running_server(
        EXAMPLE_ZONES,
        "--workers",
        "2",
        *state_files(tmp_path),
        listen=("127.0.0.1:0",),
        env={"GEODNS_ADMIN_TOKEN": TOKEN},
    ) as srv:
        path = "/api/services/inference.example.com/regions/eu-west-1/state"
        assert http(srv, path, {"state": "down"}, token=TOKEN)[0] == 200
        # SO_REUSEPORT spreads sockets over both workers by their source port: ask from many.
        wait_for(
            lambda: {str(answer_of(ask(srv, GB))) for _ in range(40)} == {"['192.0.2.29']"},
            timeout=5,
            interval=0.1,
        )

        def counted() -> bool:
            total = sum(metrics(srv)["geodns_queries_total"].values())
            return total >= 40

        wait_for(counted, timeout=5, interval=0.2)


def with_host(
    server: ServerProcess,
    path: str,
    host: str | None,
    body: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[int, http_client.HTTPMessage, bytes]:
    """A request with a Host header of our choosing (None: none at all), as a browser
    sends it for a rebound name."""
    assert server.admin_url is not None
    url = urllib.parse.urlsplit(server.admin_url)
    conn = http_client.HTTPConnection(url.hostname, url.port, timeout=5)
    try:
        conn.putrequest("GET" if body is None else "POST", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        data = b"" if body is None else json.dumps(body).encode()
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(data)))
        if token is not None:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders(data or None)
        reply = conn.getresponse()
        return reply.status, reply.headers, reply.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",  # a rebinding page's name, as the browser sends it
        "evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "localhost.evil.example:{port}",
        "192.0.2.1:{port}",  # an address this server does not listen on
        "sub.dash.example.test:{port}",  # --http-host names are exact
    ],
)
@pytest.mark.parametrize(
    "path", ["/", "/api/state", "/api/explain?name=x&client=1.2.3.4", "/metrics"]
)
def test_a_foreign_host_name_is_refused(admin_server: ServerProcess, host: str, path: str) -> None:
    port = urllib.parse.urlsplit(admin_server.admin_url or "").port
    status, _, raw = with_host(admin_server, path, host.format(port=port))
    assert status == 421
    assert "is not a name of this server" in json.loads(raw)["error"]
    assert b"inference.example.com" not in raw


def test_a_foreign_host_name_changes_nothing(admin_server: ServerProcess) -> None:
    path = "/api/services/inference.example.com/regions/eu-west-1/state"
    status, _, _ = with_host(admin_server, path, "evil.example", {"state": "down"}, TOKEN)
    assert status == 421
    assert answer_of(ask(admin_server, GB)) == ["192.0.2.20"]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "127.0.0.1",
        "localhost:{port}",
        "localhost",
        "LocalHost.:{port}",
        f"{EXTRA_NAME}:{{port}}",
        EXTRA_NAME,
    ],
)
def test_the_servers_own_names_are_answered(admin_server: ServerProcess, host: str | None) -> None:
    port = urllib.parse.urlsplit(admin_server.admin_url or "").port
    status, _, raw = with_host(
        admin_server, "/api/state", None if host is None else host.format(port=port)
    )
    assert status == 200
    assert json.loads(raw)["services"][0]["name"] == "inference.example.com"


def test_no_page_may_frame_the_dashboard(admin_server: ServerProcess) -> None:
    for path in ("/", "/static/dashboard.js", "/api/state"):
        status, headers, _ = with_host(admin_server, path, "127.0.0.1")
        assert status == 200
        assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_state_shows_no_filesystem_paths(admin_server: ServerProcess) -> None:
    _, state = http(admin_server, "/api/state")

    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    texts = strings(state)
    assert texts
    for text in texts:
        assert not text.startswith("/"), text
        assert str(ROOT) not in text and "site-packages" not in text, text
    geoip = state["server"]["geoip"]
    assert "path" not in geoip
    assert geoip["file"].endswith(".mmdb") and "/" not in geoip["file"]
    dashboard = (ROOT / "geodns" / "admin" / "static" / "dashboard.js").read_text()
    assert "g.path" not in dashboard and "cache_dir" not in dashboard
