"""SQL jobs: functions of ``(conn, ...)`` that the ``Store`` runs in its writer or readers.

Write jobs run inside the writer's batch transaction and must not commit. Read jobs run on a
per-thread read connection. Rows become API-shaped records here (``RequestItem`` by ``item``,
``RequestDetail`` by ``detail``), so the JSON the API returns and the items the stream
publishes come from one function, with one declared shape.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import msgspec

from inspector.capture import OK_HEADERS, CapturedRequest, ResponseRecord
from inspector.store import search, trigrams
from inspector.store.backend import Connection, RowLike, notice
from inspector.store.multirow import MultiRowInsert
from inspector.summary import MAX_BYTES, summarize

log = logging.getLogger("inspector.store")

# Columns of the list view: everything but the headers and the response body.
ITEM_COLUMNS = (
    "id, endpoint, method, path, query, client, received_at, received_ts, size, content_type,"
    " truncated, note, event_key, event_type, attempt, first_attempt_id, signature,"
    " response_status, response_ms, delay_ms, dropped, client_gave_up_after_ms, in_progress,"
    " tls_version, tls_server_name"
)

_INSERT_COLUMNS = (
    "endpoint", "method", "path", "query", "headers", "client", "received_at", "received_ts",
    "size", "content_type", "truncated", "note", "event_key", "event_type", "attempt",
    "first_attempt_id", "signature", "sig_status", "response_status", "response_headers",
    "response_body", "response_ms", "delay_ms", "dropped", "in_progress", "tls_version",
    "tls_server_name",
)  # fmt: skip
_INSERT = (
    f"INSERT INTO requests ({', '.join(_INSERT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"
)
_encode = msgspec.json.Encoder().encode


def encode_headers(headers: HeaderPairs) -> str:
    """Header pairs as stored: a JSON array of ``[name, value]`` pairs, in order, UTF-8.

    msgspec, at a sixth of ``json.dumps``'s cost per capture. Rows stored before kept
    ``json.dumps``'s ASCII escapes (``caf\\u00e9``); both read back the same.
    """
    try:
        return _encode(headers).decode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a rule's text): JSON's escape keeps it
        return json.dumps(headers)


_OK_JSON = encode_headers(OK_HEADERS)


# Counts the attempt: a new event is attempt 1 (first_id 0 until the request has its id);
# else one more than the last, on every replica alike (one atomic statement).
_COUNT_ATTEMPT = (
    "INSERT INTO events (endpoint, event_key, attempts, first_id, last_id) VALUES (?, ?, 1, 0, 0)"
    " ON CONFLICT (endpoint, event_key) DO UPDATE SET attempts = events.attempts + 1"
    " RETURNING attempts, first_id"
)

# SQLite: the writer's transaction is the only one, so the ids of a batch's captures are known
# before they are inserted: AUTOINCREMENT's, one past the largest id ever issued, and on. The
# event's counter takes its newest (and, for a new event, first) id in the statement that
# counts the attempt (one write to ``events`` per capture, not two: each rewrote both indexes
# on ``last_id``), and the batch's attempts, rows and bodies go in as multi-row statements
# (``multirow.py``, NULLs as literals): SQLite's cost per statement, and Python's, is paid per
# chunk rather than per capture (bench/hotpath.py).
_NEXT_ID = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0),"
    " coalesce((SELECT max(id) FROM requests), 0)) + 1"
)
_ROWS = MultiRowInsert(f"INSERT INTO requests (id, {', '.join(_INSERT_COLUMNS)}) VALUES")
_BODIES = MultiRowInsert("INSERT INTO bodies (request_id, body) VALUES")
# The batch's attempts, counted in order in as few statements: each row's RETURNING has the
# counter as that row left it (a key twice in a batch counts twice), and its last_id (the
# capture's own id) says whose it is, whatever order SQLite returns them in.
_COUNT_ATTEMPTS = MultiRowInsert(
    "INSERT INTO events (endpoint, event_key, attempts, first_id, last_id) VALUES",
    " ON CONFLICT (endpoint, event_key) DO UPDATE SET attempts = events.attempts + 1,"
    " first_id = CASE WHEN events.first_id = 0 THEN excluded.first_id ELSE events.first_id END,"
    " last_id = excluded.last_id"
    " RETURNING attempts, first_id, last_id",
)

# A column value as the engines hand it over or take it.
SqlValue = int | float | str | bytes | None
# A row: its values' types are the schema's, which Python cannot see; the shaping functions
# below are where they get their declared types.
Row = RowLike | Mapping[str, Any]
# Headers as JSON keeps them: ``[name, value]`` pairs in their original order.
HeaderPairs = list[tuple[str, str]]


# -- the shapes ------------------------------------------------------------------------------


class SignatureVerdict(TypedDict):
    """A stored signature verdict (``signatures.Verdict.to_dict``)."""

    status: str  # valid | invalid | malformed | missing | no_secret | ...
    scheme: str | None
    reason: str
    diagnosis: str | None  # the doctor's finding, on failures
    doctor: str | None  # "pending" until the doctor has run (after the answer), "skipped" if busy


class ResponseSummary(TypedDict):
    """What the inspector answered, as a list item shows it."""

    status: int | None  # None: dropped, given up, or still in progress
    ms: float | None
    delay_ms: float | None
    dropped: bool
    client_gave_up_after_ms: float | None
    in_progress: bool


class ResponseDetail(ResponseSummary):
    """What the inspector answered, in full."""

    headers: HeaderPairs
    body_base64: str


class ConnectionTls(TypedDict):
    """How a capture that came over TLS was carried."""

    version: str  # "TLSv1.3"
    server_name: str | None  # the SNI name the sender asked for (None: it sent none)


class _RequestFields(TypedDict):
    id: int
    endpoint: str
    method: str
    path: str
    query: str
    client: str | None
    received_at: str  # ISO 8601, UTC, microseconds
    size: int  # body bytes received (all of them, even when truncated)
    content_type: str | None
    truncated: bool
    note: str | None
    event_key: str | None
    event_type: str | None
    attempt: int
    first_attempt_id: int  # its own id for a first attempt
    signature: SignatureVerdict | None  # None: the endpoint verifies nothing
    scheme: str  # "https" when it came over TLS, else "http"
    tls: ConnectionTls | None  # None: plain HTTP


class RequestItem(_RequestFields):
    """A captured request as the stream publishes it (small: no headers, no body)."""

    response: ResponseSummary


class ListedRequest(RequestItem):
    """A captured request as lists read from the store show it: with its event summary."""

    summary: str | None  # one line about the event (``inspector.summary``), if recognised


class RequestDetail(_RequestFields):
    """A captured request with everything: headers in order and the exact body bytes."""

    response: ResponseDetail
    headers: HeaderPairs
    body_base64: str
    original_id: int | None  # its id in the file it was imported from, if any


@dataclass(slots=True)
class Inserted:
    """What the writer hands back for a capture: its id, attempt and the response chosen."""

    id: int
    attempt: int
    first_attempt_id: int
    response: ResponseRecord
    values: tuple[SqlValue, ...] = field(repr=False)  # as inserted, in _INSERT's order
    rows_added: int = 1

    def item(self) -> RequestItem:
        """The list item, made only when someone listens (the stream)."""
        columns: dict[str, SqlValue] = dict(zip(_INSERT_COLUMNS, self.values, strict=True))
        columns["id"] = self.id
        columns["client_gave_up_after_ms"] = None
        return item(columns)


@dataclass
class Changed:
    """Result of a write job that removed rows (the writer re-counts for retention)."""

    count: int
    rows_added: int = -1


# -- shaping rows ----------------------------------------------------------------------------


def _fields(r: Row) -> _RequestFields:
    signature = r["signature"]
    version = r["tls_version"]
    return {
        "id": r["id"],
        "endpoint": r["endpoint"],
        "method": r["method"],
        "path": r["path"],
        "query": r["query"],
        "client": r["client"],
        "received_at": r["received_at"],
        "size": r["size"],
        "content_type": r["content_type"],
        "truncated": bool(r["truncated"]),
        "note": r["note"],
        "event_key": r["event_key"],
        "event_type": r["event_type"],
        "attempt": r["attempt"],
        "first_attempt_id": r["first_attempt_id"] or r["id"],
        "signature": _verdict(signature) if signature else None,
        "scheme": "https" if version else "http",
        "tls": {"version": version, "server_name": r["tls_server_name"]} if version else None,
    }


def _verdict(text: str) -> SignatureVerdict:
    stored = json.loads(text)
    # Verdicts stored before the doctor ran after the answer have no "doctor".
    stored.setdefault("doctor", None)
    verdict: SignatureVerdict = stored
    return verdict


def _response(r: Row) -> ResponseSummary:
    return {
        "status": r["response_status"],
        "ms": r["response_ms"],
        "delay_ms": r["delay_ms"],
        "dropped": bool(r["dropped"]),
        "client_gave_up_after_ms": r["client_gave_up_after_ms"],
        "in_progress": bool(r["in_progress"]),
    }


def item(r: Row) -> RequestItem:
    """A request as the list API and the stream show it."""
    return {**_fields(r), "response": _response(r)}


def detail(r: Row, body: bytes | None) -> RequestDetail:
    """A request with everything: headers as ordered pairs and the exact body bytes."""
    response_body: bytes = r["response_body"] or b""
    return {
        **_fields(r),
        "response": {
            **_response(r),
            "headers": json.loads(r["response_headers"] or "[]"),
            "body_base64": base64.b64encode(response_body).decode("ascii"),
        },
        "headers": json.loads(r["headers"]),
        "body_base64": base64.b64encode(body or b"").decode("ascii"),
        "original_id": r["original_id"],
    }


# -- capture writes --------------------------------------------------------------------------


# The answer to a capture, for its attempt number (see ``insert_request``).
Decide = Callable[[int], ResponseRecord]


def insert_request(conn: Connection, rec: CapturedRequest, decide: Decide) -> Inserted:
    """Store one captured request; count its attempt; record the response ``decide`` picks.

    ``decide(attempt)`` runs here, inside the transaction, because failure modes such as
    ``fail=2`` depend on the attempt number, which only the writer knows for certain.
    """
    if not conn.dialect.writable_ctes:
        return insert_requests(conn, [(rec, decide)])[0]
    attempt, first_id = 1, None
    if rec.event_key is not None:
        counted = conn.execute(_COUNT_ATTEMPT, (rec.endpoint, rec.event_key)).fetchall()[0]
        attempt, first_id = counted[0], counted[1] or None
    response = decide(attempt)
    values = _values(rec, response, attempt, first_id)
    new_id = _insert_together(conn, rec, values)
    notice(conn, "request", new_id)
    return Inserted(new_id, attempt, first_id or new_id, response, values)


def insert_requests(
    conn: Connection, captures: Sequence[tuple[CapturedRequest, Decide]]
) -> list[Inserted]:
    """``insert_request`` for several captures, in order (the writer's batch): the same rows,
    ids and answers as one by one; on SQLite in multi-row statements."""
    if conn.dialect.writable_ctes:
        return [insert_request(conn, rec, decide) for rec, decide in captures]
    next_id: int = conn.execute(_NEXT_ID).fetchone()[0]
    ids = range(next_id, next_id + len(captures))
    keyed = [
        (rec.endpoint, rec.event_key, 1, new_id, new_id)
        for new_id, (rec, _) in zip(ids, captures, strict=True)
        if rec.event_key is not None
    ]
    # Each keyed capture's (attempt, the event's first id), by its id.
    counted = {row[2]: (row[0], row[1]) for row in _COUNT_ATTEMPTS.run(conn, keyed)}
    inserted: list[Inserted] = []
    rows: list[tuple[SqlValue, ...]] = []
    bodies: list[tuple[SqlValue, ...]] = []
    for new_id, (rec, decide) in zip(ids, captures, strict=True):
        attempt, first_id = counted.get(new_id, (1, None))
        if first_id == new_id:  # this is the event's first attempt
            first_id = None
        response = decide(attempt)
        values = _values(rec, response, attempt, first_id)
        rows.append((new_id, *values))
        if rec.body:
            bodies.append((new_id, rec.body))
        # No notice: a SQLite store has no other process to tell (``SqliteBackend.commit``).
        inserted.append(Inserted(new_id, attempt, first_id or new_id, response, values))
    _ROWS.run(conn, rows)
    _BODIES.run(conn, bodies)
    return inserted


def _values(
    rec: CapturedRequest, response: ResponseRecord, attempt: int, first_id: int | None
) -> tuple[SqlValue, ...]:
    """A capture's row, in ``_INSERT_COLUMNS``' order."""
    signature = rec.signature
    return (
        rec.endpoint,
        rec.method,
        rec.path,
        rec.query,
        encode_headers(rec.headers),
        rec.client,
        rec.received_at,
        rec.received_ts,
        rec.size,
        rec.content_type,
        int(rec.truncated),
        rec.note,
        rec.event_key,
        rec.event_type,
        attempt,
        first_id,
        json.dumps(signature) if signature is not None else None,
        signature["status"] if signature else None,
        response.status,
        _OK_JSON if response.headers is OK_HEADERS else encode_headers(response.headers),
        response.body,
        response.ms,
        response.delay_ms,
        int(response.dropped),
        int(response.in_progress),
        rec.tls_version,
        rec.tls_server_name,
    )


def _insert_together(conn: Connection, rec: CapturedRequest, values: tuple[SqlValue, ...]) -> int:
    """The request, its body and its event's newest id in one statement (data-modifying
    CTEs): on PostgreSQL each statement is a round trip made under the write lock, which
    every replica's batches wait for."""
    parts = [f"WITH r AS ({_INSERT} RETURNING id)"]
    params: list[SqlValue] = list(values)
    if rec.body:
        parts.append(", b AS (INSERT INTO bodies (request_id, body) SELECT id, ? FROM r)")
        params.append(rec.body)
    if rec.event_key is not None:
        parts.append(
            ", e AS (UPDATE events SET last_id = r.id,"
            " first_id = CASE WHEN first_id = 0 THEN r.id ELSE first_id END"
            " FROM r WHERE endpoint = ? AND event_key = ?)"
        )
        params += [rec.endpoint, rec.event_key]
    rows = conn.execute(" ".join(parts) + " SELECT id FROM r", params).fetchall()
    return int(rows[0][0])


def finish_request(
    conn: Connection,
    request_id: int,
    response: ResponseRecord,
    client_gave_up_after_ms: float | None,
) -> RequestItem | None:
    """Record how a request that was in progress (a stall) ended; returns its new item."""
    conn.execute(
        "UPDATE requests SET response_status=?, response_headers=?, response_body=?,"
        " response_ms=?, delay_ms=?, dropped=?, client_gave_up_after_ms=?, in_progress=0"
        " WHERE id=?",
        (
            response.status,
            json.dumps(response.headers),
            response.body,
            response.ms,
            response.delay_ms,
            int(response.dropped),
            client_gave_up_after_ms,
            request_id,
        ),
    )
    row = conn.execute(f"SELECT {ITEM_COLUMNS} FROM requests WHERE id=?", (request_id,)).fetchone()
    if row is None:
        return None
    notice(conn, "update", request_id)
    return item(row)


def count_rows(conn: Connection) -> int:
    """The number of stored requests: the sum of the endpoints' counts (kept by triggers),
    not a count of a million rows."""
    return int(conn.execute("SELECT coalesce(sum(count), 0) FROM endpoint_stats").fetchone()[0])


def evict_oldest(conn: Connection, count: int) -> int:
    """Delete the ``count`` oldest requests (retention); returns how many went."""
    row = conn.execute(
        "SELECT id FROM requests ORDER BY id LIMIT 1 OFFSET ?", (count - 1,)
    ).fetchone()
    if row is None:
        return 0
    return _delete_through(conn, row[0])


def _delete_through(conn: Connection, cutoff: int) -> int:
    deleted = conn.execute("DELETE FROM requests WHERE id <= ?", (cutoff,)).rowcount
    conn.execute("DELETE FROM bodies WHERE request_id <= ?", (cutoff,))
    conn.execute("DELETE FROM events WHERE last_id <= ?", (cutoff,))
    return deleted


def delete_request(conn: Connection, request_id: int) -> Changed:
    count = conn.execute("DELETE FROM requests WHERE id=?", (request_id,)).rowcount
    conn.execute("DELETE FROM bodies WHERE request_id=?", (request_id,))
    if count:
        notice(conn, "deleted", request_id)
    return Changed(count)


def clear_endpoint(conn: Connection, endpoint: str | None) -> Changed:
    """Delete every request of ``endpoint`` (all endpoints when None) and its attempt counts."""
    notice(conn, "cleared", endpoint)
    if endpoint is None:
        count = conn.execute("DELETE FROM requests").rowcount
        conn.execute("DELETE FROM bodies")
        conn.execute("DELETE FROM events")
        return Changed(count)
    count = conn.execute("DELETE FROM requests WHERE endpoint=?", (endpoint,)).rowcount
    conn.execute("DELETE FROM bodies WHERE request_id NOT IN (SELECT id FROM requests)")
    conn.execute("DELETE FROM events WHERE endpoint=?", (endpoint,))
    return Changed(count)


# -- reads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFilter:
    endpoint: str | None = None
    method: str | None = None
    status: int | None = None
    signature: str | None = None
    event_type: str | None = None
    q: str | None = None
    # Every endpoint whose name starts with this (``?endpoint=ci-*``); with ``endpoint`` unset.
    endpoint_prefix: str | None = None


def _filter_clauses(conn: Connection, flt: RequestFilter) -> tuple[list[str], list[SqlValue]]:
    """``flt`` (all but the search ``q``) as SQL conditions and their parameters."""
    where: list[str] = []
    params: list[SqlValue] = []
    if flt.endpoint is not None:
        where.append("endpoint = ?")
        params.append(flt.endpoint)
    if flt.endpoint_prefix is not None:
        where.append("substr(endpoint, 1, ?) = ?")
        params += [len(flt.endpoint_prefix), flt.endpoint_prefix]
    if flt.method is not None:
        where.append("method = ?")
        params.append(flt.method.upper())
    if flt.status is not None:
        where.append("response_status = ?")
        params.append(flt.status)
    if flt.signature is not None:
        same = conn.dialect.same
        where.append(f"sig_status {same} ?" if flt.signature != "none" else "sig_status IS NULL")
        if flt.signature != "none":
            params.append(flt.signature)
    if flt.event_type is not None:
        where.append("event_type = ?")
        params.append(flt.event_type)
    return where, params


def list_requests(
    conn: Connection, flt: RequestFilter, limit: int, before: int | None
) -> tuple[list[ListedRequest], int | None]:
    """Newest first; returns the page and the ``before`` cursor of the next page (or None)."""
    where, params = _filter_clauses(conn, flt)
    if before is not None:
        where.append("id < ?")
        params.append(before)

    def page(clauses: list[str], args: list[SqlValue], count: int) -> list[RowLike]:
        sql = f"SELECT {ITEM_COLUMNS} FROM requests"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, count]).fetchall()

    rows: list[RowLike] = []
    if not flt.q:
        rows = page(where, params, limit + 1)
    else:
        # Newest first, a correlated body test stops as soon as the page is full: fast when
        # the term is common. When it is rare the whole store is read anyway, and one
        # sequential pass over the bodies is cheaper: so the recent window goes first, and
        # only if it does not fill the page, the rest of the store in one pass.
        # With SQLite's trigram index everything it covers is read through it (a store
        # catching up after an upgrade scans the rest: see search.py); with PostgreSQL's, the
        # rows below the window are.
        newest = before - 1 if before is not None else head_id(conn)
        bound = max(0, newest - SEARCH_WINDOW)
        lowered = flt.q.translate(_ASCII_LOWER)
        upto = _indexed_upto(conn) if search.usable(lowered) else None  # SQLite's FTS5
        fts = upto is not None
        trigram = not fts and search.usable(lowered) and trigrams.indexed(conn)
        if upto is not None:
            # Only the rows the index does not cover yet are scanned.
            bound = min(newest, upto)
        if trigram:
            # PostgreSQL's indexes cover every committed row: a term expected to be rare goes
            # to them straight away (the window's row-by-row test cost more than the search);
            # a common one is looked for in the window first, then asked for whole.
            asks = _trigram_asks(conn, flt.q)
            if sum(ask.share for ask in [*asks[0], asks[1]]) * newest <= CANDIDATES:
                bound = newest
            else:
                asks = _trigram_asks(conn, flt.q, whole=True)
        if not trigram or bound < newest:
            clause, args = _search(conn, flt.q, bound, recent=True)
            rows = page([*where, clause], [*params, *args], limit + 1)
        if len(rows) <= limit and bound > 0:
            need = limit + 1 - len(rows)
            found = _indexed(conn, flt.q, where, params, bound, need) if fts else None
            if found is not None:
                rows += found
            elif trigram:  # PostgreSQL's pg_trgm indexes
                rows += _trigram(conn, flt.q, where, params, bound, need, asks)
            else:
                clause, args = _search(conn, flt.q, bound, recent=False)
                rows += page([*where, clause], [*params, *args], need)
    items = with_summaries(conn, [item(r) for r in rows[:limit]])
    next_before = items[-1]["id"] if len(rows) > limit else None
    return items, next_before


SEARCH_WINDOW = 2000


def count_requests(conn: Connection, flt: RequestFilter, after: int, before: int | None) -> int:
    """How many requests with ``after < id < before`` pass ``flt`` (search included): the
    page's "new" count while it holds still. The range is recent, so the search's row-by-row
    form is the fast one."""
    where, params = _filter_clauses(conn, flt)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    if flt.q:
        clause, args = _search(conn, flt.q, after, recent=True)
        where.append(clause)
        params.extend(args)
    else:
        where.append("id > ?")
        params.append(after)
    sql = "SELECT count(*) FROM requests WHERE " + " AND ".join(where)
    return int(conn.execute(sql, params).fetchone()[0])


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_LETTER = re.compile("[A-Za-z]")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(text: str) -> str:
    return "%" + _escape(text) + "%"


def header_forms(q: str) -> list[str]:
    """``q`` as it appears in stored headers (JSON): escaped as msgspec stores them, and as
    ``json.dumps`` stored them before (ASCII escapes: ``café`` -> ``caf\\u00e9``)."""
    return list(dict.fromkeys([_encode(q).decode("utf-8")[1:-1], json.dumps(q)[1:-1]]))


def _search(
    conn: Connection, q: str, bound: int, *, recent: bool, per_row: bool | None = None
) -> tuple[str, list[SqlValue]]:
    """``q`` as a substring of the path, query, headers, event key or type, or the raw body,
    for requests above ``bound`` (``recent``) or at or below it; bodies are tested row by
    row (``per_row``, the default for ``recent``) or in one pass over them all.

    Case-insensitive for ASCII letters everywhere (SQLite's LIKE rule, which the PostgreSQL
    dialect spells out; the body is lower-cased the same way, byte-wise, so binary bodies
    stay searchable). Headers are stored as JSON, so they are matched against ``q`` escaped
    the same ways (``header_forms``).
    """
    dialect = conn.dialect
    lowered = q.translate(_ASCII_LOWER)
    like = _like(lowered)
    fold = bool(_ASCII_LETTER.search(q))
    # Nothing to fold (digits, CJK...): compare raw bytes, twice as fast as lower().
    body = dialect.contains_bytes("body", fold=fold)
    if recent if per_row is None else per_row:
        in_body = f"EXISTS (SELECT 1 FROM bodies WHERE request_id = requests.id AND {body})"
        one_pass = False
        if dialect.name != "sqlite":
            # PostgreSQL may run an EXISTS once, as a hashed subplan over every body it could
            # need (seen: a 2,000-row window read all 1,000,000 bodies; bounded to the window,
            # all 2,000 of them, 20 ms, for a term the first 150 rows answered). A scalar
            # subquery is never hashed: each row's body is read only if its text did not match.
            in_body = f"coalesce((SELECT {body} FROM bodies WHERE request_id = requests.id), false)"
    else:
        in_body = f"id IN (SELECT request_id FROM bodies WHERE request_id <= ? AND {body})"
        one_pass = True
    forms = [_like(form.translate(_ASCII_LOWER)) for form in header_forms(q)]
    tests: list[tuple[str, str]] = [
        (dialect.contains_text("path"), like),
        (dialect.contains_text("query"), like),
        *[(dialect.contains_text("headers"), form) for form in forms],
        (dialect.contains_text("event_key"), like),
        (dialect.contains_text("event_type"), like),
    ]
    if "\x00" in q and dialect.name != "sqlite":
        tests = []  # PostgreSQL's text cannot hold a NUL: only a body can match
    texts = "".join(f"{test} OR " for test, _ in tests)
    clause = f"{'id > ?' if recent else 'id <= ?'} AND ({texts}{in_body})"
    needle: str | bytes = dialect.fold_needle(lowered) if fold else q.encode("utf-8")
    args: list[SqlValue] = [bound, *(pattern for _, pattern in tests)]
    if one_pass:
        args.append(bound)
    return clause, [*args, needle]


# A rare term's candidates are gathered in the index's own order and sorted here: walking
# the index newest first costs several times more (FTS5 reads each doclist backwards).
# Past this many candidates in a shard the term is common, and the newest-first walk stops
# early.
CANDIDATES = 5000
_CONFIRM_CHUNK = 500


def _indexed_upto(conn: Connection) -> int | None:
    """SQLite: how far the index covers, if this connection reads one (None: scan)."""
    if not search.exists(conn):
        return None
    try:
        return search.indexed_upto(conn)
    except sqlite3.DatabaseError as exc:
        log.warning("search index: cannot read it (this search scans): %s", exc)
        return None


def _indexed(
    conn: Connection,
    q: str,
    where: list[str],
    params: list[SqlValue],
    bound: int,
    count: int,
) -> list[RowLike] | None:
    """SQLite: the newest ``count`` requests at or below ``bound`` that match ``q`` and
    ``where``, found through the trigram index (``search.py``), shard by shard, newest first,
    and confirmed by the scan's predicate. None when the index cannot be read (the caller
    scans)."""
    terms = [q.translate(_ASCII_LOWER), *(f.translate(_ASCII_LOWER) for f in header_forms(q))]
    clause, args = _search(conn, q, bound, recent=False, per_row=True)
    expression = search.match_expression(terms)
    schema = search.ATTACHED
    rows: list[RowLike] = []
    try:
        per = search.shard_ids(conn)
        for number in search.shards(conn, schema):
            if number * per > bound:
                continue
            table = search.shard_table(number)
            try:
                rows += _in_shard(
                    conn, f"{schema}.{table}", table, expression, where, params, clause, args,
                    bound, count - len(rows),
                )  # fmt: skip
            except sqlite3.OperationalError as exc:
                # Dropped since the list was read: none of its rows are left.
                if "no such table" not in str(exc):
                    raise
            if len(rows) >= count:
                break
    except sqlite3.DatabaseError as exc:
        log.warning("search index: cannot read it (this search scans): %s", exc)
        return None
    return rows


def _in_shard(
    conn: Connection,
    qualified: str,
    table: str,
    expression: str,
    where: list[str],
    params: list[SqlValue],
    clause: str,
    args: list[SqlValue],
    bound: int,
    count: int,
) -> list[RowLike]:
    """The newest ``count`` confirmed matches among one shard's candidates."""
    found = conn.execute(
        f"SELECT rowid FROM {qualified} WHERE {table} MATCH ? AND rowid <= ? LIMIT ?",
        (expression, bound, CANDIDATES + 1),
    ).fetchall()
    if len(found) <= CANDIDATES:
        ids = sorted((r[0] for r in found), reverse=True)
        rows: list[RowLike] = []
        for start in range(0, len(ids), _CONFIRM_CHUNK):
            chunk = ids[start : start + _CONFIRM_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(
                f"SELECT {ITEM_COLUMNS} FROM requests WHERE id IN ({marks})"
                f" AND {' AND '.join([*where, clause])} ORDER BY id DESC LIMIT ?",
                [*chunk, *params, *args, count - len(rows)],
            ).fetchall()
            if len(rows) >= count:
                break
        return rows
    # The shard walks its rows newest first; each is confirmed as it comes, until the page
    # is full: CROSS JOIN keeps that order (no sort, no list of every candidate).
    sql = (
        f"SELECT {ITEM_COLUMNS} FROM (SELECT rowid AS sid FROM {qualified} WHERE {table} MATCH ?"
        " AND rowid <= ? ORDER BY rowid DESC) AS candidates"
        " CROSS JOIN requests ON requests.id = candidates.sid"
        f" WHERE {' AND '.join([*where, clause])} ORDER BY candidates.sid DESC LIMIT ?"
    )
    return conn.execute(sql, [expression, bound, *params, *args, count]).fetchall()


# PostgreSQL: what to ask each trigram index for (``trigrams.choose``): the requests' text,
# for each form of the term it may hold it in, and the bodies, for the term's escaped form.
_Asks = tuple[list[trigrams.Ask], trigrams.Ask]


def _trigram_asks(conn: Connection, q: str, *, whole: bool = False) -> _Asks:
    """What to ask for ``q``: its selective trigrams (``trigrams.py``), or with ``whole`` (a
    common term) the whole term, every trigram of which pg_trgm intersects."""
    lowered = q.translate(_ASCII_LOWER)
    forms = list(dict.fromkeys([lowered, *(f.translate(_ASCII_LOWER) for f in header_forms(q))]))
    body = search.escaped(lowered.encode("utf-8"))
    sampler: trigrams.Sampler | None = getattr(conn, "sampler", None)
    sample = None if whole or sampler is None else sampler.get(conn, trigrams.sample)
    text_counts, body_counts = (sample.text, sample.body) if sample is not None else ({}, {})
    asks = [trigrams.choose(form, sample, text_counts) for form in forms]
    return asks, trigrams.choose(body, sample, body_counts)


def _candidates(expression: str, ask: trigrams.Ask, whole: str) -> tuple[str, list[SqlValue]]:
    """Rows whose ``expression`` (an indexed one) holds the pieces ``ask`` names (the index's
    condition) and ``whole`` (a filter on the rows the index finds: ``strpos`` is no
    operator an index serves)."""
    sql = f"({expression} LIKE ? ESCAPE '\\' AND strpos({expression}, ?) > 0)"
    return sql, ["%" + "%".join(_escape(piece) for piece in ask.pieces) + "%", whole]


def _trigram(
    conn: Connection,
    q: str,
    where: list[str],
    params: list[SqlValue],
    bound: int,
    count: int,
    asks: _Asks,
) -> list[RowLike]:
    """PostgreSQL: the newest ``count`` requests at or below ``bound`` that match ``q`` and
    ``where``. Candidates: from the pg_trgm indexes (``trigrams.py``) the requests whose folded
    text holds the term, and those whose body's first ``BODY_PREFIX`` bytes (as
    ``encode(body, 'escape')`` spells them) do; and every body longer than that
    (``bodies_long``). Each is confirmed by the scan's predicate, newest first, until the page
    is full, in a LATERAL subquery that the planner cannot turn into a join (its ``LIMIT``
    keeps it a subquery run for each candidate in turn): as a join, it twice chose to walk
    every request newest first, merging with the candidates (23 s at a million)."""
    texts, body = asks
    lowered = q.translate(_ASCII_LOWER)
    forms = list(dict.fromkeys([lowered, *(f.translate(_ASCII_LOWER) for f in header_forms(q))]))
    in_text: list[str] = []
    found: list[SqlValue] = []
    for ask, form in zip(texts, forms, strict=True):
        sql, args = _candidates(trigrams.TEXT, ask, form)
        in_text.append(sql)
        found += args
    in_body, args = _candidates(trigrams.BODY, body, search.escaped(lowered.encode("utf-8")))
    found += args
    clause, args = _search(conn, q, bound, recent=False, per_row=True)
    sql = (
        f"WITH candidates AS MATERIALIZED (SELECT id FROM requests WHERE {' OR '.join(in_text)}"
        f" UNION SELECT request_id FROM bodies WHERE {in_body}"
        f" UNION SELECT request_id FROM bodies WHERE {trigrams.LONG})"
        " SELECT r.* FROM (SELECT id FROM candidates WHERE id <= ? ORDER BY id DESC) AS c"
        f" CROSS JOIN LATERAL (SELECT {ITEM_COLUMNS} FROM requests WHERE requests.id = c.id"
        f" AND {' AND '.join([*where, clause])} LIMIT 1) AS r ORDER BY c.id DESC LIMIT ?"
    )
    return conn.execute(sql, [*found, bound, *params, *args, count]).fetchall()


def with_summaries(conn: Connection, items: list[RequestItem]) -> list[ListedRequest]:
    """List items with their ``summary`` (see ``inspector.summary``), from their stored bodies.

    Read-time only: one query for the page's small event bodies, nothing on the capture path.
    """
    wanted = [
        it["id"]
        for it in items
        if it["event_type"] is not None and not it["truncated"] and 0 < it["size"] <= MAX_BYTES
    ]
    bodies: dict[int, bytes] = {}
    if wanted:
        marks = ",".join("?" * len(wanted))
        bodies = dict(
            conn.execute(
                f"SELECT request_id, body FROM bodies WHERE request_id IN ({marks})", wanted
            )
        )
    out: list[ListedRequest] = []
    for it in items:
        body = bodies.get(it["id"])
        summary = summarize(it["event_type"], bytes(body)) if body is not None else None
        out.append({**it, "summary": summary})
    return out


def get_request(
    conn: Connection, request_id: int, body_limit: int | None = None
) -> RequestDetail | None:
    """One request in full; with ``body_limit``, only the body's first ``body_limit`` bytes
    are read (and sent): the page asks for none, and fetches the body's bytes itself."""
    row = conn.execute("SELECT * FROM requests WHERE id=?", (request_id,)).fetchone()
    if row is None:
        return None
    if body_limit is None:
        return detail(row, get_body(conn, request_id))
    return detail(row, body_slice(conn, request_id, 0, body_limit)[0])


def get_body(conn: Connection, request_id: int) -> bytes:
    row = conn.execute("SELECT body FROM bodies WHERE request_id=?", (request_id,)).fetchone()
    return bytes(row[0]) if row is not None else b""


def body_size(conn: Connection, request_id: int) -> int:
    """How many bytes of the request's body are stored (0: none kept)."""
    row = conn.execute(
        "SELECT length(body) FROM bodies WHERE request_id=?", (request_id,)
    ).fetchone()
    return int(row[0]) if row is not None else 0


def body_slice(conn: Connection, request_id: int, start: int, length: int) -> tuple[bytes, int]:
    """``length`` bytes of the stored body from ``start`` (fewer at its end), and its size.

    Only the bytes asked for are read, so the first screenful of a 10 MiB body costs what a
    small body does: on SQLite through its incremental blob I/O (only the pages holding those
    bytes); on PostgreSQL with ``substring`` of the ``bytea``, which fetches only the TOAST
    chunks that hold them (and decompresses a compressed body only up to the slice's end).
    """
    if not isinstance(conn, sqlite3.Connection):
        row = conn.execute(
            "SELECT substring(body FROM ?::integer FOR ?::integer), length(body) FROM bodies"
            " WHERE request_id = ?",
            (start + 1, max(length, 0), request_id),
        ).fetchone()
        return (bytes(row[0]), int(row[1])) if row is not None else (b"", 0)
    try:
        blob = conn.blobopen("bodies", "body", request_id, readonly=True)
    except sqlite3.OperationalError:  # no row: no body kept
        return b"", 0
    with blob:
        size = len(blob)
        if start >= size or length <= 0:
            return b"", size
        blob.seek(start)
        return blob.read(min(length, size - start)), size


def request_exists(conn: Connection, request_id: int) -> tuple[bool, str | None]:
    row = conn.execute("SELECT content_type FROM requests WHERE id=?", (request_id,)).fetchone()
    return (row is not None, row[0] if row is not None else None)


def items_after(
    conn: Connection, after_id: int, endpoint: str | None, limit: int
) -> list[ListedRequest]:
    """Requests with id > ``after_id``, oldest first (stream resume)."""
    sql = f"SELECT {ITEM_COLUMNS} FROM requests WHERE id > ?"
    params: list[SqlValue] = [after_id]
    if endpoint is not None:
        sql += " AND endpoint = ?"
        params.append(endpoint)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    return with_summaries(conn, [item(r) for r in conn.execute(sql, params)])


def matching_after(
    conn: Connection, flt: RequestFilter, after: int, limit: int
) -> tuple[list[ListedRequest], int]:
    """Up to ``limit`` requests matching ``flt`` with id > ``after``, oldest first, and the
    newest id this read covers: every request up to it has been looked at.

    The head is read first: commits happen in id order, so every id up to it is already
    committed, and the bound ``id <= head`` keeps later commits for the next call.
    """
    head = head_id(conn)
    where, params = _filter_clauses(conn, flt)
    if flt.q:
        clause, args = _search(conn, flt.q, after, recent=True)  # "id > after AND matches q"
        where.append(clause)
        params += args
    else:
        where.append("id > ?")
        params.append(after)
    where.append("id <= ?")
    params.append(head)
    sql = f"SELECT {ITEM_COLUMNS} FROM requests WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
    rows = conn.execute(sql, [*params, limit]).fetchall()
    return with_summaries(conn, [item(r) for r in rows]), head


def matching_ids(conn: Connection, flt: RequestFilter, ids: list[int]) -> list[ListedRequest]:
    """Those of ``ids`` that match ``flt`` now (a stall ended, a verdict changed), by id."""
    if not ids:
        return []
    where, params = _filter_clauses(conn, flt)
    if flt.q:
        clause, args = _search(conn, flt.q, 0, recent=True)
        where.append(clause)
        params += args
    where.append(f"id IN ({','.join('?' * len(ids))})")
    params += ids
    sql = f"SELECT {ITEM_COLUMNS} FROM requests WHERE {' AND '.join(where)} ORDER BY id"
    return with_summaries(conn, [item(r) for r in conn.execute(sql, params)])


def head_id(conn: Connection) -> int:
    """The largest request id ever assigned by a committed write (0 if none): ids only grow,
    even over deletes; every id up to it is committed or will never be."""
    return int(conn.execute(conn.dialect.head_sql).fetchone()[0])


def items_by_ids(conn: Connection, ids: Sequence[int]) -> dict[int, RequestItem]:
    """The list items of these requests (those that still exist), by id."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT {ITEM_COLUMNS} FROM requests WHERE id IN ({marks})", ids)
    return {r["id"]: item(r) for r in rows}


def end_interrupted(conn: Connection, before_ts: float | None = None) -> Changed:
    """Requests left in progress by a stop during a stall: mark them, they will not finish.

    ``before_ts``: only those received before it (on a shared store, younger stalls may be
    another replica's, still running)."""
    sql = (
        "UPDATE requests SET in_progress=0, note=coalesce(note || ' ', '') ||"
        " 'The inspector stopped during the stall; no response was sent.' WHERE in_progress=1"
    )
    params: tuple[float, ...] = ()
    if before_ts is not None:
        sql, params = sql + " AND received_ts < ?", (before_ts,)
    count = conn.execute(sql, params).rowcount
    return Changed(count, rows_added=0)


# -- re-verification -------------------------------------------------------------------------

# What a verdict is computed from: id, headers, body, received time, the stored verdict (JSON).
SignatureInput = tuple[int, HeaderPairs, bytes, float, str | None]


def signature_inputs(
    conn: Connection, endpoint: str, after_id: int, limit: int
) -> list[SignatureInput]:
    """What a verdict is computed from, for an endpoint's complete requests after ``after_id``
    (id order): id, headers, body, received time, the stored verdict (JSON)."""
    rows = conn.execute(
        "SELECT r.id, r.headers, b.body, r.received_ts, r.signature FROM requests AS r"
        " LEFT JOIN bodies AS b ON b.request_id = r.id"
        " WHERE r.endpoint = ? AND r.id > ? AND r.truncated = 0 ORDER BY r.id LIMIT ?",
        (endpoint, after_id, limit),
    ).fetchall()
    return [
        (r[0], [(h[0], h[1]) for h in json.loads(r[1])], bytes(r[2] or b""), r[3], r[4])
        for r in rows
    ]


def set_signatures(conn: Connection, verdicts: list[tuple[int, str | None]]) -> list[RequestItem]:
    """Store re-computed verdicts (JSON or None); returns the changed requests' items."""
    for request_id, verdict in verdicts:
        status = json.loads(verdict)["status"] if verdict else None
        conn.execute(
            "UPDATE requests SET signature = ?, sig_status = ? WHERE id = ?",
            (verdict, status, request_id),
        )
    ids = [request_id for request_id, _ in verdicts]
    for request_id in ids:
        notice(conn, "update", request_id)
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT {ITEM_COLUMNS} FROM requests WHERE id IN ({marks})", ids)
    return [item(r) for r in rows]


# -- diagnosis (after the answer) ------------------------------------------------------------


@dataclass(frozen=True)
class DiagnosisInput:
    """What the doctor needs of a stored request: the request line, headers, body, when it
    arrived, and its stored verdict (JSON) to diagnose."""

    method: str
    target: str  # the raw path with its query
    headers: HeaderPairs
    body: bytes
    received_ts: float
    signature: str


def diagnosis_input(conn: Connection, request_id: int) -> DiagnosisInput | None:
    """The stored request ``request_id`` as the doctor reads it; None if gone or unverified."""
    row = conn.execute(
        "SELECT r.method, r.path, r.query, r.headers, r.received_ts, r.signature, b.body"
        " FROM requests AS r LEFT JOIN bodies AS b ON b.request_id = r.id WHERE r.id = ?",
        (request_id,),
    ).fetchone()
    if row is None or not row["signature"]:
        return None
    query = row["query"]
    return DiagnosisInput(
        method=row["method"],
        target=row["path"] + (f"?{query}" if query else ""),
        headers=[(h[0], h[1]) for h in json.loads(row["headers"])],
        body=bytes(row["body"] or b""),
        received_ts=row["received_ts"],
        signature=row["signature"],
    )


def set_diagnosis(
    conn: Connection, request_id: int, diagnosed: str, verdict: str
) -> RequestItem | None:
    """Replace the verdict ``diagnosed`` (JSON, as read) with ``verdict``, the same verdict with
    the doctor's finding. Nothing changes if the stored verdict moved on meanwhile (the
    endpoint's secret changed): returns the request's new item, or None."""
    changed = conn.execute(
        "UPDATE requests SET signature = ? WHERE id = ? AND signature = ?",
        (verdict, request_id, diagnosed),
    ).rowcount
    if not changed:
        return None
    notice(conn, "update", request_id)
    row = conn.execute(
        f"SELECT {ITEM_COLUMNS} FROM requests WHERE id = ?", (request_id,)
    ).fetchone()
    return item(row) if row is not None else None


# -- what a request is naturally compared with -----------------------------------------------


class DiffPartners(TypedDict):
    """``GET /api/requests/{id}/pairs``: the captures a request is naturally compared with."""

    previous_attempt: int | None  # the attempt before it of the same event (endpoint, key)
    previous: int | None  # the capture before it on the same endpoint


def diff_partners(conn: Connection, request_id: int) -> DiffPartners | None:
    """The previous attempt of the same event and the previous capture on the endpoint."""
    row = conn.execute(
        "SELECT"
        " (SELECT max(p.id) FROM requests AS p WHERE p.endpoint = r.endpoint AND p.id < r.id),"
        " (SELECT max(p.id) FROM requests AS p WHERE p.endpoint = r.endpoint"
        "   AND p.event_key = r.event_key AND p.id < r.id)"
        " FROM requests AS r WHERE r.id = ?",
        (request_id,),
    ).fetchone()
    if row is None:
        return None
    return {"previous_attempt": row[1], "previous": row[0]}
