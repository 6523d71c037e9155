"""``webhook-inspector sign``: the signature header(s) for a body, or a whole curl command."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from inspector.cli.options import CliError, Commands, add_command, add_hmac_options
from inspector.signatures import SCHEMES, SignatureConfig, sign


def cmd_sign(args: argparse.Namespace) -> int:
    if args.file in (None, "-"):
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(args.file).read_bytes()
        except OSError as exc:
            raise CliError(f"Cannot read {args.file}: {exc.strerror}") from None
    config = SignatureConfig(
        hmac_header=args.hmac_header or "X-Signature",
        hmac_algorithm=args.hmac_algorithm or "sha256",
        hmac_encoding=args.hmac_encoding or "hex",
        hmac_prefix=args.hmac_prefix or "",
    )
    headers = sign(
        args.scheme, args.secret, body, timestamp=args.timestamp, msg_id=args.id, config=config
    )
    if args.curl:
        parts = ["curl", "-X", "POST", shlex.quote(args.curl)]
        for name, value in headers:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
        parts += ["-H", shlex.quote("Content-Type: application/json")]
        source = "@-" if args.file in (None, "-") else f"@{args.file}"
        parts += ["--data-binary", shlex.quote(source)]
        print(" ".join(parts))
    else:
        for name, value in headers:
            print(f"{name}: {value}")
    return 0


def register(sub: Commands) -> None:
    sg = add_command(
        sub,
        "sign",
        "Print the signature header(s) for a body, or a whole signed curl command.",
        "Sign a body as a sender would and print the header(s), or with --curl a curl "
        "command that sends it signed.",
    )
    sg.add_argument(
        "file", nargs="?", metavar="FILE", help="Body file, or - (the default) for stdin."
    )
    sg.add_argument(
        "--scheme",
        default="platform",
        choices=SCHEMES,
        help="Signature scheme (default: %(default)s).",
    )
    sg.add_argument("--secret", required=True, metavar="S", help="The secret to sign with.")
    sg.add_argument(
        "--timestamp",
        type=int,
        metavar="UNIX",
        help="Unix time for timestamped schemes (default: now).",
    )
    sg.add_argument("--id", metavar="ID", help="Message id (standard scheme; default: random).")
    add_hmac_options(sg)
    sg.add_argument("--curl", metavar="URL", help="Print a whole curl command for this URL.")
    sg.set_defaults(func=cmd_sign)
