"""What the commands share on the way out: safe text, tables, answers, pipes and Ctrl-C.

Captured text (paths, header values, bodies, a receiver's error) is untrusted: every line a
command prints about it goes through ``safe`` (``echo`` and ``print_table`` do it), so an
escape sequence in a header cannot move the cursor, retitle the window or reorder the line.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import TextIO

from inspector.display import describe_answer

# Everything a terminal could interpret: C0/C1 controls (ESC starts a sequence), DEL, bidi.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

BLANK = "-"  # an empty cell, in every table


def safe(text: str, keep: str = "") -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\u202e``),
    except those in ``keep`` (a body's tabs and newlines)."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep:
            return char
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE.sub(escape, text)


def echo(text: str, file: TextIO | None = None, *, flush: bool = False) -> None:
    """Print one line that may carry captured text, made inert."""
    print(safe(text), file=file or sys.stdout, flush=flush)


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, two spaces apart; every cell made inert first."""
    cells = [[safe(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    for row in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def answer(response: Mapping[str, object]) -> str:
    """What the inspector answered, in the page's words (``-`` when nothing was)."""
    return describe_answer(response, blank=BLANK).text


# -- the process -------------------------------------------------------------------------------


def reader_left() -> None:
    """Stdout's reader went away (``webhook-inspector export | head``): stop quietly.

    The rest of the buffer goes to /dev/null, or the interpreter would fail again flushing
    stdout at exit and print "Exception ignored ... BrokenPipeError"."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def stop_on_ctrl_c() -> None:
    """Make Ctrl-C (SIGINT) and SIGTERM stop a long-running command cleanly.

    A non-interactive shell starts background jobs (``tail &``) with SIGINT ignored, and
    Python then keeps it ignored: ``kill -INT`` would do nothing. Restore the default handler
    (KeyboardInterrupt; ``asyncio.run`` installs its own only over that one), and treat
    SIGTERM the same way so the command's clean-up runs either way.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _as_ctrl_c)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    # Through SIGINT's handler, whichever is installed now (asyncio's cancels the main task).
    signal.raise_signal(signal.SIGINT)
