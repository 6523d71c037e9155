"""Any capture the server accepts opens in the page: bodies shaped to make a naive renderer
build millions of nodes (``tests/bodies.py``: a JSON array of a million numbers, an object of
500,000 keys, a form of a million fields, 100,000 multipart parts) render a screenful in the
detail pane, and more on "Show more". Real Chromium, real server. The time to first render is
printed and held to a bound a loaded CI machine cannot miss (FIRST_RENDER); its figure comes
from bench/detail.py, on the same bodies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from inspector.settings import Settings
from tests.bodies import HUGE, huge_bodies
from tests.conftest import LiveInspector
from tests.test_page import Page

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.slow]

MAX_ELEMENTS = 5000  # the whole page, detail pane included
# Seen: 0.1-0.25 s on a quiet machine (bench/detail.py), 0.5-1.6 s at load average 8.5 on 2 cores;
# a generous bound, so that only a renderer that builds the whole structure can miss it.
FIRST_RENDER = 10.0  # seconds from the click to the first screenful


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveInspector, dict[str, int]]]:
    live = LiveInspector(Settings(data_dir=tmp_path_factory.mktemp("big"), port=0)).start()
    ids = {}
    with live.client(timeout=60) as client:
        for name, (body, content_type) in huge_bodies().items():
            assert (
                client.post(
                    f"/h/{name}", content=body, headers={"content-type": content_type}
                ).status_code
                == 200
            )
            ids[name] = client.get(f"/api/requests?endpoint={name}").json()["requests"][0]["id"]
    yield live, ids
    live.stop()


@pytest.mark.parametrize("name", HUGE)
def test_a_huge_body_opens_a_screenful_at_a_time(
    browser: Any, big: tuple[LiveInspector, dict[str, int]], name: str
) -> None:
    live, ids = big
    ui = Page(browser, live)
    try:
        page = ui.open()
        started = time.monotonic()
        detail = ui.select(ids[name])
        detail.locator(".body-section .view > *").first.wait_for()
        took = time.monotonic() - started
        print(f"\n{name}: detail pane rendered {took * 1000:.0f} ms after the click")
        assert took < FIRST_RENDER, f"{name}: first render took {took:.1f} s"
        count = page.evaluate("document.querySelectorAll('*').length")
        assert count < MAX_ELEMENTS, f"{count} elements"
        more = detail.locator(".body-section .show-more").first
        assert more.is_visible()
        shown = "document.querySelector('.body-section .view').textContent.length"
        before = page.evaluate(shown)
        more.click()
        page.wait_for_function(f"n => {shown} > n", arg=before)
        assert page.evaluate("document.querySelectorAll('*').length") < 2 * MAX_ELEMENTS
        assert not ui.errors
    finally:
        ui.close()


def test_the_page_fetches_the_fields_without_the_body_and_a_range_of_bytes(
    browser: Any, big: tuple[LiveInspector, dict[str, int]]
) -> None:
    """No base64 and no JSON of megabytes: the detail is fetched without its body, and the
    body's first screenfuls as raw bytes (one Range request)."""
    live, ids = big
    ui = Page(browser, live)
    try:
        page = ui.open()
        seen: list[tuple[str, str | None, int]] = []
        page.on(
            "requestfinished",
            lambda r: seen.append((r.url, r.headers.get("range"), r.sizes()["responseBodySize"])),
        )
        detail = ui.select(ids["form"])
        detail.locator(".body-section .view > *").first.wait_for()
        wanted = {f"{ids['form']}?body_limit=0", f"{ids['form']}/body"}

        def fetched() -> dict[str, tuple[str | None, int]]:
            return {
                url.split("/api/requests/", 1)[1]: (rng, size)
                for url, rng, size in seen
                if "/api/requests/" in url
            }

        while not wanted <= set(fetched()):  # the events may trail the rendering
            page.wait_for_timeout(50)
        item = fetched()[f"{ids['form']}?body_limit=0"]
        assert item[1] < 10_000, "the detail came without its body"
        rng, size = fetched()[f"{ids['form']}/body"]
        assert rng == "bytes=0-2097151" and size == 2 * 1024 * 1024
        assert not ui.errors
    finally:
        ui.close()


def test_the_tree_of_a_json_body_beyond_the_first_screenfuls_is_read_on_demand(
    browser: Any, big: tuple[LiveInspector, dict[str, int]]
) -> None:
    """The object of 500,000 keys (8 MiB) opens as text, its first 2 MiB; its JSON tab reads
    the whole body and shows the tree a screenful at a time."""
    live, ids = big
    ui = Page(browser, live)
    try:
        page = ui.open()
        detail = ui.select(ids["object"])
        assert detail.locator(".body-section .tabs [aria-selected=true]").text_content() == "Text"
        detail.locator('.body-section .tabs [data-key="json-whole"]').click()
        summary = detail.locator(".body-section .json-tree > details > summary")
        summary.wait_for(timeout=60_000)
        assert "500,000 keys" in (summary.text_content() or "")
        keys = detail.locator(".body-section .json-tree .j-key")
        assert keys.first.text_content() == '"k0"' and keys.count() == 200  # a screenful
        assert page.evaluate("document.querySelectorAll('*').length") < MAX_ELEMENTS
        assert not ui.errors
    finally:
        ui.close()
