"""The live list holds still for the person reading it (real Chromium, real server, a steady
stream of captures from a background sender): reading mode and its exact "▲ N new" pill,
clicks that land on the row aimed at, rows that only move forward on the requests and
deliveries pages, the keyboard, the narrow layout, and axe-core's accessibility rules.

axe-core comes from the npm registry and is used only here (``./scripts/test`` installs it
into ``.test-tools/``; ``AXE_CORE=/path/axe.min.js`` points elsewhere); it is never served.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveInspector
from tests.test_page import MESSAGE, ROOT, SECRET, Page, signed

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.slow]

AXE = Path(os.environ.get("AXE_CORE") or ROOT / ".test-tools/node_modules/axe-core/axe.min.js")
RATE = 250  # captures per second from the background sender


class Captures:
    """A background sender: ``rate`` captures/s to ``/h/<endpoint>`` over keep-alive
    connections, from its own thread and event loop, until stopped (or ``limit`` sent)."""

    def __init__(self, port: int, rate: float = RATE, endpoint: str = "stream") -> None:
        self.port = port
        self.rate = rate
        self.endpoint = endpoint.encode()
        self.limit = int(rate * 90)  # bounded: never more than 90 s of traffic
        self.acked = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Captures:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        """Stop sending; returns how many captures were answered 200 (all are on disk)."""
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the sender did not stop"
        return self.acked

    async def _run(self) -> None:
        body = MESSAGE
        head = b"POST /h/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % self.endpoint
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for _ in range(16):
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

        async def one() -> None:
            reader, writer = await pool.get()
            writer.write(head + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if status.split()[1] == b"200":
                self.acked += 1
            else:
                self.failed += 1
            pool.put_nowait((reader, writer))

        tasks = []
        started = time.perf_counter()
        for seq in range(self.limit):
            if self._stop.is_set():
                break
            delay = started + seq / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks)
        while not pool.empty():
            pool.get_nowait()[1].close()


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something truthy (no sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def head_id(client: httpx.Client) -> int:
    listed = client.get("/api/requests", params={"limit": 1}).json()["requests"]
    return int(listed[0]["id"]) if listed else 0


def fill(client: httpx.Client, count: int, endpoint: str = "stream") -> None:
    for _ in range(count):
        client.post(f"/h/{endpoint}", content=MESSAGE, headers=signed(MESSAGE))


@pytest.fixture
def ui(browser: Any, live: LiveInspector) -> Iterator[Page]:
    page = Page(browser, live)
    yield page
    page.close()


def pill_count(ui: Page) -> int:
    pill = ui.page.evaluate(
        "() => { const p = document.getElementById('new-pill');"
        " return {hidden: p.hidden, text: p.textContent}; }"
    )
    if pill["hidden"]:
        return 0
    text = pill["text"]
    assert text.startswith("▲ ") and text.endswith(" new"), text
    return int(text[2:-4].replace(",", ""))


def row_at(ui: Page, x: float, y: float) -> dict[str, Any]:
    """The row under a point of the viewport: its id and where it is."""
    found: dict[str, Any] = ui.page.evaluate(
        """([x, y]) => {
          const li = document.elementFromPoint(x, y).closest('#rows li');
          const r = li.getBoundingClientRect();
          return {id: Number(li.dataset.id), top: r.top, bottom: r.bottom};
        }""",
        [x, y],
    )
    return found


def list_box(ui: Page) -> dict[str, float]:
    box: dict[str, float] = ui.page.evaluate(
        """() => {
          const pane = document.getElementById('list-pane').getBoundingClientRect();
          const head = document.getElementById('list-head').getBoundingClientRect();
          return {left: pane.left, right: pane.right, top: head.bottom, bottom: pane.bottom};
        }"""
    )
    return box


def holding(ui: Page) -> bool:
    return bool(ui.page.evaluate("window.inspector.hold.active"))


# -- reading mode ------------------------------------------------------------------------------


def test_a_row_being_read_stays_put_while_the_pill_counts_new_captures_exactly(
    ui: Page, client: httpx.Client
) -> None:
    fill(client, 120)
    page = ui.open()
    box = list_box(ui)
    with Captures(ui.live.port) as stream:
        wait_until(lambda: ui.ids() and ui.ids()[0] > 160, "live rows at the head")
        assert not holding(ui)  # at the top, pointer away: live
        # The reader scrolls down a little and reads the row in the middle of the list.
        middle_x = (box["left"] + box["right"]) / 2
        page.mouse.move(middle_x, box["top"] + 200)
        page.mouse.wheel(0, 700)
        wait_until(lambda: holding(ui), "the list to hold")
        ids_before = ui.ids()
        read = row_at(ui, middle_x, (box["top"] + box["bottom"]) / 2)
        top = int(page.evaluate("window.inspector.state.top"))
        assert top == ids_before[0]  # the list shows every capture up to its top
        # Captures keep coming: the pill counts them, nothing on screen moves.
        wait_until(lambda: pill_count(ui) >= 300, "the pill to count 300 new captures")
        for _ in range(10):
            now = row_at(ui, middle_x, (box["top"] + box["bottom"]) / 2)
            assert now == read, f"the row being read moved: {read} -> {now}"
            assert ui.ids()[: len(ids_before)] == ids_before
            page.wait_for_timeout(100)
        sent = stream.stop()
    assert stream.failed == 0 and sent > 300
    head = head_id(client)
    assert head == 120 + sent
    # Exact: every capture newer than the list's top, once.
    wait_until(lambda: pill_count(ui) == head - top, f"the pill to say {head - top:,} new")
    assert page.locator("#new-pill").text_content() == f"▲ {head - top:,} new"
    assert row_at(ui, middle_x, (box["top"] + box["bottom"]) / 2) == read
    assert not ui.errors


def test_the_pill_returns_to_the_live_head_with_every_row_present(
    ui: Page, client: httpx.Client
) -> None:
    fill(client, 60)
    page = ui.open()
    box = list_box(ui)
    x = (box["left"] + box["right"]) / 2
    with Captures(ui.live.port) as stream:
        wait_until(lambda: ui.ids() and ui.ids()[0] > 100, "live rows at the head")
        page.mouse.move(x, box["top"] + 150)
        page.mouse.wheel(0, 500)
        wait_until(lambda: holding(ui), "the list to hold")
        read = row_at(ui, x, box["top"] + 150)["id"]
        wait_until(lambda: pill_count(ui) >= 200, "new captures in the pill")
        clicked_at = head_id(client)
        page.locator("#new-pill").click()
        # Back at the top, reloaded from the store around the head, while captures flow.
        wait_until(lambda: ui.ids() and ui.ids()[0] >= clicked_at, "the list at the head")
        assert page.evaluate("document.getElementById('list-pane').scrollTop") <= 2
        page.mouse.move(5, 5)  # the pointer leaves: the list is live again
        wait_until(lambda: not holding(ui), "the list to go live")
        stream.stop()
    head = head_id(client)
    wait_until(lambda: ui.ids() and ui.ids()[0] == head, "the last capture at the top")
    # Every row, from the head down to the one that was being read, contiguous: the rows
    # that went by while the list held still come back from the store.
    for _ in range(60):
        shown = len(ui.ids())
        if read in ui.ids():
            break
        page.evaluate("document.getElementById('older').scrollIntoView()")
        wait_until(lambda: len(ui.ids()) > shown, "an older page")  # noqa: B023
    ids = ui.ids()
    assert read in ids
    assert ids == list(range(head, head - len(ids), -1))
    assert not ui.errors


def test_a_click_held_80_ms_during_the_stream_opens_the_row_aimed_at(
    ui: Page, client: httpx.Client
) -> None:
    fill(client, 60)
    page = ui.open()
    box = list_box(ui)
    x = (box["left"] + box["right"]) / 2
    with Captures(ui.live.port):
        wait_until(lambda: ui.ids() and ui.ids()[0] > 100, "live rows at the head")
        for n in range(5):
            page.mouse.move(5, 5)  # away: the list is live and moving
            page.wait_for_timeout(300)
            y = box["top"] + 40 + 62 * n
            page.mouse.move(x, y)  # onto the list, over the row to open
            aimed = row_at(ui, x, y)
            ids = ui.ids()
            page.mouse.down()
            page.wait_for_timeout(80)
            assert row_at(ui, x, y) == aimed, "the row moved under the pointer"
            page.mouse.up()
            page.wait_for_selector(f'#detail-view[data-id="{aimed["id"]}"]:not([hidden])')
            assert page.evaluate("location.hash") == f"#{aimed['id']}"
            assert ui.ids()[: len(ids)] == ids
            # Selected and in view: it stays put and highlighted after the pointer leaves.
            page.mouse.move(5, 5)
            page.wait_for_timeout(300)
            assert holding(ui)
            assert "selected" in (ui.row(aimed["id"]).get_attribute("class") or "").split()
            assert row_at(ui, x, y) == aimed
            page.locator("#new-pill").click()  # back to the head for the next round
            page.evaluate("location.hash = ''")
    assert not ui.errors


# -- keyboard, narrow screens ------------------------------------------------------------------


def test_j_and_k_keep_the_selection_in_view_below_the_sticky_bar(
    ui: Page, client: httpx.Client
) -> None:
    fill(client, 80)
    page = ui.open()
    box = list_box(ui)

    def check(expected: int) -> None:
        page.wait_for_selector(f'#detail-view[data-id="{expected}"]:not([hidden])')
        rect = ui.row(expected).bounding_box()
        assert rect is not None
        assert rect["y"] >= box["top"] - 0.5, f"#{expected} hides under the bar"
        assert rect["y"] + rect["height"] <= box["bottom"] + 0.5, f"#{expected} is cut off"
        focused = page.evaluate("document.activeElement.closest('#rows li')?.dataset.id")
        assert focused == str(expected)  # focus follows the selection

    page.keyboard.press("j")
    check(80)
    for n in range(1, 25):
        page.keyboard.press("j")
        check(80 - n)
    for n in range(1, 25):
        page.keyboard.press("k")
        check(56 + n)
    # Escape leaves the search box (and keeps what was typed).
    page.keyboard.press("/")
    search = page.locator('#filters input[name="q"]')
    assert page.evaluate("document.activeElement.name") == "q"
    search.type("alpha")
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.name") != "q"
    assert search.input_value() == "alpha"
    # The skip link, first on the page, takes keyboard users to the detail pane...
    page.goto("/")
    page.wait_for_selector("#conn[data-state=live]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "skip-detail"
    # ...and keeps the selection ("#detail" is not a request).
    page.goto("/#80")
    page.wait_for_selector('#detail-view[data-id="80"]:not([hidden])')
    page.focus("#skip-detail")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "detail"
    assert page.evaluate("location.hash") == "#80"
    assert not ui.errors


def test_on_a_narrow_screen_the_detail_opens_over_the_list(
    browser: Any, live: LiveInspector, client: httpx.Client
) -> None:
    fill(client, 30)
    page = Page(browser, live)
    try:
        page.page.set_viewport_size({"width": 600, "height": 800})
        tab = page.open()
        detail = tab.locator("#detail")
        assert detail.is_hidden()
        page.row(25).locator("a").click()
        tab.wait_for_selector('#detail-view[data-id="25"]:not([hidden])')
        assert detail.is_visible()
        rect = detail.bounding_box()
        assert rect is not None
        # Right there, full width, with no scrolling past the list.
        assert rect["x"] == 0 and rect["width"] == 600
        assert 0 <= rect["y"] < 120
        assert tab.evaluate("window.scrollY") == 0
        assert tab.locator("#detail-back").is_visible()
        assert tab.locator("#detail-view .d-title").is_visible()
        tab.locator("#detail-back").click()
        assert detail.is_hidden()
        assert page.row(25).is_visible()
        assert "selected" in (page.row(25).get_attribute("class") or "").split()
        assert tab.evaluate("document.activeElement.closest('#rows li')?.dataset.id") == "25"
        page.row(25).locator("a").click()  # the same row again opens it again
        assert detail.is_visible()
        assert not page.errors
    finally:
        page.close()


# -- the deliveries page -----------------------------------------------------------------------


def test_delivery_rows_end_in_the_servers_state_after_many_quick_sends(
    ui: Page, client: httpx.Client
) -> None:
    page = ui.page
    page.goto("/deliveries")
    page.wait_for_function("() => document.getElementById('live').textContent === 'live'")
    form = page.locator("#send-form")
    # Fails once, then succeeds a few ms later: several states per delivery, in quick order.
    form.locator('input[name="url"]').fill(f"{ui.live.url}/h/platform-test?fail=1")
    form.locator('input[name="secret"]').fill(SECRET)
    form.locator('select[name="time_scale"]').select_option("0.001")
    send = form.get_by_role("button", name="Send test")
    runs = 30
    for _ in range(runs):
        send.click()
    wait_until(lambda: len(client.get("/api/deliveries").json()["deliveries"]) == runs, "30")

    def server() -> dict[int, tuple[str, str]]:
        listed = client.get("/api/deliveries", params={"limit": 100}).json()["deliveries"]
        return {d["id"]: (d["state"], f"{d['attempts']}/{d['max_attempts']}") for d in listed}

    final = wait_until(
        lambda: (s := server()) and all(state != "pending" for state, _ in s.values()) and s,
        "every delivery to finish",
    )
    assert {state for state, _ in final.values()} == {"succeeded"}

    def shown() -> dict[int, tuple[str, str]]:
        rows: list[list[str]] = page.eval_on_selector_all(
            "#deliveries tbody tr",
            "trs => trs.map(tr => [tr.dataset.id, tr.querySelector('.state').textContent,"
            " tr.querySelector('.attempts').textContent])",
        )
        return {int(i): (state, attempts) for i, state, attempts in rows}

    try:
        wait_until(lambda: shown() == final, "the rows to show the server's state", timeout=10)
    except AssertionError:
        stale = {i: (shown().get(i), final[i]) for i in final if shown().get(i) != final[i]}
        raise AssertionError(f"rows left behind the server (shown, server): {stale}") from None
    assert not ui.errors


# -- accessibility -----------------------------------------------------------------------------


def axe_violations(page: Any, view: str) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document)).violations.map(v => ({
             id: v.id, help: v.help,
             nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))"""
    )
    return [f"{view}: {v['id']} ({v['help']}): {json.dumps(v['nodes'][:3])}" for v in found]


def test_axe_finds_no_violation_on_any_view(
    browser: Any, live: LiveInspector, client: httpx.Client
) -> None:
    if not AXE.exists():
        pytest.fail(
            f"axe-core not found at {AXE}: run ./scripts/test (it installs it from npm into"
            " .test-tools/) or set AXE_CORE=/path/to/axe.min.js.",
            pytrace=False,
        )
    client.put("/api/endpoints/shop", json={"secret": SECRET})
    client.post("/h/shop", content=MESSAGE, headers=signed(MESSAGE))
    client.post("/h/shop?status=500", content=MESSAGE, headers=signed(MESSAGE))
    client.post("/h/shop", content=b"plain", headers={"content-type": "text/plain"})
    client.post("/h/other", content=b'{"a": 1}', headers={"content-type": "application/json"})
    delivery = client.post(
        "/api/deliveries",
        json={"event": "message.received", "url": f"{live.url}/h/shop", "secret": SECRET},
    ).json()
    wait_until(
        lambda: client.get(f"/api/deliveries/{delivery['id']}").json()["state"] != "pending",
        "the delivery",
    )
    # axe is injected as a script, which the page's CSP (rightly) refuses: only this context
    # bypasses it.
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, base_url=live.url, bypass_csp=True
    )
    try:
        page = context.new_page()
        found: list[str] = []
        page.goto("/#2")  # the list, a row selected (its muted text on the selected colour)
        page.wait_for_selector("#conn[data-state=live]")
        page.wait_for_selector('#detail-view[data-id="2"]:not([hidden])')
        page.locator("#rows li").first.hover()
        found += axe_violations(page, "list and detail")
        page.get_by_role("button", name="Replay…").click()
        page.wait_for_selector(".replay-form")
        found += axe_violations(page, "replay form")
        page.goto("/?endpoint=shop")
        page.wait_for_selector("#conn[data-state=live]")
        page.locator("#open-settings").click()
        page.wait_for_selector("#settings[open]")
        found += axe_violations(page, "settings")
        page.goto("/?endpoint=nothing-here")  # the empty states
        page.wait_for_selector("#conn[data-state=live]")
        found += axe_violations(page, "empty list")
        page.goto("/deliveries")
        page.wait_for_function("() => document.getElementById('live').textContent === 'live'")
        page.locator(f'#deliveries tr[data-id="{delivery["id"]}"]').click()
        page.wait_for_selector("#detail:not([hidden])")
        found += axe_violations(page, "deliveries")
        page.set_viewport_size({"width": 600, "height": 800})
        page.goto("/#3")
        page.wait_for_selector('#detail-view[data-id="3"]:not([hidden])')
        found += axe_violations(page, "narrow detail")
        assert found == [], "\n".join(found)
    finally:
        context.close()
