"""Schema and migrations for both engines, versioned the same way.

``SQLITE`` and ``POSTGRESQL`` hold one script per version, in step: version N means the same
tables and columns on both (types differ: BLOB/BYTEA, REAL/DOUBLE PRECISION, AUTOINCREMENT/
BIGSERIAL). SQLite records the version in ``PRAGMA user_version``, PostgreSQL in the
``schema_version`` table. A process refuses to open a store whose version is newer than its
own list (``StoreTooNew``): an older replica must not write to a schema it does not know.
"""

from __future__ import annotations

import sqlite3

# PostgreSQL: how many bytes of each body its trigram index holds, as schema version 9 spells
# it in the index's expression and in ``bodies_long``'s predicate (a query must spell them the
# same way for the planner to use them). A search confirms the longer bodies in full
# (``listing._trigram``): this bounds the index's cost per capture, never what a search finds.
BODY_PREFIX = 65536

# Each entry upgrades the schema by one version (PRAGMA user_version). Never edit a shipped
# entry: append a new one.
SQLITE: list[str] = [
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
    # 6: leases on deliveries, so that one replica sends each due attempt (a replica that
    # dies mid-attempt loses its lease when it expires).
    """
    ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
    ALTER TABLE deliveries ADD COLUMN lease_until REAL;
    """,
    # 7: search. What the trigram index holds for each request (its text, ASCII letters folded
    # as LIKE folds them, by SQLite's lower(); a value with a NUL, where the trigram tokenizer
    # stops reading, goes through search_fold(), which also makes the NUL a space: a term with
    # a NUL is scanned), and how far the index has got. Python is called for those values
    # only: a callback takes the GIL from the event loop's thread. Events by endpoint, most
    # recent first: the timeline's order (attempts.list_events).
    """
    CREATE VIEW search_text AS
        SELECT r.id AS id, lower(r.path) AS path, lower(r.query) AS query,
               lower(r.headers) AS headers,
               CASE WHEN instr(r.event_key, char(0)) THEN search_fold(r.event_key)
                    ELSE lower(r.event_key) END AS event_key,
               CASE WHEN instr(r.event_type, char(0)) THEN search_fold(r.event_type)
                    ELSE lower(r.event_type) END AS event_type,
               CASE WHEN instr(b.body, x'00') THEN search_fold(b.body)
                    ELSE lower(b.body) END AS body
        FROM requests AS r LEFT JOIN bodies AS b ON b.request_id = r.id;
    CREATE TABLE search_state (indexed_upto INTEGER NOT NULL);
    INSERT INTO search_state VALUES (0);
    CREATE INDEX events_by_endpoint ON events (endpoint, last_id);
    """,
    # 8: each endpoint's request count and newest id, kept by triggers on every insert and
    # delete (whoever makes it: capture, retention, delete, clear, import), so that the list
    # of endpoints does not count a million rows on every read.
    """
    CREATE TABLE endpoint_stats (
        endpoint TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        last_id INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO endpoint_stats (endpoint, count, last_id)
        SELECT endpoint, count(*), max(id) FROM requests GROUP BY endpoint;
    CREATE TRIGGER requests_counted AFTER INSERT ON requests BEGIN
        INSERT INTO endpoint_stats (endpoint, count, last_id) VALUES (new.endpoint, 1, new.id)
            ON CONFLICT (endpoint) DO UPDATE
            SET count = count + 1, last_id = max(last_id, excluded.last_id);
    END;
    CREATE TRIGGER requests_uncounted AFTER DELETE ON requests BEGIN
        UPDATE endpoint_stats SET count = count - 1,
            last_id = CASE WHEN last_id = old.id
                THEN coalesce((SELECT max(id) FROM requests WHERE endpoint = old.endpoint), 0)
                ELSE last_id END
            WHERE endpoint = old.endpoint;
        DELETE FROM endpoint_stats WHERE endpoint = old.endpoint AND count <= 0;
    END;
    """,
    # 9: nothing for SQLite (PostgreSQL's body index changed shape); kept in step.
    "",
]

# The same versions for PostgreSQL. Besides the shared tables: ``counters`` (the number of
# stored requests, kept in the batch that changes it, for retention across replicas) and
# ``inspector_head()`` (the newest id a committed batch issued; see ``postgres.py``).
POSTGRESQL: list[str] = [
    """
    CREATE TABLE requests (
        id BIGSERIAL PRIMARY KEY,
        endpoint TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        query TEXT NOT NULL,
        headers TEXT NOT NULL,
        client TEXT,
        received_at TEXT NOT NULL,
        received_ts DOUBLE PRECISION NOT NULL,
        size BIGINT NOT NULL,
        content_type TEXT,
        truncated INTEGER NOT NULL DEFAULT 0,
        note TEXT,
        event_key TEXT,
        event_type TEXT,
        attempt INTEGER NOT NULL DEFAULT 1,
        first_attempt_id BIGINT,
        signature TEXT,
        sig_status TEXT,
        response_status INTEGER,
        response_headers TEXT,
        response_body BYTEA,
        response_ms DOUBLE PRECISION,
        delay_ms DOUBLE PRECISION,
        dropped INTEGER NOT NULL DEFAULT 0,
        client_gave_up_after_ms DOUBLE PRECISION,
        in_progress INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX requests_by_endpoint ON requests (endpoint, id);
    CREATE INDEX requests_by_event ON requests (endpoint, event_key, id);
    CREATE TABLE bodies (
        request_id BIGINT PRIMARY KEY,
        body BYTEA NOT NULL
    );
    CREATE TABLE endpoints (
        name TEXT PRIMARY KEY,
        settings TEXT NOT NULL DEFAULT '{}',
        version BIGINT NOT NULL DEFAULT 0,
        updated_at TEXT
    );
    CREATE TABLE events (
        endpoint TEXT NOT NULL,
        event_key TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        first_id BIGINT NOT NULL,
        last_id BIGINT NOT NULL,
        PRIMARY KEY (endpoint, event_key)
    );
    CREATE INDEX events_by_last_id ON events (last_id);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO counters VALUES ('requests', 0);
    CREATE FUNCTION inspector_head() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
        SELECT pg_advisory_xact_lock_shared(
            hashtextextended('webhook-inspector/' || current_schema(), 0));
        SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM requests_id_seq;
    $$;
    """,
    """
    ALTER TABLE requests ADD COLUMN original_id BIGINT;
    CREATE TABLE replays (
        id BIGSERIAL PRIMARY KEY,
        request_id BIGINT NOT NULL,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        method TEXT NOT NULL,
        request_headers TEXT NOT NULL,
        request_body BYTEA,
        sent_at TEXT NOT NULL,
        status INTEGER,
        elapsed_ms DOUBLE PRECISION,
        error TEXT,
        response_headers TEXT,
        response_body BYTEA,
        response_truncated INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX replays_by_request ON replays (request_id, id);
    """,
    """
    CREATE TABLE deliveries (
        id BIGSERIAL PRIMARY KEY,
        event TEXT NOT NULL,
        event_key TEXT,
        url TEXT NOT NULL,
        scheme TEXT NOT NULL,
        secret TEXT,
        headers TEXT NOT NULL DEFAULT '[]',
        body BYTEA NOT NULL,
        state TEXT NOT NULL,
        schedule TEXT NOT NULL,
        timeout DOUBLE PRECISION NOT NULL,
        time_scale DOUBLE PRECISION NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts DOUBLE PRECISION,
        created_at TEXT NOT NULL,
        updated_at TEXT,
        msg_id TEXT NOT NULL,
        carrier TEXT
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_ts);
    CREATE TABLE delivery_attempts (
        id BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT NOT NULL,
        attempt INTEGER NOT NULL,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        sent_ts DOUBLE PRECISION NOT NULL,
        status INTEGER,
        elapsed_ms DOUBLE PRECISION,
        error TEXT,
        request_headers TEXT NOT NULL DEFAULT '[]',
        response_headers TEXT,
        response_body BYTEA,
        response_truncated INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX attempts_by_delivery ON delivery_attempts (delivery_id, attempt);
    """,
    """
    ALTER TABLE requests ADD COLUMN tls_version TEXT;
    ALTER TABLE requests ADD COLUMN tls_server_name TEXT;
    ALTER TABLE deliveries ADD COLUMN ca_file TEXT;
    ALTER TABLE deliveries ADD COLUMN insecure INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE replays ADD COLUMN insecure INTEGER NOT NULL DEFAULT 0;
    """,
    """
    ALTER TABLE deliveries ADD COLUMN wait_from TEXT NOT NULL DEFAULT 'start';
    CREATE INDEX deliveries_by_event ON deliveries (event_key, id);
    """,
    """
    ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
    ALTER TABLE deliveries ADD COLUMN lease_until DOUBLE PRECISION;
    """,
    # 7: search. pg_trgm's GIN indexes on the text of each request (path, query, headers,
    # event key and type; ASCII letters folded under the C collation) and on each body as
    # encode(body, 'escape') spells it (NUL-safe: text cannot hold a NUL), which a search reads
    # its candidates from; without the extension (not installed, no right to install it),
    # searches scan. search_state and events_by_endpoint as SQLite's version 7 has them.
    """
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            BEGIN
                CREATE EXTENSION pg_trgm SCHEMA public;
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL;  -- another schema's
                WHEN insufficient_privilege OR invalid_schema_name THEN
                    CREATE EXTENSION IF NOT EXISTS pg_trgm;
                WHEN undefined_file OR feature_not_supported THEN
                    RAISE NOTICE 'pg_trgm is not installed: searches scan';
            END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            EXECUTE format(
                'CREATE INDEX requests_search ON requests USING gin ((lower((path || chr(1)'
                ' || query || chr(1) || headers || chr(1) || coalesce(event_key, '''')'
                ' || chr(1) || coalesce(event_type, '''')) COLLATE "C")) %I.gin_trgm_ops)',
                (SELECT extnamespace::regnamespace::text FROM pg_extension
                 WHERE extname = 'pg_trgm'));
            EXECUTE format(
                'CREATE INDEX bodies_search ON bodies USING gin'
                ' ((lower(encode(body, ''escape'') COLLATE "C")) %I.gin_trgm_ops)',
                (SELECT extnamespace::regnamespace::text FROM pg_extension
                 WHERE extname = 'pg_trgm'));
        END IF;
    END $$;
    CREATE TABLE search_state (indexed_upto BIGINT NOT NULL);
    INSERT INTO search_state VALUES (0);
    CREATE INDEX events_by_endpoint ON events (endpoint, last_id);
    """,
    # 8: each endpoint's request count and newest id, kept by statement triggers on every
    # insert and delete (whichever replica or command makes it).
    """
    CREATE TABLE endpoint_stats (
        endpoint TEXT PRIMARY KEY,
        count BIGINT NOT NULL,
        last_id BIGINT NOT NULL
    );
    INSERT INTO endpoint_stats (endpoint, count, last_id)
        SELECT endpoint, count(*), max(id) FROM requests GROUP BY endpoint;
    CREATE FUNCTION inspector_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO endpoint_stats AS s (endpoint, count, last_id)
            SELECT endpoint, count(*), max(id) FROM added GROUP BY endpoint
            ON CONFLICT (endpoint) DO UPDATE
            SET count = s.count + excluded.count, last_id = greatest(s.last_id, excluded.last_id);
        RETURN NULL;
    END $$;
    CREATE FUNCTION inspector_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE endpoint_stats AS s SET count = s.count - g.n
            FROM (SELECT endpoint, count(*) AS n FROM removed GROUP BY endpoint) AS g
            WHERE s.endpoint = g.endpoint;
        DELETE FROM endpoint_stats WHERE count <= 0;
        UPDATE endpoint_stats AS s
            SET last_id = (SELECT max(id) FROM requests AS r WHERE r.endpoint = s.endpoint)
            WHERE s.last_id IN (SELECT id FROM removed);
        RETURN NULL;
    END $$;
    CREATE TRIGGER requests_counted AFTER INSERT ON requests
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION inspector_count_added();
    CREATE TRIGGER requests_uncounted AFTER DELETE ON requests
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
        EXECUTE FUNCTION inspector_count_removed();
    """,
    # 9: a body is trigram-indexed by its first BODY_PREFIX bytes only (a 5 MiB binary body
    # was ~20 MB of escaped text indexed while its capture waited); the longer ones, listed
    # by a small partial index, are confirmed in full by every search that reaches them.
    """
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema()
                   AND indexname = 'bodies_search') THEN
            DROP INDEX bodies_search;
            EXECUTE format(
                'CREATE INDEX bodies_search ON bodies USING gin ((lower(encode(substring(body'
                ' FROM 1 FOR 65536), ''escape'') COLLATE "C")) %I.gin_trgm_ops)',
                (SELECT extnamespace::regnamespace::text FROM pg_extension
                 WHERE extname = 'pg_trgm'));
        END IF;
    END $$;
    CREATE INDEX bodies_long ON bodies (request_id) WHERE length(body) > 65536;
    """,
]


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def search_fold(value: str | bytes | None) -> str | bytes | None:
    """Text as SQLite's search index holds it (view ``search_text``): ASCII letters
    lower-cased, as SQLite's ``lower()`` and LIKE fold them, and NUL made a space (the trigram
    tokenizer stops at a NUL). Bytes stay bytes."""
    if isinstance(value, bytes):
        return value.lower().replace(b"\x00", b" ")
    if isinstance(value, str):
        return value.translate(_ASCII_LOWER).replace("\x00", " ")
    return value


def statements(script: str) -> list[str]:
    """A SQLite script's statements, one by one (a trigger's body holds semicolons)."""
    out: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending.strip())
    return out
