"""Stored signature verdicts, after the capture: what re-verification computes a verdict from
and how it stores the new ones (``reverify.py``), and what the doctor reads of a request and
how its finding replaces the verdict it diagnosed (``diagnosis.py``).

Each write leaves an ``update`` notice and hands back the changed requests' list items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from inspector.store.backend import Connection, notice
from inspector.store.requests import ITEM_COLUMNS, HeaderPairs, RequestItem, item

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
