"""`geodns rollout`: the requests it builds and what it prints, with the opener injected.

Replies are built by the same functions the server uses (rollout_reply, region_reply); the
end-to-end test against a real `geodns serve` lives in tests/e2e.
"""

from __future__ import annotations

import argparse
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dns.name
import pytest

from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.versions import cli
from geodns.versions import rollout as core
from geodns.zones.model import Region, Service

KEY = "inference.example.com"
SERVICE = Service(
    dns.name.from_text(KEY + "."),
    30,
    tuple(Region(n, ("192.0.2.1",)) for n in ("us-east-1", "eu-west-1", "ap-northeast-1")),
)
T0 = 1764077982.0  # 2025-11-25T13:39:42Z


def old_state() -> StateSnapshot:
    out = StateSnapshot()
    for r in SERVICE.regions:
        out = out.with_region(KEY, r.name, RegionState(Health.UP, checked=Health.UP, version="42"))
    return out


STARTED = core.start(SERVICE, old_state(), "43", 2, 600, T0, None)
BEGUN = core.begin(STARTED, SERVICE, old_state(), "us-east-1", T0 + 10)


class Reply:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def read(self) -> bytes:
        return self.body

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Opener:
    """Records each request; answers `status` with `body` as urllib would."""

    def __init__(self, status: int = 200, body: Any = None, raw: bytes | None = None) -> None:
        self.status = status
        self.raw = raw if raw is not None else json.dumps(body).encode()
        self.requests: list[urllib.request.Request] = []
        self.timeouts: list[float] = []

    def __call__(self, request: urllib.request.Request, timeout: float) -> Reply:
        self.requests.append(request)
        self.timeouts.append(timeout)
        if self.status >= 400:
            raise urllib.error.HTTPError(
                request.full_url,
                self.status,
                "error",
                {},
                io.BytesIO(self.raw),  # type: ignore[arg-type]
            )
        return Reply(self.status, self.raw)

    @property
    def last(self) -> tuple[str, str, Any, dict[str, str]]:
        r = self.requests[-1]
        body = None if r.data is None else json.loads(r.data)  # type: ignore[arg-type]
        return r.get_method(), r.full_url, body, dict(r.header_items())


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="geodns")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["rollout", *argv])


def run(opener: Opener, *argv: str) -> int:
    return cli.run(parse(*argv), opener=opener)


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)


def test_start_posts_the_contract_body(capsys: pytest.CaptureFixture[str]) -> None:
    opener = Opener(201, core.rollout_reply(STARTED, SERVICE, T0))
    assert run(opener, "start", KEY, "--to", "43", "--soak", "600", "--admin-token-file", "/x") == 2
    assert "--admin-token-file /x: No such file or directory" in capsys.readouterr().err

    assert run(opener, "start", KEY, "--to", "43", "--soak", "600") == 0
    method, url, body, headers = opener.last
    assert (method, url) == ("POST", f"http://127.0.0.1:8053/api/services/{KEY}/rollouts")
    assert body == {"to": "43", "min_old": 2, "soak_seconds": 600.0}
    assert headers["Content-type"] == "application/json" and "Authorization" not in headers
    assert opener.timeouts == [10.0]
    assert capsys.readouterr().out == (
        f"rollout of {KEY} from 42 to 43: running (started 2025-11-25T13:39:42Z, min_old 2,"
        " soak 600 s)\n"
        "regions to update: us-east-1, eu-west-1, ap-northeast-1\n"
        f"next: geodns rollout begin {KEY} REGION\n"
    )


def test_the_token_comes_from_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opener = Opener(200, core.rollout_reply(STARTED, SERVICE, T0))
    monkeypatch.setenv(cli.TOKEN_ENV, "from-env")
    run(opener, "abort", KEY)
    assert opener.last[3]["Authorization"] == "Bearer from-env"
    token = tmp_path / "token"
    token.write_text("from-file\n")
    run(opener, "validate", KEY, "--admin-token-file", str(token))
    assert opener.last[3]["Authorization"] == "Bearer from-file"
    token.write_text("  \n")
    assert run(opener, "validate", KEY, "--admin-token-file", str(token)) == 2


def test_begin_says_when_to_deploy(capsys: pytest.CaptureFixture[str]) -> None:
    opener = Opener(200, core.region_reply(BEGUN, SERVICE, "us-east-1", T0 + 10))
    assert run(opener, "--admin", "http://10.0.0.5:8053/", "begin", KEY, "us-east-1") == 0
    method, url, body, _ = opener.last
    assert method == "POST" and body == {}
    assert (
        url == f"http://10.0.0.5:8053/api/services/{KEY}/rollouts/current/regions/us-east-1/begin"
    )
    assert capsys.readouterr().out == (
        f"us-east-1 of {KEY} drained; deploy after 2025-11-25T13:40:22Z (in 30 s)\n"
    )


def test_status_of_a_region_tells_whether_to_wait(capsys: pytest.CaptureFixture[str]) -> None:
    opener = Opener(200, core.region_reply(BEGUN, SERVICE, "us-east-1", T0 + 28.5))
    assert run(opener, "status", KEY, "us-east-1") == 0
    method, url, body, _ = opener.last
    assert (method, body) == ("GET", None)
    assert url.endswith(f"/api/services/{KEY}/rollouts/current/regions/us-east-1")
    assert capsys.readouterr().out == (
        f"us-east-1: draining, deploy after 2025-11-25T13:40:22Z: wait 12 s ({KEY})\n"
    )
    opener = Opener(200, core.region_reply(BEGUN, SERVICE, "us-east-1", T0 + 41))
    run(opener, "status", KEY, "us-east-1")
    assert "may deploy now" in capsys.readouterr().out
    opener = Opener(200, core.region_reply(BEGUN, SERVICE, "eu-west-1", T0 + 41))
    run(opener, "status", KEY, "eu-west-1")
    assert capsys.readouterr().out == f"eu-west-1 of {KEY}: not begun\n"


def test_status_of_the_rollout_lists_every_region(capsys: pytest.CaptureFixture[str]) -> None:
    state = old_state().with_region(
        KEY, "us-east-1", RegionState(Health.UP, checked=Health.UP, version="43")
    )
    updated = core.observe(BEGUN, SERVICE, state, T0 + 50)
    validated = core.validate(updated, T0 + 60)
    second = core.begin(validated, SERVICE, state, "eu-west-1", T0 + 70)
    opener = Opener(200, core.rollout_reply(second, SERVICE, T0 + 80))
    assert run(opener, "status", KEY) == 0
    assert opener.last[1].endswith(f"/api/services/{KEY}/rollouts/current")
    assert capsys.readouterr().out == (
        f"rollout of {KEY} from 42 to 43: validated (started 2025-11-25T13:39:42Z, min_old 2,"
        " soak 600 s); validated 2025-11-25T13:40:42Z\n"
        "  us-east-1: updated to 43 2025-11-25T13:40:32Z\n"
        "  eu-west-1: draining, deploy after 2025-11-25T13:41:22Z: wait 20 s\n"
        "  ap-northeast-1: not begun\n"
    )


def test_validate_and_abort(capsys: pytest.CaptureFixture[str]) -> None:
    opener = Opener(200, core.rollout_reply(core.abort(BEGUN, T0 + 20), SERVICE, T0 + 20))
    assert run(opener, "abort", KEY + ".") == 0
    method, url, _, _ = opener.last
    assert (method, url) == (
        "POST",
        f"http://127.0.0.1:8053/api/services/{KEY}./rollouts/current/abort",
    )
    out = capsys.readouterr().out
    assert out.endswith("; aborted 2025-11-25T13:40:02Z\nplain answers get 42 only\n")
    run(Opener(200, core.rollout_reply(STARTED, SERVICE, T0)), "validate", KEY)
    assert "43 now reaches plain answers beside 42" in capsys.readouterr().out


def test_a_refusal_prints_the_reason_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    reason = "refused: only 1 other region healthy on v42, min_old is 2"
    assert run(Opener(409, {"error": reason}), "begin", KEY, "eu-west-1") == 1
    assert capsys.readouterr().err == f"geodns rollout: {reason}\n"
    assert run(Opener(404, {"error": f"no rollout of {KEY}"}), "status", KEY) == 1
    assert capsys.readouterr().err == f"geodns rollout: no rollout of {KEY}\n"


def test_token_problems_exit_2_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(Opener(401, {"error": "a valid bearer token is required"}), "abort", KEY) == 2
    err = capsys.readouterr().err
    assert err.startswith("geodns rollout: a valid bearer token is required\n")
    assert "--admin-token-file FILE or $GEODNS_ADMIN_TOKEN" in err
    assert run(Opener(500, raw=b"<html>oops</html>"), "abort", KEY) == 2
    assert capsys.readouterr().err == "geodns rollout: HTTP 500: <html>oops</html>\n"


def test_connection_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def refused(request: urllib.request.Request, timeout: float) -> Reply:
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    assert cli.run(parse("status", KEY), opener=refused) == 2
    assert capsys.readouterr().err == (
        "geodns rollout: cannot reach the admin API at http://127.0.0.1:8053:"
        " [Errno 111] Connection refused\n"
    )
    assert cli.run(parse("--admin", "ftp://x", "status", KEY), opener=refused) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


def test_json_prints_the_reply_and_names_are_quoted(capsys: pytest.CaptureFixture[str]) -> None:
    reply = core.rollout_reply(STARTED, SERVICE, T0)
    opener = Opener(200, reply)
    assert run(opener, "status", "a/b c", "--json", "--timeout", "3") == 0
    assert "/api/services/a%2Fb%20c/rollouts/current" in opener.last[1]
    assert json.loads(capsys.readouterr().out) == reply
    assert opener.timeouts == [3.0]


def test_the_default_opener_really_connects(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 9 of loopback (discard): a real urllib connection error.
    assert cli.run(parse("--admin", "http://127.0.0.1:9", "--timeout", "2", "status", KEY)) == 2
    assert "cannot reach the admin API at http://127.0.0.1:9" in capsys.readouterr().err
