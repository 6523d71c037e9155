"""SQL jobs for deliveries: the events the sender sends (playing the platform) and their log.

A delivery row holds everything needed to send again after a restart: the exact body bytes,
the secret, the scheme, the retry schedule and ``next_attempt_ts`` (Unix seconds, wall
clock). ``state`` is ``pending`` until the last attempt, then ``succeeded``, ``failed`` or
``cancelled``. ``carrier`` says which engine sends it: NULL for the server's, or
``cli:<host>:<pid>`` for a ``send --wait`` process.

Each attempt, once finished, becomes a ``delivery_attempts`` row (the delivery log) in the
same transaction that moves the delivery on, so the log and the schedule never disagree.
An attempt that was in flight when the process died has no row; the delivery is still
pending and due, so it is sent again (same attempt number) on resume.

Which engine sends a due attempt, when several could (replicas), is ``leases``'s job.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import urlsplit

from inspector.capture import utc_timestamp
from inspector.store.backend import Connection, RowLike, insert_id, notice
from inspector.store.requests import HeaderPairs, Row, SqlValue
from inspector.timeline import DEFAULT_WAIT_FROM, SenderSchedule

STATES = ("pending", "succeeded", "failed", "cancelled")
ITEM_COLUMNS = (
    "id, event, event_key, url, scheme, length(body) AS size, state, schedule, timeout,"
    " time_scale, wait_from, attempts, next_attempt_ts, created_at, updated_at, carrier,"
    " ca_file, insecure"
)


@dataclass(frozen=True)
class NewDelivery:
    event: str
    event_key: str | None
    url: str
    scheme: str
    secret: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    schedule: tuple[float, ...]
    timeout: float
    time_scale: float
    msg_id: str
    carrier: str | None
    created_ts: float
    ca_file: str | None = None
    insecure: bool = False
    wait_from: str = DEFAULT_WAIT_FROM


@dataclass(frozen=True)
class Pending:
    """What the engine needs to send the next attempt of a delivery."""

    id: int
    event: str
    url: str
    scheme: str
    secret: str
    headers: list[tuple[str, str]]
    body: bytes
    schedule: list[float]
    timeout: float
    time_scale: float
    attempts: int
    msg_id: str
    state: str
    carrier: str | None
    wait_from: str
    ca_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class AttemptRecord:
    """One finished attempt, as the delivery log keeps it."""

    attempt: int
    sent_ts: float
    status: int | None
    elapsed_ms: float
    error: str | None
    request_headers: Sequence[tuple[str, str]]
    response_headers: Sequence[tuple[str, str]]
    response_body: bytes
    response_truncated: bool


# -- the shapes ------------------------------------------------------------------------------


class AttemptItem(TypedDict):
    """One line of the delivery log: the platform's 推送記錄 columns plus the attempt number."""

    id: int
    delivery_id: int
    attempt: int  # 1 for the first
    event: str
    url: str
    sent_at: str
    sent_ts: float
    status: int | None  # None: no answer (see ``error``)
    elapsed_ms: float
    error: str | None
    ok: bool  # a 2xx without error


class AttemptDetail(AttemptItem):
    """One attempt in full: the headers sent, and the answer (its first 64 KiB)."""

    request_headers: HeaderPairs
    response_headers: HeaderPairs
    response_body_base64: str
    response_truncated: bool


class DeliveryItem(TypedDict):
    """A delivery as the list API, the stream and the CLI table show it."""

    id: int
    event: str
    event_key: str | None
    url: str
    scheme: str
    size: int  # body bytes
    state: str  # pending | succeeded | failed | cancelled
    attempts: int  # made so far
    max_attempts: int
    schedule: list[float]  # seconds between attempts
    time_scale: float
    wait_from: str  # start | end: each wait counts from the failed attempt's start or end
    timeout: float
    next_attempt_ts: float | None  # None once it is final
    next_attempt_at: str | None
    created_at: str
    updated_at: str
    carrier: str  # "server", or the ``send --wait`` process (``cli:<host>:<pid>``)
    statuses: list[int | None]  # of each attempt, in order
    last: AttemptItem | None  # the latest attempt
    ca_file: str | None  # a CA trusted as well for an https:// receiver
    insecure: bool  # the receiver's certificate is not verified: shown on every line
    # Grows with every attempt and change of state (see ``version``): of two copies of a
    # delivery (a stream event, a list read, the POST's answer), a client keeps the higher.
    version: int


class DeliveryDetail(DeliveryItem):
    """A delivery with its body, extra headers and every attempt in full."""

    body_base64: str
    headers: HeaderPairs
    log: list[AttemptDetail]


# -- shaping rows ----------------------------------------------------------------------------


def _iso(ts: float | None) -> str | None:
    return utc_timestamp(ts) if ts is not None else None


def attempt_item(r: Row) -> AttemptItem:
    """One log line: the platform's 推送記錄 columns plus the attempt number."""
    return {
        "id": r["id"],
        "delivery_id": r["delivery_id"],
        "attempt": r["attempt"],
        "event": r["event"],
        "url": r["url"],
        "sent_at": r["sent_at"],
        "sent_ts": r["sent_ts"],
        "status": r["status"],
        "elapsed_ms": r["elapsed_ms"],
        "error": r["error"],
        "ok": _ok(r["status"], r["error"]),
    }


def attempt_detail(r: Row) -> AttemptDetail:
    return {
        **attempt_item(r),
        "request_headers": json.loads(r["request_headers"] or "[]"),
        "response_headers": json.loads(r["response_headers"] or "[]"),
        "response_body_base64": base64.b64encode(r["response_body"] or b"").decode("ascii"),
        "response_truncated": bool(r["response_truncated"]),
    }


def _ok(status: int | None, error: str | None) -> bool:
    return status is not None and 200 <= status < 300 and error is None


def version(attempts: int, state: str) -> int:
    """A delivery's version: 2 per attempt logged, +1 once final.

    A delivery only moves forward (an attempt is logged only while pending, one number at a
    time; a final state is never left), so this grows with every attempt and change of state,
    with no column to keep. A carrier hand-over leaves it as is: it changes neither.
    """
    return 2 * attempts + (state != "pending")


def item(r: Row, log: Sequence[Row] = ()) -> DeliveryItem:
    """A delivery as the list API, the stream and the CLI table show it."""
    schedule = json.loads(r["schedule"])
    last = attempt_item(log[-1]) if log else None
    return {
        "id": r["id"],
        "event": r["event"],
        "event_key": r["event_key"],
        "url": r["url"],
        "scheme": r["scheme"],
        "size": r["size"],
        "state": r["state"],
        "attempts": r["attempts"],
        "max_attempts": len(schedule) + 1,
        "schedule": schedule,
        "time_scale": r["time_scale"],
        "wait_from": r["wait_from"],
        "timeout": r["timeout"],
        "next_attempt_ts": r["next_attempt_ts"],
        "next_attempt_at": _iso(r["next_attempt_ts"]),
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "carrier": r["carrier"] or "server",
        "statuses": [a["status"] for a in log],
        "last": last,
        "ca_file": r["ca_file"],
        "insecure": bool(r["insecure"]),
        "version": version(r["attempts"], r["state"]),
    }


# -- writes ----------------------------------------------------------------------------------


def insert_delivery(conn: Connection, new: NewDelivery) -> DeliveryItem:
    """Store a new delivery, due at once; returns its item."""
    created_at = utc_timestamp(new.created_ts)
    delivery_id = insert_id(
        conn,
        "INSERT INTO deliveries (event, event_key, url, scheme, secret, headers, body, state,"
        " schedule, timeout, time_scale, attempts, next_attempt_ts, created_at, updated_at,"
        " msg_id, carrier, ca_file, insecure, wait_from)"
        " VALUES (?,?,?,?,?,?,?,'pending',?,?,?,0,?,?,?,?,?,?,?,?)",
        (
            new.event,
            new.event_key,
            new.url,
            new.scheme,
            new.secret,
            json.dumps([list(h) for h in new.headers]),
            new.body,
            json.dumps(list(new.schedule)),
            new.timeout,
            new.time_scale,
            new.created_ts,
            created_at,
            created_at,
            new.msg_id,
            new.carrier,
            new.ca_file,
            int(new.insecure),
            new.wait_from,
        ),
    )
    found = get_item(conn, delivery_id)
    assert found is not None
    notice(conn, "delivery", delivery_id, "created", None)
    return found


def record_attempt(
    conn: Connection,
    delivery_id: int,
    record: AttemptRecord,
    state: str,
    next_attempt_ts: float | None,
) -> tuple[DeliveryItem, AttemptItem] | None:
    """Log a finished attempt and move the delivery on (next due time or final state).

    Returns ``(delivery item, attempt item)``, or None when the delivery is no longer
    pending at this attempt (cancelled meanwhile, or another engine recorded it first).
    """
    assert state in STATES
    now = utc_timestamp(record.sent_ts + record.elapsed_ms / 1000)
    updated = conn.execute(
        "UPDATE deliveries SET attempts=?, state=?, next_attempt_ts=?, updated_at=?,"
        " lease_owner=NULL, lease_until=NULL WHERE id=? AND state='pending' AND attempts=?",
        (record.attempt, state, next_attempt_ts, now, delivery_id, record.attempt - 1),
    ).rowcount
    if not updated:
        return None
    row = conn.execute("SELECT event, url FROM deliveries WHERE id=?", (delivery_id,)).fetchone()
    attempt_id = insert_id(
        conn,
        "INSERT INTO delivery_attempts (delivery_id, attempt, event, url, sent_at, sent_ts,"
        " status, elapsed_ms, error, request_headers, response_headers, response_body,"
        " response_truncated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            delivery_id,
            record.attempt,
            row["event"],
            row["url"],
            utc_timestamp(record.sent_ts),
            record.sent_ts,
            record.status,
            record.elapsed_ms,
            record.error,
            json.dumps([list(h) for h in record.request_headers]),
            json.dumps([list(h) for h in record.response_headers]),
            record.response_body,
            int(record.response_truncated),
        ),
    )
    found = get_item(conn, delivery_id)
    assert found is not None and found["last"] is not None
    notice(conn, "delivery", delivery_id, "attempt", attempt_id)
    if state != "pending":
        notice(conn, "delivery", delivery_id, state, attempt_id)
    return found, found["last"]


def cancel_delivery(conn: Connection, delivery_id: int, now: float) -> DeliveryItem | None:
    """Stop a pending delivery's retries; returns its item (None if there is no such id)."""
    changed = conn.execute(
        "UPDATE deliveries SET state='cancelled', next_attempt_ts=NULL, updated_at=?,"
        " lease_owner=NULL, lease_until=NULL WHERE id=? AND state='pending'",
        (utc_timestamp(now), delivery_id),
    ).rowcount
    if changed:
        notice(conn, "delivery", delivery_id, "cancelled", None)
    return get_item(conn, delivery_id)


def set_carrier(conn: Connection, delivery_id: int, carrier: str | None) -> int:
    """Hand a pending delivery to another engine (None: the server's)."""
    return conn.execute(
        "UPDATE deliveries SET carrier=? WHERE id=? AND state='pending'", (carrier, delivery_id)
    ).rowcount


def adopt(conn: Connection, carriers: Sequence[str]) -> int:
    """Give the server the pending deliveries of ``carriers`` (processes that are gone)."""
    count = 0
    for carrier in carriers:
        count += conn.execute(
            "UPDATE deliveries SET carrier=NULL WHERE carrier=? AND state='pending'", (carrier,)
        ).rowcount
    return count


# -- reads -----------------------------------------------------------------------------------


def due_schedule(conn: Connection, carrier: str | None, limit: int) -> list[tuple[int, float]]:
    """``(id, due)`` of the pending deliveries ``carrier`` sends, soonest first: due is the
    next attempt's time, or the end of a lease someone holds on it, if later."""
    rows = conn.execute(
        "SELECT id, CASE WHEN lease_until > next_attempt_ts THEN lease_until"
        " ELSE next_attempt_ts END AS due FROM deliveries"
        f" WHERE state='pending' AND carrier {conn.dialect.same} ?"
        " ORDER BY due, id LIMIT ?",
        (carrier, limit),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def foreign_carriers(conn: Connection) -> list[str]:
    """Carriers other than the server that hold pending deliveries."""
    rows = conn.execute(
        "SELECT DISTINCT carrier FROM deliveries WHERE state='pending' AND carrier IS NOT NULL"
    ).fetchall()
    return [r[0] for r in rows]


def load_pending(conn: Connection, delivery_id: int) -> tuple[Pending, DeliveryItem] | None:
    """The delivery as the engine sends it, and its item as the stream shows it."""
    r = conn.execute(
        "SELECT id, event, url, scheme, secret, headers, body, schedule, timeout, time_scale,"
        " attempts, msg_id, state, carrier, ca_file, insecure, wait_from FROM deliveries"
        " WHERE id=?",
        (delivery_id,),
    ).fetchone()
    if r is None:
        return None
    pending = Pending(
        id=r["id"],
        event=r["event"],
        url=r["url"],
        scheme=r["scheme"],
        secret=r["secret"] or "",
        headers=[(h[0], h[1]) for h in json.loads(r["headers"])],
        body=bytes(r["body"]),
        schedule=[float(s) for s in json.loads(r["schedule"])],
        timeout=r["timeout"],
        time_scale=r["time_scale"],
        attempts=r["attempts"],
        msg_id=r["msg_id"],
        state=r["state"],
        carrier=r["carrier"],
        ca_file=r["ca_file"],
        insecure=bool(r["insecure"]),
        wait_from=r["wait_from"],
    )
    found = get_item(conn, delivery_id)
    assert found is not None
    return pending, found


def _logs(conn: Connection, ids: Sequence[int]) -> dict[int, list[RowLike]]:
    logs: dict[int, list[RowLike]] = {i: [] for i in ids}
    if not ids:
        return logs
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "SELECT id, delivery_id, attempt, event, url, sent_at, sent_ts, status, elapsed_ms,"
        f" error FROM delivery_attempts WHERE delivery_id IN ({marks})"
        " ORDER BY delivery_id, attempt, id",
        tuple(ids),
    ).fetchall()
    for row in rows:
        logs[row["delivery_id"]].append(row)
    return logs


def get_item(conn: Connection, delivery_id: int) -> DeliveryItem | None:
    row = conn.execute(
        f"SELECT {ITEM_COLUMNS} FROM deliveries WHERE id=?", (delivery_id,)
    ).fetchone()
    if row is None:
        return None
    return item(row, _logs(conn, [delivery_id])[delivery_id])


def list_deliveries(
    conn: Connection, limit: int, before: int | None, state: str | None = None
) -> tuple[list[DeliveryItem], int | None]:
    """Newest first, each with its attempts summary; returns the page and the next cursor."""
    where: list[str] = []
    params: list[SqlValue] = []
    if before is not None:
        where.append("id < ?")
        params.append(before)
    if state is not None:
        where.append("state = ?")
        params.append(state)
    sql = f"SELECT {ITEM_COLUMNS} FROM deliveries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit + 1)
    rows = conn.execute(sql, params).fetchall()[: limit + 1]
    page = rows[:limit]
    logs = _logs(conn, [r["id"] for r in page])
    items = [item(r, logs[r["id"]]) for r in page]
    return items, (items[-1]["id"] if len(rows) > limit else None)


def get_delivery(conn: Connection, delivery_id: int) -> DeliveryDetail | None:
    """A delivery with its body, extra headers and every attempt in full."""
    found = get_item(conn, delivery_id)
    if found is None:
        return None
    row = conn.execute("SELECT body, headers FROM deliveries WHERE id=?", (delivery_id,)).fetchone()
    log = conn.execute(
        "SELECT * FROM delivery_attempts WHERE delivery_id=? ORDER BY attempt, id", (delivery_id,)
    )
    return {
        **found,
        "body_base64": base64.b64encode(row["body"]).decode("ascii"),
        "headers": json.loads(row["headers"]),
        "log": [attempt_detail(r) for r in log],
    }


def attempt_items(conn: Connection, ids: Sequence[int]) -> dict[int, AttemptItem]:
    """Log lines by their ids."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "SELECT id, delivery_id, attempt, event, url, sent_at, sent_ts, status, elapsed_ms,"
        f" error FROM delivery_attempts WHERE id IN ({marks})",
        tuple(ids),
    )
    return {r["id"]: attempt_item(r) for r in rows}


def sender_schedules(
    conn: Connection, endpoint: str, event_keys: Sequence[str]
) -> dict[str, SenderSchedule]:
    """For events captured at ``endpoint``, the schedule our own delivery of each kept, when
    one of this store's deliveries sent it there (its URL's path is ``/h/{endpoint}...``):
    the newest such delivery per event key."""
    found: dict[str, SenderSchedule] = {}
    keys = list(dict.fromkeys(event_keys))
    for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit is 999 or more
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT id, event_key, url, schedule, time_scale, wait_from FROM deliveries"
            f" WHERE event_key IN ({marks}) ORDER BY id",
            chunk,
        ).fetchall()
        for r in rows:
            path = urlsplit(r["url"]).path
            if path == f"/h/{endpoint}" or path.startswith(f"/h/{endpoint}/"):
                found[r["event_key"]] = SenderSchedule(
                    r["id"],
                    tuple(float(s) for s in json.loads(r["schedule"])),
                    r["time_scale"],
                    r["wait_from"],
                )
    return found
