"""Named country groups (EU, EEA, GDPR, ...) that residency rules can name instead of lists."""

from __future__ import annotations

import os
import re

from geodns.errors import ConfigError, ConfigErrors
from geodns.geo.datafile import read_document, shipped

COUNTRY_CODE = re.compile(r"[A-Z]{2}")
_GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def country_groups(path: str | os.PathLike[str] | None = None) -> dict[str, frozenset[str]]:
    """Group name -> ISO country codes, from `path` or the shipped geodns/data/groups.yaml.

    Raises ConfigErrors (a ConfigError) with file, line and key of every problem.
    """
    doc = read_document(shipped("groups.yaml") if path is None else path)
    errors: list[ConfigError] = []
    groups: dict[str, frozenset[str]] = {}
    for name, codes in doc.data.items():
        if not _GROUP_NAME.fullmatch(name):
            errors.append(doc.error((name,), "a group name is a letter then letters, digits, _, -"))
            continue
        if not isinstance(codes, list) or not codes:
            errors.append(doc.error((name,), "expected a non-empty list of country codes"))
            continue
        members: set[str] = set()
        for i, code in enumerate(codes):
            if not isinstance(code, str) or not COUNTRY_CODE.fullmatch(code):
                message = f"{code!r} is not an ISO 3166-1 alpha-2 code in upper case (like DE)"
                errors.append(doc.error((name, i), message))
            elif code in members:
                # Most likely a typo for another country, which would then be missing.
                errors.append(doc.error((name, i), f"{code} is listed twice"))
            else:
                members.add(code)
        groups[name] = frozenset(members)
    if errors:
        raise ConfigErrors(sorted(errors, key=lambda e: e.line))
    return groups
