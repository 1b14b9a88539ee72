"""Master file import and export: a BIND zone survives import -> loader -> export unchanged."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.zone
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.errors import ConfigError, ConfigErrors
from geodns.yamlsource import load_yaml
from geodns.zones.loader import build_zone, load_zone_file
from geodns.zones.masterfile import export_master_file, import_master_file
from geodns.zones.model import Zone
from geodns.zones.schema import zone_schema

RT = dns.rdatatype.RdataType
REPO = Path(__file__).resolve().parents[3]

# 255 bytes then 45: a DKIM-style key that needs two character-strings.
LONG_A = "p=" + "A" * 253
LONG_B = "B" * 45

BIND_ZONE = f"""\
; example.com as BIND, NSD or Knot would read it
$ORIGIN example.com.
$TTL 3600
@       IN  SOA ns1 hostmaster (
                2024060101 ; serial
                7200       ; refresh
                900        ; retry
                1209600    ; expire
                300 )      ; minimum
        IN  NS      ns1
        IN  NS      ns2.example.net.
        IN  MX      10 mail
        IN  MX      20 mail.example.net.
        IN  TXT     "v=spf1 mx -all"
        IN  TXT     "first part " "second part"
        IN  CAA     0 issue "letsencrypt.org"
        IN  CAA     128 iodef "mailto:security@example.com"
ns1     IN  A       192.0.2.53
        IN  AAAA    2001:db8::53
mail    60  IN  A   192.0.2.25          ; a per-record TTL
www     IN  A       192.0.2.80
        IN  A       192.0.2.81
        IN  AAAA    2001:db8::80
api     IN  CNAME   www
selector._domainkey IN TXT ( "{LONG_A}"
                             "{LONG_B}" )
_sip._tcp IN SRV    0 5 5060 sip.example.net.
*.cdn   IN  A       192.0.2.99
opaque  IN  TYPE65534 \\# 4 0a000001
; a delegation with glue
sub     IN  NS      ns1.sub
        IN  NS      ns.example.net.
ns1.sub IN  A       192.0.2.153
; names the YAML 1.2 core schema would read as numbers, booleans or null
1       IN  TXT     "1e5"
null    IN  TXT     "true"
$GENERATE 1-3 host$ A 192.0.2.$
"""


def write(tmp_path: Path, text: str, name: str = "db.example.com") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def rrsets(zone: dns.zone.Zone) -> set[tuple[dns.name.Name, RT, RT, int, frozenset]]:
    return {
        (name, rds.rdtype, rds.covers, rds.ttl, frozenset(rds))
        for name, rds in zone.iterate_rdatasets()
    }


def geodns_rrsets(zone: Zone) -> set[tuple[dns.name.Name, RT, RT, int, frozenset]]:
    return {
        (name, rrset.rdtype, rrset.covers, rrset.ttl, frozenset(rrset))
        for name, node in zone.nodes.items()
        for rrset in node.values()
    }


@pytest.fixture
def bind_file(tmp_path: Path) -> str:
    include = write(tmp_path, "included 600 IN A 192.0.2.77\n", "included.zone")
    return write(tmp_path, BIND_ZONE + f"$INCLUDE {include}\n")


def test_round_trip_keeps_every_rrset(bind_file: str) -> None:
    original = dns.zone.from_file(bind_file, relativize=False)

    text = import_master_file(bind_file)
    zone = build_zone(load_yaml(text, "imported.yaml"))
    assert geodns_rrsets(zone) == rrsets(original)

    exported = export_master_file(zone)
    reparsed = dns.zone.from_text(exported, relativize=False)
    assert rrsets(reparsed) == rrsets(original)


def test_import_writes_readable_yaml(bind_file: str) -> None:
    text = import_master_file(bind_file)
    data = load_yaml(text, "imported.yaml").data

    jsonschema.validate(data, zone_schema())
    assert data["zone"] == "example.com."
    assert data["ttl"] == 3600  # the most common TTL, as in $TTL
    assert data["soa"] == {
        "mname": "ns1.example.com.",
        "rname": "hostmaster.example.com.",
        "serial": 2024060101,
        "refresh": 7200,
        "retry": 900,
        "expire": 1209600,
        "minimum": 300,
    }
    assert data["ns"] == ["ns1.example.com.", "ns2.example.net."]
    records = data["records"]
    assert next(iter(records)) == "@"
    apex = records["@"]
    assert "NS" not in apex and "SOA" not in apex
    assert apex["MX"] == ["10 mail.example.com.", "20 mail.example.net."]
    assert apex["TXT"] == ["v=spf1 mx -all", ["first part ", "second part"]]
    assert apex["CAA"] == ['0 issue "letsencrypt.org"', '128 iodef "mailto:security@example.com"']
    assert records["mail"] == {"A": {"ttl": 60, "values": ["192.0.2.25"]}}
    assert records["api"] == {"CNAME": "www.example.com."}
    # A lone record of two strings stays a list inside a list: a bare list is two records.
    assert records["selector._domainkey"] == {"TXT": [[LONG_A, LONG_B]]}
    assert records["*.cdn"] == {"A": "192.0.2.99"}
    assert records["opaque"] == {"TYPE65534": "\\# 4 0a000001"}
    assert records["sub"] == {"NS": ["ns1.sub.example.com.", "ns.example.net."]}
    assert records["1"] == {"TXT": "1e5"}
    assert records["null"] == {"TXT": "true"}
    assert records["host2"] == {"A": "192.0.2.2"}
    assert records["included"] == {"A": {"ttl": 600, "values": ["192.0.2.77"]}}
    # Strings double-quoted, so that no YAML reader turns them into numbers or booleans.
    assert 'TXT: "1e5"' in text
    assert '"1":' in text and '"null":' in text


def test_origin_from_the_caller(tmp_path: Path) -> None:
    path = write(
        tmp_path, "@ 300 IN SOA ns1 h 1 2 3 4 5\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n"
    )
    data = load_yaml(import_master_file(path, origin="example.org"), "x.yaml").data
    assert data["zone"] == "example.org."
    assert data["records"] == {"ns1": {"A": "192.0.2.1"}}


def test_missing_origin_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "$TTL 300\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n")
    with pytest.raises(ConfigError, match=r"origin is unknown.*--origin.*\$ORIGIN") as info:
        import_master_file(path)
    assert info.value.file == path


def errors_of(path: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        import_master_file(path)
    return [str(error) for error in info.value.errors]


HEAD = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n"


def test_other_classes_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + 'v CH TXT "1"\n')
    assert errors_of(path) == [
        f"{path}:5: v.example.com. TXT: only class IN records are supported "
        "(geodns serves the Internet class)"
    ]


def test_every_bad_record_is_reported_with_its_line_owner_and_type(tmp_path: Path) -> None:
    bad = (
        "www IN AA 192.0.2.1\n"  # an unknown type
        "ok IN A 192.0.2.2\n"
        "mail 60 IN A 192.0.2.300\n"  # an address out of range, TTL before the class
        "     IN A\n"  # no address: the error is met at the end of the line
        "mx IN MX ( 10\n"  # a record over two lines
        "           nowhere..example.com. )\n"
        "ok2 IN A 192.0.2.3\n"
        "$TTL soon\n"
        'txt IN TXT "no closing quote\n'  # the tokenizer's own error: the next line is read
        "ok3 IN A 192.0.2.4\n"
        "mx2 IN MX ( 10 mail\n"  # a parenthesis never closed
    )
    path = write(tmp_path, HEAD + bad)
    errors = errors_of(path)
    assert [e.split(": ")[0:2] for e in errors] == [
        [f"{path}:5", "www.example.com. AA"],
        [f"{path}:7", "mail.example.com. A"],
        [f"{path}:8", "mail.example.com. A"],
        [f"{path}:9", "mx.example.com. MX"],
        [f"{path}:12", "$TTL"],
        [f"{path}:13", "txt.example.com. TXT"],
        [f"{path}:15", "mx2.example.com. MX"],
    ]
    assert "unknown rdatatype 'AA'" in errors[0]


def test_syntax_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    include = write(tmp_path, "ok A 192.0.2.1\nbad FOO mail\nok2 A 192.0.2.2\n", "inc.zone")
    path = write(tmp_path, f"$ORIGIN example.com.\n$TTL 300\n$INCLUDE {include}\nx BAR 1\n")
    assert [e.split(": ")[0] for e in errors_of(path)] == [f"{include}:2", f"{path}:4"]


def test_include_is_relative_to_the_including_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "zones" / "parts").mkdir(parents=True)
    write(tmp_path / "zones" / "parts", "www A 192.0.2.80\n$INCLUDE more.zone\n", "hosts.zone")
    write(tmp_path / "zones" / "parts", "mail A 192.0.2.25\n", "more.zone")
    # With an origin: the included file's names are under it, and the origin comes back after.
    write(tmp_path / "zones" / "parts", "@ A 192.0.2.99\n", "cdn.zone")
    text = HEAD + "$INCLUDE parts/hosts.zone\n$INCLUDE parts/cdn.zone cdn\nafter A 192.0.2.1\n"
    path = write(tmp_path / "zones", text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    records = load_yaml(import_master_file(path), "x.yaml").data["records"]
    assert records == {
        "after": {"A": "192.0.2.1"},
        "cdn": {"A": "192.0.2.99"},
        "mail": {"A": "192.0.2.25"},
        "www": {"A": "192.0.2.80"},
    }


def test_include_loop_is_a_clear_error(tmp_path: Path) -> None:
    loop = write(tmp_path, "$INCLUDE db.example.com\n", "loop.zone")
    path = write(tmp_path, HEAD + "$INCLUDE loop.zone\nok A 192.0.2.1\n")
    assert errors_of(path) == [
        f"{loop}:1: $INCLUDE: include loop: {path} -> {loop} -> {tmp_path}/db.example.com"
    ]


def test_missing_include_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "$INCLUDE nope.zone\nbad A 1\n")
    assert errors_of(path) == [
        f"{path}:5: $INCLUDE: {tmp_path}/nope.zone: No such file or directory",
        f"{path}:6: bad.example.com. A: Text input is malformed.",
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.zone")
    with pytest.raises(ConfigError, match="No such file") as info:
        import_master_file(missing)
    assert info.value.file == missing


def test_zone_without_soa(tmp_path: Path) -> None:
    path = write(tmp_path, "$ORIGIN example.com.\n$TTL 300\n@ IN NS ns1\n")
    with pytest.raises(ConfigError, match="no SOA"):
        import_master_file(path)


def test_txt_that_is_not_utf8_names_the_owner(tmp_path: Path) -> None:
    text = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n"
    path = write(tmp_path, text + 'latin1 IN TXT "caf\\233"\n')
    with pytest.raises(ConfigError, match=r"latin1\.example\.com\.: TXT .*not UTF-8"):
        import_master_file(path)


def test_signed_zones_are_refused(tmp_path: Path) -> None:
    text = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n"
    rrsig = "www IN RRSIG A 13 3 300 20300101000000 20200101000000 1 example.com. AAAA\n"
    path = write(tmp_path, text + "www IN A 192.0.2.1\n" + rrsig)
    with pytest.raises(ConfigError, match=r"RRSIG.*unsigned"):
        import_master_file(path)


def test_caa_value_with_escapes_round_trips(tmp_path: Path) -> None:
    # The loader does not unescape the one-string CAA form, so these come out as mappings.
    text = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n"
    caa = '@ IN CAA 0 iodef "mailto:a\\"b\\\\c@example.com"\n@ IN CAA 0 issue "caf\\195\\169"\n'
    path = write(tmp_path, text + caa)
    original = dns.zone.from_file(path, relativize=False)
    zone = build_zone(load_yaml(import_master_file(path), "x.yaml"))
    assert geodns_rrsets(zone) == rrsets(original)


def test_owner_ending_in_the_origin_labels_is_written_absolute(tmp_path: Path) -> None:
    # `www.example.com` in the YAML would mean www.example.com., not this name.
    text = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n"
    path = write(tmp_path, text + "www.example.com.example.com. IN A 192.0.2.1\n")
    yaml_text = import_master_file(path)
    assert "www.example.com.example.com.:" in yaml_text
    zone = build_zone(load_yaml(yaml_text, "x.yaml"))
    assert dns.name.from_text("www.example.com.example.com.") in zone.nodes


# Text that YAML might mangle: numbers, booleans, quotes, escapes, control characters.
# Lone surrogates are left out: they have no UTF-8 form.
txt_text = st.one_of(
    st.sampled_from(["", "1", "1e5", "0x10", "yes", "no", "null", "~", "- a", "a: b", "#x"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40),
).filter(lambda s: len(s.encode()) <= 255)


def master_file_string(text: str) -> str:
    """`text` as a quoted character-string, every byte that could confuse a reader escaped."""
    escaped = "".join(
        f"\\{b:03d}" if b < 0x20 or b >= 0x7F or b in b'"\\' else chr(b) for b in text.encode()
    )
    return f'"{escaped}"'


@settings(max_examples=60, deadline=None)
@given(strings=st.lists(txt_text, min_size=1, max_size=3))
def test_any_utf8_txt_survives_the_yaml(strings: list[str]) -> None:
    head = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n"
    txt = " ".join(master_file_string(s) for s in strings)
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), head + f"t IN TXT {txt}\n")
        zone = build_zone(load_yaml(import_master_file(path), "x.yaml"))
    rrset = zone.nodes[dns.name.from_text("t.example.com.")][RT.TXT]
    assert rrset[0].strings == tuple(s.encode() for s in strings)


def test_export_of_the_example_zone() -> None:
    zone = load_zone_file(REPO / "geodns" / "example" / "example.com.yaml")
    text = export_master_file(zone)
    lines = text.splitlines()

    comments = [line for line in lines if line.startswith(";")]
    assert lines[: len(comments)] == comments  # the comments lead
    assert any("services not exported" in c and "inference.example.com." in c for c in comments)
    assert lines[len(comments)] == "$ORIGIN example.com."
    assert lines[len(comments) + 1] == "$TTL 300"
    assert " IN SOA " in lines[len(comments) + 2]

    reparsed = dns.zone.from_text(text, relativize=False)
    assert rrsets(reparsed) == geodns_rrsets(zone)
    assert reparsed.get_node("inference.example.com.") is None
