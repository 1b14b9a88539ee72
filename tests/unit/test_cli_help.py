"""`geodns --help` and every subcommand's: each command and option explained, in one style."""

from __future__ import annotations

import argparse
from pathlib import Path

from geodns.cli import build_parser
from geodns.clidoc import markdown, problems

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_and_option_has_help_in_one_style() -> None:
    assert problems(build_parser()) == []


def test_the_check_finds_what_it_is_for() -> None:
    parser = argparse.ArgumentParser(prog="geodns")
    sub = parser.add_subparsers(dest="command")
    cmd = sub.add_parser("thing")  # no help
    cmd.add_argument("target")  # no help
    cmd.add_argument("--wait", type=float, help="seconds to wait (default 5)")
    cmd.add_argument("--mode", choices=["a", "b"], help="how.")
    cmd.add_argument("--hidden", help=argparse.SUPPRESS)
    assert problems(parser) == [
        "geodns thing: the command has no help",
        "geodns thing target: no help text",
        "geodns thing --wait: a default is written '(default: ...)'",
        "geodns thing --wait: metavar None is not one of clidoc.METAVARS",
        "geodns thing --mode: help is a phrase, without a final period",
    ]


def test_docs_cli_md_is_the_parser_s_help() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    assert page == markdown(build_parser()), "run: python -m geodns.clidoc > docs/cli.md"
