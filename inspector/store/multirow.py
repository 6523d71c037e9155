"""Multi-row INSERTs for the SQLite writer's batches, bound as cheaply as CPython allows.

CPython's ``sqlite3`` binds ``int``, ``float``, ``str`` and ``bytearray`` directly, but looks
for an adapter for anything else: ``None`` and ``bytes`` each cost it two AttributeErrors
raised and cleared (``__adapt__``, ``__conform__``), ~2 µs a value: with a capture's dozen
NULL columns, 18% of the writer's instructions (callgrind), all of it holding the GIL that
the event loop needs. So a ``None`` is written into the statement as a ``NULL`` literal and
not bound, and a small ``bytes`` value is bound as a ``bytearray`` copy (the same BLOB; a
1 KiB copy costs a tenth of the exceptions). No global adapter is registered: the pytest
plugin runs inside other people's processes.

The statement's text then depends on which values are NULL: rows are grouped by that (their
order within a group kept), each group goes in as chunks of 32, 16, ... 1 rows, and the texts
are cached here and in the connection's statement cache (a batch's rows nearly always share
one shape).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspector.store.backend import Connection

# Rows per statement: powers of two up to 32, so that a few statements stay in the
# connection's cache, and 32 rows of parameters stay under SQLite's oldest limit (999).
CHUNKS = (32, 16, 8, 4, 2, 1)
# Up to this size a bytes value is copied into a bytearray to be bound; a larger one is bound
# as it is (a copy of megabytes would cost more than the exceptions).
COPY_BELOW = 64 * 1024
# Statement texts kept per inserter; past it they are forgotten (only rows of unusual shapes
# would get there).
KEEP = 256

Row = Sequence[Any]


class MultiRowInsert:
    """``head`` (``INSERT INTO t (a, b) VALUES``), a row per value tuple, then ``tail`` (an
    upsert's clause, a ``RETURNING``)."""

    def __init__(self, head: str, tail: str = "") -> None:
        self.head = head
        self.tail = tail
        self._texts: dict[tuple[tuple[bool, ...], int], str] = {}

    def run(self, conn: Connection, rows: Sequence[Row]) -> list[Any]:
        """Insert ``rows``; returns what the statements return (``RETURNING``), if anything.
        Rows of the same shape (which values are NULL) keep their order."""
        groups: dict[tuple[bool, ...], list[Row]] = {}
        for row in rows:
            shape = tuple([value is None for value in row])
            group = groups.get(shape)
            if group is None:
                groups[shape] = [row]
            else:
                group.append(row)
        returned: list[Any] = []
        for shape, group in groups.items():
            done, total = 0, len(group)
            for size in CHUNKS:
                while total - done >= size:
                    params = [
                        bytearray(v) if v.__class__ is bytes and len(v) < COPY_BELOW else v
                        for row in group[done : done + size]
                        for v in row
                        if v is not None
                    ]
                    cursor = conn.execute(self._text(shape, size), params)
                    if self.tail:
                        returned += cursor.fetchall()
                    done += size
        return returned

    def _text(self, shape: tuple[bool, ...], size: int) -> str:
        text = self._texts.get((shape, size))
        if text is None:
            if len(self._texts) >= KEEP:
                self._texts.clear()
            row = "(" + ", ".join("NULL" if null else "?" for null in shape) + ")"
            text = self._texts[shape, size] = f"{self.head} {', '.join([row] * size)}{self.tail}"
        return text
