"""What PostgreSQL's trigram index of bodies costs a capture, by how much of each body it holds.

    .venv/bin/python bench/pgbodies.py --database URL [--rounds 3] [--samples 5]

A capture's body is trigram-indexed (pg_trgm, GIN) inside the capture's own transaction. This
times ``Store.write_sync(intake.insert_request)`` (begin, insert, GIN upkeep, commit) for
bodies of 1 KiB (JSON), 64 KiB (JSON), 1 MiB and 5 MiB (random bytes), with the body index on
the whole body (schema version 8's), on its first 16, 64 (version 9's) or 256 KiB, and
without a body index at all (the baseline, in the same rounds). Each variant has a schema of
its own (dropped at the end); rounds interleave the variants. Prints the median per body size
and variant, and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sys
import time
from collections.abc import Callable

import psycopg
from harness import ROOT, load_average, median

sys.path.insert(0, str(ROOT))

from inspector.capture import CapturedRequest, ResponseRecord
from inspector.store import Store, intake
from inspector.store.backend import Connection

VARIANTS: dict[str, str | None] = {
    "no body index": None,
    "whole body": "body",
    "256 KiB": "substring(body FROM 1 FOR 262144)",
    "64 KiB": "substring(body FROM 1 FOR 65536)",
    "16 KiB": "substring(body FROM 1 FOR 16384)",
}


def json_body(size: int) -> bytes:
    rng = random.Random(size)
    items = []
    while sum(len(i) for i in items) < size:
        items.append(json.dumps({"id": f"msg_{rng.randrange(10**7):07d}", "text": "hello"}))
    return ("[" + ",".join(items) + "]").encode()[:size]


BODIES: dict[str, bytes] = {
    "1 KiB JSON": json_body(1024),
    "64 KiB JSON": json_body(65536),
    "1 MiB binary": random.Random(1).randbytes(2**20),
    "5 MiB binary": random.Random(5).randbytes(5 * 2**20),
}


def capture(body: bytes) -> CapturedRequest:
    return CapturedRequest(
        endpoint="bench",
        method="POST",
        path="/h/bench",
        query="",
        headers=[("content-type", "application/octet-stream")],
        body=body,
        client="127.0.0.1:1",
        received_at="2026-11-29T00:00:00.000000Z",
        received_ts=0.0,
        size=len(body),
        content_type="application/octet-stream",
    )


def ok(attempt: int) -> ResponseRecord:
    return ResponseRecord(200, [], b"OK")


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def reshape(expression: str | None) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        conn.execute("DROP INDEX IF EXISTS bodies_search")
        if expression is not None:
            conn.execute(
                "CREATE INDEX bodies_search ON bodies USING gin"
                f" ((lower(encode({expression}, 'escape') COLLATE \"C\")) public.gin_trgm_ops)"
            )

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="A PostgreSQL URL.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=5, help="Captures per size and round.")
    args = parser.parse_args()
    schemas = {name: f"bodies_{secrets.token_hex(4)}" for name in VARIANTS}
    stores: dict[str, Store] = {}
    times: dict[tuple[str, str], list[float]] = {}
    print(f"load average at start: {load_average():.1f}")
    try:
        with psycopg.connect(args.database, autocommit=True) as conn:
            for schema in schemas.values():
                conn.execute(f"CREATE SCHEMA {schema}".encode())
        for name, expression in VARIANTS.items():
            stores[name] = Store(with_schema(args.database, schemas[name])).open()
            stores[name].write_sync(reshape(expression))
        for _ in range(args.rounds):
            for size, body in BODIES.items():
                for name, store in stores.items():
                    for _ in range(args.samples):
                        started = time.perf_counter()
                        store.write_sync(intake.insert_request, capture(body), ok)
                        elapsed = (time.perf_counter() - started) * 1000
                        times.setdefault((size, name), []).append(elapsed)
    finally:
        for store in stores.values():
            store.close()
        with psycopg.connect(args.database, autocommit=True) as conn:
            for schema in schemas.values():
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())
    print(
        f"\nOne capture stored (insert + commit, ms; median of {args.rounds} x {args.samples}),"
        " by how much of each body the trigram index holds; ratio to no body index:"
    )
    print(f"  {'body':14}" + "".join(f"{name:>22}" for name in VARIANTS))
    for size in BODIES:
        base = median(times[(size, "no body index")])
        cells = []
        for name in VARIANTS:
            med = median(times[(size, name)])
            cells.append(f"{med:9.1f} ms ({med / base:5.2f}x)")
        print(f"  {size:14}" + "".join(f"{cell:>22}" for cell in cells))
    print(f"load average at the end: {load_average():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
