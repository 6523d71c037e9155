"""Export and import (JSON Lines round trips, HAR 1.2) and curl commands that reproduce a
capture byte for byte."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.cli import main
from inspector.store import Store, listing, requests
from inspector.transfer import ansi_c, shell_quote
from tests.conftest import LiveInspector, fresh_schema, latest
from tests.test_replay import expected_headers, raw_request, recorder_app

pytestmark = pytest.mark.backends

app = pytest.fixture(recorder_app)


def capture_variety(live: LiveInspector) -> None:
    """Requests that exercise every stored field."""
    raw_request(
        live.port,
        b'POST /h/fx/deep?b=2&a=1&a=1&q={"x":1}|^ HTTP/1.1\r\nHost: hooks.example.com\r\n'
        b"X-Dup: 1\r\nX-Latin: caf\xe9\r\nX-Dup: 2\r\nContent-Length: 6\r\n"
        b"Connection: close\r\n\r\n",
        b"\x00\x01\xff\xfe\r\n",
    )
    with live.client() as client:
        event = b'{"event": "message.received", "data": {"messageId": "msg_001"}}'
        client.post("/h/fx", content=event, headers={"content-type": "application/json"})
        client.post("/h/fx", content=event, headers={"content-type": "application/json"})
        client.get("/h/other?status=418&body=teapot")
        client.put("/api/endpoints/sig", json={"secret": "s"})
        client.post("/h/sig", content="大家早安!".encode(), headers={"X-Webhook-Signature": "x"})
        client.post("/h/fx", content=b"")
        with pytest.raises(httpx.TransportError):
            client.post("/h/fx?drop=1", content=b"dropped")


def details(location: Path | str) -> list[dict[str, Any]]:
    store = Store(location).open()
    try:
        items, _ = store.read_sync(listing.list_requests, listing.RequestFilter(), 1000, None)
        return [store.read_sync(requests.get_request, it["id"]) for it in reversed(items)]
    finally:
        store.close()


def comparable(detail: dict[str, Any], ids: dict[int, int]) -> dict[str, Any]:
    out = dict(detail)
    out["first_attempt_id"] = ids.get(out["first_attempt_id"], out["first_attempt_id"])
    for key in ("id", "original_id", "summary"):
        out.pop(key, None)
    return out


def test_export_then_import_reproduces_every_request(live: LiveInspector, tmp_path: Path) -> None:
    capture_variety(live)
    source = live.settings.data_dir
    exported = tmp_path / "fixtures.jsonl"
    assert main(["export", "-o", str(exported), "--data-dir", str(source)]) == 0
    with live.client() as client:  # the API streams the same bytes
        assert client.get("/api/export").content == exported.read_bytes()
    with contextlib.ExitStack() as stack:
        # Into an empty store of the same kind: another data dir, or another schema.
        if live.settings.database:
            target: Path | str = stack.enter_context(fresh_schema())
            where = ["--database", str(target)]
        else:
            target = tmp_path / "empty" / "inspector.db"
            where = ["--data-dir", str(target.parent)]
        assert main(["import", str(exported), *where]) == 0
        before, after = details(live.settings.store_location), details(target)
        assert len(before) == len(after) == 7
        ids = {old["id"]: new["id"] for old, new in zip(before, after, strict=True)}
        for old, new in zip(before, after, strict=True):
            assert new["original_id"] == old["id"]
            assert comparable(new, {}) == comparable(old, ids)
        assert after[2]["attempt"] == 2 and after[2]["first_attempt_id"] == after[1]["id"]
        # received_ts and everything else survive a second round trip unchanged.
        again = tmp_path / "again.jsonl"
        assert main(["export", "-o", str(again), *where]) == 0
    first = [json.loads(line) for line in exported.read_bytes().splitlines()]
    second = [json.loads(line) for line in again.read_bytes().splitlines()]
    for a, b in zip(first, second, strict=True):
        assert a["original_id"] is None and b["original_id"] == a["id"]
        for rec in (a, b):
            del rec["id"], rec["original_id"], rec["first_attempt_id"]
        assert a == b


def test_import_appends_in_order_and_filters_by_endpoint(live: LiveInspector, tmp_path) -> None:
    capture_variety(live)
    exported = tmp_path / "fx.jsonl"
    args = ["export", "--endpoint", "fx", "-o", str(exported), "--data-dir"]
    assert main([*args, str(live.settings.data_dir)]) == 0
    lines = exported.read_bytes().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["endpoint"] == "fx" for line in lines)
    # Into the running server's own store, under another endpoint: new ids after the old ones.
    data_dir = str(live.settings.data_dir)
    assert main(["import", str(exported), "--endpoint", "copy", "--data-dir", data_dir]) == 0
    with live.client() as client:
        copies = client.get("/api/requests?endpoint=copy").json()["requests"]
        originals = client.get("/api/requests?endpoint=fx").json()["requests"]
        assert [c["id"] for c in copies] == sorted((c["id"] for c in copies), reverse=True)
        assert min(c["id"] for c in copies) > max(o["id"] for o in originals)
        bodies = [client.get(f"/api/requests/{c['id']}/body").content for c in reversed(copies)]
        assert bodies == [
            client.get(f"/api/requests/{o['id']}/body").content for o in reversed(originals)
        ]


def test_import_errors_name_the_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    good = {
        "endpoint": "e",
        "method": "POST",
        "path": "/h/e",
        "headers": [],
        "body_base64": "",
        "received_at": "2026-01-01T00:00:00.000000Z",
    }
    bad.write_text(json.dumps(good) + "\n{not json\n")
    assert main(["import", str(bad), "--data-dir", str(tmp_path)]) == 2
    assert "line 2" in capsys.readouterr().err
    bad.write_text(json.dumps({**good, "headers": {"a": "b"}}) + "\n")
    assert main(["import", str(bad), "--data-dir", str(tmp_path)]) == 2
    assert "line 1: headers must be [name, value] pairs of latin-1" in capsys.readouterr().err
    har = tmp_path / "x.har"
    har.write_text('{\n  "log": {}\n}\n')
    assert main(["import", str(har), "--data-dir", str(tmp_path)]) == 2
    assert "HAR" in capsys.readouterr().err
    missing = str(tmp_path / "nope.jsonl")
    assert main(["import", missing, "--data-dir", str(tmp_path)]) == 2


def test_har_export_opens_as_har_1_2(live: LiveInspector, tmp_path: Path) -> None:
    capture_variety(live)
    with live.client() as client:
        response = client.get("/api/export?format=har&endpoint=fx")
        assert response.status_code == 200
        assert "attachment" in response.headers["content-disposition"]
        har = response.json()
        assert client.get("/api/export?format=xml").status_code == 400
    out = tmp_path / "all.har"
    assert (
        main(
            ["export", "--format", "har", "-o", str(out), "--data-dir", str(live.settings.data_dir)]
        )
        == 0
    )
    assert len(json.loads(out.read_bytes())["log"]["entries"]) == 7
    log = har["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "webhook-inspector"
    entries = log["entries"]
    assert len(entries) == 5
    binary = entries[0]
    assert binary["request"]["url"].startswith("http://hooks.example.com/h/fx/deep?b=2")
    assert binary["request"]["postData"]["encoding"] == "base64"
    assert base64.b64decode(binary["request"]["postData"]["text"]) == b"\x00\x01\xff\xfe\r\n"
    assert {"name": "a", "value": "1"} in binary["request"]["queryString"]
    assert binary["response"]["status"] == 200 and binary["response"]["content"]["text"] == "OK"
    text = entries[1]
    assert text["request"]["postData"]["mimeType"] == "application/json"
    assert json.loads(text["request"]["postData"]["text"])["event"] == "message.received"
    assert entries[-1]["response"]["status"] == 0 and "_error" in entries[-1]["response"]
    for entry in entries:
        assert entry["startedDateTime"].endswith("Z") and entry["time"] >= 0
        assert isinstance(entry["request"]["headers"], list)


# -- curl ------------------------------------------------------------------------------------

TRICKY = [
    "plain",
    "it's",
    'say "hi" $HOME `id` \\n !! ${x}',
    "line1\nline2\r\n\ttab",
    "大家早安! café",
    "\x01\x1b[31m\x7f",
    "\u202e\u2028",
]


@pytest.mark.parametrize("text", TRICKY)
def test_ansi_c_quoting_is_byte_faithful_in_bash(text: str) -> None:
    data = text.encode("utf-8")
    out = subprocess.run(
        ["bash", "-c", f"printf %s {ansi_c(data, utf8=True)}"], capture_output=True, check=True
    )
    assert out.stdout == data
    latin = text.encode("utf-8")[:20].decode("latin-1")
    out = subprocess.run(
        ["bash", "-c", f"printf %s {shell_quote(latin)}"], capture_output=True, check=True
    )
    assert out.stdout == latin.encode("latin-1")


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@needs_curl
def test_curl_command_reproduces_a_text_body(app_client: httpx.Client, app, tmp_path) -> None:
    recorder, server = app
    body = '{"text": "it\'s 大家早安!\\n", "tab":\t1}\n'.encode()
    app_client.post(
        "/h/curl/sub?x=1&y=%20",
        content=body,
        headers=[
            ("Content-Type", "application/json"),
            ("X-Dup", "1"),
            ("X-Empty", ""),  # curl drops "X-Empty:"; the command must say "X-Empty;"
            ("X-Dup", "2"),
        ],
    )
    captured = latest(app_client, "curl")
    response = app_client.get(f"/api/requests/{captured['id']}/curl", params={"url": server.url})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    command = response.text
    assert "--data-binary $'" in command
    subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, check=True)
    seen = recorder.wait_for(1)[0]
    assert seen.method == "POST" and seen.body == body and seen.target == b"/sub?x=1&y=%20"
    sent = [(n, v) for n, v in seen.headers if n not in ("host", "content-length")]
    expected = [
        (n, v)
        for n, v in expected_headers(captured["headers"], "", None)
        if n not in ("host", "content-length")
    ]
    assert sent == expected  # curl added nothing of its own


@needs_curl
def test_curl_command_for_a_binary_body_reads_a_file(live: LiveInspector, app, tmp_path) -> None:
    recorder, server = app
    body = bytes(range(256))
    with live.client() as client:
        client.put("/api/endpoints/bin", json={"replay_to": server.url})
        client.patch("/h/bin", content=body)
        captured = latest(client, "bin")
        command = client.get(f"/api/requests/{captured['id']}/curl").text
    filename = f"request-{captured['id']}.bin"
    assert f"--data-binary @{filename}" in command
    assert command.startswith("# The body is binary (256 bytes)")
    download = command.splitlines()[1].removeprefix("#").strip()
    subprocess.run(["bash", "-c", download], cwd=tmp_path, capture_output=True, check=True)
    assert (tmp_path / filename).read_bytes() == body
    subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, check=True)
    seen = recorder.wait_for(1)[0]
    assert seen.method == "PATCH" and seen.body == body


@needs_curl
def test_curl_command_for_a_long_text_body_reads_a_file(live: LiveInspector, app, tmp_path) -> None:
    """Linux refuses an argument over 128 KiB: a long body goes by file, text or not."""
    recorder, server = app
    body = b'{"pad": "' + b"x" * 200_000 + b'"}'
    with live.client() as client:
        client.put("/api/endpoints/long", json={"replay_to": server.url})
        client.post("/h/long", content=body, headers={"content-type": "application/json"})
        captured = latest(client, "long")
        command = client.get(f"/api/requests/{captured['id']}/curl").text
    assert len(command) < 2000
    assert command.startswith(f"# The body is too long for a command line ({len(body)} bytes)")
    download = command.splitlines()[1].removeprefix("#").strip()
    subprocess.run(["bash", "-c", download], cwd=tmp_path, capture_output=True, check=True)
    subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, check=True)
    assert recorder.wait_for(1)[0].body == body


def test_curl_defaults_to_this_inspector(app_client: httpx.Client) -> None:
    app_client.get("/h/self?a=1")
    captured = latest(app_client, "self")
    command = app_client.get(f"/api/requests/{captured['id']}/curl").text
    base = str(app_client.base_url).rstrip("/")
    assert command.startswith(f"curl '{base}/h/self?a=1'")
    assert "-X" not in command and "--data-binary" not in command
    assert app_client.get("/api/requests/999/curl").status_code == 404
