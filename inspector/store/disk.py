"""Before a server starts: is the store's disk usable? One sentence when it is not.

A server on a full or read-only disk, or an unreadable data directory, would otherwise start
and then answer every capture 503 — or stop in the lifespan with a traceback. ``check_disk``
finds out first, and says what is wrong in words (``serve`` prints it and exits 2). For a
store in a file only: a PostgreSQL store is checked by opening it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from inspector.display import human_size
from inspector.errors import StoreUnavailable
from inspector.store.backend import Connection
from inspector.store.core import Store


def check_disk(db_path: Path, needed: int) -> None:
    """Raise ``StoreUnavailable`` (one sentence) unless the store at ``db_path`` opens, can be
    written and has room for ``needed`` more bytes."""
    folder = db_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(
            f"Cannot create or open the data directory {folder}: {_why(exc)}."
        ) from None
    if not folder.is_dir():
        raise StoreUnavailable(f"The data directory {folder} is not a directory.")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise StoreUnavailable(f"The data directory {folder} is not readable by this user.")
    readonly = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    if readonly:
        raise StoreUnavailable(f"The data directory {folder} is on a read-only file system.")
    if not os.access(folder, os.W_OK):
        raise StoreUnavailable(f"The data directory {folder} is not writable by this user.")
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    if free < needed:
        raise StoreUnavailable(
            f"The disk holding {folder} is full: {human_size(free)} free, and the inspector "
            f"needs at least {human_size(needed)} to store a capture (free some space or "
            "choose another --data-dir)."
        )
    store = Store(db_path)
    try:
        store.open()
        store.write_sync(_probe)
    except (OSError, sqlite3.Error, StoreUnavailable) as exc:
        detail = exc.detail if isinstance(exc, StoreUnavailable) else exc
        raise StoreUnavailable(f"Cannot use the store {db_path}: {_why(detail)}.") from None
    finally:
        store.close()


def _probe(conn: Connection) -> None:
    """A write that must reach the file: the schema version, set to what it is (SQLite:
    ``check_disk`` is for a store in a file)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version={int(version)}")


def _why(exc: object) -> str:
    if isinstance(exc, OSError):
        reasons = {
            errno.EROFS: "the file system is read-only",
            errno.ENOSPC: "the disk is full",
            errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
        }
        return reasons.get(exc.errno or 0, (exc.strerror or str(exc)).lower())
    text = str(exc).removeprefix("the store could not write: ")
    if "not a database" in text:
        return f"{text} (is it an inspector store?)"
    return text
