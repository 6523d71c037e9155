"""The live stream and the page, measured. Each figure comes with a baseline from the same run.

    .venv/bin/python bench/stream.py [--rate 1000] [--seconds 10] [--clients 5] [--rows 100000]

1. **Capture-to-client latency.** ``webhook-inspector serve`` runs as a subprocess on a free
   loopback port (durable: every 2xx is committed first) with ``--clients`` SSE clients on
   ``/api/stream``. A load generator sends captures at a steady ``--rate`` over keep-alive
   connections, each with its sequence number in the path; every client notes when each
   event arrives. Latency = arrival - send. Every client must receive every event, once.
   Baseline, same load, same clients: a bare Starlette + sse-starlette app that fans each
   POST out through in-memory queues (no store, no commit, no resume).
2. **The page with ``--rows`` stored requests.** The store is filled directly through the
   Store API, then ``serve`` starts on it; ``GET /`` (first render) and ``GET /api/requests``
   are timed sequentially over one keep-alive connection. Baseline: a bare Starlette endpoint
   answering the same bytes (the inspector's own response, captured first).

Load and clients share this process and its asyncio loop (raw sockets, no HTTP library on
the hot path) so that send and arrival times come from one clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import tracer
from harness import (
    ROOT,
    STACK_NAMES,
    STACKS,
    cpu_seconds,
    free_port,
    load_average,
    read_answer,
    stack_env,
    start_bare,
    start_inspector,
    stop,
    wait_up,
)

sys.path.insert(0, str(ROOT))

from inspector import timeline
from inspector.capture import CapturedRequest, ResponseRecord
from inspector.store import Store, intake, requests

BARE_STREAM_APP = textwrap.dedent(
    """
    import asyncio, json
    from sse_starlette import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    queues = set()

    async def hook(request):
        await request.body()
        data = json.dumps({"path": request.url.path})
        for queue in queues:
            queue.put_nowait(data)
        return PlainTextResponse("OK")

    async def stream(request):
        queue = asyncio.Queue()
        queues.add(queue)

        async def events():
            try:
                yield {"event": "ready", "data": "{}"}
                while True:
                    yield {"event": "request", "data": await queue.get()}
            finally:
                queues.discard(queue)

        return EventSourceResponse(events())

    app = Starlette(routes=[
        Route("/h/{rest:path}", hook, methods=["POST"]),
        Route("/api/stream", stream),
    ])
    """
)

BARE_BYTES_APP = textwrap.dedent(
    """
    import pathlib
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    here = pathlib.Path(__file__).parent
    page = (here / "page.html").read_bytes()
    listing = (here / "list.json").read_bytes()

    async def index(request):
        return Response(page, media_type="text/html; charset=utf-8")

    async def requests(request):
        return Response(listing, media_type="application/json")

    app = Starlette(routes=[Route("/", index), Route("/api/requests", requests)])
    """
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
            "content": "大家早安!",
        },
    },
    ensure_ascii=False,
).encode()
PATH = re.compile(rb'"path": ?"/h/bench/(\d+)"')


# -- processes -------------------------------------------------------------------------------


STACK = "fast"  # set from --stack in main()
SERVE_ARGS: list[str] = []  # from --no-search-index


def serve_inspector(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return start_inspector(
        data_dir.parent, data_dir, port, STACK, "--retention", "10000000", *SERVE_ARGS
    )


def serve_traced(data_dir: Path, port: int, out: Path, root: Path) -> subprocess.Popen[bytes]:
    """The inspector of checkout ``root`` under ``tracer.py``, which writes its timestamps to
    ``out`` at exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    workdir = data_dir.parent
    env = stack_env(STACK, workdir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "tracer.py"), str(out), "serve",
         "--port", str(port), "--data-dir", str(data_dir), "--retention", "10000000",
         *SERVE_ARGS],
        stdout=(workdir / f"serve-{port}.out").open("wb"),
        cwd=root,
        env=env,
    )  # fmt: skip


def serve_bare(workdir: Path, module: str, source: str, port: int) -> subprocess.Popen[bytes]:
    return start_bare(workdir, module, source, port, STACK)


# -- part 1: capture-to-client latency --------------------------------------------------------


class SSEClient:
    def __init__(self) -> None:
        self.arrivals: dict[int, int] = {}
        self.duplicates = 0
        self.ready = asyncio.Event()

    async def run(self, port: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        buffer = b""
        try:
            while not stop.is_set():
                chunk = await reader.read(65536)
                if not chunk:
                    return
                now = time.perf_counter_ns()
                # sse-starlette separates with CRLF, the inspector with LF: accept both.
                buffer = (buffer + chunk).replace(b"\r\n", b"\n")
                *complete, buffer = buffer.split(b"\n\n")
                for event in complete:
                    if b"event: ready" in event:
                        self.ready.set()
                    match = PATH.search(event)
                    if match:
                        seq = int(match.group(1))
                        if seq in self.arrivals:
                            self.duplicates += 1
                        self.arrivals[seq] = now
        finally:
            writer.close()


async def sender(port: int, rate: float, count: int, sent: list[int], answered: list[int]) -> None:
    """Send ``count`` captures at ``rate``/s over a pool of keep-alive connections."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    head = b"Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    request_tail = head % len(BODY) + BODY
    tasks = []

    async def one(seq: int) -> None:
        reader, writer = await pool.get()
        sent[seq] = time.perf_counter_ns()
        writer.write(b"POST /h/bench/%d HTTP/1.1\r\n" % seq + request_tail)
        status = await read_answer(reader)
        answered[seq] = time.perf_counter_ns() if status == b"200" else -1
        pool.put_nowait((reader, writer))

    started = time.perf_counter()
    for seq in range(count):
        delay = started + seq / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(seq)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()


def server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of a server's main thread (its event loop) and of all its threads."""
    with open(f"/proc/{pid}/task/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    main = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return main, cpu_seconds(pid)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_stream(port: int, rate: float, seconds: float, clients: int) -> dict[str, Any]:
    count = int(rate * seconds)
    stop_event = asyncio.Event()
    readers = [SSEClient() for _ in range(clients)]
    tasks = [asyncio.ensure_future(c.run(port, stop_event)) for c in readers]
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in readers)), 10)
    sent, answered = [0] * count, [0] * count
    started = time.perf_counter()
    await sender(port, rate, count, sent, answered)
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 10
    while any(len(c.arrivals) < count for c in readers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop_event.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [
        (c.arrivals[seq] - sent[seq]) / 1e6
        for c in readers
        for seq in range(count)
        if seq in c.arrivals
    ]
    responses = [(answered[s] - sent[s]) / 1e6 for s in range(count) if answered[s] > 0]
    return {
        "count": count,
        "rate": count / elapsed,
        "complete": all(len(c.arrivals) == count for c in readers),
        "received": [len(c.arrivals) for c in readers],
        "duplicates": sum(c.duplicates for c in readers),
        "failed": sum(1 for a in answered if a <= 0),
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "response_p50": percentile(responses, 0.50),
        "response_p99": percentile(responses, 0.99),
        "raw": (sent, [c.arrivals for c in readers]),
    }


LABELS = {
    "inspector": "webhook-inspector (durable)",
    "baseline": "baseline (--compare-with)",
    "bare": "bare Starlette fan-out",
}


def start_server(
    name: str, args: argparse.Namespace, workdir: Path, number: int, port: int
) -> tuple[subprocess.Popen[bytes], str, Path | None]:
    """One of the round's servers: the process, the URL that says it is up, its trace file."""
    if name == "bare":
        proc = serve_bare(workdir, "bare_stream", BARE_STREAM_APP, port)
        return proc, f"http://127.0.0.1:{port}/h/warmup", None
    root = ROOT if name == "inspector" else args.compare_with
    data_dir = workdir / f"stream-{name}-{number}"
    traced = workdir / f"trace-{name}-{number}.json" if args.trace else None
    if traced is not None:
        proc = serve_traced(data_dir, port, traced, root)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        proc = start_inspector(
            workdir, data_dir, port, STACK, "--retention", "10000000", *SERVE_ARGS, root=root
        )
    return proc, f"http://127.0.0.1:{port}/api/requests", traced


def part_stream(args: argparse.Namespace, workdir: Path) -> None:
    print(
        f"Capture-to-client: {args.rate:g} captures/s for {args.seconds:g} s,"
        f" {args.clients} SSE clients, {args.rounds} rounds (medians; servers alternate)"
    )
    names = ["inspector", *(["baseline"] if args.compare_with else []), "bare"]
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for number in range(args.rounds):
        # Each server goes first in turn: none always follows the same one.
        for name in names[number % len(names) :] + names[: number % len(names)]:
            for _ in range(3):  # another process may take the free port before the server
                port = free_port()
                proc, probe, traced = start_server(name, args, workdir, number, port)
                wait_up(probe)
                if proc.poll() is None:
                    break
            try:
                load = load_average()
                cpu = server_cpu(proc.pid)
                result = asyncio.run(measure_stream(port, args.rate, args.seconds, args.clients))
                result["load"] = load
                loop_s, all_s = (b - a for a, b in zip(cpu, server_cpu(proc.pid), strict=True))
                result["loop_us"] = loop_s / result["count"] * 1e6
                result["cpu_us"] = all_s / result["count"] * 1e6
            finally:
                stop(proc)
            sent, arrivals = result.pop("raw")
            print(
                f"  round {number + 1}, {name}: p50 {result['p50']:.2f} ms,"
                f" p99 {result['p99']:.2f} ms (load {load:.1f}); server CPU per capture"
                f" {result['cpu_us']:.0f} us, its event loop's thread {result['loop_us']:.0f} us"
            )
            if traced is not None:
                for line in tracer.report(json.loads(traced.read_text()), sent, arrivals):
                    print(line)
            rounds[name].append(result)
    medians = {}
    for name, results in rounds.items():
        m = {k: statistics.median(r[k] for r in results) for k in ("p50", "p99", "max")}
        m.update(
            {
                k: statistics.median(r[k] for r in results)
                for k in ("response_p50", "rate", "loop_us", "cpu_us")
            }
        )
        medians[name] = m
        complete = all(r["complete"] and not r["duplicates"] for r in results)
        print(
            f"  {LABELS[name]:28} p50 {m['p50']:6.2f} ms  p99 {m['p99']:6.2f} ms"
            f"  max {m['max']:7.2f} ms  | HTTP answer p50 {m['response_p50']:5.2f} ms"
            f"  | sent {m['rate']:.0f}/s  | CPU/capture {m['cpu_us']:.0f} us"
            f" (event loop {m['loop_us']:.0f})"
        )
        by_round = ", ".join(f"{r['p99']:.1f}" for r in results)
        p50s = ", ".join(f"{r['p50']:.2f}" for r in results)
        loads = ", ".join(f"{r['load']:.1f}" for r in results)
        print(
            f"  {'':28} p99 by round: {by_round} ms; p50 {p50s} ms (load {loads});"
            f" failed {sum(r['failed'] for r in results)}; every client got every event"
            f" exactly once: {complete}"
        )
    ratio = medians["inspector"]["p99"] / medians["bare"]["p99"]
    print(f"  ratio p99 inspector / bare: {ratio:.2f}x   (issue 16 target: inspector p99 <= 5 ms)")
    if "baseline" in medians:
        print(
            "  ratio inspector / baseline: p50"
            f" {medians['inspector']['p50'] / medians['baseline']['p50']:.2f}x,"
            f" p99 {medians['inspector']['p99'] / medians['baseline']['p99']:.2f}x"
        )


# -- part 2: the page with many stored requests -----------------------------------------------


def fill_store(path: Path, rows: int) -> None:
    store = Store(path, retention=10**9, synchronous="OFF").open()
    kinds = [
        (
            "message.received",
            {
                "channelId": "C1234567890",
                "sender": {"userId": "U1", "displayName": "王小明"},
                "type": "text",
            },
        ),
        (
            "member.joined",
            {"channelId": "C1234567890", "member": {"userId": "U2", "displayName": "李小華"}},
        ),
        (
            "file.uploaded",
            {
                "channelId": "C1234567890",
                "sender": {"userId": "U1", "displayName": "王小明"},
                "fileType": "image",
                "fileSize": 102400,
            },
        ),
    ]

    def record(i: int) -> CapturedRequest:
        event, data = kinds[i % len(kinds)]
        payload = {
            "event": event,
            "timestamp": f"2025-01-15T08:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "data": {**data, "messageId": f"msg_{i}", "content": f"message number {i}"},
        }
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = [
            ("host", "127.0.0.1"),
            ("content-type", "application/json"),
            ("user-agent", "bench"),
        ]
        key, event_type = timeline.event_identity(headers, body)
        return CapturedRequest(
            endpoint=f"endpoint-{i % 5}",
            method="POST",
            path=f"/h/endpoint-{i % 5}",
            query="",
            headers=headers,
            body=body,
            client="127.0.0.1:1",
            received_at="2026-11-28T00:00:00.000000Z",
            received_ts=0.0,
            size=len(body),
            content_type="application/json",
            event_key=key,
            event_type=event_type,
        )

    def answer(attempt: int) -> ResponseRecord:
        return ResponseRecord(200, [("content-type", "text/plain")], b"OK", ms=1.0)

    def insert_many(conn: Any, batch: list[CapturedRequest]) -> requests.Changed:
        for rec in batch:
            intake.insert_request(conn, rec, answer)
        return requests.Changed(0, rows_added=len(batch))

    for start in range(0, rows, 10_000):
        store.write_sync(insert_many, [record(i) for i in range(start, min(rows, start + 10_000))])
    store.close()


def timings(client: httpx.Client, path: str, n: int) -> tuple[list[float], bytes]:
    body = client.get(path).content  # warm-up
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:200]
    return out, body


def part_page(args: argparse.Namespace, workdir: Path) -> None:
    data_dir = workdir / "page-data"
    data_dir.mkdir()
    started = time.perf_counter()
    fill_store(data_dir / "inspector.db", args.rows)
    print(
        f"\nThe page with {args.rows:,} stored requests"
        f" (filled in {time.perf_counter() - started:.1f} s)"
    )
    port = free_port()
    proc = serve_inspector(data_dir, port)
    paths = {"GET /": "/", "GET /api/requests": "/api/requests"}
    extra = {
        "GET /api/requests?q=…(no match)": "/api/requests?q=no-such-text",
        "GET /api/endpoints": "/api/endpoints",
    }
    inspector: dict[str, list[float]] = {}
    try:
        wait_up(f"http://127.0.0.1:{port}/api/endpoints")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for label, path in paths.items():
                inspector[label], body = timings(client, path, args.samples)
                (workdir / ("page.html" if path == "/" else "list.json")).write_bytes(body)
            for label, path in extra.items():
                inspector[label], _ = timings(client, path, max(5, args.samples // 5))
    finally:
        stop(proc)
    port = free_port()
    proc = serve_bare(workdir, "bare_bytes", BARE_BYTES_APP, port)
    bare: dict[str, list[float]] = {}
    try:
        wait_up(f"http://127.0.0.1:{port}/")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for label, path in paths.items():
                bare[label], _ = timings(client, path, args.samples)
    finally:
        stop(proc)
    for label in paths:
        med, p95 = statistics.median(inspector[label]), percentile(inspector[label], 0.95)
        base = statistics.median(bare[label])
        size = (workdir / ("page.html" if label == "GET /" else "list.json")).stat().st_size
        print(
            f"  {label:34} median {med:6.2f} ms  p95 {p95:6.2f} ms"
            f"   bare, same {size / 1024:.0f} KiB: {base:5.2f} ms"
            f"   ratio {med / base:5.2f}x   (target < 100 ms)"
        )
    for label in extra:
        print(
            f"  {label:34} median {statistics.median(inspector[label]):6.2f} ms   (for information)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-page", action="store_true")
    parser.add_argument("--stack", choices=STACKS, default="fast")
    parser.add_argument(
        "--no-search-index", action="store_true", help="serve the inspector without its index"
    )
    parser.add_argument(
        "--compare-with", type=Path, help="Also the inspector of this checkout (a baseline)."
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="run the inspector under bench/tracer.py and say where each delivery's time went",
    )
    args = parser.parse_args()
    global STACK
    STACK = args.stack
    if args.no_search_index:
        SERVE_ARGS.append("--no-search-index")
    loop, http = STACK_NAMES[STACK]
    print(f"stack: {loop} + {http} (inspector and baseline alike)")
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        workdir = Path(tmp)
        if not args.skip_stream:
            part_stream(args, workdir)
        if not args.skip_page:
            part_page(args, workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
