"""A million stored captures: reads, search, eviction under load, memory and disk.

    .venv/bin/python bench/million.py [--rows 1000000] [--samples 30] [--load-seconds 20]
                                      [--keep DIR] [--skip-sizes] [--skip-reads]
                                      [--rate 400] [--rounds 3]
                                      [--skip-eviction] [--database URL [--schema NAME]]

``--database URL`` runs it all on PostgreSQL instead: the store in a schema of its own
(``--schema``: kept, and reused when it is filled already; else a new one, dropped at the end),
the sizes from ``pg_total_relation_size`` (the trigram indexes on their own). Eviction then runs
on the filled schema itself (no snapshot to go back to: it runs last). The store's job fills
~300 captures/s there (a round trip or two per capture, GIN upkeep): ``--seed-rows`` (10,000)
go through it, and the rest are those rows copied in SQL, ``--seed-rows`` per transaction, with
their message ids, event keys and times moved on (the trigram indexes dropped meanwhile and
built again at the end, as a GIN index builds far faster than it takes a million inserts).

1. **Fill** a store with ``--rows`` captures through the store's own job
   (``intake.insert_request``), 10,000 per transaction — minutes, not the hours HTTP would
   take — then its search index file, as a server's indexer fills it (timed: what an upgraded
   store's indexer does in the background). Three kinds of event, unique message ids, five
   endpoints. ``--keep DIR`` reuses (or keeps) the filled store: a store of an earlier shape
   (its index in the database) loses that index, and gets its file.
2. **Size**: bytes per capture on disk, and what the search index's file adds (the database
   copied and vacuumed: the pages an earlier index left free do not count).
3. **Reads** against ``serve --retention <rows>`` (fast stack), each timed sequentially over one
   keep-alive connection, median of ``--samples``: the page's first render, ``/api/requests``
   (first page, a deep ``before=`` page), a capture's detail, ``/api/endpoints``, the events
   timeline, and search (a common term, a rare one, one that matches nothing, a two-letter
   term that has to be scanned). Baseline: a bare Starlette endpoint answering the same bytes.
4. **Eviction**: captures at a fixed ``--rate`` (below saturation: a server at full speed
   queues, and its latency measures the queue) for ``--load-seconds`` against the same store,
   ``--rounds`` interleaved rounds of each kind, the order alternating: with ``--retention`` =
   the rows stored (every capture evicts the oldest) and with room to spare (no eviction).
   Capture latency (from when each capture was due to its answer) p50/p99 per round, the
   medians, and their ratio. The server's RSS is sampled all along.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
from harness import (
    ROOT,
    free_port,
    load_average,
    median,
    percentile,
    read_answer,
    rss_mb,
    start_bare,
    start_inspector,
    stop,
    wait_up,
)

sys.path.insert(0, str(ROOT))

from inspector import timeline
from inspector.capture import CapturedRequest, ResponseRecord
from inspector.store import Store, indexer, intake, requests, search

KINDS = [
    ("message.received", {"channelId": "C1234567890", "type": "text", "content": "大家早安!"}),
    ("member.joined", {"channelId": "C1234567890", "member": {"displayName": "李小華"}}),
    ("file.uploaded", {"channelId": "C1234567890", "fileType": "image", "fileSize": 102400}),
]
HEADERS = [
    ("host", "127.0.0.1:8765"),
    ("content-type", "application/json"),
    ("user-agent", "platform-webhooks/1.0"),
    ("x-webhook-signature", "sha256=" + "0" * 64),
]
BARE_BYTES_APP = """
import pathlib
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

here = pathlib.Path(__file__).parent

async def answer(request):
    name = request.query_params["f"]
    kind = "text/html; charset=utf-8" if name.endswith(".html") else "application/json"
    return Response((here / "answers" / name).read_bytes(), media_type=kind)

app = Starlette(routes=[Route("/answer", answer)])
"""


def record(i: int) -> CapturedRequest:
    event, data = KINDS[i % len(KINDS)]
    payload = {
        "event": event,
        "timestamp": f"2025-01-15T08:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "data": {**data, "messageId": f"msg_{i:07d}", "sender": {"userId": f"U{i % 977}"}},
    }
    body = json.dumps(payload, ensure_ascii=False).encode()
    key, event_type = timeline.event_identity(HEADERS, body)
    endpoint = f"endpoint-{i % 5}"
    return CapturedRequest(
        endpoint=endpoint,
        method="POST",
        path=f"/h/{endpoint}",
        query="",
        headers=HEADERS,
        body=body,
        client="127.0.0.1:50000",
        received_at="2026-11-28T00:00:00.000000Z",
        received_ts=1764288000.0 + i / 1000,
        size=len(body),
        content_type="application/json",
        event_key=key,
        event_type=event_type,
    )


def answer(attempt: int) -> ResponseRecord:
    return ResponseRecord(200, [("content-type", "text/plain; charset=utf-8")], b"OK", ms=0.3)


def insert_many(conn: sqlite3.Connection, batch: list[CapturedRequest]) -> requests.Changed:
    for rec in batch:
        intake.insert_request(conn, rec, answer)
    return requests.Changed(0, rows_added=len(batch))


def fill(location: Path | str, rows: int) -> None:
    store = Store(location, retention=10**9, synchronous="OFF").open()
    started = time.perf_counter()
    for start in range(0, rows, 10_000):
        store.write_sync(insert_many, [record(i) for i in range(start, min(rows, start + 10_000))])
        if start % 100_000 == 0:
            print(f"  {start:>9,} rows, {time.perf_counter() - started:5.0f} s", flush=True)
    store.close()
    if isinstance(location, Path):
        checkpoint(location)


def build_index(db: Path) -> None:
    """Drop an index of the earlier shape (opening the store does) and fill the index file
    to the last row, as a server's indexer does, in this process."""
    started = time.perf_counter()
    store = Store(db).open()
    store.close()
    path = search.index_path(db)
    conn = indexer.connect(path, db)
    indexed = 0
    try:
        while True:
            done, filled = indexer.index_step(conn)
            for number in filled:
                indexer.optimize(conn, number)
            indexed += done
            if done < indexer.CHUNK:
                break
        indexer.drop_dead(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        upto = search.indexed_upto(conn, "main")
    finally:
        conn.close()
    if indexed:
        print(
            f"  search index: {indexed:,} rows indexed in {time.perf_counter() - started:.0f} s"
            f" (up to id {upto:,})",
            flush=True,
        )


def checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def sizes(path: Path, rows: int, workdir: Path) -> None:
    index = search.index_path(path).stat().st_size
    copy = workdir / "no-index.db"
    shutil.copy(path, copy)
    conn = sqlite3.connect(copy)
    conn.execute("VACUUM")
    conn.close()
    bare = copy.stat().st_size
    total = bare + index
    copy.unlink()
    print(
        f"\nStore size with {rows:,} captures: {total / 2**20:,.0f} MiB, {total / rows:,.0f} bytes"
        f" per capture; without the search index {bare / rows:,.0f} bytes per capture"
        f" (the index adds {(total - bare) / rows:,.0f}, {(total - bare) / bare:.0%})"
    )


def pg_copy(url: str, seed: int, rows: int) -> None:
    """Rows ``seed+1..rows``: copies of rows 1..seed (see the module's docstring)."""
    msg = "'msg_' || lpad(({id} - 1 + {shift})::text, 7, '0')"
    with psycopg.connect(url, autocommit=True) as conn:
        head = conn.execute("SELECT max(id) FROM requests").fetchone()[0]
        assert head == seed, (head, seed)
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = 'requests' AND column_name <> 'id'"
                " ORDER BY ordinal_position"
            )
        ]
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                " AND indexname IN ('requests_search', 'bodies_search')"
            )
        ]
        conn.execute("DROP INDEX IF EXISTS requests_search, bodies_search")
        started = time.perf_counter()
        for shift in range(seed, rows, seed):
            key = msg.format(id="id", shift=shift)
            moved = {
                "event_key": f"regexp_replace(event_key, 'msg_[0-9]+', {key})",
                "received_ts": f"received_ts + {shift / 1000}",
            }
            body = msg.format(id="request_id", shift=shift)
            event = msg.format(id="last_id", shift=shift)
            with conn.transaction():
                conn.execute(
                    f"INSERT INTO requests ({', '.join(columns)})"
                    f" SELECT {', '.join(moved.get(c, c) for c in columns)} FROM requests"
                    f" WHERE id <= {seed} ORDER BY id".encode()
                )
                conn.execute(
                    "INSERT INTO bodies (request_id, body)"
                    f" SELECT request_id + {shift}, convert_to(regexp_replace("
                    f"convert_from(body, 'UTF8'), 'msg_[0-9]+', {body}), 'UTF8')"
                    f" FROM bodies WHERE request_id <= {seed}".encode()
                )
                conn.execute(
                    "INSERT INTO events (endpoint, event_key, attempts, first_id, last_id)"
                    f" SELECT endpoint, regexp_replace(event_key, 'msg_[0-9]+', {event}),"
                    f" attempts, first_id + {shift}, last_id + {shift}"
                    f" FROM events WHERE last_id <= {seed}".encode()
                )
                conn.execute(
                    f"UPDATE counters SET value = value + {seed} WHERE name = 'requests'".encode()
                )
            if (shift // seed) % 10 == 0:
                print(f"  {shift:>9,} rows, {time.perf_counter() - started:5.0f} s", flush=True)
        head = conn.execute("SELECT max(id) FROM requests").fetchone()[0]
        assert head == rows, (head, rows)
        for index in indexes:
            conn.execute(index.encode())
        print(f"  copied and indexed in {time.perf_counter() - started:.0f} s", flush=True)


def pg_sizes(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        total = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
        ).fetchone()[0]
        index = conn.execute(
            "SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema()"
            " AND c.relname IN ('requests_search', 'bodies_search')"
        ).fetchone()[0]
    total, index = int(total), int(index)
    print(
        f"\nStore size with {rows:,} captures (PostgreSQL, tables with their indexes and TOAST):"
        f" {total / 2**20:,.0f} MiB, {total / rows:,.0f} bytes per capture; the trigram"
        f" indexes add {index / rows:,.0f} ({index / (total - index):.0%})"
    )


def timed(client: httpx.Client, path: str, samples: int) -> tuple[list[float], bytes]:
    body = client.get(path).content  # warm-up, and the bytes the baseline answers
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.text[:300])
    return out, body


def reads(args: argparse.Namespace, data_dir: Path, workdir: Path) -> None:
    rows = args.rows
    port = free_port()
    proc = start_inspector(
        workdir, data_dir, port, "fast", "--retention", str(rows), *database_args(args)
    )
    deep = rows // 2
    paths = {
        "page GET /": "/",
        "GET /api/requests": "/api/requests",
        f"GET /api/requests?before={deep:,}": f"/api/requests?before={deep}",
        "GET /api/requests?before=1,000": "/api/requests?before=1000",
        "GET /api/requests/{id} (detail)": f"/api/requests/{deep}",
        "GET /api/endpoints": "/api/endpoints",
        "GET /api/events (timeline)": "/api/events?endpoint=endpoint-3",
        "search: common (q=member)": "/api/requests?q=member",
        "search: rare (q=msg_0123457)": "/api/requests?q=msg_0123457",
        "search: nothing (q=no-such-text)": "/api/requests?q=no-such-text",
        "search: old, deep (q=msg_0000042)": "/api/requests?q=msg_0000042",
        "search: 2 letters, scanned (q=zq)": "/api/requests?q=zq",
    }
    if args.database:
        # No trigram under three letters: every body is scanned, and PostgreSQL's
        # case-folding test per body took over 120 s for 1,000,000 on the loaded machine.
        del paths["search: 2 letters, scanned (q=zq)"]
    results: dict[str, list[float]] = {}
    answers = workdir / "answers"
    answers.mkdir(exist_ok=True)
    rss: list[float] = []
    try:
        wait_up(f"http://127.0.0.1:{port}/api/endpoints", limit=120)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for number, (label, path) in enumerate(paths.items()):
                samples = args.samples if "2 letters" not in label else 3
                results[label], body = timed(client, path, samples)
                (answers / f"{number}.{'html' if path == '/' else 'json'}").write_bytes(body)
                rss.append(rss_mb(proc.pid))
    finally:
        stop(proc)
    port = free_port()
    bare = start_bare(workdir, "bare_bytes", BARE_BYTES_APP, port, "fast")
    base: dict[str, list[float]] = {}
    try:
        wait_up(f"http://127.0.0.1:{port}/answer?f=0.html")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for number, (label, path) in enumerate(paths.items()):
                name = f"{number}.{'html' if path == '/' else 'json'}"
                base[label], _ = timed(client, f"/answer?f={name}", args.samples)
    finally:
        stop(bare)
    engine = "PostgreSQL" if args.database else "SQLite"
    print(
        f"\nReads with {rows:,} stored ({engine}, fast stack; median of {args.samples},"
        " sequential):"
    )
    for number, label in enumerate(paths):
        med, p95 = median(results[label]), percentile(results[label], 0.95)
        size = (answers / f"{number}.{'html' if paths[label] == '/' else 'json'}").stat().st_size
        print(
            f"  {label:40} median {med:7.2f} ms  p95 {p95:7.2f} ms"
            f"   bare, same {size / 1024:4.0f} KiB: {median(base[label]):5.2f} ms"
        )
    print(f"  server RSS after these reads and searches: {max(rss):.0f} MiB (max sampled)")


async def paced(port: int, rate: float, seconds: float) -> dict[str, float]:
    """POST captures at a fixed ``rate`` for ``seconds`` over 32 keep-alive connections; the
    latency of each is from when it was due to when its answer was read (a stall delays the
    captures due during it, and they count: no coordinated omission)."""
    count = int(rate * seconds)
    body = json.dumps({"event": "message.received", "data": {"messageId": "m"}}).encode()
    request = (
        b"POST /h/load HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    failed = 0

    async def one(due: float) -> None:
        nonlocal failed
        reader, writer = await pool.get()
        writer.write(request)
        status = await read_answer(reader)
        latencies.append((time.perf_counter() - due) * 1000)
        failed += status != b"200"
        pool.put_nowait((reader, writer))

    tasks = []
    started = time.perf_counter()
    for seq in range(count):
        due = started + seq / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {
        "rate": count / elapsed,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "failed": failed,
    }


def stored_rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
    finally:
        conn.close()


def count_stored(args: argparse.Namespace, data_dir: Path) -> int:
    if args.database:
        return pg_rows(args.store_url)
    return stored_rows(data_dir / "inspector.db")


def eviction_round(
    args: argparse.Namespace, data_dir: Path, workdir: Path, evicting: bool
) -> dict[str, float]:
    """One round at ``--rate``: with ``--retention`` = the rows stored now (every capture
    evicts the oldest), or with room to spare."""
    rows = count_stored(args, data_dir)
    retention = rows if evicting else rows * 2
    port = free_port()
    proc = start_inspector(
        workdir, data_dir, port, "fast", "--retention", str(retention), *database_args(args)
    )
    rss: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            rss.append(rss_mb(proc.pid))

    try:
        wait_up(f"http://127.0.0.1:{port}/api/endpoints", limit=120)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load = load_average()
        result = asyncio.run(paced(port, args.rate, args.load_seconds))
        done.set()
        sampler.join()
    finally:
        stop(proc)
    after = count_stored(args, data_dir)
    assert not evicting or after <= rows, (rows, after)
    return {**result, "load": load, "rss": max(rss, default=0.0), "stored": after}


def eviction(args: argparse.Namespace, data_dir: Path, workdir: Path) -> None:
    print(
        f"\nCaptures at a fixed {args.rate:g}/s for {args.load_seconds} s, ~{args.rows:,} stored,"
        f" {args.rounds} interleaved rounds (the order alternates), latency from when each"
        " capture was due to its answer:"
    )
    results: dict[str, list[dict[str, float]]] = {"evicting": [], "no eviction": []}
    for number in range(args.rounds):
        order = [True, False] if number % 2 == 0 else [False, True]
        for evicting in order:
            r = eviction_round(args, data_dir, workdir, evicting)
            label = "evicting" if evicting else "no eviction"
            results[label].append(r)
            print(
                f"  round {number + 1} {label:12} {r['rate']:5.0f}/s  p50 {r['p50']:6.2f} ms"
                f"  p99 {r['p99']:7.2f} ms  max {r['max']:7.1f} ms  failed {r['failed']:.0f}"
                f"  load {r['load']:.1f}  RSS {r['rss']:.0f} MiB  (stored: {r['stored']:,.0f})",
                flush=True,
            )
    medians = {
        k: {m: median([r[m] for r in v]) for m in ("p50", "p99")} for k, v in results.items()
    }
    for label, m in medians.items():
        print(f"  median {label:12} p50 {m['p50']:6.2f} ms  p99 {m['p99']:7.2f} ms")
    ratio = medians["evicting"]["p99"] / medians["no eviction"]["p99"]
    print(f"  ratio p99 evicting / not: {ratio:.2f}x   (issue 16 target: within 2x)")


def database_args(args: argparse.Namespace) -> list[str]:
    return ["--database", args.store_url] if args.database else []


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def pg_rows(url: str) -> int:
    """Requests stored in the schema of ``url`` (0 when it holds no store yet)."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return int(
                conn.execute("SELECT value FROM counters WHERE name = 'requests'").fetchone()[0]
            )
        except psycopg.errors.UndefinedTable:
            return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--load-seconds", type=int, default=20)
    parser.add_argument("--rate", type=float, default=400, help="Captures/s (eviction).")
    parser.add_argument("--rounds", type=int, default=3, help="Eviction rounds of each kind.")
    parser.add_argument("--keep", type=Path, help="Keep (or reuse) the filled store here.")
    parser.add_argument("--skip-sizes", action="store_true", help="No copy, no VACUUM.")
    parser.add_argument("--skip-reads", action="store_true")
    parser.add_argument("--skip-eviction", action="store_true")
    parser.add_argument("--database", help="A PostgreSQL URL: the store in a schema there.")
    parser.add_argument("--schema", help="With --database: this schema, kept (and reused).")
    parser.add_argument("--seed-rows", type=int, default=10_000, help="With --database.")
    args = parser.parse_args()
    if args.database:
        return main_postgres(args)
    workdir = Path(tempfile.mkdtemp(prefix="bench-million-"))
    data_dir = args.keep or workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    db = data_dir / "inspector.db"
    print(f"load average at start: {load_average():.1f}")
    try:
        if not db.exists():
            started = time.perf_counter()
            print(f"Filling {args.rows:,} captures (with the search index):", flush=True)
            fill(db, args.rows)
            print(f"  filled in {time.perf_counter() - started:.0f} s")
        build_index(db)
        if not args.skip_sizes:
            sizes(db, args.rows, workdir)
        snapshot = workdir / "snapshot.db"
        shutil.copy(db, snapshot)  # reads and eviction each start from the same store
        index_snapshot = workdir / "snapshot.search.db"
        shutil.copy(search.index_path(db), index_snapshot)
        if not args.skip_reads:
            reads(args, data_dir, workdir)
        if not args.skip_eviction:
            eviction(args, data_dir, workdir)
        shutil.copy(snapshot, db)
        shutil.copy(index_snapshot, search.index_path(db))
        for extra in ("inspector.db-wal", "inspector.db-shm"):
            (data_dir / extra).unlink(missing_ok=True)
            (data_dir / extra.replace(".db", ".search.db")).unlink(missing_ok=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average at the end: {load_average():.1f}")
    return 0


def main_postgres(args: argparse.Namespace) -> int:
    schema = args.schema or f"million_{secrets.token_hex(4)}"
    with psycopg.connect(args.database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}".encode())
    args.store_url = with_schema(args.database, schema)
    workdir = Path(tempfile.mkdtemp(prefix="bench-million-"))
    data_dir = workdir / "data"  # the server's own files (TLS, lock); the store is in PostgreSQL
    data_dir.mkdir()
    print(f"load average at start: {load_average():.1f}")
    try:
        stored = pg_rows(args.store_url)
        if stored < args.rows:
            if stored:
                raise SystemExit(f"schema {schema} holds {stored:,} captures, not {args.rows:,}")
            started = time.perf_counter()
            print(f"Filling {args.rows:,} captures into PostgreSQL ({schema}):", flush=True)
            seed = min(args.seed_rows, args.rows)
            assert args.rows % seed == 0, "--rows: a multiple of --seed-rows"
            fill(args.store_url, seed)
            if args.rows > seed:
                pg_copy(args.store_url, seed, args.rows)
            with psycopg.connect(args.store_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")  # as autovacuum would have, by the time 1M are in
            print(f"  filled in {time.perf_counter() - started:.0f} s")
        if not args.skip_sizes:
            pg_sizes(args.store_url, args.rows)
        if not args.skip_reads:
            reads(args, data_dir, workdir)
        if not args.skip_eviction:
            eviction(args, data_dir, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.schema:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(args.database, autocommit=True) as conn,
            ):
                conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())
    print(f"load average at the end: {load_average():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
