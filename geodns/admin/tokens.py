"""Named admin tokens: who made a change through the admin API, for the audit log.

A tokens file holds one `name token` pair a line (blank lines and `#` comments are
skipped), one name per pipeline or person, so that the audit log says which one acted
and one can be revoked alone:

    # name       token
    alice        3q8Yx...
    deploy-ci    Zk1p...

`--admin-token-file` and GEODNS_ADMIN_TOKEN stay: their one token is named `admin`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from pathlib import Path

from geodns.errors import ConfigError, ConfigErrors

SINGLE_NAME = "admin"  # the name of --admin-token-file's (or GEODNS_ADMIN_TOKEN's) token
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


class AdminTokens:
    """Tokens by name; `who` finds a bearer token's name in constant time."""

    def __init__(self, by_name: Mapping[str, str]) -> None:
        self._pairs = tuple((name, token.encode()) for name, token in by_name.items())

    @classmethod
    def single(cls, token: str) -> AdminTokens:
        return cls({SINGLE_NAME: token})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._pairs)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def who(self, given: str) -> str | None:
        """The name of the token `given`, or None. Every token is compared, whatever
        matched, so that the time taken says nothing about which one was near."""
        presented = given.encode()
        found = None
        for name, token in self._pairs:
            if hmac.compare_digest(presented, token) and found is None:
                found = name
        return found


def parse_tokens(text: str, source: str) -> dict[str, str]:
    """`name token` lines; ConfigErrors with every problem as `source:line: problem`."""
    tokens: dict[str, str] = {}
    lines_of: dict[str, int] = {}
    errors = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        where = f"{source}:{number}"
        if len(parts) != 2:
            errors.append(ConfigError(f"{where}: expected `name token`, got {len(parts)} words"))
            continue
        name, token = parts
        if not NAME.fullmatch(name):
            errors.append(
                ConfigError(
                    f"{where}: name {name!r}: 1 to 64 letters, digits and ._@+- "
                    "(starting with a letter or digit)"
                )
            )
        elif name in tokens:
            first = lines_of[name]
            errors.append(ConfigError(f"{where}: name {name!r} is already on line {first}"))
        elif token in tokens.values():
            other = _owner(tokens, token)
            errors.append(
                ConfigError(
                    f"{where}: {name}'s token is {other}'s too (line {lines_of[other]}): the "
                    "audit log could not tell them apart"
                )
            )
        else:
            tokens[name] = token
            lines_of[name] = number
    if not tokens and not errors:
        errors.append(ConfigError(f"{source}: no `name token` line"))
    if errors:
        raise ConfigErrors(errors)
    return tokens


def load_tokens_file(path: str | Path) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(f"{path}: cannot read: {exc}")]) from None
    return parse_tokens(text, str(path))


def merge(named: Mapping[str, str], single: str | None, source: str) -> dict[str, str]:
    """The tokens file's tokens and the single token (named `admin`), which must differ
    from them in name and in value."""
    out = dict(named)
    if single is None:
        return out
    if SINGLE_NAME in out:
        raise ConfigErrors(
            [ConfigError(f"{source}: the name {SINGLE_NAME!r} is the single token's")]
        )
    if single in out.values():
        raise ConfigErrors(
            [ConfigError(f"{source}: the single admin token is also {_owner(out, single)}'s")]
        )
    out[SINGLE_NAME] = single
    return out


def _owner(tokens: Mapping[str, str], token: str) -> str:
    return next(n for n, t in tokens.items() if t == token)
