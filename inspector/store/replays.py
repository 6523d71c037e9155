"""SQL jobs for replays (replay, mirror, proxy) and for export/import of captured requests.

A replay row records one exchange with the user's app: what was sent (method, URL, headers;
the body only when it differs from the captured one) and what came back (status, headers,
the first ``RESPONSE_CAP`` bytes of the body), or the error. Rows are linked to the captured
request by ``request_id`` and go when it goes (``prune``, run by the store after each batch).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, cast

from inspector.store import requests
from inspector.store.backend import Connection, insert_id, notice
from inspector.store.requests import HeaderPairs, RequestItem, Row, SqlValue

KINDS = ("replay", "mirror", "proxy")
RESPONSE_CAP = 1024 * 1024  # response bytes stored per replay

_SUMMARY = (
    "id, request_id, kind, url, method, sent_at, status, elapsed_ms, error,"
    " request_body IS NOT NULL AS edited, length(response_body) AS response_size,"
    " response_truncated, insecure"
)


@dataclass
class ReplayRecord:
    """One exchange with the app, as the engine hands it to ``insert_replay``."""

    request_id: int
    kind: str
    url: str
    method: str
    request_headers: list[tuple[str, str]]
    request_body: bytes | None  # None: the captured body, sent unchanged
    sent_at: str
    status: int | None = None
    elapsed_ms: float = 0.0
    error: str | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    response_truncated: bool = False
    insecure: bool = False  # the target's certificate was not verified


class ReplaySummary(TypedDict):
    """One exchange with the app (replay, mirror or proxy), as a request's list shows it."""

    id: int
    request_id: int
    kind: str  # replay | mirror | proxy
    url: str
    method: str
    sent_at: str
    status: int | None  # None: no answer (see ``error``)
    elapsed_ms: float
    error: str | None
    edited: bool  # the body sent differs from the captured one
    response_size: int  # bytes of the answer's body stored (at most RESPONSE_CAP)
    response_truncated: bool
    insecure: bool  # sent without verifying the target's certificate


class ReplayDetail(ReplaySummary):
    """One exchange in full: what was sent and what came back."""

    request_headers: HeaderPairs
    request_body_base64: str
    headers: HeaderPairs  # the answer's
    body_base64: str  # the answer's (the first RESPONSE_CAP bytes)


def summary(r: Row) -> ReplaySummary:
    return {
        "id": r["id"],
        "request_id": r["request_id"],
        "kind": r["kind"],
        "url": r["url"],
        "method": r["method"],
        "sent_at": r["sent_at"],
        "status": r["status"],
        "elapsed_ms": r["elapsed_ms"],
        "error": r["error"],
        "edited": bool(r["edited"]),
        "response_size": r["response_size"] or 0,
        "response_truncated": bool(r["response_truncated"]),
        "insecure": bool(r["insecure"]),
    }


def insert_replay(conn: Connection, rec: ReplayRecord) -> int:
    assert rec.kind in KINDS
    replay_id = insert_id(
        conn,
        "INSERT INTO replays (request_id, kind, url, method, request_headers, request_body,"
        " sent_at, status, elapsed_ms, error, response_headers, response_body,"
        " response_truncated, insecure) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            rec.request_id,
            rec.kind,
            rec.url,
            rec.method,
            json.dumps(rec.request_headers),
            rec.request_body,
            rec.sent_at,
            rec.status,
            rec.elapsed_ms,
            rec.error,
            json.dumps(rec.response_headers),
            rec.response_body[:RESPONSE_CAP],
            int(rec.response_truncated or len(rec.response_body) > RESPONSE_CAP),
            int(rec.insecure),
        ),
    )
    notice(conn, "update", rec.request_id)
    return replay_id


def list_replays(conn: Connection, request_id: int, limit: int) -> list[ReplaySummary]:
    """A request's replays and forwards, newest first, without bodies."""
    rows = conn.execute(
        f"SELECT {_SUMMARY} FROM replays WHERE request_id=? ORDER BY id DESC LIMIT ?",
        (request_id, limit),
    )
    return [summary(r) for r in rows]


def get_replay(conn: Connection, replay_id: int) -> ReplayDetail | None:
    """One replay with everything: what was sent (headers, body) and what came back."""
    row = conn.execute(
        f"SELECT {_SUMMARY}, request_headers, request_body, response_headers, response_body"
        " FROM replays WHERE id=?",
        (replay_id,),
    ).fetchone()
    if row is None:
        return None
    sent: bytes | None = row["request_body"]
    if sent is None:
        sent = requests.get_body(conn, row["request_id"])
    return {
        **summary(row),
        "request_headers": json.loads(row["request_headers"]),
        "request_body_base64": base64.b64encode(sent).decode("ascii"),
        "headers": json.loads(row["response_headers"] or "[]"),
        "body_base64": base64.b64encode(row["response_body"] or b"").decode("ascii"),
    }


def request_item(conn: Connection, request_id: int) -> RequestItem | None:
    """The captured request's list item (what the stream's "update" carries)."""
    row = conn.execute(
        f"SELECT {requests.ITEM_COLUMNS} FROM requests WHERE id=?", (request_id,)
    ).fetchone()
    return requests.item(row) if row is not None else None


def prune(conn: Connection, added: int) -> None:
    """Drop the replays of requests that are gone (the store runs this after each batch).

    Retention evicts the oldest requests, so replays below the oldest remaining id go (an
    index range, cheap on every batch). Deletes of single requests or endpoints report
    ``added < 0``; only then is the full orphan sweep worth its cost.
    """
    conn.execute(
        "DELETE FROM replays WHERE request_id <"
        " (SELECT coalesce(min(id), 9223372036854775807) FROM requests)"
    )
    if added < 0:
        conn.execute("DELETE FROM replays WHERE request_id NOT IN (SELECT id FROM requests)")


# -- export and import -----------------------------------------------------------------------


class StoredRequest(TypedDict):
    """A ``requests`` row, every column as stored (JSON columns still text)."""

    id: int
    endpoint: str
    method: str
    path: str
    query: str
    headers: str  # JSON: [[name, value], ...]
    client: str | None
    received_at: str
    received_ts: float
    size: int
    content_type: str | None
    truncated: int  # 0 or 1
    note: str | None
    event_key: str | None
    event_type: str | None
    attempt: int
    first_attempt_id: int | None  # None for a first attempt
    signature: str | None  # JSON verdict
    sig_status: str | None
    response_status: int | None
    response_headers: str | None  # JSON
    response_body: bytes | None
    response_ms: float | None
    delay_ms: float | None
    dropped: int
    client_gave_up_after_ms: float | None
    in_progress: int
    original_id: int | None
    tls_version: str | None  # None: it came over plain HTTP
    tls_server_name: str | None


def export_page(
    conn: Connection, endpoint: str | None, after_id: int, limit: int
) -> list[tuple[StoredRequest, bytes]]:
    """Full rows (every column) and bodies of requests with id > ``after_id``, oldest first."""
    sql = "SELECT * FROM requests WHERE id > ?"
    params: list[SqlValue] = [after_id]
    if endpoint is not None:
        sql += " AND endpoint = ?"
        params.append(endpoint)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    # SELECT * of ``requests``: the schema guarantees the shape.
    rows = [cast(StoredRequest, dict(r)) for r in conn.execute(sql, params)]
    return [(row, requests.get_body(conn, row["id"])) for row in rows]


@dataclass
class Imported:
    """Result of an import batch: the new ids, in file order."""

    ids: list[int]
    rows_added: int = 0


# Columns an import writes, in order; ``first_attempt_id`` is mapped to the new ids.
IMPORT_COLUMNS = (
    "endpoint",
    "method",
    "path",
    "query",
    "headers",
    "client",
    "received_at",
    "received_ts",
    "size",
    "content_type",
    "truncated",
    "note",
    "event_key",
    "event_type",
    "attempt",
    "first_attempt_id",
    "signature",
    "sig_status",
    "response_status",
    "response_headers",
    "response_body",
    "response_ms",
    "delay_ms",
    "dropped",
    "client_gave_up_after_ms",
    "in_progress",
    "original_id",
    "tls_version",
    "tls_server_name",
)


def import_rows(
    conn: Connection,
    rows: Sequence[tuple[Mapping[str, SqlValue], bytes]],
    id_map: dict[int, int],
) -> Imported:
    """Insert exported rows (column dicts without ``id``, plus the body) as new requests.

    ``id_map`` (original id -> new id) spans batches of one import, so a retry keeps
    pointing at its first attempt. Event attempt counters are updated like a capture's.
    """
    sql = (
        f"INSERT INTO requests ({', '.join(IMPORT_COLUMNS)})"
        f" VALUES ({', '.join('?' for _ in IMPORT_COLUMNS)})"
    )
    ids: list[int] = []
    for columns, body in rows:
        values = dict(columns)
        first = values.get("first_attempt_id")
        values["first_attempt_id"] = id_map.get(first) if isinstance(first, int) else None
        new_id = insert_id(conn, sql, [values.get(name) for name in IMPORT_COLUMNS])
        ids.append(new_id)
        original = values.get("original_id")
        if isinstance(original, int):
            id_map[original] = new_id
        if body:
            conn.execute("INSERT INTO bodies (request_id, body) VALUES (?, ?)", (new_id, body))
        key = values.get("event_key")
        if key is not None:
            attempt = int(values.get("attempt") or 1)
            conn.execute(
                "INSERT INTO events (endpoint, event_key, attempts, first_id, last_id)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint, event_key) DO UPDATE SET"
                f" attempts = {conn.dialect.greatest}(events.attempts, excluded.attempts),"
                " last_id = excluded.last_id",
                (values["endpoint"], key, attempt, values["first_attempt_id"] or new_id, new_id),
            )
    return Imported(ids, rows_added=len(ids))


def endpoint_ids(conn: Connection, endpoint: str) -> list[int]:
    """The ids of an endpoint's requests in the order they arrived (replay --endpoint)."""
    rows = conn.execute("SELECT id FROM requests WHERE endpoint=? ORDER BY id", (endpoint,))
    return [r[0] for r in rows]
