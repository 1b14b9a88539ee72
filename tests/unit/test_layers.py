"""The import layering (pyproject.toml's [tool.importlinter], docs/layout.md) holds: every
import points down the layers, and the client library never imports the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports() -> str:
    """The lint-imports of this interpreter's environment, else the one on PATH."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / "lint-imports", Path(sys.executable).parent / "lint-imports"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    return found


def run_lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports reads the geodns package found from cwd, so a worktree checks its own code.
    env = {**os.environ, "PYTHONPATH": str(cwd), "NO_COLOR": "1"}
    return subprocess.run(
        [lint_imports(), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_contract_is_kept() -> None:
    result = run_lint(ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " 0 broken" in output, output


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "geodns", tmp_path / "geodns", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    model = tmp_path / "geodns" / "zones" / "model.py"
    model.write_text(model.read_text() + "\nimport geodns.server.run  # noqa\n")
    result = run_lint(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "geodns.zones is not allowed to import geodns.server" in output, output
    assert "geodns.zones.model -> geodns.server.run" in output, output
