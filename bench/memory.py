"""The server's memory through a million captures over HTTP, and through the searches after.

    .venv/bin/python bench/memory.py [--captures 1000000] [--retention N] [--connections 16]
                                     [--endpoints 50] [--interval 2] [--stack fast|fallback]
                                     [--search-rounds 20] [--search-clients 8]
                                     [--baseline-captures N]

1. **Baseline**: a bare Starlette endpoint (reads the body, answers 200) on the same stack
   under the same load for ``--baseline-captures`` requests (default: as many as the run's
   captures, capped at 300,000), its RSS sampled the same way.
2. **Captures**: ``serve --retention N`` (default: ``--captures``) on a fresh store; its RSS at
   rest, then ``--captures`` real captures from wrk (a Lua script: ~1 KiB JSON, ``--endpoints``
   endpoints, varied sub-paths and query strings, a unique ``X-Webhook-Id`` each, one in ten
   a retry of the one before). The server's VmRSS and VmHWM (``/proc``) are sampled every
   ``--interval`` seconds, with the number of captures stored (read from the file, read-only).
3. **Searches**: ``--search-clients`` clients at once, ``--search-rounds`` rounds of the
   search benchmark's queries (a common term, a rare one, nothing, an old id, a two-letter term
   that is scanned) and the pages around them; RSS sampled all along.
4. The server at rest again (after 10 s).

Printed: RSS at rest, then start/median/max and the trend (at 10%, 20%, ... of the captures)
for the bare endpoint and for the server, the capture rate, the searches' RSS, the peak
(VmHWM). Needs wrk (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from capture import BARE_APP
from harness import (
    check_stack,
    free_port,
    load_average,
    start_bare,
    start_inspector,
    stop,
    wait_up,
)

# One wrk thread: ~1 KiB JSON bodies, varied endpoints, sub-paths, query strings and event
# ids. wrk has no request count of its own: after ``limit`` answers the thread stops and
# writes ``finished`` (how many failed); the benchmark then interrupts wrk's main thread.
LOAD_LUA = r"""
local limit, endpoints, finished, sent, answered, failed = 0, 50, "", 0, 0, 0
local kinds = {"message.received", "member.joined", "file.uploaded", "order.paid"}
local filler = string.rep("lorem ipsum dolor sit amet ", 24)

function init(args)
  limit = tonumber(args[1])
  endpoints = tonumber(args[2])
  finished = args[3]
end

function request()
  sent = sent + 1
  local i = sent
  if i % 10 == 0 then i = i - 1 end  -- a retry: the same event again
  local path = string.format("/h/ep-%d/orders/%d?source=bench&n=%d", i % endpoints, i % 997, i)
  local body = string.format(
    '{"event":"%s","id":"evt_%09d","timestamp":"2026-11-29T16:%02d:%02dZ",' ..
    '"data":{"channelId":"C%07d","messageId":"msg_%09d","sender":{"userId":"U%d",' ..
    '"displayName":"\\u738b\\u5c0f\\u660e"},"amount":%d,"note":"%s"}}',
    kinds[i % 4 + 1], i, math.floor(i / 60) % 60, i % 60, i % 4099, i, i % 977,
    i * 7 % 100000, filler)
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-Webhook-Id"] = string.format("evt_%09d", i),
    ["User-Agent"] = "bench-memory/1.0",
  }, body)
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then failed = failed + 1 end
  if answered == limit then
    local out = io.open(finished, "w")
    out:write(tostring(failed))
    out:close()
    wrk.thread:stop()
  end
end
"""


@dataclass
class Samples:
    """RSS samples of one process: (seconds since start, captures done, VmRSS, VmHWM) MiB."""

    rows: list[tuple[float, int, float, float]] = field(default_factory=list)

    def rss(self) -> list[float]:
        return [r[2] for r in self.rows]

    def summary(self) -> str:
        rss = self.rss()
        return (
            f"start {rss[0]:5.1f}  median {statistics.median(rss):5.1f}  max {max(rss):5.1f}"
            f" MiB  (VmHWM {max(r[3] for r in self.rows):5.1f} MiB, {len(rss)} samples)"
        )

    def trend(self, total: int) -> str:
        """RSS at 10%, 20%, ... 100% of ``total`` captures (the first sample past each)."""
        out = []
        for tenth in range(1, 11):
            mark = total * tenth // 10
            after = [r[2] for r in self.rows if r[1] >= mark]
            out.append(f"{after[0]:.0f}" if after else "-")
        return " ".join(out)


def memory(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of a process, MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line[:5]] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


class Sampler:
    """Samples ``pid``'s memory every ``interval`` s, with ``progress()`` (captures done)."""

    def __init__(self, pid: int, interval: float, progress: Callable[[], int]) -> None:
        self.pid, self.interval, self.progress = pid, interval, progress
        self.samples = Samples()
        self._done = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        rss, hwm = memory(self.pid)
        self.samples.rows.append((time.monotonic() - self._started, self.progress(), rss, hwm))

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()


def stored_head(db: Path) -> Callable[[], int]:
    """The newest capture id in ``db``, read-only (the server's memory is not touched)."""

    def head() -> int:
        if not db.exists():
            return 0
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'requests'").fetchone()
            return int(row[0]) if row else 0
        except sqlite3.Error:
            return 0
        finally:
            conn.close()

    return head


def drive(url: str, captures: int, endpoints: int, connections: int, workdir: Path) -> Driven:
    """``captures`` POSTs to ``url``'s /h/ endpoints from wrk."""
    script = workdir / "memory.lua"
    script.write_text(LOAD_LUA)
    finished = workdir / "wrk-finished"
    finished.unlink(missing_ok=True)
    started = time.monotonic()
    wrk = subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", "-d24h", "--timeout", "30s", "-s", str(script),
         url, "--", str(captures), str(endpoints), str(finished)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not finished.exists() or not finished.read_text():
            if wrk.poll() is not None:
                raise RuntimeError(f"wrk ended early ({wrk.returncode})")
            time.sleep(0.1)
        seconds = time.monotonic() - started
        failed = int(finished.read_text())
    finally:
        wrk.send_signal(signal.SIGINT)  # its main thread sleeps for -d otherwise
        try:
            wrk.wait(30)
        except subprocess.TimeoutExpired:
            wrk.kill()
            wrk.wait()
    return Driven(captures, seconds, failed)


@dataclass
class Driven:
    answered: int
    seconds: float
    failed: int

    @property
    def rate(self) -> float:
        return self.answered / self.seconds


def baseline(args: argparse.Namespace, workdir: Path) -> tuple[Samples, float]:
    port = free_port()
    proc = start_bare(workdir, "bare_app", BARE_APP, port, args.stack)
    count = args.baseline_captures or min(args.captures, 300_000)
    done = [0]
    try:
        wait_up(f"http://127.0.0.1:{port}/h/x", post=True)
        with Sampler(proc.pid, args.interval, lambda: done[0]) as sampler:
            driven = drive(
                f"http://127.0.0.1:{port}", count, args.endpoints, args.connections, workdir
            )
            done[0] = count
    finally:
        stop(proc)
    requests, rate = driven.answered, driven.rate
    # The bare endpoint stores nothing: its progress is wrk's, known only at the end; spread
    # the samples over the run by time (the load is steady).
    rows = sampler.samples.rows
    last = rows[-1][0] or 1.0
    sampler.samples.rows = [(t, int(requests * t / last), rss, hwm) for t, _, rss, hwm in rows]
    return sampler.samples, rate


SEARCHES = [
    "/api/requests?q=member",
    "/api/requests?q=evt_000123457",
    "/api/requests?q=no-such-text",
    "/api/requests?q=evt_000000042",
    "/api/requests?q=zq",
    "/api/requests?q=orders/42",
    "/api/requests",
    "/api/endpoints",
    "/",
]


def searches(base: str, rounds: int, clients: int) -> tuple[int, float]:
    """Every client runs ``rounds`` of the queries; returns (requests, seconds)."""

    def client(n: int) -> int:
        done = 0
        with httpx.Client(base_url=base, timeout=300) as http:
            for r in range(rounds):
                for path in SEARCHES[n % len(SEARCHES) :] + SEARCHES[: n % len(SEARCHES)]:
                    if path.endswith("q=zq") and r % 5:
                        continue  # a scan of every body: one round in five
                    response = http.get(path)
                    assert response.status_code == 200, (path, response.text[:200])
                    done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(client, range(clients)))
    return total, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", type=int, default=1_000_000)
    parser.add_argument("--retention", type=int, help="serve --retention (default: --captures)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--stack", choices=("fast", "fallback"), default="fast")
    parser.add_argument("--search-rounds", type=int, default=20)
    parser.add_argument("--search-clients", type=int, default=8)
    parser.add_argument("--baseline-captures", type=int)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--keep", type=Path, help="Keep the store in this directory.")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        parser.error("needs wrk (Debian package wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    data_dir = args.keep or workdir / "data"
    if (data_dir / "inspector.db").exists():
        parser.error(f"{data_dir} holds a store already: this benchmark starts from an empty one")
    retention = args.retention or args.captures
    print(f"load average at start: {load_average():.1f}", flush=True)
    try:
        base_samples, base_rate = (None, 0.0) if args.skip_baseline else baseline(args, workdir)
        port = free_port()
        proc = start_inspector(workdir, data_dir, port, args.stack, "--retention", str(retention))
        url = f"http://127.0.0.1:{port}"
        head = stored_head(data_dir / "inspector.db")
        try:
            wait_up(f"{url}/api/endpoints", limit=60)
            check_stack(workdir, port, args.stack)
            time.sleep(2)
            at_rest = memory(proc.pid)[0]
            with Sampler(proc.pid, args.interval, head) as capturing:
                driven = drive(url, args.captures, args.endpoints, args.connections, workdir)
            stored = head()
            print(f"load average after the captures: {load_average():.1f}", flush=True)
            with Sampler(proc.pid, args.interval, head) as searching:
                queries, search_seconds = searches(url, args.search_rounds, args.search_clients)
            time.sleep(10)
            after = memory(proc.pid)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nMemory (MiB, VmRSS from /proc every {args.interval:g} s), {args.stack} stack:")
    if base_samples is not None:
        print(
            f"  bare Starlette endpoint, same load: {base_samples.summary()}"
            f"  {base_rate:,.0f} req/s"
        )
        print(f"    trend at 10%..100%: {base_samples.trend(base_samples.rows[-1][1])}")
    print(f"  inspector at rest (empty store): {at_rest:.1f}")
    print(
        f"  inspector, {stored:,} captures over HTTP (--retention {retention:,}):"
        f" {capturing.samples.summary()}"
    )
    print(f"    trend at 10%..100%: {capturing.samples.trend(stored)}")
    print(
        f"    {driven.answered:,} answered in {driven.seconds:.0f} s: {driven.rate:,.0f} captures/s"
        f" (wrk -c{args.connections}, {args.endpoints} endpoints), non-2xx {driven.failed}"
    )
    print(
        f"  inspector, searches ({queries:,} requests, {args.search_clients} clients,"
        f" {search_seconds:.0f} s): {searching.samples.summary()}"
    )
    print(f"  inspector at rest after it all (10 s later): {after[0]:.1f} (VmHWM {after[1]:.1f})")
    if base_samples is not None:
        ratio = statistics.median(capturing.samples.rss()) / statistics.median(base_samples.rss())
        print(f"  median RSS capturing / bare under load: {ratio:.1f}x")
    print(f"load average at the end: {load_average():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
