"""SQL jobs: functions of ``(conn, ...)`` that the ``Store`` runs in its writer or readers.

Write jobs run inside the writer's batch transaction and must not commit. Read jobs run on a
per-thread read connection. Rows become API-shaped dicts here (``item``/``detail``), so the
JSON the API returns and the summaries the stream publishes come from one function.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inspector.capture import CapturedRequest, ResponseRecord

# Columns of the list view: everything but the headers and the response body.
ITEM_COLUMNS = (
    "id, endpoint, method, path, query, client, received_at, received_ts, size, content_type,"
    " truncated, note, event_key, event_type, attempt, first_attempt_id, signature,"
    " response_status, response_ms, delay_ms, dropped, client_gave_up_after_ms, in_progress"
)

_INSERT = (
    "INSERT INTO requests (endpoint, method, path, query, headers, client, received_at,"
    " received_ts, size, content_type, truncated, note, event_key, event_type, attempt,"
    " first_attempt_id, signature, sig_status, response_status, response_headers,"
    " response_body, response_ms, delay_ms, dropped, in_progress)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@dataclass
class Inserted:
    """What the writer hands back for a capture: its id, attempt and the response chosen."""

    id: int
    attempt: int
    first_attempt_id: int
    response: ResponseRecord
    columns: dict[str, Any] = field(repr=False)
    rows_added: int = 1

    def item(self) -> dict[str, Any]:
        return item(self.columns)


@dataclass
class Changed:
    """Result of a write job that removed rows (the writer re-counts for retention)."""

    count: int
    rows_added: int = -1


# -- shaping rows ----------------------------------------------------------------------------


def item(r: Mapping[str, Any]) -> dict[str, Any]:
    """A request as the list API and the stream show it."""
    signature = r["signature"]
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
        "signature": json.loads(signature) if signature else None,
        "response": {
            "status": r["response_status"],
            "ms": r["response_ms"],
            "delay_ms": r["delay_ms"],
            "dropped": bool(r["dropped"]),
            "client_gave_up_after_ms": r["client_gave_up_after_ms"],
            "in_progress": bool(r["in_progress"]),
        },
    }


def detail(r: Mapping[str, Any], body: bytes | None) -> dict[str, Any]:
    """A request with everything: headers as ordered pairs and the exact body bytes."""
    out = item(r)
    out["headers"] = json.loads(r["headers"])
    out["body_base64"] = base64.b64encode(body or b"").decode("ascii")
    response_body = r["response_body"] or b""
    out["response"]["headers"] = json.loads(r["response_headers"] or "[]")
    out["response"]["body_base64"] = base64.b64encode(response_body).decode("ascii")
    return out


# -- capture writes --------------------------------------------------------------------------


def insert_request(
    conn: sqlite3.Connection,
    rec: CapturedRequest,
    decide: Callable[[int], ResponseRecord],
) -> Inserted:
    """Store one captured request; count its attempt; record the response ``decide`` picks.

    ``decide(attempt)`` runs here, inside the transaction, because failure modes such as
    ``fail=2`` depend on the attempt number, which only the writer knows for certain.
    """
    attempt, first_id = 1, None
    if rec.event_key is not None:
        prev = conn.execute(
            "SELECT attempts, first_id FROM events WHERE endpoint=? AND event_key=?",
            (rec.endpoint, rec.event_key),
        ).fetchone()
        if prev is not None:
            attempt, first_id = prev[0] + 1, prev[1]
    response = decide(attempt)
    signature = json.dumps(rec.signature) if rec.signature is not None else None
    columns: dict[str, Any] = {
        "endpoint": rec.endpoint,
        "method": rec.method,
        "path": rec.path,
        "query": rec.query,
        "headers": json.dumps(rec.headers),
        "client": rec.client,
        "received_at": rec.received_at,
        "received_ts": rec.received_ts,
        "size": rec.size,
        "content_type": rec.content_type,
        "truncated": int(rec.truncated),
        "note": rec.note,
        "event_key": rec.event_key,
        "event_type": rec.event_type,
        "attempt": attempt,
        "first_attempt_id": first_id,
        "signature": signature,
        "sig_status": rec.signature["status"] if rec.signature else None,
        "response_status": response.status,
        "response_headers": json.dumps(response.headers),
        "response_body": response.body,
        "response_ms": response.ms,
        "delay_ms": response.delay_ms,
        "dropped": int(response.dropped),
        "in_progress": int(response.in_progress),
    }
    cur = conn.execute(_INSERT, tuple(columns.values()))
    new_id = cur.lastrowid
    assert new_id is not None
    columns["id"] = new_id
    columns["client_gave_up_after_ms"] = None
    if rec.body:
        conn.execute("INSERT INTO bodies (request_id, body) VALUES (?, ?)", (new_id, rec.body))
    if rec.event_key is not None:
        if first_id is None:
            conn.execute(
                "INSERT INTO events (endpoint, event_key, attempts, first_id, last_id)"
                " VALUES (?, ?, 1, ?, ?)",
                (rec.endpoint, rec.event_key, new_id, new_id),
            )
        else:
            conn.execute(
                "UPDATE events SET attempts=?, last_id=? WHERE endpoint=? AND event_key=?",
                (attempt, new_id, rec.endpoint, rec.event_key),
            )
    return Inserted(new_id, attempt, first_id or new_id, response, columns)


def finish_request(
    conn: sqlite3.Connection,
    request_id: int,
    response: ResponseRecord,
    client_gave_up_after_ms: float | None,
) -> dict[str, Any] | None:
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
    return item(row) if row is not None else None


def evict_oldest(conn: sqlite3.Connection, count: int) -> int:
    """Delete the ``count`` oldest requests (retention); returns how many went."""
    row = conn.execute(
        "SELECT id FROM requests ORDER BY id LIMIT 1 OFFSET ?", (count - 1,)
    ).fetchone()
    if row is None:
        return 0
    return _delete_through(conn, row[0])


def _delete_through(conn: sqlite3.Connection, cutoff: int) -> int:
    deleted = conn.execute("DELETE FROM requests WHERE id <= ?", (cutoff,)).rowcount
    conn.execute("DELETE FROM bodies WHERE request_id <= ?", (cutoff,))
    conn.execute("DELETE FROM events WHERE last_id <= ?", (cutoff,))
    return deleted


def delete_request(conn: sqlite3.Connection, request_id: int) -> Changed:
    count = conn.execute("DELETE FROM requests WHERE id=?", (request_id,)).rowcount
    conn.execute("DELETE FROM bodies WHERE request_id=?", (request_id,))
    return Changed(count)


def clear_endpoint(conn: sqlite3.Connection, endpoint: str | None) -> Changed:
    """Delete every request of ``endpoint`` (all endpoints when None) and its attempt counts."""
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


def list_requests(
    conn: sqlite3.Connection, flt: RequestFilter, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the page and the ``before`` cursor of the next page (or None)."""
    where: list[str] = []
    params: list[Any] = []
    if before is not None:
        where.append("id < ?")
        params.append(before)
    if flt.endpoint is not None:
        where.append("endpoint = ?")
        params.append(flt.endpoint)
    if flt.method is not None:
        where.append("method = ?")
        params.append(flt.method.upper())
    if flt.status is not None:
        where.append("response_status = ?")
        params.append(flt.status)
    if flt.signature is not None:
        where.append("sig_status IS ?" if flt.signature != "none" else "sig_status IS NULL")
        if flt.signature != "none":
            params.append(flt.signature)
    if flt.event_type is not None:
        where.append("event_type = ?")
        params.append(flt.event_type)
    if flt.q:
        # Substring search over the whole store: metadata case-insensitively (LIKE), the raw
        # body bytes exactly (instr over the blob), so binary bodies are searchable too.
        like = "%" + flt.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            "(path LIKE ? ESCAPE '\\' OR query LIKE ? ESCAPE '\\' OR headers LIKE ? ESCAPE '\\'"
            " OR event_key LIKE ? ESCAPE '\\' OR id IN (SELECT request_id FROM bodies"
            " WHERE instr(body, ?) > 0))"
        )
        params.extend([like, like, like, like, flt.q.encode("utf-8")])
    sql = f"SELECT {ITEM_COLUMNS} FROM requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit + 1)
    rows = conn.execute(sql, params).fetchall()
    items = [item(r) for r in rows[:limit]]
    next_before = items[-1]["id"] if len(rows) > limit else None
    return items, next_before


def get_request(conn: sqlite3.Connection, request_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM requests WHERE id=?", (request_id,)).fetchone()
    if row is None:
        return None
    return detail(row, get_body(conn, request_id))


def get_body(conn: sqlite3.Connection, request_id: int) -> bytes:
    row = conn.execute("SELECT body FROM bodies WHERE request_id=?", (request_id,)).fetchone()
    return bytes(row[0]) if row is not None else b""


def request_exists(conn: sqlite3.Connection, request_id: int) -> tuple[bool, str | None]:
    row = conn.execute("SELECT content_type FROM requests WHERE id=?", (request_id,)).fetchone()
    return (row is not None, row[0] if row is not None else None)


def items_after(
    conn: sqlite3.Connection, after_id: int, endpoint: str | None, limit: int
) -> list[dict[str, Any]]:
    """Requests with id > ``after_id``, oldest first (stream resume)."""
    sql = f"SELECT {ITEM_COLUMNS} FROM requests WHERE id > ?"
    params: list[Any] = [after_id]
    if endpoint is not None:
        sql += " AND endpoint = ?"
        params.append(endpoint)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    return [item(r) for r in conn.execute(sql, params)]


def list_endpoints(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every endpoint seen or configured: name, request count, last seen, newest id."""
    rows = conn.execute(
        "SELECT s.endpoint AS name, s.count, r.received_at AS last_seen, s.last_id"
        " FROM (SELECT endpoint, count(*) AS count, max(id) AS last_id FROM requests"
        "       GROUP BY endpoint) AS s"
        " JOIN requests AS r ON r.id = s.last_id"
    ).fetchall()
    seen = {r["name"]: dict(r) for r in rows}
    for (name,) in conn.execute("SELECT name FROM endpoints"):
        seen.setdefault(name, {"name": name, "count": 0, "last_seen": None, "last_id": None})
    return sorted(seen.values(), key=lambda e: (-(e["last_id"] or 0), e["name"]))


# -- endpoint settings -----------------------------------------------------------------------


def get_endpoint_settings(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT settings FROM endpoints WHERE name=?", (name,)).fetchone()
    return json.loads(row[0]) if row is not None else None


def put_endpoint_settings(
    conn: sqlite3.Connection, name: str, settings: Mapping[str, Any], updated_at: str
) -> int:
    """Replace an endpoint's settings; returns the new global settings version."""
    version: int = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM endpoints").fetchone()[0]
    conn.execute(
        "INSERT INTO endpoints (name, settings, version, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET settings=excluded.settings,"
        " version=excluded.version, updated_at=excluded.updated_at",
        (name, json.dumps(dict(settings)), version, updated_at),
    )
    return version


def all_endpoint_settings(conn: sqlite3.Connection) -> tuple[int, dict[str, dict[str, Any]]]:
    """The settings version (max) and every endpoint's settings, for the server's cache."""
    rows = conn.execute("SELECT name, settings, version FROM endpoints").fetchall()
    version = max((r["version"] for r in rows), default=0)
    return version, {r["name"]: json.loads(r["settings"]) for r in rows}


def settings_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("SELECT coalesce(max(version), 0) FROM endpoints").fetchone()[0]
    return version


def end_interrupted(conn: sqlite3.Connection) -> Changed:
    """Requests left in progress by a stop during a stall: mark them, they will not finish."""
    count = conn.execute(
        "UPDATE requests SET in_progress=0, note=coalesce(note || ' ', '') ||"
        " 'The inspector stopped during the stall; no response was sent.' WHERE in_progress=1"
    ).rowcount
    return Changed(count, rows_added=0)
