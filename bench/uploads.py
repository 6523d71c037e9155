"""Peak RSS of the server during 40 concurrent 10 MiB uploads, against its RSS at rest,
in the same run; and what the uploads were answered (200, or 503 + Retry-After beyond the
memory budget for bodies in flight).

    .venv/bin/python bench/uploads.py [--uploads 40] [--mib 10]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import threading
import time

import httpx


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def upload_all(base: str, n: int, body: bytes) -> collections.Counter[int]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/h/big", content=body, headers={"content-type": "application/octet-stream"}
                )
                for _ in range(n)
            )
        )
    return collections.Counter(a.status_code for a in answers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--mib", type=int, default=10)
    args = parser.parse_args()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inspector",
            "serve",
            "--port",
            "0",
            "--data-dir",
            tempfile.mkdtemp(),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    base = ""
    for line in proc.stdout:
        if "page:" in line:
            base = line.split("page:", 1)[1].strip().rstrip("/")
        if "Ctrl-C" in line:
            break
    time.sleep(0.5)
    rest = rss_mib(proc.pid)
    peak = rest
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        answers = asyncio.run(upload_all(base, args.uploads, b"x" * (args.mib << 20)))
    finally:
        done.set()
        sampler.join()
        proc.terminate()
        proc.wait()
    took = time.monotonic() - started
    print(
        f"RSS at rest: {rest:.0f} MiB; peak during {args.uploads} x {args.mib} MiB uploads: "
        f"{peak:.0f} MiB (ratio {peak / rest:.2f}); "
        f"bodies sent: {args.uploads * args.mib} MiB in {took:.1f} s"
    )
    print(f"answers: {dict(answers)}")


if __name__ == "__main__":
    main()
