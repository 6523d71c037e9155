"""SQL jobs: the leases on deliveries, so that of several engines on one store exactly one
sends each due attempt.

An engine sends an attempt only after ``claim`` has given it the delivery's lease
(``lease_owner``, ``lease_until`` = now + the attempt's timeout + a margin): with several
replicas on one store (PostgreSQL, rows picked ``FOR UPDATE SKIP LOCKED``) each due attempt
goes out from one of them. A replica killed mid-attempt leaves its lease to expire, and
another sends the attempt then. ``deliveries.record_attempt`` is guarded by
``attempts = n-1`` (and clears the lease), so however an attempt ends up sent twice, it is
logged once.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspector.store.backend import Connection, notice

LEASE_MARGIN = 10.0  # seconds a lease outlasts the attempt's own timeout


def claim(conn: Connection, ids: Sequence[int], owner: str, now: float) -> list[int]:
    """Take the leases of those of ``ids`` that are still due and free; returns the ids
    claimed. The claimant sends their next attempt; nobody else will until the lease ends."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "UPDATE deliveries SET lease_owner = ?, lease_until = ? + timeout + ?"
        " WHERE id IN (SELECT id FROM deliveries"
        f" WHERE id IN ({marks}) AND state = 'pending' AND next_attempt_ts <= ?"
        f" AND (lease_until IS NULL OR lease_until < ?) {conn.dialect.skip_locked})"
        " RETURNING id, attempts",
        (owner, now, LEASE_MARGIN, *ids, now, now),
    ).fetchall()
    for r in rows:
        notice(conn, "delivery", r[0], "sending", r[1] + 1)
    return sorted(r[0] for r in rows)


def release(conn: Connection, owner: str | None, carrier: str | None = None) -> int:
    """Give up the leases of ``owner`` (an engine stopping), or, with ``owner`` None, every
    lease on ``carrier``'s deliveries (a lone server starting: whoever held them is gone)."""
    params: tuple[str | None, ...]
    if owner is not None:
        where, params = "lease_owner = ?", (owner,)
    else:
        where, params = f"carrier {conn.dialect.same} ?", (carrier,)
    return conn.execute(
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
        f" WHERE state = 'pending' AND lease_owner IS NOT NULL AND {where}",
        params,
    ).rowcount
