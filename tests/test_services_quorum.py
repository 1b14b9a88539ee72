"""The service-level `quorum:` key: its values, its default, its errors, and the schema's."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from geodns.errors import ConfigErrors
from geodns.yamlsource import load_yaml
from geodns.zones.loader import load_zone_file
from geodns.zones.model import Quorum, Service
from geodns.zones.schema import zone_schema

HEAD = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster}
ns: [ns1]
services:
  inference:
    regions:
      us-east-1: {addresses: [192.0.2.10]}
"""


def service(tmp_path: Path, body: str) -> Service:
    path = tmp_path / "z.yaml"
    path.write_text(HEAD + body)
    (found,) = load_zone_file(path).services.values()
    return found


def errors(tmp_path: Path, body: str) -> str:
    path = tmp_path / "z.yaml"
    path.write_text(HEAD + body)
    with pytest.raises(ConfigErrors) as info:
        load_zone_file(path)
    return "\n".join(str(e) for e in info.value.errors)


def test_majority_is_the_default(tmp_path: Path) -> None:
    assert service(tmp_path, "").quorum is Quorum.MAJORITY


@pytest.mark.parametrize("value", ["majority", "any", "local"])
def test_each_policy(tmp_path: Path, value: str) -> None:
    assert service(tmp_path, f"    quorum: {value}\n").quorum is Quorum(value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("most", "'most'"), ("MAJORITY", "'MAJORITY'"), ("true", "True"), ("[any]", "['any']")],
)
def test_a_bad_value_names_file_line_and_key(tmp_path: Path, value: str, shown: str) -> None:
    out = errors(tmp_path, f"    quorum: {value}\n")
    assert f"z.yaml:8: services.inference.quorum: {shown} is not one of majority, any, local" in out


def test_reported_with_every_other_error(tmp_path: Path) -> None:
    out = errors(tmp_path, "    quorum: all\n    when_all_down: never\n    answers: 0\n")
    assert "services.inference.quorum: 'all' is not one of" in out
    assert "services.inference.when_all_down: 'never'" in out
    assert "services.inference.answers:" in out


def test_the_schema_agrees_with_the_loader() -> None:
    validator = jsonschema.Draft202012Validator(zone_schema())
    for value in Quorum:
        assert validator.is_valid(load_yaml(HEAD + f"    quorum: {value}\n", "z.yaml").data)
    for bad in ("most", "MAJORITY", "true", "null"):
        assert not validator.is_valid(load_yaml(HEAD + f"    quorum: {bad}\n", "z.yaml").data)
    prop = zone_schema()["$defs"]["service"]["properties"]["quorum"]
    assert prop["enum"] == [q.value for q in Quorum]
    assert prop["default"] == Quorum.MAJORITY.value
