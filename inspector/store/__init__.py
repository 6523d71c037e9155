"""The store: schema, migrations, the group-commit writer, retention, and every query, on
embedded SQLite (one process) or PostgreSQL (replicas sharing one store).

All SQL lives in this package: ``schema`` (tables, migrations for both engines), ``core`` (the
``Store``: writer and readers), ``backend`` (what a job may assume of a connection, and the
``Dialect`` fragments that differ), ``sqlite`` and ``postgres`` (the two backends), and one
module of jobs per concept — ``requests`` (with ``intake``, ``listing`` and ``verdicts``),
``endpoints``, ``attempts``, ``replays``, ``deliveries``, ``leases`` — functions of
``(conn, ...)`` that the ``Store`` runs inside a connection, typed end to end
(``Store.write(fn, *args)`` checks ``args`` against ``fn``), which return the records the API
serves (``TypedDict``s declared beside the SQL that shapes them).
Two rules shape it:

* **A 2xx from a capture route means the request is on disk.** Writes go through one writer
  thread that drains a queue, runs every queued job in one transaction and commits once (group
  commit), then wakes each caller. A capture awaits its own job's commit before it answers.
  One fsync per batch instead of one per request is what makes durable capture fast.
* **Nothing runs on the event loop.** Reads run in worker threads with a connection per thread
  (WAL lets them read while the writer writes).

The same ``Store`` serves the CLI (``list``, ``show``, ``export`` ...) without a server: its
``*_sync`` methods run a job in the caller's thread.
"""

from __future__ import annotations

from inspector.store.backend import Connection, Notice
from inspector.store.core import Store, is_database_url

__all__ = ["Connection", "Notice", "Store", "is_database_url"]
