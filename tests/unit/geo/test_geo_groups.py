"""Country groups: the shipped EU/EEA lists, and errors located by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from geodns.errors import ConfigError, ConfigErrors
from geodns.geo.groups import country_groups

# The 27 member states since 1 February 2020.
EU27_TEXT = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"
EU27 = set(EU27_TEXT.split())


def test_shipped_groups() -> None:
    groups = country_groups()
    assert set(groups) >= {"EU", "EEA", "EFTA", "GDPR", "UK"}
    assert groups["EU"] == EU27
    assert len(groups["EU"]) == 27
    assert groups["EEA"] == EU27 | {"IS", "LI", "NO"}
    assert groups["GDPR"] == groups["EEA"]
    assert groups["EFTA"] == {"CH", "IS", "LI", "NO"}
    assert groups["UK"] == {"GB"}
    assert "GB" not in groups["EEA"]
    assert "CH" not in groups["EEA"]
    assert all(isinstance(v, frozenset) for v in groups.values())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "groups.yaml"
    path.write_text(text)
    return path


def test_custom_file_and_norway_stays_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "NORDIC: [DK, FI, IS, NO, SE]\nDACH: [DE, AT, CH]\n")
    assert country_groups(path) == {
        "NORDIC": frozenset({"DK", "FI", "IS", "NO", "SE"}),
        "DACH": frozenset({"DE", "AT", "CH"}),
    }
    assert country_groups(str(path))["NORDIC"] >= {"NO"}


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        country_groups(path)
    assert isinstance(info.value, ConfigError)
    return [str(e) for e in info.value.errors]


def test_every_error_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# comment\n"
        "EU:\n"
        "  - DE\n"
        "  - fr\n"  # line 4
        "  - DEU\n"  # line 5
        "  - 12\n"  # line 6
        "  - DE\n"  # line 7
        "EMPTY: []\n"  # line 8
        "SCALAR: GB\n"  # line 9
        "1BAD: [GB]\n"  # line 10
        "OK: [on, NO]\n",  # line 11: `on` is no boolean here, and not a code either
    )
    assert errors_of(path) == [
        f"{path}:4: EU[1]: 'fr' is not an ISO 3166-1 alpha-2 code in upper case (like DE)",
        f"{path}:5: EU[2]: 'DEU' is not an ISO 3166-1 alpha-2 code in upper case (like DE)",
        f"{path}:6: EU[3]: 12 is not an ISO 3166-1 alpha-2 code in upper case (like DE)",
        f"{path}:7: EU[4]: DE is listed twice",
        f"{path}:8: EMPTY: expected a non-empty list of country codes",
        f"{path}:9: SCALAR: expected a non-empty list of country codes",
        f"{path}:10: 1BAD: a group name is a letter then letters, digits, _, -",
        f"{path}:11: OK[0]: 'on' is not an ISO 3166-1 alpha-2 code in upper case (like DE)",
    ]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- DE\n- FR\n")
    assert errors_of(path) == [f"{path}:1: expected a mapping at the top level"]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "EU: [DE, FR\nEEA: [IS]\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:")
    assert "YAML syntax" in message


def test_duplicate_group(tmp_path: Path) -> None:
    path = write(tmp_path, "EU: [DE]\nEU: [FR]\n")
    assert errors_of(path) == [f"{path}:2: EU: duplicate key 'EU'"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "none.yaml"
    assert errors_of(path) == [f"{path}: No such file or directory"]
