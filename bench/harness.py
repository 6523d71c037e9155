"""What the benchmarks share: free ports, the two server stacks, starting servers on them.

Two stacks, as ``serve`` runs them (``inspector.stack``):

* ``fast``: uvloop + httptools (``uvicorn[standard]``, the default install);
* ``fallback``: asyncio + h11, what a platform without those wheels gets. Produced the way
  such a platform produces it: ``uvloop`` and ``httptools`` made unimportable (a directory
  first on ``PYTHONPATH`` whose packages of those names raise ``ImportError``).

Every throughput figure compares the inspector with a bare Starlette endpoint **on the same
stack**, in the same run.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("fast", "fallback")
STACK_NAMES = {"fast": ("uvloop", "httptools"), "fallback": ("asyncio", "h11")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(stack: str, workdir: Path) -> dict[str, str]:
    """The environment a server process of ``stack`` runs in."""
    env = dict(os.environ)
    if stack == "fallback":
        blocked = workdir / "no-fast-stack"
        for name in ("uvloop", "httptools"):
            (blocked / name).mkdir(parents=True, exist_ok=True)
            (blocked / name / "__init__.py").write_text(
                f"raise ImportError('{name} blocked: the fallback stack')\n"
            )
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(blocked), env.get("PYTHONPATH")) if p)
    return env


def start_bare(
    workdir: Path, module: str, source: str, port: int, stack: str, *extra: str
) -> subprocess.Popen[bytes]:
    """``module:app`` (written from ``source``) on uvicorn, on ``stack``."""
    (workdir / f"{module}.py").write_text(source)
    loop, http = STACK_NAMES[stack]
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"{module}:app", "--port", str(port),
         "--host", "127.0.0.1", "--loop", loop, "--http", http, "--ws", "none",
         "--log-level", "warning", "--no-access-log", *extra],
        cwd=workdir,
        env=stack_env(stack, workdir),
    )  # fmt: skip


def start_inspector(
    workdir: Path, data_dir: Path, port: int, stack: str, *extra: str, root: Path = ROOT
) -> subprocess.Popen[bytes]:
    """``webhook-inspector serve`` on ``stack``; its banner goes to ``serve-<port>.out``.
    ``root``: the checkout whose ``inspector`` package runs (another one: a baseline)."""
    out = (workdir / f"serve-{port}.out").open("wb")
    env = stack_env(stack, workdir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(root)) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "inspector", "serve", "--port", str(port),
         "--data-dir", str(data_dir), *extra],
        stdout=out,
        cwd=root,
        env=env,
    )  # fmt: skip


def check_stack(workdir: Path, port: int, stack: str) -> None:
    """The inspector on ``port`` says it runs on ``stack`` (its banner's ``server:`` line)."""
    text = (workdir / f"serve-{port}.out").read_text()
    found = re.search(r"server:\s+(\S+) \+ (\S+)", text)
    assert found is not None, text
    assert (found.group(1), found.group(2)) == STACK_NAMES[stack], (stack, found.groups())


def wait_up(url: str, *, post: bool = False, verify: str | bool = True, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if post:
                httpx.post(url, content=b"warmup", timeout=1, verify=verify)
            else:
                httpx.get(url, timeout=1, verify=verify)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load_average() -> float:
    return os.getloadavg()[0]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 answer (status line, headers, a Content-Length body) from a kept-alive
    connection; returns its status code (b"200")."""
    status = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status.split(b" ", 2)[1] if status.count(b" ") else b""
