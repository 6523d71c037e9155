"""Search through the trigram index gives exactly the scan's results: non-ASCII text, header
values (as stored, JSON-escaped), binary bodies, short terms, pages, deletes and eviction, a
store catching up after an upgrade."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.capture import CapturedRequest, ResponseRecord
from inspector.store import Store, indexer, intake, listing, requests, search
from inspector.store.sqlite import SqliteConnection

pytestmark = pytest.mark.backends

TEXTS = [
    "Hello",
    "WORLD",
    "café",
    "王小明",
    "大家早安",
    "naïve",
    "Ωmega",
    "a_b%c",
    'say "hi"',
    "x\\y",
]
BODIES = [
    b'{"event": "message.received", "content": "\xe5\xa4\xa7\xe5\xae\xb6\xe6\x97\xa9\xe5\xae\x89"}',
    b"\xff\xfe\x00binary\x00HELLO\x80\x81 caf\xc3\xa9",
    b"\xe4caf\xc3\xa9 truncated lead byte before text",
    b"plain Text with UPPER and lower",
    b"",
    bytes(range(256)),
]


def capture(i: int, rng: random.Random) -> CapturedRequest:
    text = rng.choice(TEXTS)
    body = rng.choice(BODIES) + f" n{i}".encode()
    headers = [
        ("content-type", "application/json"),
        ("x-note", rng.choice(TEXTS).encode("utf-8").decode("latin-1")),  # as a server gives
        ("x-latin", "Gr\xfc\xdfe \xc9T\xc9"),
        ("x-quote", rng.choice(TEXTS)),
    ]
    return CapturedRequest(
        endpoint=f"ep-{i % 3}",
        method="POST",
        path=f"/h/ep-{i % 3}/{text.encode('utf-8').decode('latin-1')}/{i}",
        query=f"q={text.encode('utf-8').decode('latin-1')}&I={i}",
        headers=headers,
        body=body,
        client="127.0.0.1:1",
        received_at="2026-11-28T00:00:00.000000Z",
        received_ts=0.0,
        size=len(body),
        content_type="application/json",
        event_key=f"Evt-{i % 7}" if i % 2 else None,
        event_type=rng.choice(TEXTS) if i % 3 else None,
    )


def ok(attempt: int) -> ResponseRecord:
    return ResponseRecord(200, [("content-type", "text/plain")], b"OK")


def insert(conn: sqlite3.Connection, recs: list[CapturedRequest]) -> requests.Changed:
    for rec in recs:
        intake.insert_request(conn, rec, ok)
    return requests.Changed(0, rows_added=len(recs))


def fill(store: Store, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for start in range(0, count, 25):
        store.write_sync(insert, [capture(i, rng) for i in range(start, min(count, start + 25))])


def index_all(store: Store, limit: int = indexer.CHUNK) -> int:
    """Index every row waiting, as a server's indexer does (in this thread); returns how many."""
    assert store.index_file is not None
    conn = indexer.connect(store.index_file, Path(store.description))
    try:
        total = 0
        while True:
            done, filled = indexer.index_step(conn, limit)
            for number in filled:
                indexer.optimize(conn, number)
            total += done
            if done < limit:
                break
        indexer.drop_dead(conn)
        return total
    finally:
        conn.close()


def upto(store: Store) -> int:
    """The index's watermark, as the store's readers see it (0: no index file yet)."""
    return store.read_sync(lambda conn: search.indexed_upto(conn) if search.exists(conn) else 0)


def live_shards(store: Store) -> list[int]:
    return store.read_sync(lambda conn: search.shards(conn, search.ATTACHED))


@pytest.fixture(params=["gathered", "walked"])
def stores(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    store_location: Path | str,
) -> Iterator[tuple[Store, Store]]:
    """The same 240 requests in a store with the index (SQLite's FTS5, 8 shards of 32 ids,
    or PostgreSQL's pg_trgm) and in a SQLite store without. SQLite's candidates are either
    gathered and sorted (a rare term) or walked newest first (a common one: more than
    ``CANDIDATES``)."""
    # A small window, so that most of every search goes through the index.
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(search, "SHARD_IDS", 32)
    if request.param == "walked":
        monkeypatch.setattr(listing, "CANDIDATES", 2)
    indexed = Store(store_location).open()
    scanned = Store(tmp_path / "scanned.db", search_index=False).open()
    for store in (indexed, scanned):
        fill(store, 240)
    assert not scanned.read_sync(search.exists)
    if isinstance(store_location, str):  # PostgreSQL
        assert indexed.read_sync(search.trigram_indexes)
    else:
        assert index_all(indexed) == 240
        assert indexed.read_sync(search.exists)
        assert upto(indexed) == 240
        assert live_shards(indexed) == list(range(7, -1, -1))
    yield indexed, scanned
    indexed.close()
    scanned.close()


def every_page(store: Store, flt: listing.RequestFilter, limit: int = 7) -> list[int]:
    ids: list[int] = []
    before = None
    while True:
        items, before = store.read_sync(listing.list_requests, flt, limit, before)
        ids += [item["id"] for item in items]
        if before is None:
            return ids


def agree(stores: tuple[Store, Store], q: str, **filters: str) -> list[int]:
    indexed, scanned = stores
    flt = listing.RequestFilter(q=q, **filters)  # type: ignore[arg-type]
    found = every_page(indexed, flt)
    if "\x00" in q and indexed.shared and not filters:
        # PostgreSQL's text holds no NUL: only a body can match such a term there (SQLite's
        # LIKE reads a pattern up to its NUL: its scan finds more, wrongly).
        needle = q.translate(str.maketrans(string.ascii_uppercase, string.ascii_lowercase))
        in_bodies = scanned.read_sync(
            lambda conn: [
                r[0]
                for r in conn.execute(
                    "SELECT request_id FROM bodies WHERE instr(lower(body), ?) > 0"
                    " ORDER BY request_id DESC",
                    (needle.encode("utf-8"),),
                )
            ]
        )
        assert found == in_bodies, q
        return found
    assert found == every_page(scanned, flt), q
    return found


TERMS = [
    "hello",  # in bodies (HELLO, Hello) and paths: ASCII case folded
    "WoRlD",
    "café",  # non-ASCII in bodies (UTF-8), in headers (stored escaped or not)
    "CAFÉ",  # É is not ASCII: not folded, so no match where only é is
    "王小明",
    "早安",  # two characters: scanned
    "ga",
    "x",
    "naïve",
    "ωmega",  # Ω is not folded to ω
    "a_b%c",  # LIKE's wildcards, literally
    "a_b",
    '"hi"',  # a quote: JSON-escaped in headers
    'say "hi',
    "x\\y",
    "binary",
    "\x00binary",  # NUL: scanned
    "gr\xfc\xdfe",  # latin-1 text of a header value
    "évt-3",
    "evt-3",
    "n17",
    "n239",
    "q=café",
    "/ep-1/",
    "i=2",
    "content-type",
    "no such text anywhere",
    "truncated lead",
    "ЖЖЖ",
]


@pytest.mark.parametrize("term", TERMS)
def test_the_index_finds_what_the_scan_finds(stores: tuple[Store, Store], term: str) -> None:
    agree(stores, term)


def test_searches_find_something_where_they_should(stores: tuple[Store, Store]) -> None:
    # The comparison above means little if everything finds nothing.
    for term in ["hello", "café", "王小明", '"hi"', "binary", "gr\xfc\xdfe", "n17", "evt-3"]:
        assert agree(stores, term), term
    assert agree(stores, "no such text anywhere") == []


def test_filters_combine_with_the_index(stores: tuple[Store, Store]) -> None:
    assert agree(stores, "hello", endpoint="ep-1")
    agree(stores, "café", method="GET")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_piece_of_stored_text_is_found_alike(
    stores: tuple[Store, Store], data: st.DataObject
) -> None:
    source = data.draw(
        st.sampled_from(
            [*TEXTS, *(b.decode("utf-8", "replace") for b in BODIES), "/h/ep-2/王小明/11"]
        )
    )
    start = data.draw(st.integers(0, max(0, len(source) - 1)))
    length = data.draw(st.integers(1, 8))
    term = source[start : start + length]
    if data.draw(st.booleans()):
        term = term.swapcase()
    if term.strip():
        agree(stores, term)


def check_integrity(store: Store) -> None:
    """SQLite: each of the index's shards is a sound FTS5 index (PostgreSQL keeps its own)."""
    if store.index_file is None or not store.index_file.exists():
        return
    with sqlite3.connect(store.index_file) as conn:
        for number in search.shards(conn):  # type: ignore[arg-type]
            table = search.shard_table(number)
            conn.execute(f"INSERT INTO {table} ({table}) VALUES ('integrity-check')")


def test_deletes_eviction_and_clear_keep_results_exact_and_drop_dead_shards(
    stores: tuple[Store, Store],
) -> None:
    indexed, scanned = stores
    for store in stores:
        store.write_sync(requests.delete_request, 17)
        store.write_sync(requests.clear_endpoint, "ep-2")
        store.write_sync(requests.evict_oldest, 70)  # the 70 oldest left
    for term in ["hello", "café", "n17", "n239", "n45", "n80", "王小明"]:
        agree(stores, term)  # candidates that are gone are not confirmed
    if indexed.shared:
        return
    assert live_shards(indexed)[-1] == 0
    index_all(indexed)  # the shards with no row left are dropped, and only those
    left = scanned.read_sync(lambda c: [r[0] for r in c.execute("SELECT id FROM requests")])
    assert min(left) > 64
    assert live_shards(indexed) == sorted({i // 32 for i in left}, reverse=True)
    check_integrity(indexed)
    for term in ["hello", "café", "n17", "n239", "n80", "王小明"]:
        agree(stores, term)
    for store in stores:
        store.write_sync(requests.clear_endpoint, None)
    assert agree(stores, "hello") == []
    index_all(indexed)
    assert live_shards(indexed) == []  # every shard dropped; the watermark stays
    assert upto(indexed) == 240
    for store in stores:
        fill(store, 30, seed=2)  # ids 241-270: never reused, past the watermark
    assert agree(stores, "hello")
    index_all(indexed)
    assert live_shards(indexed) == [8, 7]
    assert upto(indexed) == 270
    check_integrity(indexed)
    assert agree(stores, "hello")


TERMS = ["hello", "café", "n1", "n4", "王小明", "binary", "evt-3", "x-latin", "ωmega", "\\y"]


def same_results(store: Store, reference: Store) -> None:
    for term in TERMS:
        flt = listing.RequestFilter(q=term)
        assert every_page(store, flt) == every_page(reference, flt), term


def both(tmp_path: Path, count: int, seed: int = 1) -> tuple[Store, Store]:
    """A store with ``count`` requests, not indexed yet, and a reference without an index."""
    store = Store(tmp_path / "inspector.db").open()
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    for each in (store, reference):
        fill(each, count, seed)
    return store, reference


def test_partly_indexed_stores_find_what_the_scan_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(search, "SHARD_IDS", 64)
    store, reference = both(tmp_path, 300)
    try:
        assert store.index_file == tmp_path / "inspector.search.db"
        assert not store.index_file.exists()  # a CLI's writes do not index
        same_results(store, reference)
        assert store.index_file is not None
        conn = indexer.connect(store.index_file, tmp_path / "inspector.db")
        try:
            for expected in (50, 100, 150, 200, 250, 300):  # across shard boundaries
                assert indexer.index_step(conn, 50)[0] == 50
                assert upto(store) == expected
                same_results(store, reference)
        finally:
            conn.close()
        assert live_shards(store) == [4, 3, 2, 1, 0]
        check_integrity(store)
    finally:
        store.close()
        reference.close()


# The in-database index of the earlier shape, as it was made and filled.
_OLD_INDEX = (
    "CREATE VIRTUAL TABLE search USING fts5(path, query, headers, event_key, event_type, body,"
    " content='search_text', content_rowid='id',"
    " tokenize='trigram case_sensitive 1', detail=none, columnsize=0)"
)


def test_the_index_of_the_earlier_shape_is_dropped_and_made_in_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    path = tmp_path / "inspector.db"
    old = Store(path, search_index=False).open()
    fill(old, 120)

    def make_old(conn: sqlite3.Connection) -> None:
        conn.execute(_OLD_INDEX)
        conn.execute(
            "INSERT INTO search (rowid, path, query, headers, event_key, event_type, body)"
            " SELECT id, path, query, headers, event_key, event_type, body FROM search_text"
        )
        conn.execute("UPDATE search_state SET indexed_upto = 120")

    old.write_sync(make_old)
    assert old.read_sync(lambda conn: conn.execute("SELECT count(*) FROM search_data")).fetchone()[
        0
    ]
    old.close()
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    fill(reference, 120)
    store = Store(path).open()
    try:
        tables = store.read_sync(
            lambda conn: [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        )
        assert not {"search", "search_data", "search_idx", "search_config"} & set(tables)
        assert "search_text" in tables  # the view the index reads stays
        same_results(store, reference)  # scanned meanwhile
        store.start()  # the server's indexer fills the new index in the background
        wait_until(lambda: upto(store) == 120)
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()


def live_write(store: Store, recs: list[CapturedRequest]) -> None:
    """Write ``recs`` in one batch of the server's writer (``store.start()``)."""

    async def write() -> None:
        await store.write(insert, recs)

    asyncio.run(write())


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the indexer did not index the waiting rows"
        time.sleep(0.01)


def test_a_server_finds_its_newest_rows_before_and_after_they_are_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(search, "SHARD_IDS", 32)
    rng = random.Random(4)
    recs = [capture(i, rng) for i in range(90)]
    store = Store(tmp_path / "live.db").open()
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    stalled = threading.Event()
    monkeypatch.setattr(indexer, "GATHER", 0.0)
    real_step = indexer.index_step

    def held_step(conn: SqliteConnection, limit: int = indexer.CHUNK) -> tuple[int, list[int]]:
        stalled.wait()
        return real_step(conn, limit)

    monkeypatch.setattr(indexer, "index_step", held_step)
    store.start()
    try:
        live_write(store, recs[:30])  # committed and answered, not indexed: the indexer waits
        reference.write_sync(insert, recs[:30])
        assert upto(store) == 0
        same_results(store, reference)
        stalled.set()
        wait_until(lambda: upto(store) == 30)
        same_results(store, reference)
        live_write(store, recs[30:])
        reference.write_sync(insert, recs[30:])
        same_results(store, reference)  # indexed or not, whichever it is by now
        wait_until(lambda: upto(store) == 90)
        same_results(store, reference)
        check_integrity(store)
    finally:
        stalled.set()
        store.close()
        reference.close()


def test_a_servers_indexer_keeps_up_under_a_writer_that_never_idles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(search, "SHARD_IDS", 64)
    store = Store(tmp_path / "busy.db").open()
    store.start()
    stop = threading.Event()
    written: list[int] = []

    async def keep_writing() -> None:
        rng = random.Random(7)
        i = 0
        while not stop.is_set():
            await store.write(insert, [capture(j, rng) for j in range(i, i + 5)])
            i += 5
            written.append(i)

    writer = threading.Thread(target=asyncio.run, args=(keep_writing(),))
    writer.start()
    try:
        wait_until(lambda: len(written) > 0 and written[-1] >= 400)
        wait_until(lambda: upto(store) >= 400)  # while captures keep coming
        assert not stop.is_set() and writer.is_alive()
    finally:
        stop.set()
        writer.join()
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    try:
        rng = random.Random(7)
        reference.write_sync(insert, [capture(j, rng) for j in range(written[-1])])
        same_results(store, reference)
        wait_until(lambda: upto(store) == written[-1])
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()


def test_rows_a_cli_wrote_are_indexed_when_a_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    store, reference = both(tmp_path, 50, seed=5)
    try:
        assert upto(store) == 0
        same_results(store, reference)
        store.start()
        wait_until(lambda: upto(store) == 50)
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()


def segments(store: Store) -> int:
    assert store.index_file is not None
    with sqlite3.connect(store.index_file) as conn:
        return int(
            conn.execute(
                "SELECT count(DISTINCT id >> 37) FROM shard_0_data WHERE id >= 1 << 37"
            ).fetchone()[0]
        )


def test_tidying_merges_a_shards_segments_and_searches_stay_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    store, reference = both(tmp_path, 400, seed=6)
    try:
        index_all(store, limit=10)  # a segment per step
        before = segments(store)
        assert before >= 4
        assert store.index_file is not None
        conn = indexer.connect(store.index_file, tmp_path / "inspector.db")
        try:
            while indexer.tidy(conn):  # what the indexer does when idle
                pass
        finally:
            conn.close()
        assert segments(store) < before
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()


def test_two_indexers_on_one_store_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server and another process (a second server) on one store: each step reads the
    # watermark under the index file's write lock, so no row is indexed twice or skipped.
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(search, "SHARD_IDS", 64)
    store, reference = both(tmp_path, 200, seed=8)
    assert store.index_file is not None
    first = indexer.connect(store.index_file, tmp_path / "inspector.db")
    second = indexer.connect(store.index_file, tmp_path / "inspector.db", busy_timeout=0.0)
    try:
        first.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            indexer.index_step(second, 30)
        first.execute("ROLLBACK")
        marks = []
        for conn in [first, second] * 4:
            indexer.index_step(conn, 30)
            marks.append(upto(store))
        assert marks == [30, 60, 90, 120, 150, 180, 200, 200]
        same_results(store, reference)
        check_integrity(store)
    finally:
        first.close()
        second.close()
        store.close()
        reference.close()


def test_an_index_made_for_another_database_is_made_again(tmp_path: Path) -> None:
    store, reference = both(tmp_path, 80, seed=9)
    index_all(store)
    store.close()
    (tmp_path / "inspector.db").unlink()  # replaced; the index file stays behind
    store = Store(tmp_path / "inspector.db").open()
    fill(store, 30, seed=9)  # ids 1-30 again, under the old watermark (80)
    fresh = Store(tmp_path / "fresh.db", search_index=False).open()
    fill(fresh, 30, seed=9)
    try:
        assert index_all(store) == 30
        assert upto(store) == 30
        same_results(store, fresh)
    finally:
        store.close()
        fresh.close()
        reference.close()


@pytest.mark.parametrize("damage", ["corrupt", "unwritable"])
def test_an_index_file_that_cannot_be_used_costs_no_capture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 5)
    index_file = tmp_path / "inspector.search.db"
    if damage == "corrupt":
        index_file.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    else:
        index_file.mkdir()  # no file can be made there
    store, reference = both(tmp_path, 40, seed=10)
    rng = random.Random(11)
    recs = [capture(i, rng) for i in range(40, 60)]
    try:
        with caplog.at_level("WARNING", logger="inspector.store"):
            store.start()
            live_write(store, recs)
            reference.write_sync(insert, recs)
            same_results(store, reference)
        assert "search index" in caplog.text
        assert store.read_sync(requests.count_rows) == 60
    finally:
        store.close()
        reference.close()


def test_without_the_index_no_file_is_made_and_searches_scan(tmp_path: Path) -> None:
    store = Store(tmp_path / "inspector.db", search_index=False).open()
    store.start()
    try:
        live_write(store, [capture(i, random.Random(12)) for i in range(20)])
        assert not store.read_sync(search.exists)
        assert store.read_sync(listing.list_requests, listing.RequestFilter(q="n1"), 50, None)[0]
    finally:
        store.close()
    assert not (tmp_path / "inspector.search.db").exists()
