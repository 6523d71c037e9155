"""SQL jobs for event attempts: the requests that delivered the same event (``event_key``)."""

from __future__ import annotations

from inspector.store.backend import Connection
from inspector.store.requests import Row
from inspector.timeline import Attempt, EventRow

_EVENT_ROWS = (
    "SELECT event_key, min(event_type) AS event_type, count(*) AS attempts, min(id) AS first_id,"
    " max(id) AS last_id, min(received_at) AS first_at, max(received_at) AS last_at"
    " FROM requests WHERE endpoint = ? AND event_key IS NOT NULL"
)


def list_events(
    conn: Connection, endpoint: str, limit: int, before: int | None
) -> tuple[list[EventRow], dict[str, list[Attempt]], int | None]:
    """An endpoint's events, most recently attempted first, with every attempt of each.

    The ``events`` table (its latest attempt's id, indexed by endpoint) gives the order, so a
    page reads its events' requests only, however many are stored (bench/million.py)."""
    page: list[EventRow] = []
    more = False
    cursor = before if before is not None else 2**62
    while len(page) <= limit:
        keys = conn.execute(
            "SELECT event_key, last_id FROM events WHERE endpoint = ? AND last_id < ?"
            " ORDER BY last_id DESC LIMIT ?",
            (endpoint, cursor, limit + 1 - len(page)),
        ).fetchall()
        # One query for the page's events, one for their attempts: on PostgreSQL a query a
        # key was a round trip each, a hundred for a page (350 ms with 20,000 stored).
        found = event_summaries(conn, endpoint, [key for key, _ in keys])
        for key, last_id in keys:
            summary = found.get(key)
            # A key whose requests were deleted one by one keeps its counter, not a row.
            if summary is not None and summary["last_id"] < cursor:
                page.append(summary)
            cursor = min(cursor, last_id)
        if len(keys) == 0:
            break
    page.sort(key=lambda row: row["last_id"], reverse=True)
    page, more = page[:limit], len(page) > limit
    attempts = events_attempts(conn, endpoint, [r["event_key"] for r in page])
    return page, attempts, (page[-1]["last_id"] if more else None)


def event_summaries(conn: Connection, endpoint: str, keys: list[str]) -> dict[str, EventRow]:
    """``event_summary`` of each of ``keys`` (those with requests), in one query."""
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        _EVENT_ROWS + f" AND event_key IN ({marks}) GROUP BY event_key", (endpoint, *keys)
    ).fetchall()
    return {r["event_key"]: _event(r) for r in rows if r["attempts"]}


def events_attempts(conn: Connection, endpoint: str, keys: list[str]) -> dict[str, list[Attempt]]:
    """``event_attempts`` of each of ``keys``, in one query."""
    out: dict[str, list[Attempt]] = {key: [] for key in keys}
    if not keys:
        return out
    marks = ",".join("?" * len(keys))
    # Ordered by key, then id: the (endpoint, event_key, id) index answers that as it is.
    # "ORDER BY id" alone led SQLite to walk the endpoint's every request in id order
    # instead (640 ms for a page of 50 events at 1,000,000 stored; this: 1 ms).
    rows = conn.execute(
        "SELECT event_key, id, received_ts, response_status, dropped, client_gave_up_after_ms,"
        " response_ms FROM requests"
        f" WHERE endpoint = ? AND event_key IN ({marks}) ORDER BY event_key, id",
        (endpoint, *keys),
    ).fetchall()
    for r in rows:
        out[r[0]].append(Attempt(r[1], r[2], r[3], bool(r[4]), r[5], r[6]))
    return out


def event_attempts(conn: Connection, endpoint: str, event_key: str) -> list[Attempt]:
    rows = conn.execute(
        "SELECT id, received_ts, response_status, dropped, client_gave_up_after_ms, response_ms"
        " FROM requests WHERE endpoint = ? AND event_key = ? ORDER BY id",
        (endpoint, event_key),
    ).fetchall()
    return [Attempt(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]


def event_summary(conn: Connection, endpoint: str, event_key: str) -> EventRow | None:
    row = conn.execute(
        _EVENT_ROWS + " AND event_key = ? GROUP BY event_key", (endpoint, event_key)
    ).fetchone()
    return _event(row) if row is not None and row["attempts"] else None


def _event(r: Row) -> EventRow:
    return {
        "event_key": r["event_key"],
        "event_type": r["event_type"],
        "attempts": r["attempts"],
        "first_id": r["first_id"],
        "last_id": r["last_id"],
        "first_at": r["first_at"],
        "last_at": r["last_at"],
    }
