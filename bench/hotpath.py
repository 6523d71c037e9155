"""Where a capture's time goes: the inspector in this process on the fast stack under wrk, with
pyinstrument on the event loop's thread and on the store's writer thread, and the CPU each
thread spent per request.

    .venv/bin/python bench/hotpath.py [--seconds 8] [--connections 32] [--stack fast|fallback]
                                      [--html DIR] [--no-search-index] [--no-profile]

Needs the ``bench`` extra (``pip install -e '.[bench]'``) and wrk. The profiler's own overhead
inflates every figure a little (a sample each 0.5 ms); the CPU per request per thread is
measured in a second run without it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from harness import free_port
from pyinstrument import Profiler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from capture import BODY  # noqa: E402

from inspector import stack  # noqa: E402
from inspector.app import create_app  # noqa: E402
from inspector.settings import Settings  # noqa: E402
from inspector.store import core  # noqa: E402


def thread_cpu() -> dict[str, tuple[float, int, int]]:
    """Of each thread of this process, by thread name: CPU seconds (user + system), and how
    many times it gave up the CPU waiting (voluntary context switches: a wake-up each) and
    was taken off it (involuntary)."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, tuple[float, int, int]] = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/self/task/{tid}/status") as fh:
            status = dict(line.split(":", 1) for line in fh if "ctxt_switches" in line)
        name = names.get(int(tid), "other")
        if name.startswith(("AnyIO", "asyncio")):
            name = "worker threads"
        cpu, woken, taken = out.get(name, (0.0, 0, 0))
        out[name] = (
            cpu + (int(fields[11]) + int(fields[12])) / tick,
            woken + int(status["voluntary_ctxt_switches"]),
            taken + int(status["nonvoluntary_ctxt_switches"]),
        )
    return out


def wrk(url: str, seconds: int, connections: int, workdir: Path) -> int:
    script = workdir / "post.lua"
    escaped = BODY.decode("utf-8").replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print("   ", " ".join(out.split("\n")[-3:-1]), flush=True)
    return int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


def run(args: argparse.Namespace, workdir: Path, profile: bool) -> None:
    chosen = stack.Stack(*stack_names(args.stack))
    settings = Settings(
        data_dir=workdir / f"data-{profile}",
        port=0,
        retention=1_000_000,
        no_search_index=args.no_search_index,
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        loop=chosen.loop,
        http=chosen.protocol(),
        ws="none",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    writer_profiler = Profiler(interval=0.0005)
    loop_profiler = Profiler(interval=0.0005, async_mode="disabled")
    original = core.Store._run_writer

    def profiled_writer(self: core.Store) -> None:
        writer_profiler.start()
        try:
            original(self)
        finally:
            writer_profiler.stop()

    if profile:
        core.Store._run_writer = profiled_writer  # type: ignore[method-assign]
    result: dict[str, Any] = {}

    def drive() -> None:
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/h/bench"
        wrk(url, 2, args.connections, workdir)  # warm-up
        before = thread_cpu()
        if profile:
            loop.call_soon_threadsafe(loop_profiler.start)
        result["requests"] = wrk(url, args.seconds, args.connections, workdir)
        if profile:
            done = threading.Event()
            loop.call_soon_threadsafe(lambda: (loop_profiler.stop(), done.set()))
            done.wait()
        after = thread_cpu()
        zero = (0.0, 0, 0)
        result["cpu"] = {
            k: tuple(a - b for a, b in zip(v, before.get(k, zero), strict=True))
            for k, v in after.items()
        }
        server.should_exit = True

    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    threading.Thread(target=drive, daemon=True).start()
    try:
        loop.run_until_complete(server.serve())
    finally:
        loop.close()
        core.Store._run_writer = original  # type: ignore[method-assign]
    requests = result["requests"]
    if profile:
        for name, profiler in (("event loop", loop_profiler), ("store writer", writer_profiler)):
            print(f"\n== {name} thread ({requests} requests) ==")
            print(profiler.output_text(unicode=True, color=False, show_all=False, timeline=False))
            if args.html:
                Path(args.html).mkdir(parents=True, exist_ok=True)
                target = Path(args.html) / f"{name.replace(' ', '-')}.html"
                target.write_text(profiler.output_html())
    else:
        print(f"\nPer request by thread, no profiler ({requests} requests):")
        print(f"  {'':<20} {'CPU':>9} {'wake-ups':>9} {'preempted':>9}")
        totals = [0.0, 0.0, 0.0]
        for name, (seconds, woken, taken) in sorted(
            result["cpu"].items(), key=lambda kv: -kv[1][0]
        ):
            row = (seconds / requests * 1e6, woken / requests, taken / requests)
            totals = [t + r for t, r in zip(totals, row, strict=True)]
            if row[0] >= 0.5 or row[1] >= 0.01:
                print(f"  {name:<20} {row[0]:6.1f} us {row[1]:9.2f} {row[2]:9.2f}")
        print(f"  {'total':<20} {totals[0]:6.1f} us {totals[1]:9.2f} {totals[2]:9.2f}")


def stack_names(name: str) -> tuple[str, str]:
    return ("uvloop", "httptools") if name == "fast" else ("asyncio", "h11")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--stack", choices=["fast", "fallback"], default="fast")
    parser.add_argument("--html", help="Also write each profile as HTML into this directory.")
    parser.add_argument(
        "--no-search-index", action="store_true", help="Without the search index (its cost)."
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="Only the CPU and wake-ups per request."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        print(f"load average: {os.getloadavg()[0]:.1f}", flush=True)
        if not args.no_profile:
            run(args, Path(tmp), profile=True)
            asyncio.set_event_loop(None)
        run(args, Path(tmp), profile=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
