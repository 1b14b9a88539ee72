"""The sdist and wheel, built as a release would be (`python -m build`: the wheel from the
sdist), hold every data file of the package, and the wheel installs in a fresh virtual
environment where `geodns --version`, `geodns check` and `geodns serve` work from it alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import ROOT, started, wait_for

# A version of the copy's own: `geodns --version` must say what was installed, not a
# number written in the code beside pyproject.toml's.
VERSION = "0.1.0.post7"


def data_files() -> set[str]:
    """Every file of the package that is not Python: the wheel must carry each of them."""
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / "geodns").rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import build  # noqa: F401
    except ImportError:
        pytest.fail("the `build` package is a test dependency: pip install -e '.[test]'")
    # A copy of what the sdist is made from, so that the build leaves no egg-info or build/
    # in the checkout.
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "geodns", src / "geodns", ignore=ignore)
    shutil.copy(ROOT / "README.md", src)
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject, n = re.subn(r'(?m)^version = ".*"$', f'version = "{VERSION}"', pyproject)
    assert n == 1
    (src / "pyproject.toml").write_text(pyproject)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_the_sdist_and_the_wheel_carry_every_data_file(dist: Path) -> None:
    [wheel] = dist.glob(f"geodns-{VERSION}-py3-none-any.whl")
    [sdist] = dist.glob(f"geodns-{VERSION}.tar.gz")
    wanted = data_files()
    assert {"geodns/schema/zone.schema.json", "geodns/admin/static/index.html"} <= wanted
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert wanted <= in_wheel, sorted(wanted - in_wheel)
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert wanted <= in_sdist, sorted(wanted - in_sdist)
    assert "pyproject.toml" in in_sdist


@pytest.mark.timeout(900)
def test_the_wheel_installs_and_runs_in_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    [wheel] = dist.glob("geodns-*.whl")
    venv = tmp_path / "venv"
    # As the README's commands do: no pip in the venv (Debian's venv lacks ensurepip without
    # the python3-venv package), the running pip installing into it.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    pip = subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "--python", str(venv / "bin" / "python"), "install"),
            *("--disable-pip-version-check", "-q", str(wheel)),
        ],
        capture_output=True,
        text=True,
        timeout=780,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    geodns = venv / "bin" / "geodns"
    # Away from the checkout, with nothing of it on the path: only the wheel's files count.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True, "timeout": 60}

    version = subprocess.run([geodns, "--version"], **run)
    assert (version.returncode, version.stdout) == (0, f"geodns {VERSION}\n"), version

    where = "import geodns, os; print(os.path.dirname(geodns.__file__))"
    example = subprocess.run([venv / "bin" / "python", "-c", where], **run).stdout.strip()
    assert example.startswith(str(venv)), example
    check = subprocess.run([geodns, "check", f"{example}/example"], **run)
    assert check.returncode == 0 and "zone example.com. ok" in check.stdout, check

    # The server from the wheel alone: the embedded example zone, schema, data, dashboard.
    serve = ["serve", "--zones", f"{example}/example", "--listen", "127.0.0.1:0"]
    serve += ["--http", "127.0.0.1:0", "--scope-cache", "off", "--state-dir", str(tmp_path)]
    proc = subprocess.Popen(
        [geodns, *serve],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port, admin = started(proc)
        query = dns.message.make_query("www.example.com", "A")
        reply = dns.query.udp(query, "127.0.0.1", timeout=2, port=port)
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        version_bind = dns.message.make_query("version.bind", "TXT", "CH")
        reply = dns.query.udp(version_bind, "127.0.0.1", timeout=2, port=port)
        assert f"geodns {VERSION}" in reply.answer[0].to_text()

        def dashboard() -> bytes:
            with urllib.request.urlopen(admin, timeout=5) as response:
                return response.read()

        assert b"<html" in wait_for(dashboard, timeout=5).lower()
    finally:
        proc.terminate()
        proc.wait(15)
