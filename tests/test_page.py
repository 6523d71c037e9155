"""The live page in a real headless Chromium, against a real uvicorn.

Chromium is required, not optional: without it these tests fail and say how to get it
(``./scripts/test`` installs Debian's ``chromium``; ``CHROMIUM=/path`` points elsewhere).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.store import Store
from tests.conftest import LiveInspector, answering, store_request

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SECRET = "s3cret"


def platform_event(event: str, data: dict[str, Any], ts: str = "2025-01-15T08:30:00Z") -> bytes:
    return json.dumps({"event": event, "timestamp": ts, "data": data}, ensure_ascii=False).encode()


MESSAGE = platform_event(
    "message.received",
    {
        "channelId": "C1234567890",
        "messageId": "msg_001",
        "sender": {"userId": "U1234567890", "displayName": "王小明"},
        "type": "text",
        "content": "大家早安!",
    },
)


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "user-agent": "GroupGM-Webhook/1.0",
        "x-webhook-signature": f"sha256={digest}",
    }


# -- the static rules (no browser needed) ----------------------------------------------------

OWN_SCRIPTS = sorted(path.name for path in (ROOT / "static").glob("*.js"))
OWN_TEMPLATES = sorted(path.name for path in (ROOT / "templates").glob("*.html"))


@pytest.mark.parametrize("name", OWN_SCRIPTS)
def test_scripts_never_parse_html(name: str) -> None:
    source = (ROOT / "static" / name).read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in source, f"{name} uses {sink}"


@pytest.mark.parametrize("name", OWN_TEMPLATES)
def test_templates_have_no_inline_script_or_style(name: str) -> None:
    source = (ROOT / "templates" / name).read_text()
    for tag in re.findall(r"<script\b[^>]*>", source):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\sstyle=", source)
    assert not re.search(r"\son[a-z]+=", source)
    assert "|safe" not in source and "autoescape false" not in source


def test_every_page_script_is_an_es_module_on_the_shared_helpers() -> None:
    """One style for the page's scripts: ES modules, so helpers are imported, never copied."""
    tags = [
        tag
        for name in OWN_TEMPLATES
        for tag in re.findall(
            r"<script\b[^>]*\bsrc=[^>]*>", (ROOT / "templates" / name).read_text()
        )
    ]
    assert tags and all('type="module"' in tag for tag in tags), tags
    for page_script in ("app.js", "deliveries.js"):
        assert 'from "./util.js"' in (ROOT / "static" / page_script).read_text()


def test_the_new_count_is_exact_under_the_lists_filters(client: httpx.Client) -> None:
    """The pill's number: requests newer than the list's top that the list would show."""
    for n in range(12):
        client.post(f"/h/{'a' if n % 2 else 'b'}", content=f"body {n}".encode())
    count = lambda **params: client.get("/api/requests/count", params=params).json()  # noqa: E731
    assert count(after=0) == {"count": 12, "after": 0, "before": None}
    assert count(after=4)["count"] == 8
    assert count(after=4, before=9)["count"] == 4
    assert count(after=4, endpoint="a")["count"] == 4  # ids 6, 8, 10, 12
    assert count(after=0, q="BODY 1")["count"] == 3  # "body 1", "body 10", "body 11"
    bad = client.get("/api/requests/count", params={"after": "x"})
    assert bad.status_code == 400 and "after" in bad.json()["detail"]


# -- the browser ---------------------------------------------------------------------------


class Page:
    """A Playwright page plus what it saw: dialogs, page errors, console errors."""

    def __init__(self, browser: Any, live: LiveInspector) -> None:
        self.live = live
        self.context = browser.new_context(
            viewport={"width": 1440, "height": 900}, base_url=live.url, locale="en-US"
        )
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, path: str = "/") -> Any:
        self.page.goto(path)
        self.page.wait_for_selector("#conn[data-state=live]")
        return self.page

    def row(self, request_id: int) -> Any:
        return self.page.locator(f'#rows li[data-id="{request_id}"]')

    def ids(self) -> list[int]:
        return [
            int(i)
            for i in self.page.eval_on_selector_all("#rows li", "ls => ls.map(l => l.dataset.id)")
        ]

    def wait_ids(self, expected: list[int], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.ids() != expected:
            assert time.monotonic() < deadline, f"rows {self.ids()} != {expected}"
            self.page.wait_for_timeout(50)

    def select(self, request_id: int) -> Any:
        self.row(request_id).locator("a").click()
        self.page.wait_for_selector(f'#detail-view[data-id="{request_id}"]:not([hidden])')
        return self.page.locator("#detail-view")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def ui(browser: Any, live: LiveInspector) -> Iterator[Page]:
    page = Page(browser, live)
    yield page
    page.close()  # before the server stops: an open stream would hold its shutdown up


WATCH_CONNECTION = """() => {
  window.connStates = [];
  const conn = document.querySelector("#conn");
  new MutationObserver(() => window.connStates.push(conn.dataset.state))
    .observe(conn, { attributes: true, attributeFilter: ["data-state"] });
}"""


@pytest.mark.browser
@pytest.mark.live
def test_a_webhook_appears_without_reload_and_its_detail_shows_everything(
    ui: Page, client: httpx.Client
) -> None:
    page = ui.open()
    welcome = page.locator("#welcome")
    assert welcome.is_visible()
    url = page.locator("#welcome-url").text_content() or ""
    assert re.fullmatch(rf"{re.escape(ui.live.url)}/h/hook-[0-9a-f]{{6}}", url)

    # Every change of the connection state from now on (a reload would lose the list).
    page.evaluate(WATCH_CONNECTION)
    started = time.monotonic()
    client.post(
        "/h/chat/events?source=test",
        content=MESSAGE,
        headers={"content-type": "application/json", "x-trace": "one", "X-Trace": "two"},
    )
    row = ui.row(1)
    row.wait_for()
    appeared = time.monotonic() - started
    # Pushed over the open stream: no reload, no reconnect (which would also bring it, later).
    assert page.evaluate("window.connStates") == []
    assert appeared < 10, f"the row took {appeared:.2f} s"
    assert welcome.is_hidden()
    summary = "message.received — 王小明 in C1234567890: 大家早安!"
    page.wait_for_function(
        "text => document.querySelector('#rows li[data-id=\"1\"] .what').textContent === text",
        arg=summary,
    )
    assert row.locator(".target").text_content() == "/h/chat/events?source=test"
    assert row.locator('[data-field="answer"]').text_content() == "200"

    detail = ui.select(1)
    assert detail.locator(".url").text_content() == f"{ui.live.url}/h/chat/events?source=test"
    assert detail.locator(".d-summary").text_content() == summary
    headers = detail.locator("table.pairs").nth(1).locator("tr")
    pairs = [
        (r.locator("th").text_content(), r.locator("td").text_content()) for r in headers.all()
    ]
    assert ("x-trace", "one") in pairs and ("x-trace", "two") in pairs  # duplicates, in order
    assert pairs.index(("x-trace", "one")) < pairs.index(("x-trace", "two"))
    tree = detail.locator(".json-tree")
    assert '"大家早安!"' in (tree.text_content() or "")
    assert detail.locator('.tab[aria-selected="true"]').text_content() == "JSON"
    # The sample button on the empty page works like any sender; the endpoint list follows.
    curl = detail.get_by_role("button", name="Copy as curl")
    page.wait_for_function("b => !b.disabled", arg=curl.element_handle())
    curl.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "--data-binary" in copied and "大家早安" in copied
    assert page.locator('.ep[data-endpoint="chat"] .count').text_content() == "1"
    assert not ui.errors and not ui.dialogs


# Every row's fields as the page shows them: text, classes, tooltip, hidden, link, time.
ROW_SNAPSHOT = """() => [...document.querySelectorAll('#rows li')].map(li => ({
  id: Number(li.dataset.id),
  classes: [...li.classList].filter(c => c !== 'selected' && c !== 'arrived').sort(),
  fields: Object.fromEntries([...li.querySelectorAll('[data-field]')].map(n => [n.dataset.field, {
    text: n.dataset.field === 'link' ? null : n.textContent,
    classes: [...n.classList].sort(),
    title: n.getAttribute('title'),
    hidden: n.hidden,
    href: n.getAttribute('href'),
    datetime: n.getAttribute('datetime'),
  }])),
}))"""


def row_kinds(client: httpx.Client, batch: int) -> int:
    """One request of each kind a row can show; ``batch`` keeps their event keys apart (no
    attempt counts carry over) while sizes and summaries stay the same. Returns the count."""
    message = platform_event(
        "message.received",
        {
            "channelId": "C1234567890",
            "messageId": f"msg_{batch}",
            "sender": {"userId": "U1234567890", "displayName": "王小明"},
            "type": "text",
            "content": "大家早安!",
        },
    )
    left = platform_event(
        "member.left",
        {"channelId": "C1", "member": {"displayName": "李小華"}},
        f"2025-01-15T09:00:0{batch}Z",
    )
    client.post("/h/platform?status=500", content=message, headers=signed(message))
    client.post("/h/platform", content=message, headers=signed(message))  # attempt 2
    # Signed over re-serialized JSON: invalid, with the doctor's diagnosis as the tooltip.
    client.post("/h/platform", content=left, headers=signed(json.dumps(json.loads(left)).encode()))
    bad = {"content-type": "application/json", "x-webhook-signature": "garbage"}
    client.post("/h/platform", content=f'{{"n": {batch}}}'.encode(), headers=bad)
    form = {"content-type": "application/x-www-form-urlencoded"}
    client.post("/h/github?x=1", content=f"ref=main&after=abc{batch}".encode(), headers=form)
    client.get("/h/empty", headers={"x-github-delivery": f"delivery-{batch}"})  # no body
    client.post("/h/odd?status=302", content=f"moved {batch}".encode())
    client.post("/h/odd?status=404", content=f"gone {batch}".encode())
    client.post("/h/odd?delay=0.2", content=f"slow {batch}".encode())  # answered after a stall
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/h/odd?drop=1", content=f"drop {batch}".encode())
    # The doctor runs after the answers: wait for its findings, so every row is final.
    deadline = time.monotonic() + 30
    while any(
        (it["signature"] or {}).get("doctor")
        for it in client.get("/api/requests?limit=100").json()["requests"]
    ):
        assert time.monotonic() < deadline, "the doctor never caught up"
        time.sleep(0.05)
    return 10


def same_shape(row: dict[str, Any]) -> dict[str, Any]:
    """A row without what is its own: the id and the time (checked for form here)."""
    rid, fields = row["id"], dict(row["fields"])
    time_field = fields.pop("time")
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", time_field["text"]), time_field
    assert time_field["title"] == time_field["datetime"] != ""
    assert fields["link"]["href"] == f"#{rid}"
    fields["link"] = {**fields["link"], "href": "#"}
    meta = fields["meta"]
    assert meta["text"].startswith(f"#{rid} · ")
    fields["meta"] = {**meta, "text": meta["text"].removeprefix(f"#{rid}")}
    return {"classes": row["classes"], "fields": fields}


@pytest.mark.browser
@pytest.mark.live
def test_first_paint_rows_and_live_rows_come_from_one_renderer(
    browser: Any, make_live: Any
) -> None:
    """A row drawn from the page's data block and a live row of the same kind of request are
    the same row: fields, classes and tooltips (once they drifted: the first paint had no
    answer tooltips and a shorter signature one)."""
    live = make_live(secret=SECRET)
    with live.client() as client:
        kinds = row_kinds(client, 1)
        html = client.get("/").text
    # The server sends no row markup outside the <template>: one renderer draws every row.
    assert re.search(r'<ol id="rows" [^>]*>\s*</ol>', html)
    page = Page(browser, live)
    try:
        # What the first frame shows (rAF runs before a frame is painted).
        page.page.add_init_script(
            f"requestAnimationFrame(() => {{ window.firstFrame = ({ROW_SNAPSHOT})(); }});"
        )
        page.open()
        first = page.page.evaluate("window.firstFrame")
        assert [r["id"] for r in first] == list(range(kinds, 0, -1))
        with live.client() as client:
            row_kinds(client, 2)
        page.wait_ids(list(range(2 * kinds, 0, -1)))
        expected = [same_shape(r) for r in first]
        deadline = time.monotonic() + 15  # live rows settle: answers land, summaries resolve
        while True:
            rows = page.page.evaluate(ROW_SNAPSHOT)
            fresh = [same_shape(r) for r in rows[:kinds]]
            if fresh == expected or time.monotonic() > deadline:
                break
            page.page.wait_for_timeout(50)
        assert fresh == expected
        # And the kinds are all there, tooltips included.
        answers = [r["fields"]["answer"] for r in expected]
        assert {a["text"] for a in answers} >= {"200", "500", "302", "404", "dropped"}
        assert all(a["title"] for a in answers)
        assert next(a for a in answers if a["text"] == "dropped")["classes"] == ["bad", "badge"]
        assert any("after a 0.2 s stall" in a["title"] for a in answers)
        sigs = [r["fields"]["sig"] for r in expected if not r["fields"]["sig"]["hidden"]]
        assert {s["text"] for s in sigs} >= {"sig valid", "sig invalid", "sig malformed"}
        invalid = next(s for s in sigs if s["text"] == "sig invalid")
        assert " — " in invalid["title"]  # the reason and the doctor's diagnosis
        assert any("retry" in r["classes"] for r in expected)
        assert any(r["fields"]["what"]["text"] == "no body" for r in expected)
        assert not page.errors and not page.dialogs
    finally:
        page.close()


XSS = "<img src=x onerror=\"alert(1);document.title='pwned'\">"
SCRIPT = "</script><script>alert(2);document.title='pwned'</script>"


@pytest.mark.browser
@pytest.mark.live
def test_hostile_payloads_are_shown_as_inert_text(ui: Page, client: httpx.Client) -> None:
    def hostile_requests() -> None:
        event = {
            "event": "message.received",
            "timestamp": "2025-01-15T08:30:00Z",
            XSS: SCRIPT,
            "data": {"channelId": XSS, "sender": {"displayName": SCRIPT}, "content": XSS},
        }
        client.post(
            "/h/xss/%3Cimg%20src=x%20onerror=alert(3)%3E",
            params={"q": XSS},
            content=json.dumps(event).encode(),
            headers={"content-type": "application/json", "x-evil": XSS, "x-script": SCRIPT},
        )
        client.post(
            "/h/xss", content=(SCRIPT + XSS).encode(), headers={"content-type": "text/html"}
        )
        client.post(
            "/h/xss",
            content=f"a={XSS}&b={SCRIPT}".encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        part = (
            f'--B\r\nContent-Disposition: form-data; name="{XSS}"; filename="{SCRIPT}"\r\n'
            f"Content-Type: text/html\r\n\r\n{XSS}\r\n--B--\r\n"
        )
        client.post(
            "/h/xss",
            content=part.encode(),
            headers={"content-type": "multipart/form-data; boundary=B"},
        )

    hostile_requests()  # in the first, server-rendered paint
    page = ui.open()
    hostile_requests()  # and live
    ui.wait_ids([8, 7, 6, 5, 4, 3, 2, 1])
    page.wait_for_function(
        "() => document.querySelector('#rows li[data-id=\"5\"] .what').textContent.includes('—')"
    )
    for request_id in range(8, 0, -1):
        detail = ui.select(request_id)
        for tab in detail.locator(".tab").all():
            tab.click()
            if tab.text_content() == "Preview":
                frame = detail.locator("iframe.html-preview")
                assert frame.get_attribute("sandbox") == ""
        detail.locator("details.curl-block summary").click()
    page.wait_for_timeout(300)  # give anything that could run a chance to
    assert ui.dialogs == []
    assert page.title() != "pwned"
    assert (
        page.evaluate(
            "document.querySelectorAll('img[src=x], script:not([src]):not([type])').length"
        )
        == 0
    )
    texts = page.locator("#rows").text_content() or ""
    assert XSS in texts  # shown, as text
    page.reload()
    page.wait_for_selector("#conn[data-state=live]")
    assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    assert ui.dialogs == [] and page.title() != "pwned"
    # The preview's own refusals (sandboxed scripts, its load-nothing CSP) are expected.
    assert not [e for e in ui.errors if "about:srcdoc" not in e]


@pytest.mark.browser
@pytest.mark.live
def test_after_a_restart_the_page_shows_what_came_while_it_was_away(
    ui: Page, live: LiveInspector
) -> None:
    with live.client() as client:
        client.post("/h/restart", content=b"first")
    page = ui.open()
    ui.wait_ids([1])
    live.close_streams()  # what Ctrl-C does to `serve`
    page.wait_for_selector("#conn:not([data-state=live])")
    live.stop()
    # While the server is down: a capture written straight to the store (never published).
    store = Store(live.settings.store_location).open()
    store_request(
        store,
        endpoint="restart",
        body=b"written while the server was down",
        method="PUT",
        headers=[("content-type", "text/plain")],
        client=None,
        decide=answering(200),
    )
    store.close()
    live.start_again()
    with live.client() as client:
        for n in range(3):  # most likely before the page is back
            client.post("/h/restart", content=f"after {n}".encode())
    ui.wait_ids([5, 4, 3, 2, 1])
    page.wait_for_selector("#conn[data-state=live]")
    with live.client() as client:
        client.post("/h/restart", content=b"live again")
    ui.wait_ids([6, 5, 4, 3, 2, 1])
    assert ui.row(2).locator(".method").text_content() == "PUT"
    assert page.locator('.ep[data-endpoint="restart"] .count').text_content() == "6"


@pytest.mark.browser
@pytest.mark.live
def test_filters_and_search_narrow_the_list_and_the_live_rows(
    ui: Page, client: httpx.Client
) -> None:
    client.post("/h/alpha", content=b"the needle-42 is in the oldest request")
    for n in range(59):
        client.request(
            "PUT" if n % 3 == 0 else "POST",
            f"/h/{'alpha' if n % 2 else 'beta'}" + ("?status=500" if n % 10 == 0 else ""),
            content=f"filler {n}".encode(),
        )
    page = ui.open()
    assert len(ui.ids()) == 50  # one page; #1 is not loaded
    search = page.locator('#filters input[name="q"]')
    search.fill("NEEDLE-42")  # the server searches the whole store, case-insensitively
    ui.wait_ids([1])
    assert "q=NEEDLE-42" in page.url
    search.fill("")
    page.wait_for_function("() => document.querySelectorAll('#rows li').length === 50")
    page.locator("#older").scroll_into_view_if_needed()  # pages back (?before=) on sight
    ui.wait_ids(list(range(60, 0, -1)))
    assert page.locator("#older").is_hidden()
    page.select_option('#filters select[name="method"]', "PUT")
    page.wait_for_function("() => document.querySelectorAll('#rows li').length === 20")
    assert {ui.row(i).locator(".method").text_content() for i in ui.ids()} == {"PUT"}
    page.locator('#filters input[name="status"]').fill("500")
    page.wait_for_function("() => document.querySelectorAll('#rows li').length === 2")
    assert ui.ids() == [32, 2]
    page.locator("#reset-filters").click()
    page.locator('.ep[data-endpoint="beta"]').click()
    page.wait_for_selector("#endpoint-bar:not([hidden])")
    assert (page.locator("#endpoint-url").text_content() or "").endswith("/h/beta")
    page.wait_for_function("() => document.querySelectorAll('#rows li').length === 30")
    # Live rows respect the filters: endpoint + method checked by the page...
    page.select_option('#filters select[name="method"]', "PUT")
    page.wait_for_function("() => document.querySelectorAll('#rows li').length === 10")
    client.post("/h/beta", content=b"wrong method")  # 61
    client.put("/h/alpha", content=b"wrong endpoint")  # 62
    client.put("/h/beta", content=b"right one")  # 63
    page.wait_for_selector('#rows li[data-id="63"]')
    assert ui.ids()[0] == 63 and 61 not in ui.ids() and 62 not in ui.ids()
    # ...and a text search, which only the server can run, decides for live rows too.
    page.locator('#filters input[name="q"]').fill("haystack")
    page.wait_for_selector("#no-match:not([hidden])")
    client.put("/h/beta", content=b"no match here")  # 64
    client.put("/h/beta", content=b"a HAYSTACK with it")  # 65
    page.wait_for_selector('#rows li[data-id="65"]')
    page.wait_for_timeout(200)
    assert ui.ids() == [65]
    assert not ui.errors


@pytest.mark.browser
@pytest.mark.live
def test_settings_delete_and_clear_from_the_page(ui: Page, client: httpx.Client) -> None:
    for n in range(3):
        client.post("/h/ops", content=f"{n}".encode())
    client.post("/h/keep", content=b"other endpoint")
    page = ui.open("/?endpoint=ops")
    ui.wait_ids([3, 2, 1])
    page.locator("#open-settings").click()
    form = page.locator("#settings-form")
    form.locator('textarea[name="secret"]').fill("first\nsecond")
    form.locator('input[name="enforce"]').check()
    form.locator('textarea[name="response"]').fill('{"fail": -1}')
    form.get_by_role("button", name="Save").click()
    error = page.locator("#settings-error")
    error.wait_for()
    assert "fail" in (error.text_content() or "")  # the server's 400 detail, as sent
    form.locator('textarea[name="response"]').fill('{"status": 202}')
    form.get_by_role("button", name="Save").click()
    page.wait_for_selector("#settings", state="hidden")
    settings = client.get("/api/endpoints/ops").json()["settings"]
    assert settings["secret"] == ["first", "second"] and settings["enforce"] is True
    assert settings["response"] == {"status": 202}

    ui.select(2).get_by_role("button", name="Delete").click()
    ui.wait_ids([3, 1])
    assert "not in the store" in (page.locator("#detail-empty").text_content() or "")
    clear = page.locator("#clear-endpoint")
    clear.click()
    assert ui.ids() == [3, 1]  # the first click only arms it
    clear.click()
    ui.wait_ids([])
    assert client.get("/api/requests?endpoint=ops").json()["requests"] == []
    assert client.get("/api/requests?endpoint=keep").json()["requests"] != []
    assert [e for e in ui.errors if "400 (Bad Request)" not in e] == []  # the bad PUT, above
    assert not ui.dialogs


@pytest.mark.browser
@pytest.mark.live
def test_body_views_for_every_kind_of_payload(ui: Page, client: httpx.Client) -> None:
    big = ("0123456789abcdef" * 64 + "\n") * 2200  # 2.2 MiB of text: over the 2 MiB fetched
    bodies = [
        ("application/x-www-form-urlencoded", b"name=%E7%8E%8B&name=two&empty="),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n"
            b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--XyZ--\r\n',
        ),
        ("application/octet-stream", bytes(range(256))),
        ("text/plain", big.encode()),
        ("application/json", b'{"id": 12345678901234567890, "price": 1.0, "dup": 1, "dup": 2}'),
    ]
    for content_type, body in bodies:
        client.post("/h/views", content=body, headers={"content-type": content_type})
    ui.open()
    form = ui.select(1)
    assert form.locator('.tab[aria-selected="true"]').text_content() == "Form"
    cells = form.locator(".view table.kv td").all_text_contents()
    assert cells == ["name", "王", "name", "two", "empty", ""]
    parts = ui.select(2)
    assert parts.locator('.tab[aria-selected="true"]').text_content() == "Parts"
    text = parts.locator(".view").text_content() or ""
    assert "a.bin" in text and "00 01 02" in text and "hello" in text
    binary = ui.select(3)
    assert binary.locator('.tab[aria-selected="true"]').text_content() == "Hex"
    assert (binary.locator("pre.hex").text_content() or "").startswith("00000000  00 01 02 03")
    large = ui.select(4)
    note = large.locator(".body-section .note").text_content() or ""
    assert "Showing the first 2 MiB of 2.2 MiB" in note
    assert large.locator(".body-section .show-more").first.is_visible()  # a screenful of text
    assert (
        large.locator(".body-section a", has_text="Download the exact bytes").get_attribute("href")
        == "/api/requests/4/body"
    )
    faithful = ui.select(5)
    tree = faithful.locator(".json-tree").text_content() or ""
    assert "12345678901234567890" in tree and "1.0" in tree and tree.count('"dup"') == 2


@pytest.mark.browser
@pytest.mark.live
def test_screenshot_with_realistic_traffic(browser: Any, make_live: Any) -> None:
    live = make_live(secret=SECRET)
    with live.client() as client:
        joined = platform_event(
            "member.joined",
            {
                "channelId": "C1234567890",
                "member": {"userId": "U0987654321", "displayName": "李小華"},
            },
            "2025-01-15T08:29:00Z",
        )
        client.post("/h/platform", content=joined, headers=signed(joined))
        client.post("/h/platform?status=500", content=MESSAGE, headers=signed(MESSAGE))  # fails
        client.post("/h/platform", content=MESSAGE, headers=signed(MESSAGE))  # the retry
        upload = platform_event(
            "file.uploaded",
            {
                "channelId": "C1234567890",
                "messageId": "msg_002",
                "sender": {"userId": "U1234567890", "displayName": "王小明"},
                "fileType": "image",
                "fileSize": 102400,
            },
        )
        client.post("/h/platform", content=upload, headers=signed(upload))
        left = platform_event(
            "member.left",
            {
                "channelId": "C1234567890",
                "member": {"userId": "U0987654321", "displayName": "李小華"},
            },
            "2025-01-15T09:00:00Z",
        )
        # Signed over re-serialized JSON: the doctor explains why it fails.
        client.post(
            "/h/platform", content=left, headers=signed(json.dumps(json.loads(left)).encode())
        )
        client.post(
            "/h/github?x=1",
            content=b"ref=main&after=abc123",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        # A stall longer than the sender waits: it hangs up, the page says when.
        with pytest.raises(httpx.ReadTimeout):
            client.post("/h/slow?delay=3", content=b"{}", timeout=0.5)
    page = Page(browser, live)
    try:
        page.open()
        with live.client() as client:
            client.post("/h/platform", content=MESSAGE, headers=signed(MESSAGE))  # arrives live
        page.wait_ids([8, 7, 6, 5, 4, 3, 2, 1])
        page.page.wait_for_selector('#rows li[data-id="7"] .badge.bad')  # the hang-up
        page.page.wait_for_function(
            "() => document.querySelector('#rows li[data-id=\"8\"] .what')"
            ".textContent.includes('大家早安')"
        )
        page.select(5)
        page.page.wait_for_timeout(300)
        ARTIFACTS.mkdir(exist_ok=True)
        page.page.screenshot(path=str(ARTIFACTS / "page.png"))
        assert not page.errors and not page.dialogs
    finally:
        page.close()


def test_a_capture_url_cannot_serve_a_page_that_drives_the_api(
    ui: Page, live: LiveInspector, client: httpx.Client
) -> None:
    """The capture route answers with a body and type the URL chooses; opened in a browser it
    must stay inert (CSP sandbox), or any web site could link to it and use the API."""
    client.put("/api/endpoints/victim", json={"secret": "top-secret"})
    script = (
        "<script>fetch('/api/endpoints/victim').then(r => r.text())"
        ".then(t => { document.title = 'STOLEN ' + t; })</script>"
    )
    url = httpx.URL(f"{live.url}/h/lure", params={"content_type": "text/html", "body": script})
    ui.page.goto(str(url))
    ui.page.wait_for_timeout(500)
    assert "STOLEN" not in ui.page.title()
    settings = client.get("/api/endpoints/victim").json()["settings"]
    assert settings["forward_to"] is None
