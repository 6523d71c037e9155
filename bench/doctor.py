"""The doctor's cost on a failing signature, and what it costs a capture's answer.

    .venv/bin/python bench/doctor.py [--repeat 5] [--requests 30]

1. In-process, for JSON bodies of about 1 KiB, 64 KiB and 1 MiB, signed with a secret the
   endpoint does not have (the doctor's worst case: it searches everything and finds nothing),
   the median wall time of:

   - ``verify`` of a correctly signed body (the baseline: one HMAC),
   - ``verify(..., diagnose=False)`` of the failing body (the verdict alone),
   - ``verify`` of the failing body (verdict + doctor), with the doctor's tries and bytes hashed,

   and the ratio of the last to the baseline: what a failing capture's answer waited for
   when the doctor ran before it.

2. Through a real server (``webhook-inspector serve`` in its own process), the time from
   sending a 1 MiB POST to receiving its 2xx, for a validly signed body (the baseline) and a
   failing one, in a shuffled order on one keep-alive connection: once waiting for the doctor to be
   idle before each request (the answer alone), once back to back (the answer while the
   previous failure is being diagnosed in the background). The capture path verifies without
   the doctor and diagnoses after the answer (``inspector.diagnosis``), so the two match.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from inspector.signatures import SignatureConfig, Verdict, doctor, sign, verify
from inspector.signatures.search import Budget

SIZES = {"1 KiB": 1024, "64 KiB": 64 * 1024, "1 MiB": 1024 * 1024}


def body_of(size: int) -> bytes:
    """A webhook-like JSON body of about ``size`` bytes (pretty-printed, non-ASCII text)."""

    def item(n: int) -> dict[str, object]:
        return {"id": f"msg_{n:06d}", "amount": round(1.10 + n, 2), "text": "大家早安! see /a/b"}

    def render(count: int) -> bytes:
        event = {"event": "message.received", "data": {"items": [item(n) for n in range(count)]}}
        return json.dumps(event, indent=2, ensure_ascii=False).encode()

    per_item = len(render(2)) - len(render(1))
    return render(max(1, size // per_item))


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def diagnosed(
    headers: list[tuple[str, str]], body: bytes, config: SignatureConfig
) -> tuple[Verdict | None, Budget]:
    """verify() once more, keeping the doctor's Budget to report its tries and bytes."""
    budgets: list[Budget] = []
    original = doctor.Budget

    def spy(max_bytes: int, seconds: float) -> Budget:
        budget = original(max_bytes, seconds)
        budgets.append(budget)
        return budget

    doctor.Budget = spy  # type: ignore[misc]
    try:
        verdict = verify(headers, body, config)
    finally:
        doctor.Budget = original  # type: ignore[misc]
    return verdict, budgets[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inspector",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/api/endpoints", timeout=1)
            return server, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the server did not come up") from None
            time.sleep(0.05)


def doctor_idle(client: httpx.Client) -> bool:
    """Whether no stored verdict of the bench endpoint still waits for the doctor."""
    items = client.get("/api/requests?endpoint=bench&limit=5").json()["requests"]
    return not any((it["signature"] or {}).get("doctor") for it in items)


def answers(
    client: httpx.Client, body: bytes, count: int, *, settle: bool
) -> dict[str, list[float]]:
    """Seconds to each 2xx, per kind (valid, failing), in a shuffled order; ``settle``: wait
    for the doctor to be idle before each request."""
    signed = {
        "valid": dict(sign("platform", "the-endpoint-secret", body)),
        "failing": dict(sign("platform", "someone-else", body)),
    }
    times: dict[str, list[float]] = {"valid": [], "failing": []}
    # A shuffled order: strictly alternating, whichever kind came second in each pair was
    # slower, doctor or not (the position, not the kind, costs ~25 ms here).
    kinds = ["valid", "failing"] * count
    random.Random(count).shuffle(kinds)
    for kind in kinds:
        while settle and not doctor_idle(client):
            time.sleep(0.01)
        started = time.perf_counter()
        response = client.post("/h/bench", content=body, headers=signed[kind])
        times[kind].append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return times


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def figures(times: dict[str, list[float]]) -> str:
    """p50 and p90 of each kind (ms), and the ratio of the p50s."""
    valid, failing = times["valid"], times["failing"]
    v50, f50 = statistics.median(valid), statistics.median(failing)
    v90, f90 = percentile(valid, 0.9), percentile(failing, 0.9)
    return (
        f"{v50 * 1000:>7.1f} ms {v90 * 1000:>5.1f} ms {f50 * 1000:>9.1f} ms "
        f"{f90 * 1000:>5.1f} ms {f50 / v50:>5.2f}"
    )


def through_a_server(count: int) -> None:
    body = body_of(1024 * 1024)
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(Path(tmp))
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                client.put("/api/endpoints/bench", json={"secret": "the-endpoint-secret"})
                answers(client, body, 3, settle=True)  # warm up
                print(f"\ntime to the 2xx, 1 MiB JSON body, {count} of each, shuffled")
                print(f"{'mode':>14} {'valid p50':>10} {'p90':>8} {'failing':>12} {'p90':>8} ratio")
                for mode, settle in (("doctor idle", True), ("back to back", False)):
                    print(f"{mode:>14} {figures(answers(client, body, count, settle=settle))}")
                newest = "/api/requests?endpoint=bench&signature=invalid&limit=1"
                last = client.get(newest).json()["requests"][0]
                while (last["signature"] or {}).get("doctor") == "pending":
                    time.sleep(0.05)
                    last = client.get(f"/api/requests/{last['id']}").json()
                finding = (last["signature"]["diagnosis"] or "")[:70]
                print(f"the last failure, diagnosed after its answer: {finding}")
        finally:
            server.terminate()
            server.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=30, help="per kind, through the server")
    args = parser.parse_args()
    config = SignatureConfig(secrets=("the-endpoint-secret",))
    print(
        f"doctor budget: {doctor.MAX_HMAC_BYTES // (1024 * 1024)} MiB hashed, "
        f"{doctor.MAX_SECONDS} s; median of {args.repeat}\n"
    )
    header = (
        f"{'body':>8} {'valid verify':>13} {'fail, no doctor':>16} {'fail + doctor':>14} "
        f"{'ratio':>8} {'tries':>6} {'hashed':>9}  finding"
    )
    print(header)
    for name, size in SIZES.items():
        body = body_of(size)
        good = sign("platform", "the-endpoint-secret", body)
        bad = sign("platform", "someone-else", body)
        baseline = median_seconds(lambda b=body, h=good: verify(h, b, config), args.repeat)
        quiet = median_seconds(
            lambda b=body, h=bad: verify(h, b, config, diagnose=False), args.repeat
        )
        full = median_seconds(lambda b=body, h=bad: verify(h, b, config), args.repeat)
        verdict, budget = diagnosed(bad, body, config)
        finding = (verdict.diagnosis or "")[:60] if verdict else ""
        print(
            f"{name:>8} {baseline * 1000:>10.2f} ms {quiet * 1000:>13.2f} ms "
            f"{full * 1000:>11.1f} ms {full / baseline:>7.0f}x {budget.tries:>6} "
            f"{budget.spent / (1024 * 1024):>6.1f} MiB  {finding}"
            f"{' (stopped)' if budget.stopped else ''}"
        )
    through_a_server(args.requests)


if __name__ == "__main__":
    main()
