"""Capture latency while 2,000 idle connections are held open (slowloris-style: connected,
nothing sent), against the same server with none held, in the same run.

    .venv/bin/python bench/idle.py [--idle 2000] [--requests 500]

Starts `webhook-inspector serve` (soft open-file limit 1024, hard 4096, as on many hosts:
serve raises it), sends sequential 1 KiB JSON captures on one keep-alive connection, and
prints p50/p99 latency for both phases and their ratio.
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx


def start(data_dir: str) -> tuple[subprocess.Popen[str], str]:
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))

    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "serve", "--port", "0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=limits,
    )
    assert proc.stdout is not None
    base = ""
    for line in proc.stdout:
        if "page:" in line:
            base = line.split("page:", 1)[1].strip().rstrip("/")
        if "Ctrl-C" in line:
            break
    return proc, base


def latencies(base: str, n: int) -> list[float]:
    body = b'{"event":"x","data":"' + b"a" * 1000 + b'"}'
    out = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(n):
            t = time.perf_counter()
            assert client.post("/h/bench", content=body).status_code == 200
            out.append((time.perf_counter() - t) * 1000)
    return out


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    proc, base = start(tempfile.mkdtemp())
    port = int(base.rsplit(":", 1)[1])
    try:
        latencies(base, 50)  # warm up
        p50_0, p99_0 = summary(latencies(base, args.requests))
        held = []
        for _ in range(args.idle):
            sock = socket.socket()
            sock.connect(("127.0.0.1", port))
            held.append(sock)
        time.sleep(1)
        p50_1, p99_1 = summary(latencies(base, args.requests))  # within the 10 s header timeout
        for sock in held:
            sock.close()
    finally:
        proc.terminate()
        proc.wait()
    print(f"baseline (no idle connections): p50 {p50_0:.2f} ms, p99 {p99_0:.2f} ms")
    print(f"with {args.idle} idle connections: p50 {p50_1:.2f} ms, p99 {p99_1:.2f} ms")
    print(f"ratio p50 {p50_1 / p50_0:.2f}, p99 {p99_1 / p99_0:.2f}")


if __name__ == "__main__":
    main()
