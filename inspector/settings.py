"""Settings: one frozen dataclass, every field with a default and help text.

The table below is the one source for each setting: its default, its help text and, for the
ones ``serve`` takes, the flag, the value parser and the environment variable (an
``Option``). ``cli/options.py`` builds ``serve``'s flags from it and a test holds the README's
options table to the parser. Tests build a ``Settings`` directly. Nothing else reads the
environment: the CLI reads the variables named here, and ``default_data_dir`` its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from inspector.display import human_size
from inspector.errors import InspectorError
from inspector.outbound.guard import parse_target

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


# -- value parsers: text (a flag, an environment variable) -> value, ValueError if bad ---------


def whole_number(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """A parser for an integer in [lo, hi], with a message that names the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise ValueError(f"must be {bound}, got {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    """A finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"must be a number above 0, got {text!r}")
    return value


def target_url(text: str) -> str:
    """An outbound target (``--forward-to``): http(s), and never a link-local or cloud-metadata
    address — refused at start, as every send would refuse it."""
    try:
        parse_target(text, "URL")
    except InspectorError as exc:
        raise ValueError(str(exc.detail).removeprefix("URL: ")) from None
    return text


def directory(text: str) -> Path:
    return Path(text).expanduser()


def database_url(text: str) -> str:
    """A PostgreSQL URL (``postgresql://user:password@host:port/db``)."""
    if not text.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"expected a postgresql:// URL, got {text[:40]!r}")
    return text


def file_path(text: str) -> Path:
    """A file given on the command line, made absolute (the server may change directory)."""
    return Path(text).expanduser().resolve()


def local_ca_file(data_dir: Path) -> Path:
    """The local CA's certificate (``serve --https``): the file people trust."""
    return data_dir / "tls" / "ca.crt"


def _bytes(n: int) -> str:
    return f"{n} = {human_size(n)}"


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """How ``serve`` takes a setting: its flag, how the value is read and how it is shown."""

    flag: str
    parse: Callable[[str], object] = str
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    env: str | None = None  # read when the flag is not given
    repeat: bool = False  # the flag may be given again (a tuple setting)
    shown: Callable[[Any], str] | None = None  # how the default reads, if not str()
    computed: str | None = None  # the README's words for a default computed at start-up


def _setting(text: str, option: Option | None = None) -> dict[str, object]:
    return {"help": text, "option": option}


@dataclass(frozen=True)
class Settings:
    host: str = field(
        default="127.0.0.1", metadata=_setting("Address to bind.", Option("--host", metavar="HOST"))
    )
    port: int = field(
        default=8765,
        metadata=_setting(
            "Port to bind (0 picks a free one).",
            Option("--port", whole_number(0, 65535), metavar="N"),
        ),
    )
    https: bool = field(
        default=False,
        metadata=_setting(
            "Also serve HTTPS on --https-port, with a certificate from the local CA in "
            "<data-dir>/tls/ (made on first use) or your own --cert/--key.",
            Option("--https"),
        ),
    )
    https_port: int = field(
        default=8443,
        metadata=_setting(
            "Port of the HTTPS listener (0 picks a free one).",
            Option("--https-port", whole_number(0, 65535), metavar="N"),
        ),
    )
    cert: Path | None = field(
        default=None,
        metadata=_setting(
            "Your own certificate (PEM, with its chain) for --https instead of the local CA's.",
            Option("--cert", file_path, metavar="FILE"),
        ),
    )
    key: Path | None = field(
        default=None,
        metadata=_setting(
            "The private key of --cert (PEM).", Option("--key", file_path, metavar="FILE")
        ),
    )
    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata=_setting(
            "Directory holding the SQLite store (inspector.db).",
            Option(
                "--data-dir",
                directory,
                metavar="DIR",
                env="WEBHOOK_INSPECTOR_DATA",
                computed="per-user, see below",
            ),
        ),
    )
    database: str | None = field(
        default=None,
        metadata=_setting(
            "PostgreSQL store shared by replicas, instead of SQLite in the data directory.",
            Option(
                "--database",
                database_url,
                metavar="URL",
                env="WEBHOOK_INSPECTOR_DATABASE",
            ),
        ),
    )
    max_body: int = field(
        default=10 * MiB,
        metadata=_setting(
            "Largest request body captured, in bytes; larger gets 413.",
            Option("--max-body", whole_number(0), metavar="BYTES", shown=_bytes),
        ),
    )
    retention: int = field(
        default=10_000,
        metadata=_setting(
            "Newest N requests kept; older ones are evicted.",
            Option("--retention", whole_number(1), metavar="N"),
        ),
    )
    no_search_index: bool = field(
        default=False,
        metadata=_setting(
            "Search by scanning instead of keeping a trigram index of the stored requests "
            "(inspector.search.db beside the store, written by a thread of its own; it costs "
            "disk and some CPU: see the README, Performance).",
            Option("--no-search-index"),
        ),
    )
    allow_hosts: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            "Extra Host names the UI and API answer to (besides loopback names); repeatable.",
            Option("--allow-host", metavar="NAME", repeat=True),
        ),
    )
    token: str | None = field(
        default=None,
        metadata=_setting(
            "Token the page, /api and the live streams require (Bearer header, or a cookie "
            "set by opening the page with ?token=); capture routes stay open. Generated when "
            "binding a non-loopback address without one.",
            Option("--token", metavar="TOKEN", env="WEBHOOK_INSPECTOR_TOKEN"),
        ),
    )
    no_token: bool = field(
        default=False,
        metadata=_setting(
            "Serve the page and /api on a non-loopback address without a token (only behind "
            "your own authentication).",
            Option("--no-token"),
        ),
    )
    secret: str | None = field(
        default=None,
        metadata=_setting(
            "Default signature secret for endpoints without their own.",
            Option("--secret", metavar="S", env="WEBHOOK_SECRET"),
        ),
    )
    max_delay: float = field(
        default=600.0,
        metadata=_setting(
            "Largest delay=SECONDS a capture URL may ask for.",
            Option("--max-delay", positive_number, metavar="SECONDS"),
        ),
    )
    header_timeout: float = field(
        default=10.0,
        metadata=_setting(
            "Seconds a connection has to send its request headers; then it is closed.",
            Option("--header-timeout", positive_number, metavar="SECONDS"),
        ),
    )
    body_timeout: float = field(
        default=10.0,
        metadata=_setting(
            "Seconds a request body may make no progress; then it is recorded as truncated "
            "and answered 408.",
            Option("--body-timeout", positive_number, metavar="SECONDS"),
        ),
    )
    send_timeout: float = field(
        default=30.0,
        metadata=_setting(
            "Seconds a client may accept none of the data waiting for it (a stuck live "
            "stream); then its connection is closed.",
            Option("--send-timeout", positive_number, metavar="SECONDS"),
        ),
    )
    max_connections: int | None = field(
        default=None,
        metadata=_setting(
            "Open connections served at once; beyond, new ones get 503 with Retry-After.",
            Option(
                "--max-connections",
                whole_number(1),
                metavar="N",
                computed="the descriptor limit less a reserve",
            ),
        ),
    )
    max_body_memory: int = field(
        default=64 * MiB,
        metadata=_setting(
            "Bytes all request bodies being received may hold together (at least --max-body); "
            "a large body beyond it gets 503 with Retry-After.",
            Option("--max-body-memory", whole_number(0), metavar="BYTES", shown=_bytes),
        ),
    )
    busy_timeout: float = field(
        default=5.0,
        metadata=_setting("Seconds the store waits on a locked database before answering 503."),
    )
    synchronous: str = field(
        default="FULL",
        metadata=_setting("SQLite synchronous mode: FULL fsyncs every group commit (durable)."),
    )
    forward_to: str | None = field(
        default=None,
        metadata=_setting(
            "Forward every capture to this URL (endpoints without their own forward_to).",
            Option("--forward-to", target_url, metavar="URL"),
        ),
    )
    forward_mode: str = field(
        default="mirror",
        metadata=_setting(
            "How --forward-to forwards: mirror (answer the sender, send a copy) or proxy "
            "(the sender gets the app's answer).",
            Option("--forward-mode", choices=("mirror", "proxy")),
        ),
    )
    ca_file: Path | None = field(
        default=None,
        metadata=_setting(
            "Also trust this CA (PEM) when forwarding and replaying to https:// URLs "
            "(endpoints may name their own).",
            Option("--ca-file", file_path, metavar="FILE"),
        ),
    )
    insecure: bool = field(
        default=False,
        metadata=_setting(
            "Do not verify certificates when forwarding and replaying to https:// URLs "
            "(marked on each replay and forward).",
            Option("--insecure"),
        ),
    )
    replay_timeout: float = field(
        default=30.0, metadata=_setting("Seconds a replay or forward waits for the target app.")
    )
    log_level: str = field(
        default="warning",
        metadata=_setting(
            "How much the server logs: critical, error, warning, info or debug.",
            Option(
                "--log-level",
                metavar="LEVEL",
                choices=("critical", "error", "warning", "info", "debug"),
            ),
        ),
    )
    access_log: bool = field(
        default=False,
        metadata=_setting("Log every request, at some cost in speed.", Option("--access-log")),
    )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "inspector.db"

    @property
    def store_location(self) -> Path | str:
        """What ``Store`` opens: the PostgreSQL URL if one is set, else the SQLite file."""
        return self.database or self.db_path

    @property
    def tls_dir(self) -> Path:
        """Where the local CA and the server certificate it issues live."""
        return self.data_dir / "tls"

    @property
    def local_ca(self) -> Path | None:
        """The local CA's certificate, when ``--https`` uses it (not with ``--cert``)."""
        return local_ca_file(self.data_dir) if self.https and self.cert is None else None


def options() -> Iterator[tuple[Field[object], Option]]:
    """The settings ``serve`` takes, in the table's order, each with its ``Option``."""
    for f in fields(Settings):
        option = f.metadata["option"]
        if option is not None:
            yield f, option


def default_of(f: Field[object]) -> object:
    """A setting's default (computed now, for a ``default_factory``)."""
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def shown_default(f: Field[object], value: object) -> str | None:
    """How a default reads in help and docs; None when there is none (no value, empty)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == ():
        return None
    option: Option | None = f.metadata["option"]
    if option is not None and option.shown is not None:
        return option.shown(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
