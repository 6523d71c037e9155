"""A stored request: the records it is read as, reading one, and removing requests.

Rows become API-shaped records here (``RequestItem`` by ``item``, ``RequestDetail`` by
``detail``), so the JSON the API returns and the items the stream publishes come from one
function, with one declared shape. The other modules of request jobs shape their rows with
them: ``intake`` (a capture's insert, a stall's end), ``listing`` (lists and search) and
``verdicts`` (re-verification, the doctor); ``replays`` and ``deliveries`` share the column
types (``SqlValue``, ``Row``, ``HeaderPairs``).

Jobs are functions of ``(conn, ...)`` that the ``Store`` runs in its writer or readers. Write
jobs run inside the writer's batch transaction and must not commit. Read jobs run on a read
connection.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from inspector.store.backend import Connection, RowLike, notice

# Columns of the list view: everything but the headers and the response body.
ITEM_COLUMNS = (
    "id, endpoint, method, path, query, client, received_at, received_ts, size, content_type,"
    " truncated, note, event_key, event_type, attempt, first_attempt_id, signature,"
    " response_status, response_ms, delay_ms, dropped, client_gave_up_after_ms, in_progress,"
    " tls_version, tls_server_name"
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


# -- removing requests -----------------------------------------------------------------------


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
