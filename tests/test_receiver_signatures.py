"""Signature verdicts on captures: per-endpoint secrets, the doctor, enforce, the CLI.

In-process: the app with its runtime running (settings reloads, re-verification), no socket."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time

import httpx
import pytest

from inspector.cli import main
from tests.conftest import InProcessInspector

pytestmark = pytest.mark.backends

SECRET = "platform-secret"
EVENT = {
    "event": "message.received",
    "timestamp": "2025-01-15T08:30:00Z",
    "data": {
        "channelId": "C1234567890",
        "messageId": "msg_001",
        "sender": {"userId": "U1234567890", "displayName": "王小明"},
        "type": "text",
        "content": "大家早安!",
    },
}
# Pretty-printed with non-ASCII kept: what a real sender might send.
RAW = json.dumps(EVENT, ensure_ascii=False, indent=2).encode()


def platform_sig(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def last(client: httpx.Client) -> dict:
    return client.get("/api/requests?limit=1").json()["requests"][0]


def diagnosed(client: httpx.Client) -> dict:
    """The newest request's verdict once the doctor (after the answer) has run."""
    deadline = time.monotonic() + 30
    while True:
        verdict = last(client)["signature"]
        if verdict["doctor"] is None or time.monotonic() > deadline:
            return verdict
        time.sleep(0.05)


def test_valid_invalid_missing_and_no_secret(app_client: httpx.Client) -> None:
    assert app_client.post("/h/plain", content=RAW, headers={"x-webhook-signature": "sha256=00"})
    assert last(app_client)["signature"]["status"] == "no_secret"

    app_client.post("/h/nothing", content=b"hello")
    assert last(app_client)["signature"] is None

    put = app_client.put("/api/endpoints/orders", json={"secret": SECRET})
    assert put.status_code == 200, put.text
    assert put.json()["settings"]["secret"] == [SECRET]

    app_client.post("/h/orders", content=RAW, headers={"x-webhook-signature": platform_sig(RAW)})
    verdict = last(app_client)["signature"]
    assert verdict["status"] == "valid" and verdict["scheme"] == "platform"

    app_client.post("/h/orders", content=RAW)
    assert last(app_client)["signature"]["status"] == "missing"


def test_doctor_names_the_json_stringify_mistake_over_http(app_client: httpx.Client) -> None:
    app_client.put("/api/endpoints/orders", json={"secret": SECRET})
    # The sender signed JSON.stringify(body) (compact), but sent the pretty bytes.
    compact = json.dumps(EVENT, ensure_ascii=False, separators=(",", ":")).encode()
    app_client.post(
        "/h/orders", content=RAW, headers={"x-webhook-signature": platform_sig(compact)}
    )
    verdict = diagnosed(app_client)
    assert verdict["status"] == "invalid"
    assert "JSON.stringify" in verdict["diagnosis"]
    assert "raw" in verdict["diagnosis"]


def test_doctor_finds_another_endpoints_secret(app_client: httpx.Client) -> None:
    app_client.put("/api/endpoints/orders", json={"secret": SECRET})
    app_client.put("/api/endpoints/billing", json={"secret": "billing-secret"})
    sig = platform_sig(RAW, "billing-secret")
    app_client.post("/h/orders", content=RAW, headers={"x-webhook-signature": sig})
    verdict = diagnosed(app_client)
    assert verdict["status"] == "invalid"
    assert "billing" in verdict["diagnosis"]


def test_github_known_vector_over_http(app_client: httpx.Client) -> None:
    app_client.put(
        "/api/endpoints/gh", json={"secret": "It's a Secret to Everybody", "scheme": "github"}
    )
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    app_client.post("/h/gh", content=b"Hello, World!", headers={"x-hub-signature-256": sig})
    assert last(app_client)["signature"]["status"] == "valid"
    app_client.post("/h/gh", content=b"Hello, World?", headers={"x-hub-signature-256": sig})
    assert last(app_client)["signature"]["status"] == "invalid"


def test_enforce_answers_401_and_still_captures(app_client: httpx.Client) -> None:
    app_client.put("/api/endpoints/strict", json={"secret": SECRET, "enforce": True})
    bad = app_client.post(
        "/h/strict?fail=1", content=RAW, headers={"x-webhook-signature": "sha256=ab"}
    )
    assert bad.status_code == 401
    assert bad.text == "Invalid signature"
    item = last(app_client)
    assert item["response"]["status"] == 401
    assert item["signature"]["status"] == "malformed"
    missing = app_client.post("/h/strict", content=RAW)
    assert missing.status_code == 401
    good = app_client.post(
        "/h/strict", content=RAW, headers={"x-webhook-signature": platform_sig(RAW)}
    )
    assert good.status_code == 200
    stored = app_client.get("/api/requests?endpoint=strict").json()["requests"]
    assert [it["response"]["status"] for it in stored] == [200, 401, 401]


def test_secret_rotation_accepts_either(app_client: httpx.Client) -> None:
    app_client.put("/api/endpoints/rot", json={"secret": ["new-secret", SECRET]})
    for secret in ("new-secret", SECRET):
        app_client.post(
            "/h/rot", content=RAW, headers={"x-webhook-signature": platform_sig(RAW, secret)}
        )
        assert last(app_client)["signature"]["status"] == "valid"


def test_global_default_secret(make_in_process) -> None:
    in_process = make_in_process(secret=SECRET)
    with in_process.client() as client:
        client.post("/h/any", content=RAW, headers={"x-webhook-signature": platform_sig(RAW)})
        assert last(client)["signature"]["status"] == "valid"
        # An endpoint's own secret takes precedence.
        client.put("/api/endpoints/own", json={"secret": "own"})
        client.post("/h/own", content=RAW, headers={"x-webhook-signature": platform_sig(RAW)})
        assert last(client)["signature"]["status"] == "invalid"


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"scheme": "rot13"}, "scheme"),
        ({"tolerance": -5}, "tolerance"),
        ({"enforce": "yes"}, "enforce"),
        ({"secret": ""}, "secret"),
        ({"colour": "blue"}, "colour"),
        ({"response": {"delay": -1}}, "delay"),
        ({"hmac": {"algorithm": "md5"}}, "algorithm"),
        ({"wait_from": "middle"}, "wait_from"),
        ({"retired_secrets": [""]}, "secret"),
    ],
)
def test_bad_settings_get_400_naming_the_key(
    app_client: httpx.Client, changes: dict, detail: str
) -> None:
    response = app_client.put("/api/endpoints/cfg", json=changes)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]


def test_put_merges_and_null_resets(app_client: httpx.Client) -> None:
    app_client.put("/api/endpoints/m", json={"secret": SECRET, "enforce": True})
    app_client.put("/api/endpoints/m", json={"scheme": "platform"})
    settings = app_client.get("/api/endpoints/m").json()["settings"]
    assert settings["secret"] == [SECRET] and settings["enforce"] is True
    app_client.put("/api/endpoints/m", json={"enforce": None})
    assert app_client.get("/api/endpoints/m").json()["settings"]["enforce"] is False
    assert app_client.put("/api/endpoints/m", content=b"not json").status_code == 400


def test_cli_endpoint_reaches_a_running_server(in_process: InProcessInspector) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "inspector",
            "endpoint",
            "cli-ep",
            "--secret",
            SECRET,
            "--enforce",
            "--data-dir",
            str(in_process.settings.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["settings"]["enforce"] is True
    with in_process.client() as client:
        deadline = time.monotonic() + 15
        while client.post("/h/cli-ep", content=RAW).status_code != 401:
            assert time.monotonic() < deadline, "server never picked up the CLI's settings"
            time.sleep(0.1)


def test_cli_sign_makes_a_request_the_server_accepts(
    in_process: InProcessInspector, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    body_file = tmp_path / "event.json"
    body_file.write_bytes(RAW)
    with in_process.client() as client:
        client.put("/api/endpoints/signed", json={"secret": SECRET, "enforce": True})
        for scheme in ("platform", "github", "stripe", "slack", "shopify", "standard"):
            # In this process (``sign`` touches no store): six interpreters cost ~10 s.
            assert main(["sign", "--scheme", scheme, "--secret", SECRET, str(body_file)]) == 0
            out = capsys.readouterr().out
            headers = [tuple(line.split(": ", 1)) for line in out.splitlines()]
            client.put("/api/endpoints/signed", json={"scheme": scheme})
            response = client.post("/h/signed", content=RAW, headers=headers)
            assert response.status_code == 200, (scheme, last(client)["signature"])


def wait_for_status(client: httpx.Client, endpoint: str, expected: list[str | None]) -> list:
    deadline = time.monotonic() + 15
    while True:
        items = client.get(f"/api/requests?endpoint={endpoint}").json()["requests"]
        found = [it["signature"]["status"] if it["signature"] else None for it in items]
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_setting_a_secret_later_re_verifies_what_was_captured(app_client: httpx.Client) -> None:
    app_client.post("/h/later", content=RAW, headers={"x-webhook-signature": platform_sig(RAW)})
    app_client.post(
        "/h/later", content=RAW, headers={"x-webhook-signature": platform_sig(RAW, "x")}
    )
    app_client.post("/h/later", content=b"unsigned")
    assert wait_for_status(app_client, "later", [None, "no_secret", "no_secret"]) == [
        None,
        "no_secret",
        "no_secret",
    ]
    app_client.put("/api/endpoints/later", json={"secret": SECRET})
    # Newest first: the unsigned one is now missing its signature; the others are judged.
    assert wait_for_status(app_client, "later", ["missing", "invalid", "valid"]) == [
        "missing",
        "invalid",
        "valid",
    ]
    app_client.put("/api/endpoints/later", json={"secret": "x"})
    assert wait_for_status(app_client, "later", ["missing", "valid", "invalid"]) == [
        "missing",
        "valid",
        "invalid",
    ]


def test_re_verification_judges_timestamps_as_of_arrival(app_client: httpx.Client) -> None:
    body = b"payload=1"
    ts = str(int(time.time()))
    base = f"v0:{ts}:".encode() + body
    sig = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    app_client.post(
        "/h/slack-late",
        content=body,
        headers={"x-slack-request-timestamp": ts, "x-slack-signature": sig},
    )
    # Until the timestamp is older than the 1-second tolerance set below (with room).
    time.sleep(max(0.0, int(ts) + 2.2 - time.time()))
    app_client.put("/api/endpoints/slack-late", json={"secret": SECRET, "tolerance": 1})
    assert wait_for_status(app_client, "slack-late", ["valid"]) == ["valid"]


def test_cli_secret_change_re_verifies_on_a_running_server(in_process: InProcessInspector) -> None:
    with in_process.client() as client:
        client.post("/h/cli-late", content=RAW, headers={"x-webhook-signature": platform_sig(RAW)})
        subprocess.run(
            [
                sys.executable,
                "-m",
                "inspector",
                "endpoint",
                "cli-late",
                "--secret",
                SECRET,
                "--data-dir",
                str(in_process.settings.data_dir),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        assert wait_for_status(client, "cli-late", ["valid"]) == ["valid"]


def test_unusable_stored_settings_never_stop_capture(in_process: InProcessInspector) -> None:
    """Settings written past today's validation (here: 17 secrets, by hand) cost the endpoint
    its verification, never its captures."""
    from inspector.store import Store, endpoints

    store = Store(in_process.settings.store_location).open()
    try:
        bad = {"secret": [f"s{i}" for i in range(17)], "enforce": True}
        store.write_sync(endpoints.put_endpoint_settings, "broken", bad, "now")
    finally:
        store.close()
    with in_process.client() as client:
        deadline = time.monotonic() + 5
        while True:  # the server reloads settings within a second
            response = client.post("/h/broken", content=RAW)
            assert response.status_code == 200, response.text
            if time.monotonic() > deadline - 3.5:
                break
            time.sleep(0.2)
        assert client.get("/api/requests?endpoint=broken").json()["requests"]
