"""Any capture the server accepts opens in the page: bodies shaped to make a naive renderer
build millions of nodes (a JSON array of a million numbers, an object of 500,000 keys, a form
of a million fields, 100,000 multipart parts) render a screenful in the detail pane, and more
on "Show more". Real Chromium, real server; the time to first render is printed, not bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveInspector
from tests.test_page import Page
from tests.test_page import browser as browser  # the module-scoped Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.slow]

MAX_ELEMENTS = 5000  # the whole page, detail pane included

BODIES: dict[str, tuple[bytes, str]] = {
    "array": (b"[" + b",".join(b"0" for _ in range(1_000_000)) + b"]", "application/json"),
    "object": (
        ("{" + ",".join(f'"k{i}":{i}' for i in range(500_000)) + "}").encode(),
        "application/json",
    ),
    "form": (
        "&".join(f"f{i}=v" for i in range(1_000_000)).encode(),
        "application/x-www-form-urlencoded",
    ),
    "multipart": (
        b"".join(
            b'--BB\r\nContent-Disposition: form-data; name="p%d"\r\n\r\nv\r\n' % i
            for i in range(100_000)
        )
        + b"--BB--\r\n",
        "multipart/form-data; boundary=BB",
    ),
}


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveInspector, dict[str, int]]]:
    from inspector.settings import Settings

    live = LiveInspector(Settings(data_dir=tmp_path_factory.mktemp("big"), port=0)).start()
    ids = {}
    with live.client(timeout=60) as client:
        for name, (body, content_type) in BODIES.items():
            assert (
                client.post(
                    f"/h/{name}", content=body, headers={"content-type": content_type}
                ).status_code
                == 200
            )
            ids[name] = client.get(f"/api/requests?endpoint={name}").json()["requests"][0]["id"]
    yield live, ids
    live.stop()


@pytest.mark.parametrize("name", list(BODIES))
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


def test_the_detail_api_sends_a_prefix_of_the_body_when_asked(
    big: tuple[LiveInspector, dict[str, int]],
) -> None:
    live, ids = big
    with httpx.Client(base_url=live.url, timeout=30) as client:
        whole = client.get(f"/api/requests/{ids['array']}").json()
        part = client.get(f"/api/requests/{ids['array']}", params={"body_limit": 1000}).json()
    assert whole["body_base64"].startswith(part["body_base64"])
    assert 1000 <= len(part["body_base64"]) * 3 // 4 < 1003 and part["size"] == whole["size"]
