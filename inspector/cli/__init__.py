"""The command line: parse -> Settings -> create_app / store / client call.

A thin shell. Each command lives in the module named after it; the module's
``register(sub)`` adds it, as a function of the parsed arguments returning an exit status:

    serve     serve.py          endpoint  endpoint.py      send        send.py
    list      show.py           sign      sign.py          deliveries  deliveries.py
    show      show.py           events    events.py        check       check.py
    diff      diff.py
    tail      tail.py           replay    replay.py        wait        wait.py
    export    export.py         import    export.py (``import`` is a keyword)

What they share: ``options`` (flags, including ``serve``'s from the Settings table, and the
store they name) and ``terminal`` (inert output, tables, pipes, Ctrl-C). ``InspectorError``
and ``CliError`` become a message on stderr and exit status 2 here only; a reader that goes
away (``export | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from inspector import __version__
from inspector.cli import (
    check,
    deliveries,
    diff,
    endpoint,
    events,
    export,
    replay,
    send,
    serve,
    show,
    sign,
    tail,
    wait,
)
from inspector.cli.options import CliError
from inspector.cli.terminal import reader_left
from inspector.errors import InspectorError

Command = Callable[[argparse.Namespace], int]

# Order is the order of `webhook-inspector --help` (and of the README's table).
COMMAND_MODULES = [
    serve,
    show,
    diff,
    endpoint,
    sign,
    events,
    tail,
    wait,
    replay,
    export,
    send,
    deliveries,
    check,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webhook-inspector",
        description="A local webhook inspector and tunnel-free test server.",
        epilog="`webhook-inspector COMMAND --help` explains a command and its options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        status = func(args)
        sys.stdout.flush()  # here, so a reader that left is noticed while we can handle it
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        reader_left()
        return 0
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InspectorError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
