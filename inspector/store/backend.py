"""What the store's jobs may assume of a connection, whichever engine is behind it.

The jobs (``requests``, ``endpoints``, ``attempts``, ``replays``, ``deliveries``) are written
once, in SQL both engines accept: ``?`` placeholders (the PostgreSQL connection rewrites them
to ``%s``), ``INSERT ... RETURNING id``, ``ON CONFLICT ... DO UPDATE``, CTEs. Rows answer to a
column's name and to its position, as ``sqlite3.Row`` does. The few fragments that differ are
the ``Dialect``'s: the head of the request ids, the null-safe comparison, the case-folding
substring tests of search, ``max``/``greatest``, row locks for claims.

A write job may leave ``Notice``s on ``conn.notices``: small facts (kind and id, never a
body) about what it changed. On a shared store (PostgreSQL) the writer sends them with the
batch's transaction (``NOTIFY``, delivered at commit in commit order), and every replica
turns them into live events; on SQLite they are dropped and the process publishes locally.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# A notice: ``(kind, key, *extra)`` — ``("request", 12)``, ``("update", 12)``,
# ``("deleted", 12)``, ``("cleared", "demo")``, ``("settings", 7)``,
# ``("delivery", 3, "attempt", 41)``. JSON-able scalars only: it travels in a NOTIFY payload.
Notice = tuple[str | int | None, ...]


class RowLike(Protocol):
    """A row: by column name or position (``sqlite3.Row``, ``postgres.Row``)."""

    def __getitem__(self, key: int | str, /) -> Any: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True)
class Dialect:
    """The SQL fragments that differ between the engines."""

    name: str  # "sqlite" | "postgresql"
    shared: bool  # several processes write (replicas): fan-out and claims go through it
    # ``a IS b`` that is true for two NULLs.
    same: str
    # The larger of two values (SQLite's two-argument max, PostgreSQL's greatest).
    greatest: str
    # ``FOR UPDATE SKIP LOCKED`` where rows can be claimed by several writers.
    skip_locked: str
    # The newest request id issued by a committed transaction (ids only grow).
    head_sql: str
    # INSERT/UPDATE inside WITH: several writes in one statement (one round trip).
    writable_ctes: bool = False

    def contains_text(self, column: str) -> str:
        """``column`` contains ``?`` (a LIKE pattern, lower-case), ASCII case-insensitive."""
        if self.name == "sqlite":
            return f"{column} LIKE ? ESCAPE '\\'"  # SQLite's LIKE folds ASCII only
        return f"lower({column} COLLATE \"C\") LIKE ? ESCAPE '\\'"

    def contains_bytes(self, column: str, *, fold: bool) -> str:
        """``column`` (raw bytes) contains ``?``: lower-case text when ``fold`` (compared with
        ASCII letters folded, byte-wise), else the exact bytes."""
        if self.name == "sqlite":
            return f"instr(lower({column}), ?) > 0" if fold else f"instr({column}, ?) > 0"
        if fold:
            # Text cannot hold a NUL, so no text conversion of a binary body works (LATIN1's
            # fails on its first NUL); the escape encoding can, and back: lower() under the C
            # collation folds its ASCII letters only (SQLite's rule), never its escapes.
            folded = f"decode(lower(encode({column}, 'escape') COLLATE \"C\"), 'escape')"
            return f"position(?::bytea in {folded}) > 0"
        return f"position(?::bytea in {column}) > 0"

    def fold_needle(self, needle: str) -> str | bytes:
        """The lower-case search term as ``contains_bytes(fold=True)`` compares it."""
        if self.name == "sqlite":
            return needle
        return needle.encode("utf-8")


@dataclass(frozen=True)
class Began:
    """What a shared store tells a write batch as it begins (None on SQLite: this process
    knows it already)."""

    rows: int | None = None  # requests stored, for retention across replicas
    settings_version: int | None = None  # the endpoint settings' version (``write_as_of``)


class Connection(Protocol):
    """A connection as the jobs use it (``sqlite3.Connection`` subclass, or the PostgreSQL
    wrapper)."""

    dialect: Dialect
    notices: list[Notice]

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


def insert_id(conn: Connection, sql: str, parameters: Sequence[Any]) -> int:
    """Run an ``INSERT`` and return the id it assigned (``RETURNING id``, both engines)."""
    rows = conn.execute(sql + " RETURNING id", parameters).fetchall()
    return int(rows[0][0])


def notice(conn: Connection, *entry: str | int | None) -> None:
    """Leave a notice for the batch (sent at commit on a shared store)."""
    conn.notices.append(entry)
