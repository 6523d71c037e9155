"""The command line: parse -> Settings -> create_app / store / client call.

A thin shell. Each command module (``serve``, ``browse``, ...) has ``register(sub)`` adding
its sub-commands, each a function of the parsed arguments returning an exit code.
``InspectorError`` and ``CliError`` become a message on stderr and exit status 2 here only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from inspector import __version__
from inspector.cli import browse, endpoints, replay, sender, serve, tail
from inspector.cli.options import CliError
from inspector.errors import InspectorError

Command = Callable[[argparse.Namespace], int]

# Order is the order of `webhook-inspector --help`.
COMMAND_MODULES = [serve, browse, endpoints, sender, replay, tail]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webhook-inspector",
        description="A local webhook inspector and tunnel-free test server.",
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
        return func(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InspectorError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
