"""What people read, said once: ``inspector.display`` and its browser copy in ``util.js``.

The page renders its rows in JavaScript (``answerOf``, ``humanSize``); the terminal and the
event summaries use ``display.describe_answer`` and ``display.human_size``. One table of cases
runs through both — the JavaScript in a real headless Chromium — so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from inspector.display import describe_answer, human_size, one_decimal, seconds
from tests.test_page import ROOT

ANSWERS: list[dict[str, Any]] = [
    {"status": 200, "ms": 1.2, "delay_ms": None, "dropped": False, "in_progress": False},
    {"status": 204},
    {"status": 101},
    {"status": 302},
    {"status": 404},
    {"status": 503, "delay_ms": 3000},
    {"status": 200, "delay_ms": 250},  # a tie: toFixed rounds half up (0.3), Python's % half even
    {"status": None},
    {"status": None, "in_progress": True, "delay_ms": 30000},
    {"status": None, "in_progress": True, "delay_ms": None},
    {"status": None, "dropped": True},
    {"status": None, "client_gave_up_after_ms": 30000.0},
    {"status": None, "client_gave_up_after_ms": 1250.0},
    {"status": 200, "client_gave_up_after_ms": 750.0, "delay_ms": 5000},
]

SIZES = [0, 1, 1023, 1024, 1280, 1536, 102400, 1048575, 5 * 2**20, 3 * 2**40 + 2**39, 2**50]


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (102400, "100 KiB"),
        (5 * 2**20, "5 MiB"),
    ],
)
def test_human_size(n: int, shown: str) -> None:
    assert human_size(n) == shown


def test_one_decimal_rounds_like_javascript() -> None:
    assert [one_decimal(x) for x in (0.25, 0.75, 1.25, 1.05, 2.0, 0.04)] == [
        "0.3",
        "0.8",
        "1.3",
        "1.1",  # 1.05 is 1.0500000000000000444 in binary: above the half
        "2.0",
        "0.0",
    ]
    assert human_size(1280) == "1.3 KiB" and seconds(250) == "0.3 s"


@pytest.mark.parametrize(
    ("response", "text", "tone"),
    [
        ({"status": 200}, "200", "ok"),
        ({"status": 302}, "302", "info"),
        ({"status": 404}, "404", "warn"),
        ({"status": 503}, "503", "bad"),
        ({"status": None, "in_progress": True}, "stalling…", "pending"),
        ({"status": None, "dropped": True}, "dropped", "bad"),
        ({"status": None, "client_gave_up_after_ms": 30000}, "sender gave up after 30.0 s", "bad"),
        ({"status": None}, "—", "muted"),
    ],
)
def test_describe_answer(response: dict[str, Any], text: str, tone: str) -> None:
    found = describe_answer(response)
    assert (found.text, found.tone) == (text, tone)
    assert describe_answer(response, blank="-").text == ("-" if text == "—" else text)


@pytest.fixture
def util_js(browser: Any) -> Iterator[Any]:
    """A page that can ``import('/util.js')``: the real file, served by Playwright (no server)."""
    context = browser.new_context()
    page = context.new_page()
    source = (ROOT / "static" / "util.js").read_text()

    def serve(route: Any) -> None:
        if route.request.url.endswith("/util.js"):
            route.fulfill(status=200, content_type="text/javascript", body=source)
        else:
            route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>t")

    page.route("http://util.test/**", serve)
    page.goto("http://util.test/")
    yield page
    context.close()


@pytest.mark.browser
def test_util_js_says_what_python_says(util_js: Any) -> None:
    answers, sizes = util_js.evaluate(
        """async ([responses, sizes]) => {
            const util = await import("/util.js");
            return [responses.map((r) => util.answerOf(r)), sizes.map((n) => util.humanSize(n))];
        }""",
        [ANSWERS, SIZES],
    )
    assert answers == [list(describe_answer(r)) for r in ANSWERS]
    assert sizes == [human_size(n) for n in SIZES]
