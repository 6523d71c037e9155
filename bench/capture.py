"""Capture throughput: the inspector (durable: each 2xx is committed, WAL, synchronous=FULL)
against a bare Starlette endpoint that reads the body and answers 200, same server, same load.

    .venv/bin/python bench/capture.py [--seconds 10] [--rounds 3] [--connections 32]
                                      [--stack fast|fallback|both] [--https] [--index-cost]

Both servers run as separate processes on free loopback ports with identical uvicorn settings,
on each stack (``bench/harness.py``: uvloop + httptools, and asyncio + h11): every ratio is the
inspector against the bare endpoint on the same stack. The load alternates between the servers
round by round, and the medians are compared. Load comes from wrk when installed (Debian package
``wrk``), else from a Python asyncio generator.

``--https`` starts the inspector with ``--https`` too and adds its TLS listener to the rounds
(keep-alive connections, as senders use them), and the bare endpoint on uvicorn's own TLS with
the same certificate: the figures are TLS capture against plain capture of the same process,
and the same ratio for the bare endpoint (what TLS costs asyncio anyway), in the same run.

``--index-cost`` adds a third server to the rounds, the inspector with ``--no-search-index``:
what keeping the search index (written by the writer between batches) costs the capture path.

``--compare-with DIR`` adds the inspector of another checkout (a worktree of ``main``, say:
``git worktree add --detach /tmp/main main``) to the rounds, and with ``--index-cost`` that
one without its index too: before and after a change, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from harness import (
    STACK_NAMES,
    STACKS,
    check_stack,
    cpu_seconds,
    free_port,
    load_average,
    start_bare,
    start_inspector,
    wait_up,
)

BODY = json.dumps(
    {
        "event": "message.received",
        "timestamp": "2025-01-15T08:30:00Z",
        "data": {
            "channelId": "C1234567890",
            "messageId": "msg_001",
            "sender": {"userId": "U1234567890", "displayName": "王小明"},
            "type": "text",
            "content": "大家早安!" * 20,
        },
    },
    ensure_ascii=False,
).encode()

BARE_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hook(request):
        await request.body()
        return PlainTextResponse("OK")

    app = Starlette(routes=[Route("/h/{rest:path}", hook, methods=["POST"])])
    """
)


def start_servers(
    workdir: Path,
    stack: str,
    https: bool,
    index_cost: bool = False,
    compare_with: Path | None = None,
) -> tuple[list[subprocess.Popen[bytes]], dict[str, str], dict[str, int]]:
    """The bare endpoint and the inspector (and with ``https`` their TLS listeners), on
    ``stack``; returns the processes and the URL of each, by name."""
    bare_port, insp_port, tls_port = free_port(), free_port(), free_port()
    tls = ["--https", "--https-port", str(tls_port)] if https else []
    data = workdir / f"data-{stack}"
    bare = start_bare(workdir, "bare_app", BARE_APP, bare_port, stack)
    inspector = start_inspector(workdir, data, insp_port, stack, "--retention", "1000000", *tls)
    urls = {
        "bare": f"http://127.0.0.1:{bare_port}/h/bench",
        "inspector": f"http://127.0.0.1:{insp_port}/h/bench",
    }
    wait_up(urls["bare"], post=True)
    wait_up(urls["inspector"], post=True)
    check_stack(workdir, insp_port, stack)
    procs = [bare, inspector]
    pids = {"bare": bare.pid, "inspector": inspector.pid, "inspector-tls": inspector.pid}
    if index_cost:
        port = free_port()
        procs.append(
            start_inspector(workdir, workdir / f"data-{stack}-no-index", port, stack,
                            "--retention", "1000000", "--no-search-index")
        )  # fmt: skip
        urls["no-index"] = f"http://127.0.0.1:{port}/h/bench"
        pids["no-index"] = procs[-1].pid
        wait_up(urls["no-index"], post=True)
    if compare_with is not None:
        for name, flags in (("baseline", ()), ("baseline-noidx", ("--no-search-index",))):
            if flags and not index_cost:
                continue
            port = free_port()
            procs.append(
                start_inspector(workdir, workdir / f"data-{stack}-{name}", port, stack,
                                "--retention", "1000000", *flags, root=compare_with)
            )  # fmt: skip
            urls[name] = f"http://127.0.0.1:{port}/h/bench"
            pids[name] = procs[-1].pid
            wait_up(urls[name], post=True)
    if https:
        tls_dir = data / "tls"
        urls["inspector-tls"] = f"https://127.0.0.1:{tls_port}/h/bench"
        wait_up(urls["inspector-tls"], post=True, verify=str(tls_dir / "ca.crt"))
        # The baseline for TLS's own cost: the bare endpoint over uvicorn's TLS, same cert.
        bare_tls_port = free_port()
        procs.append(
            start_bare(workdir, "bare_app", BARE_APP, bare_tls_port, stack,
                       "--ssl-certfile", str(tls_dir / "server.crt"),
                       "--ssl-keyfile", str(tls_dir / "server.key"))
        )  # fmt: skip
        pids["bare-tls"] = procs[-1].pid
        urls["bare-tls"] = f"https://127.0.0.1:{bare_tls_port}/h/bench"
        wait_up(urls["bare-tls"], post=True, verify=str(tls_dir / "ca.crt"))
    # Warm both up (imports, first connections, SQLite's cache) before anything is timed.
    for url in urls.values():
        if url.startswith("http:") and shutil.which("wrk"):
            run_wrk(url, 1, 8, workdir)
    return procs, urls, pids


def run_wrk(url: str, seconds: int, connections: int, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    escaped = BODY.decode("utf-8").replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": float(done),
        "p50_ms": _wrk_ms(out, "50%"),
        "p99_ms": _wrk_ms(out, "99%"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _wrk_ms(out: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_python_load(
    url: str, seconds: int, connections: int, verify: str | bool = True
) -> dict[str, float]:
    import asyncio

    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient, stop: float) -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            r = await client.post(url, content=BODY, headers={"content-type": "application/json"})
            latencies.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30, verify=verify) as client:
            start = time.monotonic()
            stop = start + seconds
            await asyncio.gather(*(worker(client, stop) for _ in range(connections)))
            return time.monotonic() - start

    elapsed = asyncio.run(main())
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "requests": float(len(latencies)),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "non2xx": 0.0,
        "socket_errors": 0.0,
    }


def index_lag(data_dir: Path) -> int | None:
    """Requests the server's search index has not reached yet (None: it keeps none). Reads
    the index's own file, or (an earlier version's) the database's ``search_state``."""
    import sqlite3

    conn = sqlite3.connect(f"file:{data_dir / 'inspector.db'}?mode=ro", uri=True)
    side = data_dir / "inspector.search.db"
    try:
        head = conn.execute(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0)"
        ).fetchone()[0]
        if side.exists():
            conn.execute(f"ATTACH 'file:{side}?mode=ro' AS side")
            upto = conn.execute("SELECT indexed_upto FROM side.state").fetchone()[0]
        elif conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'search'").fetchone():
            upto = conn.execute("SELECT indexed_upto FROM search_state").fetchone()[0]
        else:
            return None
        return int(head) - int(upto)
    finally:
        conn.close()


def catch_up(data_dir: Path, limit: float = 60.0) -> tuple[int | None, float]:
    """The index's lag now, and how long it took to reach 0 (at most ``limit`` s): the next
    server's round must not pay for this one's indexing."""
    lag = index_lag(data_dir)
    started = time.monotonic()
    while lag and time.monotonic() - started < limit:
        time.sleep(0.1)
        lag = index_lag(data_dir) or 0
    return lag, time.monotonic() - started


def count_stored(data_dir: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(data_dir / "inspector.db")
    try:
        return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--stack", choices=[*STACKS, "both"], default="both")
    parser.add_argument("--https", action="store_true", help="Also load the TLS listener.")
    parser.add_argument(
        "--index-cost", action="store_true", help="Also the inspector without a search index."
    )
    parser.add_argument(
        "--compare-with", type=Path, help="Also the inspector of this checkout (a baseline)."
    )
    args = parser.parse_args()
    stacks = STACKS if args.stack == "both" else (args.stack,)
    use_wrk = shutil.which("wrk") is not None
    workdir = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, dict[str, str]] = {}
    pids: dict[str, dict[str, int]] = {}
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    stored: dict[str, int] = {}
    # The data directory of each server that keeps a search index.
    data_dirs: dict[str, dict[str, Path]] = {
        stack: {
            "inspector": workdir / f"data-{stack}",
            "baseline": workdir / f"data-{stack}-baseline",
        }
        for stack in stacks
    }
    print(f"load average at start: {load_average():.1f}", flush=True)
    try:
        for stack in stacks:
            started, urls[stack], pids[stack] = start_servers(
                workdir, stack, args.https, args.index_cost, args.compare_with
            )
            procs += started
            results[stack] = {name: [] for name in urls[stack]}
        for number in range(args.rounds):
            # Servers alternate within a round, so a change in the machine's load hits both.
            for stack in stacks:
                for name, url in urls[stack].items():
                    cpu = cpu_seconds(pids[stack][name])
                    if use_wrk:  # wrk does not verify certificates
                        r = run_wrk(url, args.seconds, args.connections, workdir)
                    else:
                        ca = str(workdir / f"data-{stack}" / "tls" / "ca.crt")
                        verify = ca if url.startswith("https") else True
                        r = run_python_load(url, args.seconds, args.connections, verify)
                    # CPU per request, the server's (all threads): what the load left us.
                    r["cpu_us"] = (cpu_seconds(pids[stack][name]) - cpu) / r["requests"] * 1e6
                    results[stack][name].append(r)
                    lag = index_lag(data_dirs[stack][name]) if name in data_dirs[stack] else None
                    behind = ""
                    if lag is not None:
                        # The index's work left over is done now, and its CPU counted here.
                        _, waited = catch_up(data_dirs[stack][name])
                        cpu_all = cpu_seconds(pids[stack][name]) - cpu
                        behind = (
                            f"  index {lag} rows behind, caught up in {waited:.1f} s"
                            f" (cpu with it {cpu_all / r['requests'] * 1e6:.0f} us/req)"
                        )
                    print(
                        f"  round {number + 1} {stack:<8} {name:<13} {r['rps']:8.0f} req/s  "
                        f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                        f"cpu {r['cpu_us']:5.0f} us/req  non-2xx {int(r['non2xx'])}  "
                        f"(load {load_average():.1f}){behind}",
                        flush=True,
                    )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(timeout=30)
    for stack in stacks:
        stored[stack] = count_stored(workdir / f"data-{stack}")
    shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        f"load: {'wrk' if use_wrk else 'python'}, {args.connections} connections, "
        f"{args.rounds} x {args.seconds} s per server, {os.cpu_count()} cores, 1 KiB JSON POST; "
        f"load average at the end {load_average():.1f}"
    )
    for stack in stacks:
        report(stack, results[stack], stored[stack])
    return 0


def report(stack: str, results: dict[str, list[dict[str, float]]], stored: int) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    def line(label: str, name: str) -> str:
        return (
            f"  {label:<22} {med(name, 'rps'):8.0f} req/s  p50 {med(name, 'p50_ms'):.2f} ms  "
            f"p99 {med(name, 'p99_ms'):.2f} ms  CPU {med(name, 'cpu_us'):.0f} us/request"
            " (medians of rounds)"
        )

    loop, http = STACK_NAMES[stack]
    print(f"\n{stack} stack ({loop} + {http}):")
    print(line("bare starlette", "bare"))
    print(line("inspector (durable)", "inspector"))
    bare_rps, insp_rps = med("bare", "rps"), med("inspector", "rps")
    cpu_ratio = med("bare", "cpu_us") / med("inspector", "cpu_us")
    by_round = [
        i["rps"] / b["rps"] for i, b in zip(results["inspector"], results["bare"], strict=True)
    ]
    print(
        f"  ratio inspector/bare: {insp_rps / bare_rps:.2f}"
        f"   (by round: {', '.join(f'{r:.2f}' for r in by_round)});"
        f" CPU per request, bare/inspector: {cpu_ratio:.2f}"
    )
    if "inspector-tls" in results:
        print(line("inspector, TLS", "inspector-tls"))
        print(f"  ratio inspector TLS/plain: {med('inspector-tls', 'rps') / insp_rps:.2f}")
        print(line("bare starlette, TLS", "bare-tls"))
        print(
            "  ratio bare TLS/plain (uvicorn's TLS, the baseline): "
            f"{med('bare-tls', 'rps') / bare_rps:.2f}"
        )
    if "no-index" in results:
        print(line("inspector, no index", "no-index"))
        by_round = ", ".join(
            f"{1 - i['rps'] / n['rps']:.1%}"
            for i, n in zip(results["inspector"], results["no-index"], strict=True)
        )
        cost = 1 - insp_rps / med("no-index", "rps")
        extra_cpu = med("inspector", "cpu_us") - med("no-index", "cpu_us")
        print(
            f"  the search index's cost on the capture path: {cost:.1%} of throughput"
            f" (by round: {by_round}); CPU {extra_cpu:.0f} us/request"
        )
    if "baseline" in results:
        print(line("baseline (--compare-with)", "baseline"))
        by_round = ", ".join(
            f"{b['rps'] / r['rps']:.2f}"
            for b, r in zip(results["baseline"], results["bare"], strict=True)
        )
        print(
            f"  ratio baseline/bare: {med('baseline', 'rps') / bare_rps:.2f} (by round: "
            f"{by_round}); inspector/baseline: {insp_rps / med('baseline', 'rps'):.2f}"
        )
    if "baseline-noidx" in results:
        print(line("baseline, no index", "baseline-noidx"))
        print(
            f"  ratio baseline no index/bare: {med('baseline-noidx', 'rps') / bare_rps:.2f};"
            f" inspector no index/bare: {med('no-index', 'rps') / bare_rps:.2f}"
        )
    print(f"  requests stored by the inspector: {stored} (every 2xx was committed)")


if __name__ == "__main__":
    raise SystemExit(main())
