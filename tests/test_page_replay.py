"""Replays on the live page, in a real headless Chromium: the form sends an edited request to
a real app (another uvicorn), the Replays list shows it and what came back, the target URL is
remembered per endpoint, API errors reach the user, and stream updates refresh the list
without throwing away a form being edited."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inspector.embedded import ServerThread
from tests.conftest import LiveInspector
from tests.test_page import ARTIFACTS, ROOT, Page

ORIGINAL = json.dumps(
    {"event": "order.paid", "data": {"id": "ord_1", "buyer": "王小明", "total": 42}},
    ensure_ascii=False,
).encode()
EDITED = '{"event": "order.paid", "data": {"id": "ord_1", "buyer": "李小華", "total": 99}}'
BINARY = bytes(range(256)) * 2


class Target:
    """The user's app: records every request, answers 201 with JSON and a marker header."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, list[str]], bytes]] = []
        self.app = Starlette(
            routes=[Route("/{path:path}", self.endpoint, methods=["POST", "PUT", "PATCH"])]
        )

    async def endpoint(self, request: Request) -> Response:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name, []).append(value)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.seen.append((request.method, target, headers, await request.body()))
        return JSONResponse(
            {"ok": True, "seen": len(self.seen)}, status_code=201, headers={"x-target": "yes"}
        )

    def wait_for(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            assert time.monotonic() < deadline, f"the app got {len(self.seen)} of {count}"
            time.sleep(0.02)


@pytest.fixture
def target(make_server: Callable[..., ServerThread]) -> tuple[Target, ServerThread]:
    app = Target()
    return app, make_server(app.app)


def test_replay_js_never_parses_html() -> None:
    source = (ROOT / "static" / "replay.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source


@pytest.mark.browser
@pytest.mark.live
def test_replay_from_the_page_edited_listed_remembered(
    browser: Any, live: LiveInspector, client: httpx.Client, target: tuple[Target, ServerThread]
) -> None:
    app, app_server = target
    hook = f"{app_server.url}/hook"
    client.post(
        "/h/shop/orders?x=1",
        content=ORIGINAL,
        headers={"content-type": "application/json", "x-trace": "original", "x-drop": "me"},
    )
    client.post(
        "/h/shop/files", content=BINARY, headers={"content-type": "application/octet-stream"}
    )
    ui = Page(browser, live)
    try:
        page = ui.open()
        ui.wait_ids([2, 1])
        detail = ui.select(1)
        replays = detail.locator("section.replays")
        replays.locator(".replay-list li", has_text="None yet").wait_for()
        detail.get_by_role("button", name="Replay…").click()
        form = replays.locator("form.replay-form")
        url = form.locator('input[name="url"]')
        assert url.is_visible()
        assert page.evaluate("document.activeElement.name") == "url"
        assert url.input_value() == ""  # nothing remembered yet
        assert url.get_attribute("placeholder") == "http://localhost:3000/webhook"
        assert form.locator('input[name="method"]').input_value() == "POST"
        assert "needs the endpoint's secret" in (form.locator("label.check").text_content() or "")
        body = form.locator('textarea[name="body"]')
        assert body.input_value() == ORIGINAL.decode()

        # A refused target: the API's 403 detail is shown, nothing is sent or remembered.
        url.fill("http://169.254.169.254/")
        form.get_by_role("button", name="Send").click()
        error = form.locator(".form-error")
        error.wait_for()
        assert "169.254.169.254" in (error.text_content() or "")
        assert "(403)" in (error.text_content() or "")
        assert client.get("/api/endpoints/shop").json()["settings"]["replay_to"] is None

        # Edited: a header replaced, one removed, the body changed.
        url.fill(hook)
        form.locator('textarea[name="headers"]').fill("X-Trace: edited\nX-Drop:\n")
        body.fill(EDITED)
        form.get_by_role("button", name="Send").click()
        result = form.locator(".r-result")
        page.wait_for_function("el => el.textContent.includes('201')", arg=result.element_handle())
        assert error.is_hidden()
        app.wait_for(1)
        method, path, headers, received = app.seen[0]
        assert (method, path) == ("POST", "/hook/orders?x=1")
        assert received == EDITED.encode()
        assert headers["x-trace"] == ["edited"] and "x-drop" not in headers
        assert headers["content-type"] == ["application/json"]

        # Listed under the request, newest first, unfolded with what came back.
        entry = replays.locator("details.replay").first
        entry.wait_for()
        line = entry.locator("summary.replay-line").text_content() or ""
        assert "replay" in line and "201" in line and f"{hook}/orders?x=1" in line
        assert "edited" in line
        more = entry.locator(".replay-more")
        more.locator("table.pairs").first.wait_for()
        assert "x-target" in (more.text_content() or "")
        assert '{"ok":true,"seen":1}' in (more.locator("pre.text-body").text_content() or "")
        assert client.get("/api/endpoints/shop").json()["settings"]["replay_to"] == hook
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "page-replay.png"), full_page=True)

        # A replay started elsewhere (the API here) reaches the list through the stream's
        # "update", and the form being edited is left alone.
        form.locator('textarea[name="headers"]').fill("X-Note: still here")
        form.evaluate("f => { f.dataset.kept = 'yes'; }")  # gone if the pane is re-rendered
        client.post("/api/requests/1/replay", json={}).raise_for_status()
        page.wait_for_function(
            "() => document.querySelectorAll('section.replays details.replay').length === 2"
        )
        assert form.get_attribute("data-kept") == "yes"
        assert form.locator('textarea[name="headers"]').input_value() == "X-Note: still here"
        assert body.input_value() == EDITED
        app.wait_for(2)
        assert app.seen[1][3] == ORIGINAL  # the API replay: the captured bytes

        # Remembered: after a reload the form is prefilled with the endpoint's target.
        page.reload()
        page.wait_for_selector("#conn[data-state=live]")
        detail = ui.select(1)
        replays = detail.locator("section.replays")
        page.wait_for_function(
            "() => document.querySelectorAll('section.replays details.replay').length === 2"
        )
        replays.locator(".replay-box > summary").click()
        url = replays.locator('input[name="url"]')
        page.wait_for_function("([el, v]) => el.value === v", arg=[url.element_handle(), hook])
        assert "Remembered for endpoint shop" in (replays.text_content() or "")
        assert replays.locator('textarea[name="body"]').input_value() == ORIGINAL.decode()

        # A binary body cannot be edited and goes byte for byte.
        detail = ui.select(2)
        replays = detail.locator("section.replays")
        binary = replays.locator('textarea[name="body"]')
        assert binary.is_disabled()
        assert "binary body is sent unchanged" in (replays.text_content() or "")
        url = replays.locator('input[name="url"]')
        page.wait_for_function("([el, v]) => el.value === v", arg=[url.element_handle(), hook])
        replays.get_by_role("button", name="Send").click()
        replays.locator("details.replay").first.wait_for()
        app.wait_for(3)
        assert app.seen[2][1] == "/hook/files" and app.seen[2][3] == BINARY

        assert [e for e in ui.errors if "403 (Forbidden)" not in e] == []
        assert not ui.dialogs
    finally:
        ui.close()
