"""Every public exception of the package is in the tree of geodns.errors: it derives from
GeodnsError and errors.py's docstring, which draws the tree, names it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import geodns
import geodns.errors
from geodns.errors import GeodnsError
from geodns.health.monitor import UnknownRegion
from geodns.versions.rollout import RolloutNotFound


def exception_classes() -> list[tuple[str, type[BaseException]]]:
    """(module, class) for every exception class defined in the package."""
    out = []
    for info in pkgutil.walk_packages(geodns.__path__, "geodns."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, BaseException):
                out.append((info.name, cls))
    return out


def test_the_walk_finds_the_exceptions() -> None:
    names = {cls.__name__ for _, cls in exception_classes()}
    assert {"ConfigError", "RolloutRefused", "StoreUnavailable", "AllRegionsFailed"} <= names


@pytest.mark.parametrize(
    ("module", "cls"),
    [pytest.param(m, c, id=f"{m}.{c.__name__}") for m, c in exception_classes()],
)
def test_public_exceptions_join_the_tree(module: str, cls: type[BaseException]) -> None:
    if cls.__name__.startswith("_"):
        return  # private control flow inside one module (errors.py says which)
    assert issubclass(cls, GeodnsError), f"{module}.{cls.__name__} is not a GeodnsError"
    assert cls.__name__ in (geodns.errors.__doc__ or ""), f"errors.py's tree omits {cls.__name__}"


def test_builtin_bases_stay_for_the_callers_that_catch_them() -> None:
    # Code and users that catch KeyError or LookupError keep working.
    assert issubclass(UnknownRegion, KeyError)
    assert issubclass(RolloutNotFound, LookupError)
    assert str(UnknownRegion("no region x")) == "no region x"
