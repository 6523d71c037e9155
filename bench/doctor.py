"""The doctor's cost on a failing signature, against a plain verify of the same body.

    .venv/bin/python bench/doctor.py [--repeat 5]

For JSON bodies of about 1 KiB, 64 KiB and 1 MiB, signed with a secret the endpoint does not
have (the doctor's worst case: it searches everything and finds nothing), prints the median
wall time of:

- ``verify`` of a correctly signed body (the baseline: one HMAC),
- ``verify(..., diagnose=False)`` of the failing body (the verdict alone),
- ``verify`` of the failing body (verdict + doctor), with the doctor's tries and bytes hashed,

and the ratio of the last to the baseline. The capture path calls ``verify`` with the doctor
before it answers (``receiver.Receiver._inspect``; in a worker thread above 256 KiB), so the
last column is what a failing capture's answer waits for today.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
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


if __name__ == "__main__":
    main()
