"""Search in bodies longer than what PostgreSQL's trigram index holds of each (its first
``BODY_PREFIX`` bytes): a term past the prefix, or across its end, is found exactly as the scan
finds it, on both backends; a PostgreSQL store of the earlier shape (whole bodies indexed) is
migrated."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspector.capture import CapturedRequest
from inspector.store import Store, intake, listing, requests
from inspector.store.backend import Connection
from inspector.store.schema import BODY_PREFIX
from tests.conftest import captured_request, fresh_schema, ok

pytestmark = pytest.mark.backends

PAST = b"Needle-Past-The-Prefix"
ACROSS = b"Needle-Across-The-End"


def big_body(binary: bool) -> bytes:
    """Twice the indexed prefix: ``ACROSS`` over the prefix's end, ``PAST`` well after it."""
    filler = bytes(range(256)) if binary else b"lorem ipsum dolor sit amet, "
    body = filler * (2 * BODY_PREFIX // len(filler) + 1)
    cut = BODY_PREFIX - len(ACROSS) // 2
    body = body[:cut] + ACROSS + body[cut + len(ACROSS) :]
    at = BODY_PREFIX + BODY_PREFIX // 2
    return body[:at] + PAST + body[at + len(PAST) :]


def capture(i: int, body: bytes) -> CapturedRequest:
    return captured_request(
        f"ep-{i % 2}",
        body,
        headers=[("content-type", "application/octet-stream")],
        content_type="application/octet-stream",
    )


def insert(conn: sqlite3.Connection, recs: list[CapturedRequest]) -> requests.Changed:
    for rec in recs:
        intake.insert_request(conn, rec, ok)
    return requests.Changed(0, rows_added=len(recs))


def bodies() -> list[bytes]:
    """Small bodies, two big ones (text and binary) among them, and the terms in a small one
    too (found through the index on PostgreSQL)."""
    out = [f"small body {i}".encode() for i in range(30)]
    out[5] = big_body(binary=False)
    out[11] = big_body(binary=True)
    out[17] = b"small, but with " + PAST
    return out


def every_page(store: Store, q: str, limit: int = 4) -> list[int]:
    ids: list[int] = []
    before = None
    while True:
        flt = listing.RequestFilter(q=q)
        items, before = store.read_sync(listing.list_requests, flt, limit, before)
        ids += [item["id"] for item in items]
        if before is None:
            return ids


@pytest.fixture
def stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_location: Path | str
) -> Iterator[tuple[Store, Store]]:
    """The same captures in a store with its index and in a SQLite store without."""
    monkeypatch.setattr(listing, "SEARCH_WINDOW", 3)  # the big bodies below the window
    indexed = Store(store_location).open()
    scanned = Store(tmp_path / "scanned.db", search_index=False).open()
    for store in (indexed, scanned):
        store.write_sync(insert, [capture(i, body) for i, body in enumerate(bodies())])
    yield indexed, scanned
    indexed.close()
    scanned.close()


TERMS = [PAST.decode(), PAST.decode().upper(), ACROSS.decode(), "lorem", "small body 2", "zzz"]


@pytest.mark.parametrize("term", TERMS)
def test_terms_past_the_indexed_prefix_are_found_as_the_scan_finds_them(
    stores: tuple[Store, Store], term: str
) -> None:
    indexed, scanned = stores
    assert every_page(indexed, term) == every_page(scanned, term)


def test_a_term_only_past_the_prefix_of_a_big_body_is_found(stores: tuple[Store, Store]) -> None:
    indexed, _ = stores
    assert every_page(indexed, "needle-past-the-prefix") == [18, 12, 6]
    assert every_page(indexed, "needle-across-the-end") == [12, 6]


def test_a_postgresql_store_of_the_earlier_shape_is_migrated() -> None:
    with fresh_schema() as url:
        migrated(url)


def migrated(url: str) -> None:
    store = Store(url).open()
    recs = [capture(i, body) for i, body in enumerate(bodies())]
    store.write_sync(insert, recs)

    def earlier(conn: Connection) -> None:  # as schema version 8 left it
        conn.execute("DROP INDEX bodies_search, bodies_long")
        conn.execute(
            "CREATE INDEX bodies_search ON bodies USING gin"
            " ((lower(encode(body, 'escape') COLLATE \"C\")) public.gin_trgm_ops)"
        )
        conn.execute("UPDATE schema_version SET version = 8")

    store.write_sync(earlier)
    store.close()
    store = Store(url).open()
    try:
        shapes = dict(
            store.read_sync(
                lambda conn: conn.execute(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE schemaname = current_schema()"
                    " AND indexname IN ('bodies_search', 'bodies_long')"
                ).fetchall()
            )
        )
        assert f"FROM 1 FOR {BODY_PREFIX})" in shapes["bodies_search"]
        assert f"> {BODY_PREFIX}" in shapes["bodies_long"]
        assert every_page(store, "needle-past-the-prefix") == [18, 12, 6]
    finally:
        store.close()
