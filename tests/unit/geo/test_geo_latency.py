"""The latency table: the shipped AWS figures, lookups, and errors located by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from geodns.errors import ConfigError, ConfigErrors
from geodns.geo.latency import CONTINENTS, LatencyTable

REQUIRED_REGIONS = {
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
}
# The countries the shipped table must have a row for.
COUNTRIES_TEXT = "GB IE DE FR NL ES IT PL SE US CA MX BR AR JP KR CN IN SG AU NZ ZA NG EG AE"
COUNTRIES = COUNTRIES_TEXT.split()


@pytest.fixture(scope="module")
def shipped() -> LatencyTable:
    return LatencyTable.default()


def test_shipped_table_is_complete(shipped: LatencyTable) -> None:
    assert set(shipped.regions) >= REQUIRED_REGIONS
    assert set(shipped.countries) >= set(COUNTRIES)
    assert set(shipped.continents) == CONTINENTS
    for code in COUNTRIES:
        assert shipped.covers(code, None, shipped.regions) == "country", code
    for code in CONTINENTS:
        assert shipped.covers(None, code, shipped.regions) == "continent", code
    assert "cloudping.co" in shipped.source
    assert "https://" in shipped.source
    assert "2025" in shipped.source
    assert shipped.file.endswith("latency.yaml")
    assert LatencyTable.default() is shipped


def test_repo_level_data_symlink_points_at_the_shipped_files() -> None:
    root = Path(__file__).resolve().parents[3]
    assert (root / "data" / "latency.yaml").resolve() == Path(LatencyTable.default().file).resolve()
    assert (root / "data" / "groups.yaml").is_file()


@pytest.mark.parametrize(
    ("country", "nearest"),
    [
        ("GB", "eu-west-2"),
        ("IE", "eu-west-1"),
        ("DE", "eu-central-1"),
        ("US", "us-east-2"),
        ("BR", "sa-east-1"),
        ("JP", "ap-northeast-1"),
        ("SG", "ap-southeast-1"),
        ("AU", "ap-southeast-2"),
        ("IN", "ap-south-1"),
        ("ZA", "af-south-1"),
        ("AE", "me-central-1"),
    ],
)
def test_shipped_rows_put_the_local_region_first(
    shipped: LatencyTable, country: str, nearest: str
) -> None:
    row = shipped.countries[country]
    assert min(row, key=row.__getitem__) == nearest


def test_shipped_rows_order_the_three_example_regions(shipped: LatencyTable) -> None:
    three = ("us-east-1", "eu-west-1", "ap-northeast-1")

    def order(country: str) -> list[str]:
        return sorted(three, key=lambda r: shipped.rtt(country, None, r) or 0)

    assert order("GB") == ["eu-west-1", "us-east-1", "ap-northeast-1"]
    assert order("US") == ["us-east-1", "eu-west-1", "ap-northeast-1"]
    assert order("JP")[0] == "ap-northeast-1"
    assert order("AU")[0] == "ap-northeast-1"
    assert order("BR")[0] == "us-east-1"


SMALL = """\
source: "test figures"
regions: [us-east-1, eu-west-1, ap-northeast-1]
countries:
  GB: {eu-west-1: 12, us-east-1: 76.5}
continents:
  EU: {eu-west-1: 20, us-east-1: 90, ap-northeast-1: 230}
  AS: {ap-northeast-1: 40}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "latency.yaml"
    path.write_text(text)
    return path


def test_rtt_country_then_continent_then_none(tmp_path: Path) -> None:
    table = LatencyTable.load(write(tmp_path, SMALL))
    assert table.source == "test figures"
    assert table.regions == ("us-east-1", "eu-west-1", "ap-northeast-1")
    assert table.rtt("GB", "EU", "eu-west-1") == 12.0
    assert table.rtt("GB", "EU", "us-east-1") == 76.5
    assert table.rtt("GB", "EU", "ap-northeast-1") == 230.0  # not in GB's row: EU's
    assert table.rtt("FR", "EU", "eu-west-1") == 20.0  # no FR row
    assert table.rtt("GB", None, "ap-northeast-1") is None
    assert table.rtt("JP", "AS", "eu-west-1") is None
    assert table.rtt(None, None, "eu-west-1") is None
    assert table.rtt("GB", "EU", "mars-1") is None


def test_covers(tmp_path: Path) -> None:
    table = LatencyTable.load(write(tmp_path, SMALL))
    assert table.covers("GB", "EU", ["eu-west-1", "us-east-1"]) == "country"
    # GB's row lacks ap-northeast-1, so the whole order comes from the EU row.
    assert table.covers("GB", "EU", ["eu-west-1", "ap-northeast-1"]) == "continent"
    assert table.covers("GB", None, ["eu-west-1", "ap-northeast-1"]) is None
    assert table.covers("JP", "AS", ["ap-northeast-1"]) == "continent"
    assert table.covers("JP", "AS", ["ap-northeast-1", "us-east-1"]) is None
    assert table.covers(None, None, ["us-east-1"]) is None
    assert table.covers("GB", "EU", iter(["eu-west-1"])) == "country"


def test_rows_are_read_only(tmp_path: Path) -> None:
    table = LatencyTable.load(write(tmp_path, SMALL))
    with pytest.raises(TypeError):
        table.countries["GB"]["eu-west-1"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        table.countries["FR"] = {}  # type: ignore[index]


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        LatencyTable.load(path)
    assert isinstance(info.value, ConfigError)
    return [str(e) for e in info.value.errors]


def test_every_error_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'source: "x"\n'
        "regions: [us-east-1, eu-west-1, us-east-1]\n"  # line 2: duplicate
        "countries:\n"
        "  GB: {eu-west-1: 12, eu-west-9: 5}\n"  # line 4: unknown region
        "  FR:\n"
        "    eu-west-1: -3\n"  # line 6: negative
        "    us-east-1: 0\n"  # line 7: zero
        "  DE: {eu-west-1: fast, us-east-1: true}\n"  # line 8: not numbers
        "  gb: {eu-west-1: 10}\n"  # line 9: lower case
        "  ES: []\n"  # line 10: not a mapping
        "continents:\n"
        "  XX: {eu-west-1: 10}\n"  # line 12: no such continent
        "  EU: {eu-west-1: .inf}\n"  # line 13: not finite
        "regoins: []\n",  # line 14: typo
    )
    assert errors_of(path) == [
        f"{path}:2: regions[2]: us-east-1 is listed twice",
        f"{path}:4: countries.GB.eu-west-9: region eu-west-9 is not in `regions`",
        f"{path}:6: countries.FR.eu-west-1: RTT must be a positive number of milliseconds, got -3",
        f"{path}:7: countries.FR.us-east-1: RTT must be a positive number of milliseconds, got 0",
        f"{path}:8: countries.DE.eu-west-1: RTT must be a positive number of milliseconds,"
        " got 'fast'",
        f"{path}:8: countries.DE.us-east-1: RTT must be a positive number of milliseconds,"
        " got True",
        f"{path}:9: countries.gb: not an ISO 3166-1 alpha-2 code in upper case (like DE)",
        f"{path}:10: countries.ES: expected a non-empty mapping of region -> RTT ms",
        f"{path}:12: continents.XX: not a continent code (AF AN AS EU NA OC SA)",
        f"{path}:13: continents.EU.eu-west-1: RTT must be a positive number of milliseconds,"
        " got '.inf'",
        f"{path}:14: regoins: unknown key (expected one of: source, regions, countries,"
        " continents, anchors, ms_per_km)",
    ]


def test_anchor_errors_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "regions: [us-east-1]\n"
        "countries:\n"
        "  US: {us-east-1: 20}\n"
        "  BR: {us-east-1: 120}\n"
        "anchors:\n"
        "  US: {lat: 95, lon: -83}\n"  # line 6: not on Earth
        "  CA: {lat: 45.5, lon: -73.6}\n"  # line 7: no CA row
        "  BR: [1, 2]\n"  # line 8: not a mapping
        "ms_per_km: -1\n",  # line 9
    )
    assert errors_of(path) == [
        f"{path}:6: anchors.US: (95, -83) is not a place on Earth",
        f"{path}:7: anchors.CA: no row in `countries` for CA: an anchor places a row",
        f"{path}:8: anchors.BR: expected {{lat: DEGREES, lon: DEGREES}}",
        f"{path}:9: ms_per_km: expected a number of ms per km from 0 to 1, got -1",
    ]


def test_missing_regions(tmp_path: Path) -> None:
    path = write(tmp_path, "countries:\n  GB: {eu-west-1: 12}\n")
    assert errors_of(path) == [
        f"{path}:1: regions: missing: list every region name the table uses",
        f"{path}:2: countries.GB.eu-west-1: region eu-west-1 is not in `regions`",
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "none.yaml"
    assert errors_of(path) == [f"{path}: No such file or directory"]


def test_an_unchanged_file_is_read_once_and_an_edit_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    first = LatencyTable.load(path)
    assert LatencyTable.load(path) is first
    path.write_text(SMALL.replace("test figures", "new figures"))
    again = LatencyTable.load(path)
    assert again is not first and again.source == "new figures"
