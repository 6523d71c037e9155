"""``webhook-inspector check``: grade a receiver as the platform will treat it; a non-zero
exit on any failure, for CI."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from inspector import check, sender
from inspector.cli.options import (
    INSECURE_WARNING,
    Commands,
    add_command,
    add_data_dir,
    add_signing,
    add_tls_options,
    int_in,
    signing_secret,
    tls_options,
)
from inspector.cli.terminal import BLANK, echo, print_table
from inspector.settings import local_ca_file


def cmd_check(args: argparse.Namespace) -> int:
    tls = tls_options(args)
    if tls.insecure and not args.json:
        echo(INSECURE_WARNING, file=sys.stderr, flush=True)
    report = asyncio.run(
        check.check_receiver(
            args.url,
            signing_secret(args),
            scheme=args.scheme,
            timeout=args.timeout,
            slow=args.slow,
            oversize=args.oversize,
            tls=tls,
            own_ca=local_ca_file(args.data_dir),
            strict=args.strict,
        )
    )
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return 0 if report.passed else 1
    echo(f"Checking {report.url} as the platform would ({report.scheme} signatures)")
    print()
    rows = [["CHECK", "RESULT", "STATUS", "TIME", "DETAIL"]]
    for row in report.rows:
        rows.append(
            [
                row.check,
                row.verdict.upper(),
                "/".join(BLANK if s is None else str(s) for s in row.statuses)
                if row.statuses
                else (BLANK if row.status is None else str(row.status)),
                BLANK if row.latency_ms is None else f"{row.latency_ms:.0f} ms",
                row.detail,
            ]
        )
    print_table(rows)
    counts = report.counts()
    verdict = "ready for the platform" if report.passed else "fix the failed rows above"
    if report.passed and counts["warn"]:
        verdict = "ready, but read the warnings (--strict fails on them)"
    elif not report.passed and not counts["fail"]:
        verdict = "the warnings above fail the run (--strict)"
    print(
        f"\n{counts['pass']} passed, {counts['warn']} warning(s), {counts['fail']} failed: "
        f"{verdict}."
    )
    return 0 if report.passed else 1


def register(sub: Commands) -> None:
    chk = add_command(
        sub,
        "check",
        "Grade a receiver as the platform will treat it (exit 1 on any failure).",
        "Send a receiver the platform's events, bad signatures, the raw-body trap, a "
        "duplicate, a non-JSON and an oversized body, one at a time, and grade each answer; "
        "and check the platform's HTTPS requirement. Exit status 1 on any failure (and, with "
        "--strict, any warning), for CI.",
    )
    chk.add_argument("url", metavar="URL", help="The receiver's URL.")
    add_signing(chk, timeout=sender.DEFAULT_TIMEOUT)
    chk.add_argument(
        "--slow",
        type=float,
        default=check.DEFAULT_SLOW,
        metavar="SECONDS",
        help="Warn when a valid event takes longer (default: %(default)s).",
    )
    chk.add_argument(
        "--oversize",
        type=int_in(1, 1 << 30),
        default=check.DEFAULT_OVERSIZE,
        metavar="BYTES",
        help="Size of the oversized body (default: %(default)s = 5 MiB).",
    )
    chk.add_argument(
        "--strict",
        action="store_true",
        help="Warnings fail the run too (an http:// URL, an unverified certificate, a slow "
        "answer...).",
    )
    add_tls_options(chk, "receiver")
    chk.add_argument("--json", action="store_true", help="Machine-readable output.")
    add_data_dir(chk)
    chk.set_defaults(func=cmd_check)
