"""Which of a term's trigrams to ask a trigram index for: pg_trgm's GIN indexes
(PostgreSQL), and FTS5's shards (SQLite: ``fts_choose``, below).

pg_trgm answers ``LIKE '%term%'`` by intersecting the posting lists of *every* trigram of the
term, and GIN reads each of them whole: in a million webhooks ``msg``, ``000`` or ``123`` (a
channel id) are in nearly every row, so a rare id read ~900 index pages (56 ms) where two of
its trigrams alone read 12 (1 ms). So each index is asked only for the term's *selective*
trigrams, as the pieces of one ``LIKE '%012%457%'`` (pg_trgm takes trigrams from each piece,
none across a ``%``) — and the whole term is checked on each candidate's indexed text with
``strpos``, which the planner cannot turn into an index condition; then the scan's own
predicate confirms what is left
(``listing._trigram``). Every trigram asked for is in the term, so the candidates are a
superset of its rows: the choice can make a search faster or slower, never change what it
finds.

Which trigrams: the term's runs of ASCII letters and digits (word characters for pg_trgm in
every locale; inside one, pg_trgm makes exactly these trigrams, never padded ones), the rarest
first, as many as make ``cost`` least: the posting lists read, plus ``CANDIDATE_COST`` for
each candidate expected. How rare each is comes from a sample of the store (~``SAMPLE_ROWS``
requests picked at random by id, their text and the start of their bodies), taken on the first
search and again when it is ``MAX_AGE`` old, one sampler at a time (the other searches use the
sample they have). A term with no run of three such characters is asked whole, as before.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from inspector.store import search
from inspector.store.backend import Connection
from inspector.store.schema import BODY_PREFIX

# Rows to sample; a trigram seen in none of them counts as seen in half of one.
SAMPLE_ROWS = 500
# How much of each body the sample reads (the index holds up to ``schema.BODY_PREFIX``).
SAMPLE_BODY = 8192
MAX_AGE = 600.0
SMALL_MAX_AGE = 10.0
# What a candidate costs to confirm (a heap row and the scan's predicate), in posting-list
# entries read (GIN): measured at 1,000,000 rows, a trigram in every row (~170 index pages,
# ~12 ms) cost about what confirming ~1,300 candidates did.
CANDIDATE_COST = 1000.0
TRIGRAM = 3

_RUN = re.compile("[a-z0-9]{3,}")

# The expressions of pg_trgm's indexes (schema versions 7 and 9), exactly as they were made:
# a query must spell them the same way for the planner to use them. ``LONG`` is the predicate
# of ``bodies_long``, the bodies longer than what the index holds of each.
TEXT = (
    "lower((path || chr(1) || query || chr(1) || headers || chr(1) || coalesce(event_key, '')"
    " || chr(1) || coalesce(event_type, '')) COLLATE \"C\")"
)
BODY = f"lower(encode(substring(body FROM 1 FOR {BODY_PREFIX}), 'escape') COLLATE \"C\")"
LONG = f"length(body) > {BODY_PREFIX}"


@dataclass(frozen=True)
class Frequencies:
    """How many of ``rows`` sampled rows hold each trigram, in the requests' text and in the
    bodies."""

    rows: int
    text: dict[str, int]
    body: dict[str, int]
    taken: float = field(default_factory=time.monotonic)

    @property
    def max_age(self) -> float:
        """How long it stands for the store: a small store (all of it sampled) changes fast,
        and costs little to sample again."""
        return MAX_AGE if self.rows >= SAMPLE_ROWS else SMALL_MAX_AGE

    def fraction(self, counts: dict[str, int], trigram: str) -> float:
        return max(counts.get(trigram, 0), 0.5) / max(self.rows, 1)


@dataclass(frozen=True)
class Ask:
    """What to ask an index for: pieces of the term that a row's indexed text must hold in
    this order (``LIKE '%piece%piece%'``), and the share of rows expected to (inf: unknown;
    the caller scales it by the rows it searches, which a sample's age would not know)."""

    pieces: tuple[str, ...]
    share: float


def grams(term: str) -> set[str]:
    """The trigrams inside ``term``'s runs of ASCII letters and digits (``term`` folded)."""
    return {
        run[i : i + TRIGRAM] for run in _RUN.findall(term) for i in range(len(run) - TRIGRAM + 1)
    }


def choose(term: str, frequencies: Frequencies | None, counts: dict[str, int]) -> Ask:
    """Which trigrams of ``term`` (folded) to ask the index for (``counts``: the sample of
    that index): the rarest, as many as cost least; the whole term when there is no sample
    or no such trigram."""
    if frequencies is None or not (found := grams(term)):
        return Ask((term,), math.inf)
    chosen, together = pick(found, frequencies, counts, CANDIDATE_COST)
    return Ask(segments(term, chosen), together)


def pick(
    found: set[str], frequencies: Frequencies, counts: dict[str, int], candidate_cost: float
) -> tuple[list[str], float]:
    """The rarest of ``found`` (trigrams), as many as make least the doclists read (each a
    share of the rows) plus ``candidate_cost`` for each share of the rows expected to be
    candidates; and that share."""
    ranked = sorted((frequencies.fraction(counts, g), g) for g in found)
    best: tuple[float, int, float] | None = None
    read = 0.0
    for taken, (fraction, _) in enumerate(ranked, start=1):
        read += fraction
        # The rows holding all of them: at most the rarest's, as few as the product if they
        # were independent (the trigrams of one id are not): in between.
        together = math.sqrt(ranked[0][0] * math.prod(f for f, _ in ranked[:taken]))
        cost = read + candidate_cost * together
        if best is None or cost < best[0]:
            best = (cost, taken, together)
    assert best is not None
    _, taken, together = best
    return [g for _, g in ranked[:taken]], together


def segments(term: str, chosen: list[str]) -> tuple[str, ...]:
    """The ``chosen`` trigrams as pieces of ``term`` in its order, for one ``LIKE
    '%a%b%'`` (one test of a row's text, where a LIKE for each would cost one each): trigrams
    that overlap in ``term`` are one piece (``004`` and ``042``: ``0042``, whose trigrams are
    those two alone; a match must hold them overlapping); others are apart (``012``, ``457``:
    ``%012%457%``, not ``0123457``, whose ``123``, ``234`` and ``345`` pg_trgm would ask
    for too)."""
    starts = sorted(term.find(g) for g in chosen)
    pieces: list[str] = []
    first = end = starts[0]
    for start in starts:
        if start >= end:  # apart from the piece so far
            if end > first:
                pieces.append(term[first:end])
            first = start
        end = start + TRIGRAM
    pieces.append(term[first:end])
    return tuple(pieces)


class Sampler:
    """One store's sample, shared by its readers (``PostgresBackend`` holds one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Frequencies | None = None
        self._indexed: tuple[bool, float] | None = None

    def indexed(self, conn: Connection) -> bool:
        """Whether the store has pg_trgm's indexes (``search.trigram_indexes``), asked once
        per ``MAX_AGE``: a catalog query per search was a round trip of every search's."""
        known = self._indexed
        if known is None or time.monotonic() - known[1] >= MAX_AGE:
            known = self._indexed = (search.trigram_indexes(conn), time.monotonic())
        return known[0]

    def get(
        self, conn: Connection, take: Callable[[Connection], Frequencies]
    ) -> Frequencies | None:
        """The current sample; a new one first if it is missing or old, unless another reader
        is taking one (then the old one, or None)."""
        current = self._current
        if current is not None and time.monotonic() - current.taken < current.max_age:
            return current
        if not self._lock.acquire(blocking=current is None):
            return current
        try:
            if self._current is current:
                self._current = take(conn)
            return self._current
        finally:
            self._lock.release()


def sample(conn: Connection) -> Frequencies:
    """Count the trigrams of ~``SAMPLE_ROWS`` requests picked at random by id (the rows of a
    page are neighbours, alike in their ids and times: whole pages would be a poor sample),
    their text and the first ``SAMPLE_BODY`` bytes of their bodies, folded as the indexes
    fold them. Counted here (~0.1 ms of Python a row), where pg_trgm's ``show_trgm`` took
    ~0.4 ms a row."""
    stored = int(conn.execute("SELECT value FROM counters WHERE name = 'requests'").fetchone()[0])
    body = (
        f"(SELECT lower(encode(substring(body FROM 1 FOR {SAMPLE_BODY}), 'escape')"
        ' COLLATE "C") FROM bodies WHERE request_id = r.id)'
    )
    sql = f"SELECT {TEXT}, {body} FROM requests AS r"
    if stored > 2 * SAMPLE_ROWS:
        sql += (
            " WHERE id IN (SELECT lo + floor(random() * (hi - lo + 1))::bigint"
            " FROM (SELECT min(id) AS lo, max(id) AS hi FROM requests) AS ids,"
            f" generate_series(1, {SAMPLE_ROWS}))"
        )
    rows = conn.execute(sql).fetchall()
    text: Counter[str] = Counter()
    bodies: Counter[str] = Counter()
    for row in rows:
        text.update(grams(row[0]))
        bodies.update(grams(row[1] or ""))
    return Frequencies(len(rows), dict(text), dict(bodies))


# SQLite (FTS5's trigram index, ``search.py``): a trigram in every row (its doclist read in
# each shard, ~1.75 ms at 1,000,000) cost about what confirming ~200 candidates did (~9 µs
# each: the row, its body, the scan's predicate), measured on the benchmark's store.
FTS_CANDIDATE_COST = 5000.0
# How much of each body the SQLite sample reads (Python counts its trigrams).
FTS_SAMPLE_BODY = 2048


def fts_grams(term: str) -> set[str]:
    """Every trigram of ``term`` (folded) as FTS5's trigram tokenizer cuts it: any three
    characters in a row."""
    return {term[i : i + TRIGRAM] for i in range(len(term) - TRIGRAM + 1)}


def fts_choose(term: str, frequencies: Frequencies | None) -> list[str] | None:
    """Which of ``term``'s trigrams to ask SQLite's index for: the rarest, as many as cost
    least (``pick``); None without a sample (then ``search.match_expression``'s cover)."""
    found = fts_grams(term)
    if frequencies is None or not found:
        return None
    return pick(found, frequencies, frequencies.text, FTS_CANDIDATE_COST)[0]


def fts_sample(conn: Connection) -> Frequencies:
    """SQLite: count the trigrams of ~``SAMPLE_ROWS`` requests picked at random by id, each
    column as the index holds it (``search_text``: folded; a trigram never spans two columns)
    and the first ``FTS_SAMPLE_BODY`` characters of the body."""
    # Each in a query of its own: SQLite answers min() or max() alone from the B-tree's end,
    # both together by scanning every row (~150 ms at 1,000,000).
    lo, hi = conn.execute(
        "SELECT (SELECT min(id) FROM requests), (SELECT max(id) FROM requests)"
    ).fetchone()
    sql = (
        "SELECT path, query, headers, event_key, event_type,"
        f" substr(body, 1, {FTS_SAMPLE_BODY}) FROM search_text"
    )
    if lo is None:
        rows: list[tuple[object, ...]] = []
    elif hi - lo + 1 > 2 * SAMPLE_ROWS:
        picked = {lo + int(random.random() * (hi - lo + 1)) for _ in range(SAMPLE_ROWS)}
        marks = ",".join("?" * len(picked))
        rows = conn.execute(f"{sql} WHERE id IN ({marks})", sorted(picked)).fetchall()
    else:
        rows = conn.execute(sql).fetchall()
    counts: Counter[str] = Counter()
    for row in rows:
        seen: set[str] = set()
        for value in row:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str):
                seen |= fts_grams(value)
        counts.update(seen)
    return Frequencies(len(rows), dict(counts), {})


def indexed(conn: Connection) -> bool:
    """Whether ``conn``'s store has pg_trgm's indexes (False on SQLite: no sampler)."""
    sampler: Sampler | None = getattr(conn, "sampler", None)
    return sampler is not None and sampler.indexed(conn)
