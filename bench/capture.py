"""Capture throughput: the inspector (durable: each 2xx is committed, WAL, synchronous=FULL)
against a bare Starlette endpoint that reads the body and answers 200, same server, same load.

    .venv/bin/python bench/capture.py [--seconds 10] [--rounds 3] [--connections 32] [--https]

Both servers run as separate processes on free loopback ports with identical uvicorn settings;
the load alternates between them round by round, and the medians are compared. Load comes from
wrk when installed (Debian package ``wrk``), else from a Python asyncio generator.

``--https`` starts the inspector with ``--https`` too and adds its TLS listener to the rounds
(keep-alive connections, as senders use them), and the bare endpoint on uvicorn's own TLS with
the same certificate: the figures are TLS capture against plain capture of the same process,
and the same ratio for the bare endpoint (what TLS costs asyncio anyway), in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, verify: str | bool = True) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"warmup", timeout=1, verify=verify)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def start_servers(
    workdir: Path, https: bool
) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    python = sys.executable
    bare_port, insp_port, tls_port = free_port(), free_port(), free_port()
    tls = ["--https", "--https-port", str(tls_port)] if https else []
    (workdir / "bare_app.py").write_text(BARE_APP)
    common = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    bare = subprocess.Popen(
        [python, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), *common],
        cwd=workdir,
    )
    inspector = subprocess.Popen(
        [
            python,
            "-m",
            "inspector",
            "serve",
            "--port",
            str(insp_port),
            "--data-dir",
            str(workdir / "data"),
            "--retention",
            "1000000",
            *tls,
        ],
        stdout=subprocess.DEVNULL,
    )
    urls = {
        "bare": f"http://127.0.0.1:{bare_port}/h/bench",
        "inspector": f"http://127.0.0.1:{insp_port}/h/bench",
    }
    wait_up(urls["bare"])
    wait_up(urls["inspector"])
    procs = [bare, inspector]
    if https:
        tls_dir = workdir / "data" / "tls"
        urls["inspector-tls"] = f"https://127.0.0.1:{tls_port}/h/bench"
        wait_up(urls["inspector-tls"], verify=str(tls_dir / "ca.crt"))
        # The baseline for TLS's own cost: the bare endpoint over uvicorn's TLS, same cert.
        bare_tls_port = free_port()
        procs.append(
            subprocess.Popen(
                [python, "-m", "uvicorn", "bare_app:app", "--port", str(bare_tls_port), *common,
                 "--ssl-certfile", str(tls_dir / "server.crt"),
                 "--ssl-keyfile", str(tls_dir / "server.key")],
                cwd=workdir,
            )
        )  # fmt: skip
        urls["bare-tls"] = f"https://127.0.0.1:{bare_tls_port}/h/bench"
        wait_up(urls["bare-tls"], verify=str(tls_dir / "ca.crt"))
    return procs, urls


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
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
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
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "non2xx": 0.0,
        "socket_errors": 0.0,
    }


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
    parser.add_argument("--https", action="store_true", help="Also load the TLS listener.")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    workdir = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    procs, urls = start_servers(workdir, args.https)
    ca = str(workdir / "data" / "tls" / "ca.crt")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    try:
        for _ in range(args.rounds):
            for name, url in urls.items():
                if use_wrk:  # wrk does not verify certificates
                    r = run_wrk(url, args.seconds, args.connections, workdir)
                else:
                    verify = ca if url.startswith("https") else True
                    r = run_python_load(url, args.seconds, args.connections, verify)
                results[name].append(r)
                print(
                    f"  {name:<13} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                    f"p99 {r['p99_ms']:6.2f} ms  non-2xx {int(r['non2xx'])}",
                    flush=True,
                )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(timeout=30)
    stored = count_stored(workdir / "data")
    shutil.rmtree(workdir, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    bare_rps, insp_rps = med("bare", "rps"), med("inspector", "rps")
    print()
    print(
        f"load: {'wrk' if use_wrk else 'python'}, {args.connections} connections, "
        f"{args.rounds} x {args.seconds} s per server, {os.cpu_count()} cores, 1 KiB JSON POST"
    )
    print(
        f"bare starlette   {bare_rps:8.0f} req/s  p50 {med('bare', 'p50_ms'):.2f} ms  "
        f"p99 {med('bare', 'p99_ms'):.2f} ms (median of rounds)"
    )
    print(
        f"inspector        {insp_rps:8.0f} req/s  p50 {med('inspector', 'p50_ms'):.2f} ms  "
        f"p99 {med('inspector', 'p99_ms'):.2f} ms (median of rounds)"
    )
    print(f"ratio inspector/bare: {insp_rps / bare_rps:.2f}")
    if "inspector-tls" in results:
        tls_rps = med("inspector-tls", "rps")
        print(
            f"inspector, TLS   {tls_rps:8.0f} req/s  p50 {med('inspector-tls', 'p50_ms'):.2f} ms  "
            f"p99 {med('inspector-tls', 'p99_ms'):.2f} ms (median of rounds)"
        )
        print(f"ratio inspector TLS/plain: {tls_rps / insp_rps:.2f}")
        bare_tls = med("bare-tls", "rps")
        print(
            f"bare starlette, TLS {bare_tls:5.0f} req/s  p50 {med('bare-tls', 'p50_ms'):.2f} ms  "
            f"p99 {med('bare-tls', 'p99_ms'):.2f} ms (median of rounds)"
        )
        print(f"ratio bare TLS/plain (uvicorn's TLS, the baseline): {bare_tls / bare_rps:.2f}")
    print(f"requests stored by the inspector: {stored} (every 2xx was committed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
