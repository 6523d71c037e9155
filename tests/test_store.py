"""The store without HTTP: group commit, retention, persistence, failure to commit."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from inspector.capture import CapturedRequest, ResponseRecord
from inspector.errors import SchemaTooNew, StoreUnavailable
from inspector.store import Connection, Store, requests
from inspector.store.schema import POSTGRESQL, SQLITE

pytestmark = pytest.mark.backends


def record(endpoint: str = "e", body: bytes = b"x", key: str | None = None) -> CapturedRequest:
    return CapturedRequest(
        endpoint=endpoint,
        method="POST",
        path=f"/h/{endpoint}",
        query="",
        headers=[("content-type", "text/plain"), ("x-dup", "1"), ("x-dup", "2")],
        body=body,
        client="127.0.0.1:1",
        received_at="2026-11-28T00:00:00.000000Z",
        received_ts=0.0,
        size=len(body),
        content_type="text/plain",
        event_key=key,
    )


def ok(attempt: int) -> ResponseRecord:
    return ResponseRecord(200, [("content-type", "text/plain")], b"OK")


def test_concurrent_writes_are_grouped_and_all_committed(store_location: Path | str) -> None:
    batches = []
    store = Store(store_location, after_batch=[lambda conn, added: batches.append(added)]).open()
    store.start()

    async def main() -> list[int]:
        results = await asyncio.gather(
            *(
                store.write(requests.insert_request, record(body=str(i).encode()), ok)
                for i in range(300)
            )
        )
        return [r.id for r in results]

    ids = asyncio.run(main())
    store.close()
    assert sorted(ids) == list(range(1, 301))
    assert sum(batches) == 300
    assert len(batches) < 300, "writes were not grouped into shared commits"
    reopened = Store(store_location).open()
    items, _ = reopened.read_sync(requests.list_requests, requests.RequestFilter(), 1000, None)
    assert len(items) == 300
    assert reopened.read_sync(requests.get_body, 42) == b"41"
    reopened.close()


def test_retention_keeps_newest(store_location: Path | str) -> None:
    store = Store(store_location, retention=5).open()
    for i in range(12):
        store.write_sync(requests.insert_request, record(body=bytes([i])), ok)
    items, _ = store.read_sync(requests.list_requests, requests.RequestFilter(), 100, None)
    assert [it["id"] for it in items] == [12, 11, 10, 9, 8]
    # Bodies of evicted requests go with them.
    count = store.read_sync(lambda c: c.execute("SELECT count(*) FROM bodies").fetchone()[0])
    assert count == 5
    store.close()


def test_attempts_count_per_endpoint_and_event_key(store_location: Path | str) -> None:
    store = Store(store_location).open()
    seen = []
    for endpoint, key in [("a", "k1"), ("a", "k1"), ("a", "k2"), ("b", "k1"), ("a", "k1")]:
        ins = store.write_sync(requests.insert_request, record(endpoint, key=key), ok)
        seen.append((ins.attempt, ins.first_attempt_id))
    assert seen == [(1, 1), (2, 1), (1, 3), (1, 4), (3, 1)]
    store.close()


def test_locked_store_fails_the_write_instead_of_pretending(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = Store(path, busy_timeout=0.2).open()
    store.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")

    async def main() -> None:
        await store.write(requests.insert_request, record(), ok)

    with pytest.raises(StoreUnavailable):
        asyncio.run(main())
    blocker.execute("ROLLBACK")
    blocker.close()
    asyncio.run(main())  # and recovers once the lock is gone
    store.close()


def test_a_failing_job_does_not_sink_its_batch(store_location: Path | str) -> None:
    store = Store(store_location).open()
    store.start()

    def broken(conn: Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    async def main() -> list[object]:
        return await asyncio.gather(
            store.write(requests.insert_request, record(), ok),
            store.write(broken),
            store.write(requests.insert_request, record(), ok),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert isinstance(results[1], Exception)
    first, last = results[0].id, results[2].id  # type: ignore[union-attr]
    # A rolled-back batch may have used ids on PostgreSQL (sequences do not roll back).
    assert first < last
    items, _ = store.read_sync(requests.list_requests, requests.RequestFilter(), 10, None)
    assert [it["id"] for it in items] == [last, first]
    store.close()


def test_migrations_are_idempotent_and_a_newer_schema_is_refused(
    store_location: Path | str,
) -> None:
    Store(store_location).open().close()
    store = Store(store_location).open()
    if store.shared:
        get = "SELECT version FROM schema_version"
        newer = f"UPDATE schema_version SET version = {len(POSTGRESQL) + 1}"
    else:
        get = "PRAGMA user_version"
        newer = f"PRAGMA user_version = {len(SQLITE) + 1}"
    version = store.read_sync(lambda c: c.execute(get).fetchone()[0])
    assert version == len(SQLITE) == len(POSTGRESQL)
    store.write_sync(lambda c: c.execute(newer) and None)
    store.close()
    with pytest.raises(SchemaTooNew) as caught:
        Store(store_location).open()
    assert "newer than this webhook-inspector knows" in str(caught.value)


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite").open()
    journal = store.read_sync(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    assert journal == "wal"
    store.close()


def test_notices_travel_in_chunks_under_the_notify_limit() -> None:
    from inspector.store.postgres import PAYLOAD_LIMIT, payloads

    notices = [("request", n) for n in range(10**6, 10**6 + 3000)]
    chunks = list(payloads(notices))
    assert len(chunks) > 1
    assert all(len(c.encode()) < PAYLOAD_LIMIT < 8000 for c in chunks)
    decoded = [tuple(entry) for chunk in chunks for entry in json.loads(chunk)]
    assert decoded == notices
