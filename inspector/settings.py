"""Settings: one frozen dataclass, every field with a default and help text.

The CLI builds a ``Settings`` from its flags; tests build one directly. Nothing else reads
the environment, except ``default_data_dir`` and ``WEBHOOK_SECRET`` resolved in the CLI.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


def default_data_dir() -> Path:
    """The per-user data directory.

    ``$WEBHOOK_INSPECTOR_DATA`` if set; else ``$XDG_DATA_HOME/webhook-inspector`` (Linux,
    default ``~/.local/share/webhook-inspector``); ``~/Library/Application Support/
    webhook-inspector`` on macOS; ``%LOCALAPPDATA%\\webhook-inspector`` on Windows.
    """
    explicit = os.environ.get("WEBHOOK_INSPECTOR_DATA")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "webhook-inspector"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "webhook-inspector"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "webhook-inspector"


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata=_help("Address to bind."))
    port: int = field(default=8765, metadata=_help("Port to bind (0 picks a free one)."))
    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata=_help("Directory holding the SQLite store (inspector.db)."),
    )
    max_body: int = field(
        default=10 * MiB,
        metadata=_help("Largest request body captured, in bytes; larger gets 413."),
    )
    retention: int = field(
        default=10_000, metadata=_help("Newest N requests kept; older ones are evicted.")
    )
    allow_hosts: tuple[str, ...] = field(
        default=(),
        metadata=_help("Extra Host names the UI and API answer to (besides loopback names)."),
    )
    secret: str | None = field(
        default=None,
        metadata=_help(
            "Default signature secret for endpoints without their own (WEBHOOK_SECRET)."
        ),
    )
    max_delay: float = field(
        default=600.0, metadata=_help("Largest delay=SECONDS a capture URL may ask for.")
    )
    busy_timeout: float = field(
        default=5.0,
        metadata=_help("Seconds the store waits on a locked database before answering 503."),
    )
    synchronous: str = field(
        default="FULL",
        metadata=_help("SQLite synchronous mode: FULL fsyncs every group commit (durable)."),
    )
    forward_to: str | None = field(
        default=None, metadata=_help("Forward every capture to this URL (all endpoints).")
    )
    forward_mode: str = field(
        default="mirror",
        metadata=_help(
            "How --forward-to forwards: mirror (answer the sender, send a copy) or proxy "
            "(the sender gets the app's answer)."
        ),
    )
    replay_timeout: float = field(
        default=30.0, metadata=_help("Seconds a replay or forward waits for the target app.")
    )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "inspector.db"
