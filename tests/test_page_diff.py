"""The diff on the live page, in a real headless Chromium: the natural pairs of a request are
one click from its detail pane (the previous attempt, the capture before it, a replay against
its original, any capture by id), and what differs is shown as inert text."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import LiveInspector
from tests.test_page import Page

EVENT = {
    "event": "message.received",
    "timestamp": "2025-01-15T08:30:00Z",
    "data": {"channelId": "C1", "messageId": "msg_001", "content": "大家早安!"},
}
HOSTILE = "<img src=x onerror=alert(1)>"


def capture(client: httpx.Client, path: str, body: bytes, **headers: str) -> int:
    client.post(path, content=body, headers={"content-type": "application/json", **headers})
    newest: int = client.get("/api/requests?limit=1").json()["requests"][0]["id"]
    return newest


def changes_shown(page: Any) -> list[tuple[str, str, str, str]]:
    """Every change row of the diff view: mark, where, A, B (as the user reads them)."""
    rows = page.locator(".diff-view table.diff-changes tbody tr")
    out = []
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td, th")
        texts = [cells.nth(j).text_content() or "" for j in range(cells.count())]
        out.append((texts[0], texts[1], texts[2], texts[3]))
    return out


def wait_text(page: Any, selector: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in (page.locator(selector).text_content() or ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {selector}"
        page.wait_for_timeout(50)


@pytest.mark.browser
@pytest.mark.live
def test_the_natural_pairs_are_one_click_away(
    browser: Any, live: LiveInspector, client: httpx.Client
) -> None:
    first = json.dumps(EVENT, ensure_ascii=False, indent=2).encode()
    retry = json.dumps(dict(reversed(EVENT.items())), ensure_ascii=False).encode()
    a = capture(client, "/h/shop?status=500", first, **{"x-try": "1", "x-note": HOSTILE})
    b = capture(client, "/h/shop", retry, **{"x-try": "2"})
    other = capture(client, "/h/shop", b'{"event": "member.left"}')
    ui = Page(browser, live)
    try:
        page = ui.open()
        ui.wait_ids([other, b, a])

        # The retry against the attempt before it: one click.
        detail = ui.select(b)
        button = detail.locator(".diff-pairs button", has_text=f"vs previous attempt #{a}")
        button.click()
        wait_text(page, ".diff-view .diff-title", f"#{a} → #{b}")
        shown = changes_shown(page)
        assert ("−", "query", "status=500", "—") in shown  # the request line
        assert ("−", "status", "500", "—") in shown  # the query, by parameter
        assert ("~", "x-try", "1", "2") in shown
        assert ("−", "x-note", HOSTILE, "—") in shown  # as text, never as markup
        assert ("⇅", "$", "event, timestamp, data", "data, timestamp, event") in shown
        assert page.locator(".diff-view img").count() == 0
        # Key order ignored: the same JSON, and the note says what that means for a signature.
        page.locator(".diff-ignore").check()
        wait_text(page, ".diff-view", "The same JSON in different bytes")
        assert page.locator(".diff-view .diff-bytes").text_content().startswith("A  ")

        # A capture against the one before it on the endpoint (another event).
        detail = ui.select(other)
        detail.locator(".diff-pairs button", has_text=f"vs previous capture #{b}").click()
        wait_text(page, ".diff-view .diff-title", f"#{b} → #{other}")
        assert detail.locator(".diff-pairs button", has_text="previous attempt").count() == 0
        # Any capture, by id.
        detail.locator(".diff-other").fill(str(a))
        detail.locator(".diff-by-id button").click()
        wait_text(page, ".diff-view .diff-title", f"#{a} → #{other}")
        detail.locator(".diff-other").fill("99999")
        detail.locator(".diff-by-id button").click()
        wait_text(page, ".diff-view", "Cannot compare: No request 99999.")

        # A replay against its original, from the Replays list.
        sent = client.post(
            f"/api/requests/{b}/replay",
            json={"url": f"{live.url}/h/elsewhere", "body_text": '{"event": "edited"}'},
        ).json()
        detail = ui.select(b)
        line = detail.locator(f'.replay[data-id="{sent["id"]}"] .r-diff')
        line.click()
        wait_text(page, ".diff-view .diff-title", f"#{b} → replay #{sent['id']} of #{b}")
        shown = changes_shown(page)
        assert ("~", "path", "/h/shop", "/h/elsewhere") in shown
        assert ("~", "$.event", '"message.received"', '"edited"') in shown
        # The click compared; it did not unfold the replay.
        assert not detail.locator(f'.replay[data-id="{sent["id"]}"]').evaluate("d => d.open")
        # The browser logs the 404 of the unknown id itself; nothing else went wrong.
        assert [e for e in ui.errors if "/api/requests/99999/diff/" not in e] == []
        assert not ui.dialogs
    finally:
        ui.close()
