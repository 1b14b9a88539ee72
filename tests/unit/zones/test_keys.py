"""The key declaration (geodns/zones/keys.py) is what the schema, the docs and the loader use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from geodns.errors import ConfigErrors
from geodns.yamlsource import load_yaml
from geodns.zones import keygen
from geodns.zones.keys import SECTIONS, ZONE
from geodns.zones.loader import build_zone
from tests.unit.zones.test_schema import HEAD, REPO, validator

__all__ = ["validator"]  # the fixture, shared with the schema tests


def test_committed_schema_is_the_generated_one() -> None:
    committed = keygen.SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == keygen.schema_text(), (
        f"{keygen.SCHEMA_FILE} is stale: run `{keygen.COMMAND}` and commit it"
    )


def test_committed_docs_page_is_the_generated_one() -> None:
    committed = keygen.DOCS_FILE.read_text(encoding="utf-8")
    assert committed == keygen.docs_text(), (
        f"{keygen.DOCS_FILE} is stale: run `{keygen.COMMAND}` and commit it"
    )


def test_check_command_passes_on_the_committed_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "geodns.zones.keys", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_check_names_the_command_when_a_file_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "zone.schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    docs = tmp_path / "config-keys.md"
    docs.write_text(keygen.docs_text(), encoding="utf-8")
    monkeypatch.setattr(keygen, "SCHEMA_FILE", stale)
    monkeypatch.setattr(keygen, "DOCS_FILE", docs)
    assert keygen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert f"{stale} differs from the declaration: run `{keygen.COMMAND}`" in err
    assert str(docs) not in err
    assert keygen.main(["--write"]) == 0
    assert keygen.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == keygen.schema_text()


def test_generated_schema_is_valid_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(keygen.zone_schema())


def test_every_section_has_a_schema_definition_and_a_docs_table() -> None:
    schema = keygen.zone_schema()
    docs = keygen.docs_text()
    for section in SECTIONS:
        if section is not ZONE:
            assert set(schema["$defs"][section.name]["properties"]) == section.names
        assert f"\n## {section.name}\n" in docs
        for key in section.keys:
            assert f"| `{key.name}` |" in docs


def test_schema_accepts_the_service_level_version_key(
    validator: jsonschema.Draft202012Validator,
) -> None:
    # The hand-written schema rejected this documented, valid key (issue 15, item 4).
    for version in ("any", "{pin: '42'}", "{mode: consistent, canary_share: 0.05}"):
        text = (
            HEAD + "services:\n  api:\n    version: " + version + "\n"
            "    regions: {eu: {addresses: [192.0.2.1]}}\n"
        )
        doc = load_yaml(text, "test.yaml")
        build_zone(doc)
        validator.validate(doc.data)


# --- the documented examples ------------------------------------------------------------------

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]


def _yaml_blocks() -> list[tuple[str, str]]:
    out = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, m.start()) + 1
            # A line of `...` marks an omission in an example, not YAML.
            body = re.sub(r"(?m)^\s*\.\.\.\s*$", "", m.group(1))
            out.append((f"{path.relative_to(REPO)}:{line}", body))
    return out


def _zone_examples() -> list[tuple[str, str]]:
    """The examples that are zone files or parts of one (top-level keys of a zone)."""
    out = []
    for where, body in _yaml_blocks():
        data = load_yaml(body, where).data
        if isinstance(data, dict) and data and set(data) <= ZONE.names:
            out.append((where, body))
    return out


ZONE_EXAMPLES = _zone_examples()


def test_docs_hold_zone_examples() -> None:
    assert len(ZONE_EXAMPLES) >= 3
    assert any(body.startswith("zone:") for _, body in ZONE_EXAMPLES)


@pytest.mark.parametrize("where,body", ZONE_EXAMPLES, ids=[w for w, _ in ZONE_EXAMPLES])
def test_documented_examples_validate(
    where: str, body: str, validator: jsonschema.Draft202012Validator
) -> None:
    doc = load_yaml(body, where)
    data = doc.data
    if "zone" in data:
        # A whole zone file: the loader and the schema both take it as it is.
        build_zone(doc)
        validator.validate(data)
        return
    # A part of one: its keys and values must be right; what it leaves out (a region's
    # addresses in an example about health checks) is not its subject.
    whole = {**load_yaml(HEAD, where).data, **_without_omissions(data)}
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(whole)
        if not _only_missing(e)
    ]
    assert not errors, f"{where}: " + "; ".join(errors)


def _without_omissions(value: Any) -> Any:
    """`...` (a key, a value, an item) stands for what an example leaves out."""
    if isinstance(value, dict):
        return {k: _without_omissions(v) for k, v in value.items() if k != "..." and v != "..."}
    if isinstance(value, list):
        return [_without_omissions(v) for v in value if v != "..."]
    return value


def _only_missing(error: jsonschema.ValidationError) -> bool:
    """An error that is only about required keys left out, in any branch."""
    if error.validator in ("required", "minProperties"):
        return True
    if error.context:
        by_branch: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            by_branch.setdefault(sub.schema_path[0] if sub.schema_path else None, []).append(sub)
        return any(all(_only_missing(s) for s in subs) for subs in by_branch.values())
    return False


def test_an_example_with_an_unknown_key_fails(validator: jsonschema.Draft202012Validator) -> None:
    whole = {**load_yaml(HEAD, "x").data, "services": {"api": {"regions": {"eu": {"wieght": 1}}}}}
    assert [e for e in validator.iter_errors(whole) if not _only_missing(e)]


def test_unknown_key_in_a_zone_is_reported() -> None:
    with pytest.raises(ConfigErrors):
        build_zone(load_yaml(HEAD + "servics: {}\n", "x.yaml"))


# --- did you mean ---------------------------------------------------------------------------


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as exc:
        build_zone(load_yaml(text, "zones/x.yaml"))
    return [str(e) for e in exc.value.errors]


def test_a_misspelt_key_names_the_nearest_one() -> None:
    text = HEAD + "servics:\n  api: {regions: {eu: {addresses: [192.0.2.1]}}}\n"
    assert _errors(text) == ["zones/x.yaml:4: servics: unknown key (did you mean services?)"]


def test_every_misspelt_key_is_reported_at_once() -> None:
    text = (
        HEAD
        + "services:\n"
        + "  api:\n"
        + "    regions:\n"
        + "      eu: {adresses: [192.0.2.1], addresses: [192.0.2.2]}\n"
        + "    anwsers: 2\n"
        + "records:\n"
        + "  '@': {MX: {preference: 10, exchnage: mail, exchange: mail}}\n"
        + "  www: {A: {ttl: 60, value: 192.0.2.1, values: 192.0.2.1}}\n"
    )
    assert _errors(text) == [
        "zones/x.yaml:7: services.api.regions.eu.adresses: unknown key (did you mean addresses?)",
        "zones/x.yaml:8: services.api.anwsers: unknown key (did you mean answers?)",
        "zones/x.yaml:10: records.@.MX[0].exchnage: unknown key (did you mean exchange?)",
        "zones/x.yaml:11: records.www.A.value: unknown key (did you mean values?)",
    ]


def test_a_key_like_none_lists_them_all() -> None:
    assert _errors(HEAD + "colour: blue\n") == [
        "zones/x.yaml:4: colour: unknown key (expected one of debug, ns, records, services,"
        " soa, ttl, zone)"
    ]


def test_quorum_choices_are_the_quorum_policies() -> None:
    from geodns.zones.keys import SERVICE, Choice
    from geodns.zones.model import Quorum

    kind = SERVICE["quorum"].kind
    assert isinstance(kind, Choice)
    assert kind.choices == tuple(q.value for q in Quorum)
    assert SERVICE.default("quorum") == Quorum.MAJORITY.value


def test_the_suite_checks_each_zone_it_loads_against_the_schema() -> None:
    from tests import zoneschema

    with zoneschema.watch_loader() as built:
        build_zone(load_yaml(HEAD, "zones/ok.yaml"))
        with pytest.raises(ConfigErrors):
            build_zone(load_yaml(HEAD + "ttl: x\n", "zones/bad.yaml"))
    assert [doc.file for doc in built] == ["zones/ok.yaml"]  # only what the loader accepts
    assert zoneschema.schema_errors(built[0]) == []
    drifted = load_yaml(HEAD + "services:\n  api: {regions: {eu: {addresses: a, x: 1}}}\n", "z")
    assert zoneschema.schema_errors(drifted) == [
        "z:5: services.api.regions.eu: Additional properties are not allowed ('x' was unexpected)"
    ]


def test_a_misspelt_record_type_names_the_nearest_type() -> None:
    text = HEAD + "records:\n  www: {AAA: '2001:db8::1', CNAM: x, FOO: 1}\n"
    assert _errors(text) == [
        "zones/x.yaml:5: records.www.AAA: unknown record type 'AAA' (did you mean AAAA?)",
        "zones/x.yaml:5: records.www.CNAM: unknown record type 'CNAM' (did you mean CNAME?)",
        "zones/x.yaml:5: records.www.FOO: unknown record type 'FOO'",
    ]
