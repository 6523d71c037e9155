"""Time to first render of the detail pane in Chromium, for captures shaped to make a page
build millions of nodes — a JSON array of a million numbers, an object of 500,000 keys, a
form of a million fields, 100,000 multipart parts — against a 1 KiB JSON capture opened in
the same page, in the same run.

    .venv/bin/python bench/detail.py [--rounds 7]

``webhook-inspector serve`` runs as a subprocess on a free port; headless Chromium opens the
page and selects each capture by its URL fragment, as a click on its row does. The clock runs
in the page: from the selection until the body view holds its first screenful, plus the
next animation frame (the one that paints it); figures are medians. Between two
measurements the page shows an empty capture and collects its garbage, so each starts from
the same state.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# The bodies are the browser tests' own (tests/bodies.py), so the figure is for what they check.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.bodies import huge_bodies

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# --expose-gc: each measurement starts on a collected heap, not paying for the one before.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--js-flags=--expose-gc",
]

BODIES: dict[str, tuple[bytes, str]] = {
    "rest": (b"", "text/plain"),  # shown between measurements, not measured
    "small": (
        b'{"event": "ping", "data": {"n": 1, "pad": "' + b"x" * 960 + b'"}}',
        "application/json",
    ),
    **huge_bodies(),
}

# Resolves once request `id` is shown (and a little later: its own fetches done).
OPEN = """
(id) => new Promise((resolve) => {
  const shown = () => document.querySelector(`#detail-view[data-id="${id}"]:not([hidden])`);
  const watcher = new MutationObserver(() => {
    if (shown()) {
      watcher.disconnect();
      setTimeout(resolve, 100);
    }
  });
  watcher.observe(document.body, { childList: true, subtree: true, attributes: true });
  location.hash = `#${id}`;
})
"""

# Resolves with the milliseconds from the selection until request `id`'s body view holds
# something, and a frame has begun after that.
OPEN_AND_TIME = """
(id) => new Promise((resolve) => {
  const selector = `#detail-view[data-id="${id}"]:not([hidden]) .body-section .view > *`;
  const started = performance.now();
  const done = () => requestAnimationFrame(() => resolve(performance.now() - started));
  const watcher = new MutationObserver(() => {
    if (document.querySelector(selector)) {
      watcher.disconnect();
      done();
    }
  });
  watcher.observe(document.body, { childList: true, subtree: true, attributes: true });
  location.hash = `#${id}`;
})
"""


def start_server(data_dir: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "inspector", "serve", "--port", "0", "--data-dir", data_dir]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    base = None
    for line in proc.stdout:
        if "page:" in line:
            base = line.split("page:", 1)[1].strip().rstrip("/")
        if "Ctrl-C" in line:
            break
    assert base, "serve did not start"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/api/endpoints", timeout=2).raise_for_status()
            return proc, base
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    data_dir = tempfile.mkdtemp(prefix="bench-page-")
    proc, base = start_server(data_dir)
    try:
        ids: dict[str, int] = {}
        with httpx.Client(base_url=base, timeout=120) as client:
            for name, (body, content_type) in BODIES.items():
                client.post(f"/h/{name}", content=body, headers={"content-type": content_type})
                ids[name] = client.get(f"/api/requests?endpoint={name}").json()["requests"][0]["id"]
        measured = [name for name in BODIES if name != "rest"]
        times: dict[str, list[float]] = {name: [] for name in measured}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(base + "/")
            page.wait_for_selector("#conn[data-state=live]")
            for _ in range(args.rounds):
                for name in measured:
                    page.evaluate(OPEN, ids["rest"])
                    page.evaluate("gc()")
                    times[name].append(page.evaluate(OPEN_AND_TIME, ids[name]))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    baseline = statistics.median(times["small"])
    print(f"rounds: {args.rounds}; load average {os.getloadavg()[0]:.1f}")
    print(f"baseline: 1 KiB JSON capture, first render median {baseline:.0f} ms")
    for name, (body, _) in BODIES.items():
        if name in ("rest", "small"):
            continue
        median = statistics.median(times[name])
        spread = f"{min(times[name]):.0f}-{max(times[name]):.0f}"
        print(
            f"{name:9} {len(body) / 2**20:5.1f} MiB: first render median {median:6.0f} ms "
            f"(range {spread}), {median / baseline:5.1f}x the baseline"
        )


if __name__ == "__main__":
    main()
