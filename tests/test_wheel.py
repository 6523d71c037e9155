"""The wheel ships templates/ and static/: installed into a fresh venv, it serves the page."""

from __future__ import annotations

import os
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
    # The test venv already has every dependency: reuse them, install only our wheel.
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
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
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
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
