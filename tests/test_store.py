"""The store without HTTP: group commit, retention, persistence, failure to commit."""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from inspector.capture import CapturedRequest, ResponseRecord
from inspector.errors import SchemaTooNew, StoreUnavailable
from inspector.store import (
    Connection,
    Store,
    attempts,
    checkpointer,
    core,
    deliveries,
    endpoints,
    intake,
    leases,
    listing,
    multirow,
    requests,
    syncer,
)
from inspector.store import sqlite as sqlite_backend
from inspector.store.schema import POSTGRESQL, SQLITE
from tests.conftest import captured_request, new_delivery, ok

pytestmark = pytest.mark.backends


def test_concurrent_writes_are_grouped_and_all_committed(store_location: Path | str) -> None:
    batches = []
    store = Store(store_location, after_batch=[lambda conn, added: batches.append(added)]).open()
    store.start()

    async def main() -> list[int]:
        results = await asyncio.gather(
            *(
                store.write(intake.insert_request, captured_request(body=str(i).encode()), ok)
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
    items, _ = reopened.read_sync(listing.list_requests, listing.RequestFilter(), 1000, None)
    assert len(items) == 300
    assert reopened.read_sync(requests.get_body, 42) == b"41"
    reopened.close()


def test_retention_keeps_newest(store_location: Path | str) -> None:
    store = Store(store_location, retention=5).open()
    for i in range(12):
        store.write_sync(intake.insert_request, captured_request(body=bytes([i])), ok)
    items, _ = store.read_sync(listing.list_requests, listing.RequestFilter(), 100, None)
    assert [it["id"] for it in items] == [12, 11, 10, 9, 8]
    # Bodies of evicted requests go with them.
    count = store.read_sync(lambda c: c.execute("SELECT count(*) FROM bodies").fetchone()[0])
    assert count == 5
    store.close()


def test_a_server_evicts_ahead_in_chunks_when_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing queued the writer evicts the oldest ahead of need, a chunk per transaction,
    down to retention - retention / AHEAD_PER: the newest kept, their bodies with them, never
    more than the retention."""
    monkeypatch.setattr(core, "AHEAD_PER", 10)
    monkeypatch.setattr(core, "EVICT_CHUNK", 4)
    store = Store(tmp_path / "db.sqlite", retention=100).open()
    store.start()
    counts: list[int] = []

    async def main() -> None:
        for start in range(0, 150, 10):
            await asyncio.gather(
                *(
                    store.write(intake.insert_request, captured_request(body=b"%d" % i), ok)
                    for i in range(start, start + 10)
                )
            )
            counts.append(await store.read(requests.count_rows))
        for _ in range(500):  # until the writer, idle, has evicted ahead
            if await store.read(requests.count_rows) <= 92:
                return
            await asyncio.sleep(0.01)

    asyncio.run(main())
    items, _ = store.read_sync(listing.list_requests, listing.RequestFilter(), 200, None)
    bodies = store.read_sync(lambda c: c.execute("SELECT count(*) FROM bodies").fetchone()[0])
    store.close()
    assert max(counts) <= 100
    # 100 - 100 / 10 = 90 kept at least; chunks of 4 stop within one chunk of it.
    assert 90 <= len(items) <= 92 and bodies == len(items)
    assert [it["id"] for it in items] == list(range(150, 150 - len(items), -1))


def test_a_small_retention_is_kept_exactly_by_a_server(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", retention=50).open()
    store.start()

    async def main() -> None:
        for i in range(80):
            await store.write(intake.insert_request, captured_request(body=b"%d" % i), ok)

    asyncio.run(main())
    count = store.read_sync(requests.count_rows)
    store.close()
    assert count == 50


def test_attempts_count_per_endpoint_and_event_key(store_location: Path | str) -> None:
    store = Store(store_location).open()
    seen = []
    for endpoint, key in [("a", "k1"), ("a", "k1"), ("a", "k2"), ("b", "k1"), ("a", "k1")]:
        ins = store.write_sync(intake.insert_request, captured_request(endpoint, event_key=key), ok)
        seen.append((ins.attempt, ins.first_attempt_id))
    assert seen == [(1, 1), (2, 1), (1, 3), (1, 4), (3, 1)]
    store.close()


def test_a_timeline_page_reads_its_events_requests_only(tmp_path: Path) -> None:
    """A page of 5 events among 3,000 of an endpoint: SQLite's work (virtual machine steps)
    stays far below one step per stored request, whatever plan it picks. Its planner once
    walked the endpoint's every request in id order to read the page's attempts."""
    store = Store(tmp_path / "inspector.db").open()
    rows = [captured_request("e", event_key=f"evt_{n}") for n in range(3_000)]
    store.write_sync(intake.insert_requests, [(rec, ok) for rec in rows])
    steps = 0

    def count(conn: Connection) -> tuple[list, dict, int | None]:
        def step() -> int:
            nonlocal steps
            steps += 100
            return 0

        conn.set_progress_handler(step, 100)  # type: ignore[attr-defined]
        try:
            return attempts.list_events(conn, "e", 5, None)
        finally:
            conn.set_progress_handler(None, 0)  # type: ignore[attr-defined]

    page, tried, _ = store.read_sync(count)
    assert [event["event_key"] for event in page] == [f"evt_{n}" for n in range(2999, 2994, -1)]
    assert all(len(tried[event["event_key"]]) == 1 for event in page)
    assert steps < 3_000, steps
    store.close()


def test_an_events_ids_are_its_requests_ids_after_deletes_at_the_top(
    store_location: Path | str,
) -> None:
    # On SQLite the attempt is counted with the id the request is about to get: ids never
    # come back after the newest requests are deleted, or all of them cleared.
    store = Store(store_location).open()

    def capture(key: str | None) -> intake.Inserted:
        return store.write_sync(intake.insert_request, captured_request(event_key=key), ok)

    first = capture("k")
    newest = capture(None)
    store.write_sync(requests.delete_request, newest.id)
    again = capture("k")
    assert (again.id, again.attempt, again.first_attempt_id) == (newest.id + 1, 2, first.id)
    store.write_sync(requests.delete_request, again.id)
    store.write_sync(requests.clear_endpoint, None)
    fresh = capture("k")
    assert (fresh.id, fresh.attempt, fresh.first_attempt_id) == (again.id + 1, 1, fresh.id)
    other = capture("k2")
    last = capture("k")
    assert (last.id, last.attempt, last.first_attempt_id) == (other.id + 1, 2, fresh.id)
    rows = store.read_sync(
        lambda c: [tuple(r) for r in c.execute(
            "SELECT event_key, attempts, first_id, last_id FROM events ORDER BY event_key"
        )]
    )  # fmt: skip
    assert rows == [("k", 2, fresh.id, last.id), ("k2", 1, other.id, other.id)]
    stored = store.read_sync(requests.get_request, last.id)
    assert stored is not None and stored["first_attempt_id"] == fresh.id
    store.close()


def test_a_batch_of_captures_stores_what_one_by_one_stores(tmp_path: Path) -> None:
    # The writer inserts a batch's captures together (multi-row statements on SQLite): rows,
    # ids, attempts and answers are those of the same captures written one at a time.
    def captures() -> list[CapturedRequest]:
        keys = ["a", None, "a", "b", None, "a"] * 8  # 48: more than one chunk of rows
        return [
            captured_request(
                body=b"" if i % 5 == 0 else str(i).encode(),
                event_key=key,
                client=None if i % 3 == 0 else "127.0.0.1:1",  # rows of several NULL shapes
                note="n" if i % 7 == 0 else None,
            )
            for i, key in enumerate(keys)
        ]

    def by_attempt(attempt: int) -> ResponseRecord:
        return ResponseRecord(200 + attempt, [("x-attempt", str(attempt))], b"A")

    one = Store(tmp_path / "one.db").open()
    singles = [one.write_sync(intake.insert_request, c, by_attempt) for c in captures()]
    together = Store(tmp_path / "together.db").open()
    batch = together.write_sync(intake.insert_requests, [(c, by_attempt) for c in captures()])
    assert [(i.id, i.attempt, i.first_attempt_id, i.response.status) for i in batch] == [
        (i.id, i.attempt, i.first_attempt_id, i.response.status) for i in singles
    ]

    def rows(conn: Connection) -> list[tuple[object, ...]]:
        return [
            tuple(r)
            for sql in (
                "SELECT * FROM requests ORDER BY id",
                "SELECT * FROM bodies ORDER BY request_id",
                "SELECT * FROM events ORDER BY endpoint, event_key",
                "SELECT * FROM endpoint_stats",
            )
            for r in conn.execute(sql)
        ]

    assert together.read_sync(rows) == one.read_sync(rows)
    assert len(together.read_sync(rows)) > 48
    one.close()
    together.close()


def test_locked_store_fails_the_write_instead_of_pretending(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = Store(path, busy_timeout=0.2).open()
    store.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")

    async def main() -> None:
        await store.write(intake.insert_request, captured_request(), ok)

    with pytest.raises(StoreUnavailable):
        asyncio.run(main())
    blocker.execute("ROLLBACK")
    blocker.close()
    asyncio.run(main())  # and recovers once the lock is gone
    store.close()


def test_multi_row_inserts_store_what_bound_parameters_store() -> None:
    # NULLs written as literals and small bytes bound as bytearrays: the same values and
    # types as plain parameters, rows of any shape mixed in one batch, order kept per shape.
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER, a, b, c)")
    conn.execute("CREATE TABLE plain (n INTEGER, a, b, c)")
    big = b"\x00\xff" * multirow.COPY_BELOW
    rows = [
        (i, *values)
        for i, values in enumerate(
            [(None, b"", "x"), (1, None, None), (2.5, b"\x00b", None), (None, None, None),
             ("t", big, b"z"), (None, "s", 3)] * 13  # 78: several chunks per shape
        )
    ]  # fmt: skip
    inserter = multirow.MultiRowInsert("INSERT INTO t (n, a, b, c) VALUES")
    assert inserter.run(conn, rows) == []
    conn.executemany("INSERT INTO plain VALUES (?, ?, ?, ?)", rows)
    typed = "SELECT n, a, typeof(a), b, typeof(b), c, typeof(c) FROM {} ORDER BY n"
    assert (
        conn.execute(typed.format("t")).fetchall() == conn.execute(typed.format("plain")).fetchall()
    )
    returning = multirow.MultiRowInsert("INSERT INTO t (n) VALUES", " RETURNING n")
    assert sorted(r[0] for r in returning.run(conn, [(100 + i,) for i in range(37)])) == list(
        range(100, 137)
    )


def test_a_failing_job_does_not_sink_its_batch(store_location: Path | str) -> None:
    store = Store(store_location).open()
    store.start()

    def broken(conn: Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    async def main() -> list[object]:
        return await asyncio.gather(
            store.write(intake.insert_request, captured_request(), ok),
            store.write(broken),
            store.write(intake.insert_request, captured_request(), ok),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert isinstance(results[1], Exception)
    first, last = results[0].id, results[2].id  # type: ignore[union-attr]
    # A rolled-back batch may have used ids on PostgreSQL (sequences do not roll back).
    assert first < last
    items, _ = store.read_sync(listing.list_requests, listing.RequestFilter(), 10, None)
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


def test_count_requests_counts_exactly_what_the_list_would_show(store: Store) -> None:
    for n in range(30):
        endpoint = "a" if n % 3 else "b"
        request = captured_request(endpoint, f"body {n}".encode())
        store.write_sync(intake.insert_request, request, ok)
    everything = listing.RequestFilter()
    assert store.read_sync(listing.count_requests, everything, 0, None) == 30
    assert store.read_sync(listing.count_requests, everything, 10, None) == 20
    assert store.read_sync(listing.count_requests, everything, 10, 21) == 10
    only_b = listing.RequestFilter(endpoint="b")
    listed, _ = store.read_sync(listing.list_requests, only_b, 1000, None)
    newer = [it for it in listed if it["id"] > 12]
    assert store.read_sync(listing.count_requests, only_b, 12, None) == len(newer) == 6
    search = listing.RequestFilter(q="BODY 2")  # bodies "body 2", "body 20".."body 29"
    assert store.read_sync(listing.count_requests, search, 0, None) == 11
    assert store.read_sync(listing.count_requests, search, 25, None) == 5
    store.write_sync(requests.delete_request, 30)
    assert store.read_sync(listing.count_requests, everything, 25, None) == 4


def test_a_delivery_version_grows_with_every_attempt_and_state(store: Store) -> None:
    def attempt(number: int, status: int) -> deliveries.AttemptRecord:
        return deliveries.AttemptRecord(number, 1.0, status, 1.0, None, [], [], b"", False)

    first = store.write_sync(deliveries.insert_delivery, new_delivery(1, schedule=(1.0, 2.0)))
    seen = [first["version"]]
    for number in (1, 2):
        found = store.write_sync(
            deliveries.record_attempt, first["id"], attempt(number, 500), "pending", 9.0
        )
        assert found is not None
        seen.append(found[0]["version"])
    found = store.write_sync(
        deliveries.record_attempt, first["id"], attempt(3, 200), "succeeded", None
    )
    assert found is not None
    seen.append(found[0]["version"])
    assert seen == sorted(set(seen)), seen  # strictly growing
    store.write_sync(deliveries.set_carrier, first["id"], "cli:x:1")  # final: no change
    assert store.read_sync(deliveries.get_item, first["id"])["version"] == seen[-1]
    second = store.write_sync(deliveries.insert_delivery, new_delivery(2))
    cancelled = store.write_sync(deliveries.cancel_delivery, second["id"], 1.0)
    assert cancelled is not None and cancelled["version"] > second["version"]
    listed, _ = store.read_sync(deliveries.list_deliveries, 10, None)
    assert [d["version"] for d in listed] == [cancelled["version"], seen[-1]]


def test_a_write_is_answered_only_after_its_batch_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer commits and moves on; the answer waits for the syncer's fsync of the WAL,
    while readers (and ``visible``) already see the row."""
    synced: list[Path] = []
    release = threading.Event()
    real_fsync = syncer.fsync

    def slow_fsync(path: Path) -> None:
        if path.name.endswith("-wal"):
            release.wait(10)
            synced.append(path)
        real_fsync(path)

    monkeypatch.setattr(syncer, "fsync", slow_fsync)
    store = Store(tmp_path / "db.sqlite").open()
    store.start()
    announced: list[int] = []

    async def main() -> tuple[int, bool, int]:
        write = asyncio.ensure_future(
            store.write_announced(
                None, lambda r: announced.append(r.id), intake.insert_request,
                captured_request(), ok,
            )
        )  # fmt: skip
        while not announced:  # committed and announced, not yet durable
            await asyncio.sleep(0.01)
        seen = await store.read(listing.count_requests, listing.RequestFilter(), 0, None)
        await asyncio.sleep(0.1)
        answered_early = write.done()
        release.set()
        return seen, answered_early, (await write).id

    seen, answered_early, request_id = asyncio.run(main())
    store.close()
    assert (seen, answered_early, request_id, announced) == (1, False, 1, [1])
    assert synced == [tmp_path / "db.sqlite-wal"]


def test_a_batch_that_cannot_reach_the_disk_is_not_answered_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(path: Path) -> None:
        if path.name.endswith("-wal"):
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(syncer, "fsync", failing_fsync)
    store = Store(tmp_path / "db.sqlite").open()
    store.start()

    async def main() -> BaseException | None:
        try:
            await store.write(intake.insert_request, captured_request(), ok)
        except StoreUnavailable as exc:
            return exc
        return None

    error = asyncio.run(main())
    store.close()
    assert isinstance(error, StoreUnavailable) and "sync to disk" in str(error.detail)


def test_the_cli_store_commits_with_full_sync(tmp_path: Path) -> None:
    """Without a writer (the CLI) there is no syncer: each commit fsyncs itself."""
    store = Store(tmp_path / "db.sqlite").open()
    mode = store.write_sync(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    store.close()
    assert mode == 2  # FULL


def test_a_server_store_checkpoints_off_the_writers_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's commits never checkpoint (no fsyncs of the database inside a COMMIT); the
    checkpointer's thread does, and the WAL does not grow without end: 600 one-capture
    batches write ~7,000 frames (28 MiB), the WAL stays far below that."""
    monkeypatch.setattr(checkpointer, "CAP", 200)
    store = Store(tmp_path / "db.sqlite").open()
    store.start()
    wal = tmp_path / "db.sqlite-wal"

    async def main() -> int:
        auto: int = await store.write(
            lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        for i in range(600):
            await store.write(intake.insert_request, captured_request(body=b"%d" % i), ok)
        return auto

    auto = asyncio.run(main())
    assert store._checkpointer is not None
    passes = store._checkpointer.passes
    size = wal.stat().st_size
    store.close()
    assert auto == 0
    assert passes > 0
    assert size < 8 * 2**20, size
    reopened = Store(tmp_path / "db.sqlite").open()
    assert reopened.read_sync(requests.count_rows) == 600
    reopened.close()


def test_the_writer_finishes_a_checkpoint_and_its_next_batch_restarts_the_wal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (x BLOB)")
    for _ in range(50):
        conn.execute("INSERT INTO t VALUES (zeroblob(3000))")
    frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    ckpt = checkpointer.Checkpointer(lambda: sqlite3.connect(path), every=60)
    ckpt.frames = checkpointer.CAP
    assert ckpt.full
    ckpt.finish(conn)
    conn.execute("INSERT INTO t VALUES (1)")  # begins at the WAL's start
    after = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    ckpt.close()
    conn.close()
    assert not ckpt.full
    assert frames >= 50 and after < 5, (frames, after)


def test_endpoint_counts_stay_exact_through_every_kind_of_write(
    store_location: Path | str,
) -> None:
    """The list of endpoints reads counts kept by triggers: they must equal a count of the
    rows after captures, retention, a delete (of the newest too), a clear and an upgrade."""
    store = Store(store_location, retention=20).open()

    def truth(conn: Connection) -> list[tuple[str, int, int]]:
        return conn.execute(
            "SELECT endpoint, count(*), max(id) FROM requests GROUP BY endpoint ORDER BY 1"
        ).fetchall()

    def listed() -> list[tuple[str, int, int | None]]:
        items = store.read_sync(endpoints.list_endpoints)
        return sorted((e["name"], e["count"], e["last_id"]) for e in items if e["count"])

    for i in range(30):  # 10 evicted by retention
        store.write_sync(intake.insert_request, captured_request(f"ep{i % 3}"), ok)
    assert [tuple(r) for r in store.read_sync(truth)] == listed()
    store.write_sync(requests.delete_request, 30)  # ep2's newest: its last id moves back
    store.write_sync(requests.delete_request, 15)
    assert [tuple(r) for r in store.read_sync(truth)] == listed()
    store.write_sync(requests.clear_endpoint, "ep1")
    assert [tuple(r) for r in store.read_sync(truth)] == listed()
    assert "ep1" not in [name for name, _, _ in listed()]
    store.write_sync(requests.clear_endpoint, None)
    assert listed() == []
    store.close()


def test_a_store_from_before_the_counts_gets_them_on_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = Store(path).open()
    for name in ("a", "a", "b"):
        store.write_sync(intake.insert_request, captured_request(name), ok)
    store.close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TRIGGER requests_counted; DROP TRIGGER requests_uncounted;"
        " DROP TABLE endpoint_stats; PRAGMA user_version=7;"
    )
    conn.close()
    store = Store(path).open()
    items = store.read_sync(endpoints.list_endpoints)
    store.close()
    assert [(e["name"], e["count"], e["last_id"]) for e in items] == [("b", 1, 3), ("a", 2, 2)]


def test_a_due_delivery_is_sent_by_one_engine_until_its_lease_ends(
    store_location: Path | str,
) -> None:
    # Two stores on one location: two replicas on PostgreSQL, a server and a CLI on SQLite.
    a, b = Store(store_location).open(), Store(store_location).open()
    try:
        made = a.write_sync(deliveries.insert_delivery, new_delivery(1, timeout=5.0))
        due = made["next_attempt_ts"]
        assert due is not None
        assert a.write_sync(leases.claim, [made["id"]], "a", due) == [made["id"]]
        # Held: nobody else may send it, however long its lease runs...
        lease_end = due + 5.0 + leases.LEASE_MARGIN
        assert b.write_sync(leases.claim, [made["id"]], "b", lease_end - 0.5) == []
        # ...and once it has ended (its holder died mid-attempt), the next claimant sends it.
        assert b.write_sync(leases.claim, [made["id"]], "b", lease_end + 0.5) == [made["id"]]

        # Both sent attempt 1: the first to finish logs it, the other's record is refused.
        def attempt(status: int) -> deliveries.AttemptRecord:
            return deliveries.AttemptRecord(1, due, status, 1.0, None, [], [], b"", False)

        logged = b.write_sync(
            deliveries.record_attempt, made["id"], attempt(200), "succeeded", None
        )
        assert logged is not None
        late = a.write_sync(deliveries.record_attempt, made["id"], attempt(500), "pending", due)
        assert late is None
        detail = a.read_sync(deliveries.get_delivery, made["id"])
        assert detail is not None
        assert detail["state"] == "succeeded" and [e["status"] for e in detail["log"]] == [200]
    finally:
        a.close()
        b.close()


def _open_connections() -> int:
    """SQLite connections open in this process, counted from the live objects."""
    gc.collect()
    count = 0
    for obj in gc.get_objects():
        if isinstance(obj, sqlite3.Connection):
            try:
                obj.total_changes  # noqa: B018 (raises on a closed connection)
            except sqlite3.ProgrammingError:
                continue
            count += 1
    return count


def test_read_connections_stay_bounded_as_threads_come_and_go(tmp_path: Path) -> None:
    # Servers read in anyio's worker threads, which end when idle and are replaced: each wave
    # of new threads must reuse the read connections, not open more that stay open.
    before = _open_connections()
    store = Store(tmp_path / "inspector.db").open()
    try:
        store.write_sync(intake.insert_request, captured_request(), ok)
        waves = []
        for _ in range(4):
            barrier = threading.Barrier(20)

            def job(conn: Connection, barrier: threading.Barrier = barrier) -> int:
                barrier.wait()  # all 20 inside a read at once: 20 connections in use
                return requests.count_rows(conn)

            def read() -> None:
                assert store.read_sync(job) == 1

            threads = [threading.Thread(target=read) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            waves.append(_open_connections() - before)
        # The writer's connection and KEEP_READERS idle readers, wave after wave.
        assert waves == [1 + sqlite_backend.KEEP_READERS] * 4, waves
    finally:
        store.close()
    assert _open_connections() == before
