"""Capture throughput on PostgreSQL (one replica, two replicas) against SQLite and a bare
Starlette endpoint, same run; and the cross-replica capture->SSE latency at a fixed rate.

    .venv/bin/python bench/postgres.py --database postgresql://user@host:port/db \\
        [--seconds 8] [--rounds 3] [--connections 32] [--rate 1000]

Every server is its own process (uvicorn, same settings); each PostgreSQL configuration gets
a fresh schema in ``--database`` (or $WEBHOOK_INSPECTOR_DATABASE). Load comes from wrk when
installed (Debian package ``wrk``; with two replicas, one wrk per replica at once, half the
connections each), else from Python workers (round robin over the replicas). The latency run
sends ``--rate`` captures/s to replica A while an SSE client on replica B times each capture
from its send to its event (``bench/stream.py``'s raw-socket load and client, one clock).
Medians of the rounds; ratios against the bare endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stream
from bench.capture import BARE_APP, BODY, free_port, run_wrk, wait_up


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def new_schema(url: str) -> tuple[str, str]:
    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    return schema, with_schema(url, schema)


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


def start_inspector(workdir: Path, database: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "inspector", "serve", "--port", str(port)]
    args += ["--data-dir", str(workdir / f"data{port}"), "--retention", "1000000"]
    if database:
        args += ["--database", database]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_up(url + "/h/bench")
    return proc, url


def start_bare(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (workdir / "bare_app.py").write_text(BARE_APP)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url + "/h/bench")
    return proc, url


def load(urls: list[str], seconds: float, connections: int, workdir: Path) -> dict[str, float]:
    """POST the body as fast as ``connections`` connections can, split over ``urls``: one wrk
    per URL at once when wrk is installed (Debian package ``wrk``), else Python workers."""
    if shutil.which("wrk"):
        with ThreadPoolExecutor(len(urls)) as pool:
            parts = list(
                pool.map(
                    lambda url: run_wrk(
                        url + "/h/bench", int(seconds), max(1, connections // len(urls)), workdir
                    ),
                    urls,
                )
            )
        return {
            "rps": sum(p["rps"] for p in parts),
            "p50_ms": max(p["p50_ms"] for p in parts),
            "p99_ms": max(p["p99_ms"] for p in parts),
            "failures": sum(p["non2xx"] + p["socket_errors"] for p in parts),
        }
    return python_load(urls, seconds, connections)


def python_load(urls: list[str], seconds: float, connections: int) -> dict[str, float]:
    """POST the body as fast as ``connections`` workers can, round robin over ``urls``."""
    latencies: list[float] = []
    failures = 0

    async def worker(client: httpx.AsyncClient, offset: int, stop: float) -> None:
        nonlocal failures
        n = offset
        while time.monotonic() < stop:
            url = urls[n % len(urls)] + "/h/bench"
            n += 1
            t0 = time.perf_counter()
            r = await client.post(url, content=BODY, headers={"content-type": "application/json"})
            latencies.append((time.perf_counter() - t0) * 1000)
            failures += r.status_code != 200

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections * len(urls))
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            start = time.monotonic()
            await asyncio.gather(*(worker(client, i, start + seconds) for i in range(connections)))
            return time.monotonic() - start

    elapsed = asyncio.run(main())
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "failures": float(failures),
    }


def stream_latency(writer: str, reader: str, rate: int, seconds: float) -> dict[str, float]:
    """Capture on ``writer`` at ``rate``/s for ``seconds``; time each capture from its send to
    its event on ``reader``'s stream (raw sockets, one clock: ``bench/stream.py``'s load and
    client). Events not seen 10 s after the last send count as missing."""
    count = int(rate * seconds)

    async def run() -> dict[str, float]:
        stop = asyncio.Event()
        client = stream.SSEClient()
        task = asyncio.ensure_future(client.run(port_of(reader), stop))
        await asyncio.wait_for(client.ready.wait(), 10)
        sent, answered = [0] * count, [0] * count
        await stream.sender(port_of(writer), rate, count, sent, answered)
        deadline = time.monotonic() + 10
        while len(client.arrivals) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        delays = [
            (client.arrivals[n] - sent[n]) / 1e6 for n in range(count) if n in client.arrivals
        ]
        return {
            "p50_ms": stream.percentile(delays, 0.50),
            "p99_ms": stream.percentile(delays, 0.99),
            "received": float(len(delays)),
            "sent": float(count),
            "failed": float(sum(1 for a in answered if a <= 0)),
        }

    return asyncio.run(run())


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("WEBHOOK_INSPECTOR_DATABASE"))
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=5)
    args = parser.parse_args()
    if not args.database:
        parser.error("--database (or WEBHOOK_INSPECTOR_DATABASE) is required")
    workdir = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    procs: list[subprocess.Popen[bytes]] = []
    schemas: list[str] = []
    try:
        setups: dict[str, list[str]] = {}
        proc, url = start_bare(workdir)
        procs.append(proc)
        setups["bare starlette"] = [url]
        proc, url = start_inspector(workdir, None)
        procs.append(proc)
        setups["sqlite, 1 process"] = [url]
        schema, one = new_schema(args.database)
        schemas.append(schema)
        proc, url = start_inspector(workdir, one)
        procs.append(proc)
        setups["postgresql, 1 replica"] = [url]
        schema, two = new_schema(args.database)
        schemas.append(schema)
        pair = [start_inspector(workdir, two) for _ in range(2)]
        procs += [p for p, _ in pair]
        setups["postgresql, 2 replicas"] = [u for _, u in pair]

        results: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
        for _ in range(args.rounds):
            for name, urls in setups.items():
                r = load(urls, args.seconds, args.connections, workdir)
                results[name].append(r)
                print(
                    f"  {name:<24} {r['rps']:7.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
                    f"  p99 {r['p99_ms']:7.2f} ms  non-200 {int(r['failures'])}",
                    flush=True,
                )
        # Capture -> SSE: SQLite (one process) as the baseline; PostgreSQL on the same replica,
        # and across replicas (capture on A, stream on B).
        paths = {
            "sqlite, same process": (setups["sqlite, 1 process"][0],) * 2,
            "postgresql, same replica": (pair[0][1], pair[0][1]),
            "postgresql, A -> B": (pair[0][1], pair[1][1]),
        }
        latency: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, (writer, reader) in paths.items():
                lat = stream_latency(writer, reader, args.rate, args.latency_seconds)
                latency[name].append(lat)
                print(
                    f"  {name:<24} capture->SSE at {args.rate}/s: p50 {lat['p50_ms']:7.1f} ms,"
                    f" p99 {lat['p99_ms']:7.1f} ms ({int(lat['received'])}/{int(lat['sent'])}"
                    " events)",
                    flush=True,
                )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for schema in schemas:
            drop_schema(args.database, schema)
        shutil.rmtree(workdir, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    bare = med("bare starlette", "rps")
    print()
    print(
        f"{'wrk' if shutil.which('wrk') else 'python'} load, {args.connections} connections"
        f" (split over the replicas), {args.rounds} x "
        f"{args.seconds:g} s, {os.cpu_count()} cores, 1 KiB JSON POST (medians)"
    )
    print(f"{'':<24} {'req/s':>7}  {'p50 ms':>6}  {'p99 ms':>7}  vs bare")
    for name in results:
        rps = med(name, "rps")
        print(
            f"{name:<24} {rps:7.0f}  {med(name, 'p50_ms'):6.2f}  {med(name, 'p99_ms'):7.2f}"
            f"  {rps / bare:.2f}"
        )
    print(f"capture -> SSE at {args.rate} captures/s (medians)")
    for name, runs in latency.items():
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        print(f"{name:<24} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
