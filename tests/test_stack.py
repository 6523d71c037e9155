"""The server stack: uvloop and httptools where they import, asyncio and h11 where they do not,
and ``serve`` says which it runs on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from inspector import stack
from tests.conftest import Spawn


def test_choose_takes_each_fast_part_that_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.choose() == stack.Stack("uvloop", "httptools")  # the dependencies installed
    monkeypatch.setitem(sys.modules, "uvloop", None)  # None in sys.modules: ImportError
    assert stack.choose() == stack.Stack("asyncio", "httptools")
    monkeypatch.setitem(sys.modules, "httptools", None)
    chosen = stack.choose()
    assert chosen == stack.Stack("asyncio", "h11")
    assert not chosen.fast
    assert chosen.describe().startswith("asyncio + h11")
    assert "uvicorn[standard]" in chosen.describe()
    assert stack.Stack("uvloop", "httptools").describe() == "uvloop + httptools"


def without_fast_modules(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import uvloop`` and ``import httptools`` fail, as on a
    platform with no wheel for them: a package of each name that refuses to import, first on
    the path."""
    blocked = tmp_path / "blocked"
    for name in ("uvloop", "httptools"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ImportError('no {name} wheel for this platform (test)')\n"
        )
    path = [str(blocked), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


def serve_banner(
    spawn: Spawn, data_dir: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``serve``; return it, its base URL and its ``server:`` line."""
    proc = spawn("serve", "--port", "0", "--data-dir", str(data_dir), env=env)
    assert proc.stdout is not None
    base = server = ""
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "Ctrl-C" not in "".join(lines[-1:]):
        line = proc.stdout.readline()
        lines.append(line)
        if "page:" in line:
            base = line.split("page:", 1)[1].strip().rstrip("/")
        if "server:" in line:
            server = line.split("server:", 1)[1].strip()
    assert base and server, "".join(lines)
    return proc, base, server


def capture_once(base: str) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.post(base + "/h/stack", content=b'{"on": "stack"}', timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.live
@pytest.mark.parametrize("fast", [True, False], ids=["uvloop+httptools", "fallback"])
def test_serve_runs_and_says_on_which_stack(spawn: Spawn, tmp_path: Path, fast: bool) -> None:
    env = dict(os.environ) if fast else without_fast_modules(tmp_path)
    proc, base, server = serve_banner(spawn, tmp_path / "data", env)
    try:
        if fast:
            assert server == "uvloop + httptools"
        else:
            assert server.startswith("asyncio + h11")
            assert "pip install 'uvicorn[standard]'" in server
        answer = capture_once(base)
        assert answer.status_code == 200 and answer.text == "OK"
        listed = httpx.get(base + "/api/requests", params={"endpoint": "stack"}, timeout=5)
        assert [item["path"] for item in listed.json()["requests"]] == ["/h/stack"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
