"""``webhook-inspector export`` and ``import`` (one module: ``import`` is a Python keyword,
and the two are one round trip): captures to JSON Lines or HAR, and JSON Lines back in.

Both open the store directly, so they work with or without a server on the same data dir.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from inspector import transfer
from inspector.cli.options import CliError, Commands, add_command, add_data_dir, open_store


def cmd_export(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, database=args.database)
    count = 0

    def counted() -> Iterator[transfer.ExportRecord]:
        nonlocal count
        for rec in transfer.records_sync(store, args.endpoint):
            count += 1
            yield rec

    try:
        if args.output in (None, "-"):
            out = sys.stdout.buffer
            for chunk in transfer.export_chunks(counted(), args.format):
                out.write(chunk)
            out.flush()
        else:
            try:
                with open(Path(args.output).expanduser(), "wb") as fh:
                    for chunk in transfer.export_chunks(counted(), args.format):
                        fh.write(chunk)
            except OSError as exc:
                raise CliError(f"Cannot write {args.output}: {exc.strerror or exc}.") from None
    finally:
        store.close()
    where = "stdout" if args.output in (None, "-") else args.output
    print(f"Exported {count} request(s) to {where} ({args.format}).", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, must_exist=False, database=args.database)
    try:
        if args.file == "-":
            ids = transfer.import_sync(store, sys.stdin.buffer, args.endpoint)
        else:
            try:
                with open(Path(args.file).expanduser(), "rb") as fh:
                    ids = transfer.import_sync(store, fh, args.endpoint)
            except OSError as exc:
                raise CliError(f"Cannot read {args.file}: {exc.strerror or exc}.") from None
    finally:
        store.close()
    span = f" as #{ids[0]}..#{ids[-1]}" if ids else ""
    print(f"Imported {len(ids)} request(s){span}.")
    return 0


def register(sub: Commands) -> None:
    exp = add_command(
        sub,
        "export",
        "Export captured requests as JSON Lines or HAR (no server needed).",
        "Write captured requests, oldest first: JSON Lines (byte-exact, re-importable with "
        "`import`) or HAR 1.2 (for browser dev tools).",
    )
    exp.add_argument("--endpoint", metavar="E", help="Only this endpoint's requests.")
    exp.add_argument(
        "--format",
        choices=transfer.FORMATS,
        default="jsonl",
        help="jsonl: byte-exact, re-importable (default); har: for browser dev tools.",
    )
    exp.add_argument("-o", "--output", metavar="FILE", help="Write here (default: stdout).")
    add_data_dir(exp)
    exp.set_defaults(func=cmd_export)

    imp = add_command(
        sub,
        "import",
        "Import a JSON Lines export as new requests, in file order (no server needed).",
        "Add each line of a JSON Lines export as a new request (new id; the file's id is kept "
        "as original_id), byte for byte, in file order.",
    )
    imp.add_argument("file", metavar="FILE", help="A JSON Lines export ('-' for stdin).")
    imp.add_argument("--endpoint", metavar="E", help="Put every request in endpoint E.")
    add_data_dir(imp)
    imp.set_defaults(func=cmd_import)
