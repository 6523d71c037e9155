"""What the commands share on the way in: adding a command, its flags, the store they name.

``serve``'s flags (and every command's ``--data-dir``) are built from the ``Settings``
table (``settings.Option``): flag, parser, default, help and environment variable come from
there, so ``serve --help``, ``Settings`` and the README's options table cannot disagree.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import Field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from inspector import settings
from inspector.outbound import TlsOptions, check_ca_file
from inspector.settings import Option, Settings
from inspector.signatures import SCHEMES
from inspector.store import Store

T = TypeVar("T")
# What ``add_subparsers`` hands each command module's ``register``.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

SECRET_ENV = "WEBHOOK_SECRET"
HMAC_ALGORITHMS = ("sha1", "sha256", "sha512")
HMAC_ENCODINGS = ("hex", "base64")


class CliError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def add_command(
    sub: Commands, name: str, summary: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A sub-command: ``summary`` is its line in ``webhook-inspector --help``; ``description``
    (default: the summary) heads its own ``--help``."""
    return sub.add_parser(name, help=summary, description=description or summary)


TOKEN_ENV = "WEBHOOK_INSPECTOR_TOKEN"


def add_token(p: argparse.ArgumentParser) -> None:
    """``--token`` for a command that talks to a running server: the token ``serve`` was
    given (or generated), sent as ``Authorization: Bearer`` by the client."""
    p.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        metavar="TOKEN",
        help=f"The server's token, if it requires one (default: ${TOKEN_ENV}).",
    )


# -- value types -------------------------------------------------------------------------------


def argument_type(parse: Callable[[str], T], name: str = "value") -> Callable[[str], T]:
    """An argparse type from a ``settings`` parser: its ValueError message becomes the error
    (argparse would otherwise print only "invalid value")."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi], with a clear message otherwise."""
    return argument_type(settings.whole_number(lo, hi), "integer")


positive_float = argument_type(settings.positive_number, "number")


def parse_schedule(text: str) -> tuple[float, ...]:
    """``60,300,1800`` -> (60.0, 300.0, 1800.0); every interval a positive number."""
    try:
        schedule = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise CliError(f"--schedule: comma-separated seconds, got {text!r}.") from None
    if any(not 0 < s < 1e7 for s in schedule):
        raise CliError("--schedule: every interval must be a positive number of seconds.")
    return schedule


# -- flags from the Settings table -------------------------------------------------------------


def _field(name: str) -> tuple[Field[object], Option]:
    for f, option in settings.options():
        if f.name == name:
            return f, option
    raise KeyError(name)  # a programming mistake: every caller names a known setting


def _env_value(option: Option) -> object:
    text = os.environ.get(option.env) if option.env else None
    return option.parse(text) if text else None


def setting_help(f: Field[object], option: Option, default: object) -> str:
    """The help text of a setting's flag: what it does, its default, its variable."""
    notes = []
    shown = settings.shown_default(f, default)
    if shown is not None:
        notes.append(f"default: {shown}")
    if option.env:
        notes.append(f"or set {option.env}")
    text = str(f.metadata["help"])
    if notes:
        text = f"{text.removesuffix('.')} ({'; '.join(notes)})."
    return text.replace("%", "%%")  # argparse expands %(...)s in help


def add_setting(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the flag of setting ``name`` (its parser, choices, default and help)."""
    f, option = _field(name)
    default = settings.default_of(f)
    help_text = setting_help(f, option, default)
    env_value = _env_value(option)
    if isinstance(f.default, bool):
        parser.add_argument(option.flag, dest=f.name, action="store_true", help=help_text)
        return
    value_type = argument_type(option.parse, option.metavar or "value")
    choices = option.choices or None
    if option.repeat:
        parser.add_argument(
            option.flag,
            action="append",
            dest=f.name,
            help=help_text,
            metavar=option.metavar,
            type=value_type,
            choices=choices,
        )
    else:
        parser.add_argument(
            option.flag,
            default=env_value if env_value is not None else default,
            dest=f.name,
            help=help_text,
            metavar=option.metavar,
            type=value_type,
            choices=choices,
        )


def add_settings(parser: argparse.ArgumentParser) -> None:
    """Every setting ``serve`` takes, in the table's order."""
    for f, _ in settings.options():
        add_setting(parser, f.name)


def settings_from(args: argparse.Namespace) -> Settings:
    """The ``Settings`` the parsed flags ask for (unset ones keep their defaults)."""
    values: dict[str, Any] = {}
    for f, option in settings.options():
        value = getattr(args, f.name)
        if option.repeat:
            value = tuple(value or ())
        if value is None or (value == "" and f.default is None):  # --secret "": no secret
            continue
        values[f.name] = value
    return Settings(**values)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """Where the store is: ``--data-dir`` (SQLite) and ``--database`` (PostgreSQL)."""
    add_setting(parser, "data_dir")
    add_setting(parser, "database")


def open_store(data_dir: Path, *, must_exist: bool = True, database: str | None = None) -> Store:
    """The store a command works on: the PostgreSQL one ``--database`` names, else the
    SQLite file in ``data_dir``."""
    if database:
        return Store(database).open()
    path = data_dir / "inspector.db"
    if must_exist and not path.exists():
        raise CliError(
            f"No store at {path} yet: start `webhook-inspector serve` and capture something."
        )
    return Store(path).open()


# -- outgoing TLS (replay, send, check, endpoint) ----------------------------------------------

INSECURE_WARNING = (
    "WARNING: --insecure: the certificate of the https:// target is NOT verified; anyone on the "
    "way could read and change what is sent."
)


def add_tls_options(p: argparse.ArgumentParser, target: str) -> None:
    """``--ca-file`` and ``--insecure``: how an https:// ``target``'s certificate is checked."""
    p.add_argument(
        "--ca-file",
        metavar="FILE",
        help=f"Also trust the CA certificates in FILE (PEM) for an https:// {target}; by "
        "default certificates must chain to a public CA (the inspector's own local CA is "
        "trusted for this machine).",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help=f"Do not verify the {target}'s certificate at all (marked wherever it shows).",
    )


def tls_options(args: argparse.Namespace) -> TlsOptions:
    """The ``TlsOptions`` of ``--ca-file``/``--insecure``; ``BadRequest`` for a CA file that
    does not load."""
    return TlsOptions(check_ca_file(args.ca_file, "--ca-file"), args.insecure)


# -- signing (endpoint, sign, send, check) -----------------------------------------------------


def add_signing(p: argparse.ArgumentParser, *, timeout: float) -> None:
    p.add_argument(
        "--secret", metavar="S", help=f"Webhook secret to sign with (default: ${SECRET_ENV})."
    )
    p.add_argument(
        "--scheme",
        default="platform",
        choices=SCHEMES,
        help="Signature scheme (default: %(default)s = X-Webhook-Signature: sha256=<hex>).",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        metavar="SECONDS",
        help="Seconds the receiver has to answer (default: %(default)s, as the platform).",
    )


def signing_secret(args: argparse.Namespace) -> str:
    """``--secret``, else ``$WEBHOOK_SECRET``; a clear error when neither is set."""
    secret: str | None = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        raise CliError(f"A signing secret is required: --secret S or {SECRET_ENV}.")
    return secret


def add_hmac_options(p: argparse.ArgumentParser) -> None:
    """The generic ``hmac`` scheme's knobs (``endpoint`` stores them, ``sign`` uses them)."""
    p.add_argument(
        "--hmac-header", metavar="NAME", help="hmac scheme: the signature header's name."
    )
    p.add_argument(
        "--hmac-algorithm", choices=HMAC_ALGORITHMS, help="hmac scheme: the digest algorithm."
    )
    p.add_argument(
        "--hmac-encoding", choices=HMAC_ENCODINGS, help="hmac scheme: how the digest is written."
    )
    p.add_argument(
        "--hmac-prefix",
        metavar="TEXT",
        help="hmac scheme: text before the digest in the header (e.g. sha256=).",
    )
