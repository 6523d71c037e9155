"""Search through the trigram index gives exactly the scan's results: non-ASCII text, header
values (as stored, JSON-escaped), binary bodies, short terms, pages, deletes and eviction, a
store catching up after an upgrade."""

from __future__ import annotations

import asyncio
import queue
import random
import sqlite3
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.capture import CapturedRequest, ResponseRecord
from inspector.store import Store, core, requests, search

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
        requests.insert_request(conn, rec, ok)
    return requests.Changed(0, rows_added=len(recs))


def fill(store: Store, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for start in range(0, count, 25):
        store.write_sync(insert, [capture(i, rng) for i in range(start, min(count, start + 25))])


@pytest.fixture(params=["gathered", "walked"])
def stores(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    store_location: Path | str,
) -> Iterator[tuple[Store, Store]]:
    """The same 240 requests in a store with the index (SQLite's FTS5, or PostgreSQL's
    pg_trgm) and in a SQLite store without. SQLite's candidates are either gathered and
    sorted (a rare term) or walked newest first (a common one: more than ``CANDIDATES``)."""
    # A small window, so that most of every search goes through the index.
    monkeypatch.setattr(requests, "SEARCH_WINDOW", 5)
    if request.param == "walked":
        monkeypatch.setattr(requests, "CANDIDATES", 2)
    indexed = Store(store_location).open()
    scanned = Store(tmp_path / "scanned.db", search_index=False).open()
    for store in (indexed, scanned):
        fill(store, 240)
    assert not scanned.read_sync(search.exists)
    if isinstance(store_location, str):  # PostgreSQL
        assert indexed.read_sync(search.trigram_indexes)
    else:
        assert indexed.read_sync(search.exists)
        assert indexed.read_sync(search.indexed_upto) == 240
    yield indexed, scanned
    indexed.close()
    scanned.close()


def every_page(store: Store, flt: requests.RequestFilter, limit: int = 7) -> list[int]:
    ids: list[int] = []
    before = None
    while True:
        items, before = store.read_sync(requests.list_requests, flt, limit, before)
        ids += [item["id"] for item in items]
        if before is None:
            return ids


def agree(stores: tuple[Store, Store], q: str, **filters: str) -> list[int]:
    indexed, scanned = stores
    flt = requests.RequestFilter(q=q, **filters)  # type: ignore[arg-type]
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
    """SQLite's FTS5 index agrees with its content (PostgreSQL keeps its indexes itself)."""
    if store.read_sync(search.exists):
        store.read_sync(
            lambda conn: conn.execute("INSERT INTO search(search) VALUES ('integrity-check')")
        )


def test_deletes_and_eviction_keep_the_index_exact(stores: tuple[Store, Store]) -> None:
    for store in stores:
        store.write_sync(requests.delete_request, 17)
        store.write_sync(requests.clear_endpoint, "ep-2")
        store.write_sync(requests.evict_oldest, 30)
    indexed, _ = stores
    check_integrity(indexed)
    for term in ["hello", "café", "n17", "n239", "王小明"]:
        agree(stores, term)
    for store in stores:
        store.write_sync(requests.clear_endpoint, None)
        fill(store, 30, seed=2)
    check_integrity(indexed)
    assert agree(stores, "hello")


def test_a_store_without_the_index_catches_up_and_searches_right_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "SEARCH_WINDOW", 5)
    path = tmp_path / "upgraded.db"
    old = Store(path, search_index=False).open()
    fill(old, 300)
    old.close()
    store = Store(path).open()  # as after an upgrade: the index is made, empty
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    fill(reference, 300)
    try:
        assert store.read_sync(search.indexed_upto) == 0
        flt = requests.RequestFilter(q="hello")
        assert every_page(store, flt) == every_page(reference, flt)
        fill(store, 10, seed=3)  # a batch indexes its rows and some of the backlog
        fill(reference, 10, seed=3)
        assert 0 < store.read_sync(search.indexed_upto) < 310
        assert every_page(store, flt) == every_page(reference, flt)
        while store._backlog:
            store._catch_up(core.IDLE_CHUNK)  # what the writer does when idle
        assert store.read_sync(search.indexed_upto) == 310
        assert every_page(store, flt) == every_page(reference, flt)
    finally:
        store.close()
        reference.close()


TERMS = ["hello", "café", "n1", "n4", "王小明", "binary", "evt-3", "x-latin", "ωmega", "\\y"]


def live_write(store: Store, recs: list[CapturedRequest]) -> None:
    """Write ``recs`` in one batch of the server's writer (``store.start()``)."""

    async def write() -> None:
        await store.write(insert, recs)

    asyncio.run(write())


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the writer did not index the waiting rows"
        time.sleep(0.01)


def same_results(store: Store, reference: Store) -> None:
    for term in TERMS:
        flt = requests.RequestFilter(q=term)
        assert every_page(store, flt) == every_page(reference, flt), term


def test_a_server_finds_its_newest_rows_before_and_after_they_are_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(core, "IDLE", 3600.0)  # no idle moment: only waiting rows index
    monkeypatch.setattr(core, "INDEX_AFTER", 40)
    rng = random.Random(4)
    recs = [capture(i, rng) for i in range(90)]
    store = Store(tmp_path / "live.db").open()
    store.start()
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    try:
        live_write(store, recs[:30])  # committed and answered, not indexed: 30 < 40
        reference.write_sync(insert, recs[:30])
        assert store.read_sync(search.indexed_upto) == 0
        same_results(store, reference)
        live_write(store, recs[30:60])  # 60 wait: indexed after the batch, on its own
        reference.write_sync(insert, recs[30:60])
        wait_until(lambda: store.read_sync(search.indexed_upto) == 60)
        same_results(store, reference)
        live_write(store, recs[60:])  # some indexed, some not
        reference.write_sync(insert, recs[60:])
        assert store.read_sync(search.indexed_upto) == 60
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()


def test_rows_left_unindexed_at_close_are_indexed_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(core, "IDLE", 3600.0)
    rng = random.Random(5)
    recs = [capture(i, rng) for i in range(50)]  # fewer than INDEX_AFTER
    path = tmp_path / "restarted.db"
    store = Store(path).open()
    store.start()
    live_write(store, recs)
    store.close()
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    reference.write_sync(insert, recs)
    store = Store(path).open()
    try:
        assert store.read_sync(search.indexed_upto) == 0
        same_results(store, reference)
        monkeypatch.setattr(core, "IDLE", 0.01)
        store.start()  # the writer catches up when idle
        wait_until(lambda: store.read_sync(search.indexed_upto) == 50)
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()


def test_an_index_of_an_earlier_shape_is_made_again(tmp_path: Path) -> None:
    # Stores indexed before the index lost its column sizes and got its merge settings.
    path = tmp_path / "earlier.db"
    store = Store(path).open()
    fill(store, 60)
    store.write_sync(lambda conn: search.drop(conn))
    store.write_sync(lambda conn: conn.execute(search._CREATE.replace(", columnsize=0", "")))
    store.write_sync(lambda conn: search.index_new(conn, 1000))
    store.close()
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    fill(reference, 60)
    store = Store(path).open()
    try:
        shape = store.read_sync(
            lambda conn: conn.execute("SELECT sql FROM sqlite_master WHERE name = 'search'")
        ).fetchone()[0]
        assert "columnsize=0" in shape
        assert store.read_sync(search.indexed_upto) == 0  # filled again, a chunk at a time
        same_results(store, reference)
        while store._backlog:
            store._catch_up(core.IDLE_CHUNK)
        assert store.read_sync(search.indexed_upto) == 60
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()


def test_an_idle_writer_merges_the_index_and_searches_stay_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(core, "IDLE", 3600.0)  # the test says when the writer is idle
    rng = random.Random(6)
    recs = [capture(i, rng) for i in range(400)]
    store = Store(tmp_path / "tidy.db").open()
    reference = Store(tmp_path / "ref.db", search_index=False).open()

    def segments() -> int:
        return int(
            store.read_sync(
                lambda conn: conn.execute(
                    "SELECT count(DISTINCT id >> 37) FROM search_data WHERE id >= 1 << 37"
                )
            ).fetchone()[0]
        )

    try:
        for start in range(0, 400, 10):  # a segment per write
            store.write_sync(insert, recs[start : start + 10])
        reference.write_sync(insert, recs)
        before = segments()
        assert before >= 4
        assert store._untidy
        while store._untidy:
            store._tidy()  # what the writer does when idle and every row is indexed
        assert segments() < before
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()


class _BusyQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    """A writer's queue that always looks busy: as under a load that never lets up."""

    def empty(self) -> bool:
        return False


def test_a_writer_that_is_never_idle_still_indexes_once_enough_rows_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(core, "IDLE", 3600.0)
    monkeypatch.setattr(core, "INDEX_AFTER", 10)
    monkeypatch.setattr(core, "INDEX_BOUND", 50)
    rng = random.Random(7)
    recs = [capture(i, rng) for i in range(80)]
    store = Store(tmp_path / "busy.db").open()
    store._queue = _BusyQueue()
    store.start()
    reference = Store(tmp_path / "ref.db", search_index=False).open()
    try:
        live_write(store, recs[:40])  # 40 wait, fewer than the bound: no job is put off
        reference.write_sync(insert, recs[:40])
        assert store.read_sync(search.indexed_upto) == 0
        same_results(store, reference)
        live_write(store, recs[40:])  # 80 wait: a chunk is indexed even so
        reference.write_sync(insert, recs[40:])
        wait_until(lambda: store.read_sync(search.indexed_upto) > 0)
        same_results(store, reference)
        check_integrity(store)
    finally:
        store.close()
        reference.close()
