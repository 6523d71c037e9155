"""Schema and migrations (``PRAGMA user_version``), and how connections are opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Each entry upgrades the schema by one version (PRAGMA user_version). Never edit a shipped
# entry: append a new one.
MIGRATIONS: list[str] = [
    # 1: requests, their bodies, endpoints with settings, event attempt counters.
    """
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        endpoint TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        query TEXT NOT NULL,
        headers TEXT NOT NULL,
        client TEXT,
        received_at TEXT NOT NULL,
        received_ts REAL NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT,
        truncated INTEGER NOT NULL DEFAULT 0,
        note TEXT,
        event_key TEXT,
        event_type TEXT,
        attempt INTEGER NOT NULL DEFAULT 1,
        first_attempt_id INTEGER,
        signature TEXT,
        sig_status TEXT,
        response_status INTEGER,
        response_headers TEXT,
        response_body BLOB,
        response_ms REAL,
        delay_ms REAL,
        dropped INTEGER NOT NULL DEFAULT 0,
        client_gave_up_after_ms REAL,
        in_progress INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX requests_by_endpoint ON requests (endpoint, id);
    CREATE INDEX requests_by_event ON requests (endpoint, event_key, id);
    CREATE TABLE bodies (
        request_id INTEGER PRIMARY KEY,
        body BLOB NOT NULL
    );
    CREATE TABLE endpoints (
        name TEXT PRIMARY KEY,
        settings TEXT NOT NULL DEFAULT '{}',
        version INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT
    );
    CREATE TABLE events (
        endpoint TEXT NOT NULL,
        event_key TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        PRIMARY KEY (endpoint, event_key)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_last_id ON events (last_id);
    """,
    # 2: replays and forwards of captured requests (replay, mirror, proxy); the id an
    # imported request had in the file it came from. request_body NULL = the captured body.
    """
    ALTER TABLE requests ADD COLUMN original_id INTEGER;
    CREATE TABLE replays (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        method TEXT NOT NULL,
        request_headers TEXT NOT NULL,
        request_body BLOB,
        sent_at TEXT NOT NULL,
        status INTEGER,
        elapsed_ms REAL,
        error TEXT,
        response_headers TEXT,
        response_body BLOB,
        response_truncated INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX replays_by_request ON replays (request_id, id);
    """,
    # 3: deliveries the sender makes (playing the platform) and each of their attempts.
    """
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event TEXT NOT NULL,
        event_key TEXT,
        url TEXT NOT NULL,
        scheme TEXT NOT NULL,
        secret TEXT,
        headers TEXT NOT NULL DEFAULT '[]',
        body BLOB NOT NULL,
        state TEXT NOT NULL,
        schedule TEXT NOT NULL,
        timeout REAL NOT NULL,
        time_scale REAL NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts REAL,
        created_at TEXT NOT NULL,
        updated_at TEXT,
        msg_id TEXT NOT NULL,
        carrier TEXT
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_ts);
    CREATE TABLE delivery_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        sent_ts REAL NOT NULL,
        status INTEGER,
        elapsed_ms REAL,
        error TEXT,
        request_headers TEXT NOT NULL DEFAULT '[]',
        response_headers TEXT,
        response_body BLOB,
        response_truncated INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX attempts_by_delivery ON delivery_attempts (delivery_id, attempt);
    """,
    # 4: TLS. How a capture arrived (tls_version NULL: plain HTTP); how a delivery checks
    # its receiver's certificate; which replays did not verify theirs.
    """
    ALTER TABLE requests ADD COLUMN tls_version TEXT;
    ALTER TABLE requests ADD COLUMN tls_server_name TEXT;
    ALTER TABLE deliveries ADD COLUMN ca_file TEXT;
    ALTER TABLE deliveries ADD COLUMN insecure INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE replays ADD COLUMN insecure INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: where a delivery's retry waits count from (start | end of the failed attempt);
    # deliveries stored before counted from the start.
    """
    ALTER TABLE deliveries ADD COLUMN wait_from TEXT NOT NULL DEFAULT 'start';
    CREATE INDEX deliveries_by_event ON deliveries (event_key, id);
    """,
]


def connect(path: Path, *, busy_timeout: float, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open a connection in autocommit mode (we issue BEGIN/COMMIT ourselves) with WAL."""
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the version reached."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version
