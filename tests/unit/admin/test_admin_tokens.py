"""Named admin tokens: the file's format, its errors, and who a bearer token is."""

from __future__ import annotations

import pytest

from geodns.admin.tokens import AdminTokens, merge, parse_tokens
from geodns.errors import ConfigErrors


def test_lines_of_name_and_token() -> None:
    text = "# who  token\nalice a-token\n\n  deploy-ci   ci-token  \n"
    assert parse_tokens(text, "f") == {"alice": "a-token", "deploy-ci": "ci-token"}


def test_every_problem_at_once() -> None:
    text = "alice t1\nalice t2\nbob t1\n-x t3\none two three\n"
    with pytest.raises(ConfigErrors) as info:
        parse_tokens(text, "tok")
    assert [str(e) for e in info.value.errors] == [
        "tok:2: name 'alice' is already on line 1",
        "tok:3: bob's token is alice's too (line 1): the audit log could not tell them apart",
        "tok:4: name '-x': 1 to 64 letters, digits and ._@+- (starting with a letter or digit)",
        "tok:5: expected `name token`, got 3 words",
    ]


def test_an_empty_file_is_an_error() -> None:
    with pytest.raises(ConfigErrors, match="no `name token` line"):
        parse_tokens("# nothing\n", "tok")


def test_the_single_token_is_named_admin_and_must_differ() -> None:
    assert merge({"alice": "a"}, "s", "f") == {"alice": "a", "admin": "s"}
    assert merge({}, None, "f") == {}
    with pytest.raises(ConfigErrors, match="also alice's"):
        merge({"alice": "a"}, "a", "f")
    with pytest.raises(ConfigErrors, match="the single token's"):
        merge({"admin": "a"}, "s", "f")


def test_who() -> None:
    tokens = AdminTokens({"alice": "a-token", "ci": "ci-token"})
    assert tokens.who("ci-token") == "ci"
    assert tokens.who("a-token") == "alice"
    assert tokens.who("a-toke") is None
    assert tokens.who("") is None
    assert not AdminTokens({}) and tokens
