"""SQL jobs for endpoints: the list of endpoints seen or configured, and their settings.

Settings are one JSON object per endpoint in the ``endpoints`` table, validated by
``inspector.endpoints.EndpointSettings`` before they are written and again when they are read
(a row written by an older version must not stop capture). Every write takes a new global
``version``, which the server's ``EndpointCache`` polls to notice changes made by the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypedDict

from inspector.store.backend import Connection, notice

# Stored settings as JSON text decoded: unvalidated until ``EndpointSettings`` reads them.
StoredSettings = dict[str, object]


class EndpointItem(TypedDict):
    """An endpoint as ``GET /api/endpoints`` and the page list it."""

    name: str
    count: int  # requests stored
    last_seen: str | None  # received_at of its newest request
    last_id: int | None  # id of its newest request


def list_endpoints(conn: Connection) -> list[EndpointItem]:
    """Every endpoint seen or configured: name, request count, last seen, newest id."""
    rows = conn.execute(
        "SELECT s.endpoint AS name, s.count, r.received_at AS last_seen, s.last_id"
        " FROM endpoint_stats AS s JOIN requests AS r ON r.id = s.last_id"
    ).fetchall()
    seen: dict[str, EndpointItem] = {
        r["name"]: EndpointItem(
            name=r["name"], count=r["count"], last_seen=r["last_seen"], last_id=r["last_id"]
        )
        for r in rows
    }
    for (name,) in conn.execute("SELECT name FROM endpoints"):
        seen.setdefault(name, EndpointItem(name=name, count=0, last_seen=None, last_id=None))
    return sorted(seen.values(), key=lambda e: (-(e["last_id"] or 0), e["name"]))


def get_endpoint_settings(conn: Connection, name: str) -> StoredSettings | None:
    row = conn.execute("SELECT settings FROM endpoints WHERE name=?", (name,)).fetchone()
    return _settings(row[0]) if row is not None else None


def put_endpoint_settings(
    conn: Connection, name: str, settings: Mapping[str, object], updated_at: str
) -> int:
    """Replace an endpoint's settings; returns the new global settings version."""
    version: int = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM endpoints").fetchone()[0]
    conn.execute(
        "INSERT INTO endpoints (name, settings, version, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET settings=excluded.settings,"
        " version=excluded.version, updated_at=excluded.updated_at",
        (name, json.dumps(dict(settings)), version, updated_at),
    )
    notice(conn, "settings", version)
    return version


def all_endpoint_settings(conn: Connection) -> tuple[int, dict[str, StoredSettings]]:
    """The settings version (max) and every endpoint's settings, for the server's cache."""
    rows = conn.execute("SELECT name, settings, version FROM endpoints").fetchall()
    version = max((r["version"] for r in rows), default=0)
    return version, {r["name"]: _settings(r["settings"]) for r in rows}


def settings_version(conn: Connection) -> int:
    version: int = conn.execute("SELECT coalesce(max(version), 0) FROM endpoints").fetchone()[0]
    return version


def _settings(text: str) -> StoredSettings:
    settings: StoredSettings = json.loads(text)
    return settings
