"""The wheel ships templates/ and static/: installed into a fresh venv, it serves the page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.live]


def test_wheel_in_a_fresh_venv_serves_the_page(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        # hatchling is a test dependency, so no build isolation (and no download) is needed.
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("webhook_inspector-*.whl"))
    env_dir = tmp_path / "venv"
    # The test venv already has every dependency: reuse them, install only our wheel. No pip
    # of its own (ensurepip alone takes ~10 s of CPU): this pip installs into it (--python).
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pth = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Dependencies come from the test environment (no network needed), the package from the wheel.
    Path(pth, "deps.pth").write_text(site + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    script = env_dir / "bin" / "webhook-inspector"
    assert script.exists()
    data = tmp_path / "data"
    # Run from an unrelated directory so a checkout's templates/ cannot be found by accident.
    proc = subprocess.Popen(
        [str(script), "serve", "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    try:
        assert proc.stdout is not None
        base = None
        for _ in range(20):
            line = proc.stdout.readline()
            if "page:" in line:
                base = line.split("page:", 1)[1].strip().rstrip("/")
                break
        assert base
        deadline = time.monotonic() + 20
        while True:
            try:
                page = httpx.get(base + "/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert page.status_code == 200
        assert "webhook-inspector" in page.text
        assert httpx.get(base + "/static/app.css").status_code == 200
        located = subprocess.run(
            [
                str(python),
                "-c",
                "import inspector.resources as r; print(r.resource_dir('templates'))",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": ""},
        ).stdout
        assert str(env_dir) in located
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    shutil.rmtree(env_dir, ignore_errors=True)


def readme_examples() -> dict[str, str]:
    """The README's example test files: ``<!-- example: NAME -->`` then a python block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```", text, re.S)
    return dict(found)


# pip resolves the wheel's dependencies from the package index: ~80 s on a loaded 2-core
# machine, past the suite's 120 s under more load. Its own steps are bounded (300 + 600 + 300 s).
@pytest.mark.timeout(900)
def test_the_readme_examples_pass_in_a_fresh_project(tmp_path: Path) -> None:
    """A project that only pip-installs the wheel and pytest runs the README's sender and
    receiver tests, and they pass."""
    examples = readme_examples()
    assert set(examples) == {"test_sender.py", "test_receiver.py"}
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("webhook_inspector-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # Nothing from this checkout or its environment: the wheel and pytest, with their
    # dependencies resolved by pip from the package index, as a user's project would.
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel), "pytest"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    project = tmp_path / "project"
    project.mkdir()
    for name, code in examples.items():
        (project / name).write_text(code, encoding="utf-8")
    ran = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert "3 passed" in ran.stdout
    shutil.rmtree(env_dir, ignore_errors=True)
