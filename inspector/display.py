"""Words and numbers shown to people, the same on the page and in a terminal.

The terminal (``list``, ``show``, ``tail``, ...) and the event summaries use these;
``static/util.js`` has the page's copies (``humanSize``, ``seconds``, ``answerOf``), since the
page renders its rows in the browser. ``tests/test_display.py`` runs both over one table of
cases, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

NO_ANSWER = "—"


def one_decimal(value: float) -> str:
    """``value`` to one decimal as JavaScript's ``toFixed(1)`` writes it.

    ``toFixed`` rounds the exact binary value half up (0.25 -> 0.3); Python's format rounds
    half to even (0.25 -> 0.2). ``Decimal(float)`` is exact, so this matches ``toFixed``.
    """
    return str(Decimal(value).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def seconds(ms: float) -> str:
    """``30000`` ms -> ``30.0 s``."""
    return f"{one_decimal(ms / 1000)} s"


def human_size(n: int) -> str:
    """``102400`` -> ``100 KiB``; ``1536`` -> ``1.5 KiB``; ``12`` -> ``12 B``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{one_decimal(value).removesuffix('.0')} {unit}"


class Answer(NamedTuple):
    """What the inspector answered a captured request, in words."""

    text: str  # the badge or column: "200", "stalling…", "dropped", "sender gave up after 30.0 s"
    tone: str  # the page's badge class: ok, info, warn, bad, pending, muted
    title: str  # one sentence: "Answered 503 after a 3.0 s stall"


_TONES = {2: "ok", 3: "info", 4: "warn"}


def _number(value: object) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def describe_answer(response: Mapping[str, object], blank: str = NO_ANSWER) -> Answer:
    """The answer a request got, from its ``response`` record (``answerOf`` in util.js).

    ``blank`` stands for "no answer recorded": the page's dash, or a terminal table's ``-``.
    """
    delay_ms = _number(response.get("delay_ms"))
    if response.get("in_progress"):
        stall = f" for {seconds(delay_ms)}" if delay_ms else ""
        return Answer("stalling…", "pending", f"Stalling{stall} before answering")
    if response.get("dropped"):
        return Answer("dropped", "bad", "Closed the connection without an answer")
    gave_up = _number(response.get("client_gave_up_after_ms"))
    if gave_up is not None:
        text = f"sender gave up after {seconds(gave_up)}"
        title = "The sender hung up before the answer was sent: it was not delivered"
        return Answer(text, "bad", title)
    status = response.get("status")
    if not isinstance(status, int):
        return Answer(blank, "muted", "No answer recorded")
    stall = f" after a {seconds(delay_ms)} stall" if delay_ms else ""
    return Answer(str(status), _TONES.get(status // 100, "bad"), f"Answered {status}{stall}")
