"""The shipped Prometheus alert rules and Grafana dashboard (contrib/): valid for their tools,
and naming only metrics that a real server's /metrics has, so that they cannot drift."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REQUIRE_TOOLS, ROOT, running_server, wait_for
from tests.e2e.test_metrics import fetch

RULES = ROOT / "contrib" / "prometheus" / "geodns-alerts.yml"
RULE_TESTS = ROOT / "contrib" / "prometheus" / "geodns-alerts.test.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "geodns.json"
MONITORING = ROOT / "docs" / "monitoring.md"
# The alerts the issue asks for, at least.
REQUIRED_ALERTS = {
    "GeodnsRegionDown",
    "GeodnsServiceAllRegionsDown",
    "GeodnsReloadFailed",
    "GeodnsStoreDisconnected",
    "GeodnsRRLDropping",
}
# Every metric geodns exports has one of these prefixes (the rest of a query's identifiers
# are PromQL functions, keywords and label names, and Prometheus's own `up`).
# The series of a family beside its own name, by type (a family without samples yet, such as
# the health checks' of a zone with none, has its # TYPE line only).
SERIES_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
METRIC_NAME = re.compile(r"\b(?:geodns|process|python)_[a-zA-Z0-9_]+\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if REQUIRE_TOOLS:
            pytest.fail("promtool is required (GEODNS_REQUIRE_TOOLS=1) but not installed")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every rule expression and dashboard query."""
    for rule in rules():
        yield f"alert {rule['alert']}", rule["expr"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["definition"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name a running server's /metrics has: sample names, and the names of
    families that have no sample yet (a counter of a thing not seen)."""
    state = tmp_path_factory.mktemp("state")
    with running_server(
        ROOT / "zones", "--metrics", "127.0.0.1:0", "--state-dir", str(state)
    ) as srv:
        status, _, text = fetch(wait_for(lambda: srv.metrics_url))
    assert status == 200
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name} | {name + suffix for suffix in SERIES_SUFFIXES.get(kind, ())}
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
    return names


def test_the_rules_have_the_shape_prometheus_loads() -> None:
    """A schema check that holds without promtool: groups of named rules, each alert with an
    expression, a duration, a severity and a summary."""
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert re.fullmatch(r"\d+[smh]", rule["for"])
            assert rule["labels"]["severity"] in ("critical", "warning", "info")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_the_rules_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULE_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert len(tested) >= 2 and tested <= {rule["alert"] for rule in rules()}


def test_the_dashboard_has_what_grafana_imports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        assert panel["title"] and set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    titles = " ".join(panel["title"].lower() for panel in graphs)
    for topic in ("answers", "latency", "up", "shed", "rate limiting", "reload"):
        assert topic in titles, topic


def test_every_metric_the_examples_name_is_exported(exported: set[str]) -> None:
    for where, expr in queries():
        used = set(METRIC_NAME.findall(expr))
        assert used or expr.startswith("up{"), f"{where}: no geodns metric in {expr!r}"
        missing = used - exported
        assert not missing, f"{where}: {sorted(missing)} not in /metrics"


def test_every_exported_family_is_in_the_metrics_reference(exported: set[str]) -> None:
    documented = set(re.findall(r"`((?:geodns|process|python)_\w+)`", MONITORING.read_text()))
    families = {name for name in exported if not name.endswith(("_bucket", "_count", "_sum"))}
    assert families - documented == set(), "families docs/monitoring.md does not list"


def test_the_name_check_catches_a_drifted_name(exported: set[str]) -> None:
    # The check above, on a rule that names a metric under its old name.
    assert set(METRIC_NAME.findall("rate(geodns_answer_total[5m]) > 0")) - exported
    assert not set(METRIC_NAME.findall("rate(geodns_answers_total[5m]) > 0")) - exported
