"""Judging a health body, utilization as ratio or percent, ${ENV} headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from geodns.health.probes import MissingEnv, parse_utilization, read_body, resolve_headers
from geodns.zones.healthspec import BodyKeys, HealthCheck


def judge(body: Any, **check: Any) -> tuple[bool, str | None, float | None, str | None]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = read_body(HealthCheck(url="http://x/", **check), raw, 0.01)
    return r.ok, r.error, r.utilization, r.version


@pytest.mark.parametrize(
    ("value", "ratio"),
    [(0, 0.0), (0.42, 0.42), (1, 1.0), (1.0, 1.0), (42, 0.42), (100, 1.0), (99.5, 0.995)],
)
def test_utilization_is_a_ratio_or_a_percent(value: float, ratio: float) -> None:
    assert parse_utilization(value) == pytest.approx(ratio)


@pytest.mark.parametrize("value", [-0.1, 100.5, 1e9, float("nan"), True, False, "0.5", None, []])
def test_utilization_nonsense_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_utilization(value)


def test_a_full_body() -> None:
    body = {"ready": True, "gpu_utilization": 0.42, "model_version": "42"}
    assert judge(body) == (True, None, 0.42, "42")
    assert judge({**body, "gpu_utilization": 85, "model_version": 43}) == (True, None, 0.85, "43")


def test_ready_false_fails_whether_required_or_not() -> None:
    assert judge({"ready": False, "gpu_utilization": 0.1})[:2] == (False, "ready is false")
    assert judge({"ok": False}, keys=BodyKeys(ready="ok"))[:2] == (False, "ok is false")


def test_missing_optional_fields_are_just_not_reported() -> None:
    assert judge({}) == (True, None, None, None)
    assert judge(b"OK") == (True, None, None, None)  # not JSON, nothing required
    assert judge(b"") == (True, None, None, None)


def test_required_fields() -> None:
    assert judge(b"<html>", require=frozenset({"ready"}))[:2] == (False, "body is not JSON")
    assert judge([1], require=frozenset({"ready"}))[:2] == (False, "body is not a JSON object")
    assert judge({"ready": True}, require=frozenset({"utilization"}))[:2] == (
        False,
        "missing key gpu_utilization",
    )
    assert judge({}, require=frozenset({"version"}))[:2] == (False, "missing key model_version")
    assert judge({"ready": "yes"}, require=frozenset({"ready"}))[:2] == (
        False,
        "ready 'yes' is not true or false",
    )
    assert judge({"gpu_utilization": 150}, require=frozenset({"utilization"}))[:2] == (
        False,
        "gpu_utilization 150 is not 0..1 or a percent",
    )
    load = BodyKeys(utilization="load")
    assert judge({"load": 50}, keys=load, require=frozenset({"utilization"}))[:3] == (
        True,
        None,
        0.5,
    )


def test_garbled_optional_fields_are_ignored_and_noted() -> None:
    ok, error, utilization, version = judge(
        {"ready": "yes", "gpu_utilization": -3, "model_version": {"v": 1}}
    )
    assert ok and utilization is None and version is None
    assert error == (
        "ready 'yes' is not true or false; gpu_utilization -3 is not 0..1 or a percent;"
        " model_version {'v': 1} is not a string"
    )


def test_env_headers() -> None:
    headers = (("Authorization", "Bearer ${TOKEN}"), ("X-Pair", "${A}-${B}"), ("X-Plain", "$x"))
    env = {"TOKEN": "s3cret", "A": "1", "B": "2"}
    assert resolve_headers(headers, env) == {
        "Authorization": "Bearer s3cret",
        "X-Pair": "1-2",
        "X-Plain": "$x",
    }
    with pytest.raises(MissingEnv, match="environment variable TOKEN is not set"):
        resolve_headers(headers, {})
