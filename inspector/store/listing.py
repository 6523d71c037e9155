"""The request list: a filter's pages, newest first, and its "new" count; the requests
that match it after an id (long-polls, the live list) and those after an id (the stream's
resume), each with its event summary (``ListedRequest``).

The search (a filter's ``q``) lives here too: a substring match, ASCII case-insensitive, over
a request's text and its raw body, tested row by row over the recent rows and through an
index below them — SQLite's trigram index (``search.py``) or PostgreSQL's pg_trgm indexes
(what to ask them for: ``trigrams.py``) — or in one pass over the bodies when there is none.
Read jobs, run on a read connection.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from dataclasses import dataclass

import msgspec

from inspector.store import search, trigrams
from inspector.store.backend import Connection, RowLike
from inspector.store.requests import (
    ITEM_COLUMNS,
    ListedRequest,
    RequestItem,
    SqlValue,
    head_id,
    item,
)
from inspector.summary import MAX_BYTES, summarize

log = logging.getLogger("inspector.store")
# Headers are stored as msgspec encodes them (``intake.encode_headers``): a term is looked for
# in them as the same encoder spells it (``header_forms``).
_encode = msgspec.json.Encoder().encode


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
    sampler: trigrams.Sampler | None = getattr(conn, "fts_sampler", None)
    try:
        sample = sampler.get(conn, trigrams.fts_sample) if sampler is not None else None
    except sqlite3.Error as exc:
        log.warning("search: could not sample the store's trigrams (the cover, then): %s", exc)
        sample = None
    expression = search.match_expression(terms, lambda term: trigrams.fts_choose(term, sample))
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
