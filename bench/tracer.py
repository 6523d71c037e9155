"""``webhook-inspector serve`` with timestamps along the capture -> SSE path (``--trace``).

    python bench/tracer.py OUT.json serve --port N --data-dir DIR ...

Runs the CLI in this process after wrapping, from outside, the functions a capture's event
passes through; at exit it writes what it saw to ``OUT.json``. Every time is
``time.perf_counter_ns()`` (CLOCK_MONOTONIC on Linux: one clock with the benchmark's process).

Per capture (by the sequence number in its path, ``/h/bench/<seq>``): when the receiver was
called on the loop, when its job was queued for the writer, which batch took it; per batch:
when the writer took it, BEGIN..COMMIT, and when the writer was done with it; per event: when
its announcement ran on the loop and how long publishing took; per SSE chunk: when the
subscriber's generator yielded it and when it was resumed (the send done), and the ids in it.
Besides: the writer's other work (index catch-up, tidy, evict ahead), full collections, and
how late a 1 ms sleep woke on the loop and in a thread (what held the loop, or the GIL).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

ns = time.perf_counter_ns

recv: dict[int, int] = {}
queued: dict[int, int] = {}
# seq -> batch number
in_batch: dict[int, int] = {}
# batch number -> [taken, begun, committed, done, size]
batches: list[list[int]] = []
# request id -> [seq, announce start, announce end]
announced: dict[int, list[int]] = {}
# [subscriber, yielded, resumed, chunk]
writes: list[tuple[int, int, int, bytes]] = []
# [name, start, end]
other: list[tuple[str, int, int]] = []
gcs: list[tuple[int, int, int]] = []
loop_lag: list[tuple[int, int]] = []
thread_lag: list[tuple[int, int]] = []
_state = threading.local()
_stop = threading.Event()


def seq_of(path: str) -> int | None:
    head, _, tail = path.rpartition("/")
    return int(tail) if head == "/h/bench" and tail.isdigit() else None


def patch() -> None:
    from inspector.api import stream as stream_api
    from inspector.receiver import Receiver
    from inspector.store import core, intake

    path_at = intake._INSERT_COLUMNS.index("path")
    monitors: list[asyncio.Task[None]] = []

    orig_call = Receiver.__call__

    async def call(self: Receiver, scope: Any, receive: Any, send: Any) -> None:
        seq = seq_of(scope["path"])
        if seq is not None:
            recv[seq] = ns()
        if not monitors:
            monitors.append(asyncio.get_running_loop().create_task(watch_loop()))
        await orig_call(self, scope, receive, send)

    Receiver.__call__ = call  # type: ignore[method-assign]

    orig_write = core.Store.write_announced

    async def write_announced(
        self: core.Store, version: Any, visible: Any, fn: Any, *args: Any
    ) -> Any:
        if args and hasattr(args[0], "path"):
            seq = seq_of(args[0].path)
            if seq is not None:
                queued[seq] = ns()
        return await orig_write(self, version, visible, fn, *args)

    core.Store.write_announced = write_announced  # type: ignore[method-assign]

    orig_batch = core.Store._run_batch

    def run_batch(self: core.Store, batch: list[Any]) -> None:
        record = [ns(), 0, 0, 0, len(batch)]
        number = len(batches)
        batches.append(record)
        for job in batch:
            if job.args and hasattr(job.args[0], "path"):
                seq = seq_of(job.args[0].path)
                if seq is not None:
                    in_batch[seq] = number
        _state.batch = record
        try:
            orig_batch(self, batch)
        finally:
            _state.batch = None
            record[3] = ns()

    core.Store._run_batch = run_batch  # type: ignore[method-assign]

    orig_commit = core.Store._commit_together

    def commit_together(self: core.Store, *args: Any) -> Any:
        record = getattr(_state, "batch", None)
        if record is not None:
            record[1] = ns()
        try:
            return orig_commit(self, *args)
        finally:
            if record is not None:
                record[2] = ns()

    core.Store._commit_together = commit_together  # type: ignore[method-assign]

    for name in ("_catch_up", "_tidy", "_evict_ahead"):
        if hasattr(core.Store, name):  # the writer's other work, where it still does it
            wrap_other(core.Store, name)

    orig_announce = Receiver._announce

    def announce(self: Receiver, inserted: Any) -> None:
        start = ns()
        orig_announce(self, inserted)
        seq = seq_of(inserted.values[path_at])
        if seq is not None:
            announced[inserted.id] = [seq, start, ns()]

    Receiver._announce = announce  # type: ignore[method-assign]

    orig_live = stream_api.live

    async def live(hub: Any, subscriber: Any, seen: int, *rest: Any) -> AsyncIterator[bytes]:
        key = id(rest[0]) if rest and rest[0] is not None else id(subscriber)
        async for chunk in orig_live(hub, subscriber, seen, *rest):
            yielded = ns()
            yield chunk
            writes.append((key, yielded, ns(), chunk))

    stream_api.live = live
    writer_class = getattr(stream_api, "Writer", None)
    if writer_class is not None:  # events written at once, from publish
        orig_direct = writer_class.write

        def write(self: Any, chunk: bytes) -> bool:
            start = ns()
            done: bool = orig_direct(self, chunk)
            if done:
                writes.append((id(self), start, ns(), chunk))
            return done

        writer_class.write = write

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _state.gc = ns()
        else:
            gcs.append((info["generation"], getattr(_state, "gc", 0), ns()))

    gc.callbacks.append(on_gc)
    threading.Thread(target=watch_thread, daemon=True, name="trace-lag").start()


def wrap_other(cls: type, name: str) -> None:
    orig: Callable[..., Any] = getattr(cls, name)

    def wrapped(self: Any, *args: Any) -> Any:
        start = ns()
        try:
            return orig(self, *args)
        finally:
            end = ns()
            if end - start > 200_000:
                other.append((name, start, end))

    setattr(cls, name, wrapped)


async def watch_loop() -> None:
    """How late a 1 ms sleep wakes on the loop: what held it."""
    while True:
        start = ns()
        await asyncio.sleep(0.001)
        late = ns() - start - 1_000_000
        if late > 500_000:
            loop_lag.append((start, late))


def watch_thread() -> None:
    """How late a 1 ms sleep wakes in a thread: it needs the GIL to note the time."""
    while not _stop.is_set():
        start = ns()
        time.sleep(0.001)
        late = ns() - start - 1_000_000
        if late > 500_000:
            thread_lag.append((start, late))


IDS = re.compile(rb"^id: (\d+)$", re.M)


def dump(path: str) -> None:
    _stop.set()
    out = {
        "recv": recv,
        "queued": queued,
        "in_batch": in_batch,
        "batches": batches,
        "announced": announced,
        "writes": [
            (key, y, r, [int(i) for i in IDS.findall(chunk)]) for key, y, r, chunk in writes
        ],
        "other": other,
        "gcs": gcs,
        "loop_lag": loop_lag,
        "thread_lag": thread_lag,
    }
    with open(path, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    out = sys.argv.pop(1)
    if "TRACE_SWITCH_INTERVAL" in os.environ:  # an experiment: the GIL's hand-over period
        sys.setswitchinterval(float(os.environ["TRACE_SWITCH_INTERVAL"]))
    patch()
    atexit.register(dump, out)
    # uvicorn restores this handler after its graceful shutdown and raises SIGTERM again:
    # exit through atexit rather than die by the default action.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from inspector.cli import main

    raise SystemExit(main())


# -- the benchmark's side: where each delivery's time went -----------------------------------

STEPS = (
    ("send->recv", "client's write to the receiver called on the loop"),
    ("recv->queued", "read the body, inspect, queue the job"),
    ("queued->taken", "the writer takes the batch (wake-up, or busy)"),
    ("taken->commit", "BEGIN .. COMMIT"),
    ("commit->announce", "call_soon_threadsafe: the announcement runs on the loop"),
    ("announce", "publish: item, JSON, offer to each subscriber"),
    ("announce->yield", "the subscriber's generator yields its chunk"),
    ("yield->sent", "sse-starlette's send (transport write)"),
    ("sent->arrival", "kernel, and the benchmark's own loop reading it"),
)


def _pair(arrivals: list[dict[int, int]], by_sub: dict[int, dict[int, int]]) -> dict[int, int]:
    """Which subscriber fed which client: the one whose every send preceded its arrivals."""
    pairs: dict[int, int] = {}
    for client, got in enumerate(arrivals):
        best: tuple[int, int, int] | None = None
        for sub, sent in by_sub.items():
            if sub in pairs.values():
                continue
            diffs = sorted(got[i] - sent[i] for i in got.keys() & sent.keys())
            if not diffs:
                continue
            score = (sum(d < 0 for d in diffs), diffs[len(diffs) // 2], sub)
            if best is None or score < best:
                best = score
        if best is not None:
            pairs[client] = best[2]
    return pairs


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and e > start for s, e in spans)


def report(trace: dict[str, Any], sent: list[int], arrivals: list[dict[int, int]]) -> list[str]:
    """Lines describing where the slowest 1% and the median deliveries spent their time."""
    recv = {int(k): v for k, v in trace["recv"].items()}
    queued = {int(k): v for k, v in trace["queued"].items()}
    in_batch = {int(k): v for k, v in trace["in_batch"].items()}
    batches = trace["batches"]
    seq_id: dict[int, int] = {}
    announced: dict[int, tuple[int, int]] = {}
    for rid, (seq, start, end) in trace["announced"].items():
        seq_id[seq] = int(rid)
        announced[seq] = (start, end)
    by_sub: dict[int, dict[int, int]] = {}
    yielded: dict[int, dict[int, int]] = {}
    id_seq = {v: k for k, v in seq_id.items()}
    for sub, y, r, ids in trace["writes"]:
        for rid in ids:
            seq = id_seq.get(rid)
            if seq is not None:
                by_sub.setdefault(sub, {})[seq] = r
                yielded.setdefault(sub, {})[seq] = y
    pairs = _pair(arrivals, by_sub)
    rows: list[tuple[float, list[float], int, int]] = []
    for client, got in enumerate(arrivals):
        sub = pairs.get(client)
        if sub is None:
            continue
        for seq, arrival in got.items():
            if seq not in announced or seq not in in_batch or seq not in by_sub[sub]:
                continue
            batch = batches[in_batch[seq]]
            a_start, a_end = announced[seq]
            marks = [
                sent[seq], recv[seq], queued[seq], batch[0], batch[2], a_start, a_end,
                yielded[sub][seq], by_sub[sub][seq], arrival,
            ]  # fmt: skip
            steps = [(b - a) / 1e6 for a, b in itertools.pairwise(marks)]
            rows.append(((arrival - sent[seq]) / 1e6, steps, seq, client))
    rows.sort(key=lambda r: r[0])
    if not rows:
        return ["  trace: nothing to join"]
    n = len(rows)
    slow = rows[int(n * 0.99) :]
    middle = rows[int(n * 0.45) : int(n * 0.55)]

    def med(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    out = [
        f"  trace: {n} deliveries joined; slowest 1% ({len(slow)}: total >= {slow[0][0]:.2f} ms)"
        f" vs the middle 10% (total ~{med([r[0] for r in middle]):.2f} ms), ms per step:",
        f"    {'step':18} {'middle: p50':>11} {'slow: p50':>10} {'slow: mean':>10}"
        f" {'slow: max':>9}",
    ]
    for i, (name, _) in enumerate(STEPS):
        m = [r[1][i] for r in middle]
        s = [r[1][i] for r in slow]
        out.append(
            f"    {name:18} {med(m):11.3f} {med(s):10.3f} {sum(s) / len(s):10.3f} {max(s):9.2f}"
        )
    sizes = [b[4] for b in batches]
    commits = sorted((b[2] - b[1]) / 1e6 for b in batches if b[2])
    holds = sorted((b[3] - b[0]) / 1e6 for b in batches if b[3])
    out.append(
        f"    batches: {len(batches)}, size p50 {med(sizes)} max {max(sizes)};"
        f" BEGIN..COMMIT p50 {med(commits):.3f} p99 {commits[int(len(commits) * 0.99)]:.2f} ms;"
        f" whole batch p50 {med(holds):.3f} p99 {holds[int(len(holds) * 0.99)]:.2f} ms"
    )
    gcs = [(s, e) for g, s, e in trace["gcs"] if e - s > 1_000_000]
    loop_lag = [(s, s + late + 1_000_000) for s, late in trace["loop_lag"] if late > 2_000_000]
    thread_lag = [(s, s + late + 1_000_000) for s, late in trace["thread_lag"] if late > 2_000_000]
    other = [(s, e) for _, s, e in trace["other"] if e - s > 1_000_000]
    slow_batches = [(b[1], b[2]) for b in batches if b[2] - b[1] > 2_000_000]
    spans = {
        "a collection > 1 ms": gcs,
        "a loop lag > 2 ms": loop_lag,
        "a thread lag > 2 ms (GIL)": thread_lag,
        "writer's other work > 1 ms": other,
        "a COMMIT > 2 ms": slow_batches,
    }
    seen = [(sent[r[2]], sent[r[2]] + int(r[0] * 1e6)) for r in slow]
    parts = [
        f"{label} {sum(_overlaps(spans[label], a, b) for a, b in seen)} (of {len(spans[label])})"
        for label in spans
    ]
    out.append("    slow deliveries overlapping: " + "; ".join(parts))
    lags = sorted(late / 1e6 for _, late in trace["loop_lag"])
    tlags = sorted(late / 1e6 for _, late in trace["thread_lag"])
    out.append(
        f"    loop woke > 0.5 ms late {len(lags)} times (max {lags[-1] if lags else 0:.1f} ms);"
        f" a thread {len(tlags)} times (max {tlags[-1] if tlags else 0:.1f} ms);"
        f" other work by kind: "
        + ", ".join(
            f"{k} {sum(1 for o in trace['other'] if o[0] == k)}"
            for k in ("_catch_up", "_tidy", "_evict_ahead")
        )
    )
    return out
