"""libyaml's C composer and the pure-Python one give the same documents and the same
file:line in every message; only a syntax error's wording may differ."""

from __future__ import annotations

import pytest
import yaml

from geodns.errors import ConfigError, ConfigErrors
from geodns.yamlsource import FAST_LOADER, PURE_LOADER, Document, load_yaml
from geodns.zones.loader import build_zone
from tests.conftest import EXAMPLE_ZONES, REQUIRE_TOOLS


@pytest.fixture(scope="module", autouse=True)
def _libyaml() -> None:
    if getattr(yaml, "CSafeLoader", None) is None:
        if REQUIRE_TOOLS:
            pytest.fail("PyYAML built with libyaml is required (GEODNS_REQUIRE_TOOLS=1)")
        pytest.skip("PyYAML was built without libyaml")


def both(text: str, file: str = "z.yaml") -> tuple[Document, Document]:
    return load_yaml(text, file, PURE_LOADER), load_yaml(text, file, FAST_LOADER)


def test_the_c_loader_is_used_when_present() -> None:
    assert FAST_LOADER is yaml.CSafeLoader


def test_the_example_zone_is_the_same_document_with_the_same_lines() -> None:
    text = (EXAMPLE_ZONES / "example.com.yaml").read_text()
    pure, fast = both(text)
    assert pure.data == fast.data
    assert pure.lines == fast.lines
    assert len(fast.lines) > 50


def test_scalars_keep_the_yaml_1_2_core_schema() -> None:
    text = "a: on\nb: NO\nc: '1'\nd: 1\ne:\nf: 1.5\ng: true\nh: |\n  x\ni: \"2\"\nj: 1:2:3\n"
    pure, fast = both(text)
    expected = {
        "a": "on",
        "b": "NO",
        "c": "1",
        "d": 1,
        "e": None,
        "f": 1.5,
        "g": True,
        "h": "x\n",
        "i": "2",
        "j": "1:2:3",
    }
    assert pure.data == fast.data == expected


SYNTAX_ERRORS = [
    ("a: 1\nb: [1,\n  2\nc: 3\n", 4),
    ("a: 1\nb: c: d\n", 2),
    ("a:\n  - 1\n - 2\n", 3),
    ("a: 1\nb: *nowhere\n", 2),
    ("{a: 1\n\n\n", 4),
    ("a: 1\n---\nb: 2\n", 2),
    ('a: 1\nb: "\\xZZ"\n', 2),
]


@pytest.mark.parametrize(("text", "line"), SYNTAX_ERRORS)
def test_syntax_errors_name_the_same_line(text: str, line: int) -> None:
    for loader in (PURE_LOADER, FAST_LOADER):
        with pytest.raises(ConfigError) as info:
            load_yaml(text, "z.yaml", loader)
        assert str(info.value).startswith(f"z.yaml:{line}:"), (loader, str(info.value))


def test_duplicate_keys_and_complex_keys_name_the_same_line() -> None:
    for text, line in [("a: 1\nb:\n  c: 1\n  c: 2\n", 4), ("a: 1\n? [x]\n: 2\n", 2)]:
        messages = set()
        for loader in (PURE_LOADER, FAST_LOADER):
            with pytest.raises(ConfigError) as info:
                load_yaml(text, "z.yaml", loader)
            messages.add(str(info.value))
        (message,) = messages
        assert message.startswith(f"z.yaml:{line}:")


def test_zone_errors_are_word_for_word_the_same() -> None:
    text = (EXAMPLE_ZONES / "example.com.yaml").read_text()
    text = text.replace("mail: {A: 192.0.2.25}", "mail: {A: 999.0.2.25}")
    text = text.replace("ttl: 300 ", "ttl: -5  ")
    messages = []
    for loader in (PURE_LOADER, FAST_LOADER):
        with pytest.raises(ConfigErrors) as info:
            build_zone(load_yaml(text, "example.com.yaml", loader))
        messages.append([str(e) for e in info.value.errors])
    assert messages[0] == messages[1]
    line = text.splitlines().index("  mail: {A: 999.0.2.25}") + 1
    assert any(m.startswith(f"example.com.yaml:{line}:") for m in messages[1]), messages[1]


def test_a_large_zone_gives_the_same_lines() -> None:
    records = "\n".join(f"  h{i}: {{A: 10.0.{i >> 8}.{i & 255}, TXT: 'n{i}'}}" for i in range(2000))
    text = f"zone: example.com\nrecords:\n{records}\n"
    pure, fast = both(text)
    assert pure.data == fast.data and pure.lines == fast.lines
    assert fast.line(("records", "h1999", "A")) == 2002  # h0 is on line 3
