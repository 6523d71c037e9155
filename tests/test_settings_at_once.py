"""Endpoint settings take effect at once: after a change returns — from the CLI, which writes
the store directly, or from the API — the very next capture obeys it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.store import Store, endpoints
from inspector.store.core import StaleSettings

pytestmark = [pytest.mark.live, pytest.mark.backends]


def signed(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-webhook-signature": f"sha256={digest}", "content-type": "application/json"}


def test_a_cli_change_is_obeyed_by_the_next_capture(live, capsys) -> None:
    data_dir = str(live.settings.data_dir)
    with live.client() as client:
        assert client.post("/h/x").status_code == 200  # the server's cache is loaded
        for i in range(40):
            status = 400 + i % 30
            changed = ["endpoint", "x", "--response", f"status={status}", "--data-dir", data_dir]
            assert main(changed) == 0
            # No pause: the capture goes out the moment the CLI has returned.
            assert client.post("/h/x", content=b"{}").status_code == status, f"change #{i}"
    capsys.readouterr()


def test_a_cli_secret_change_is_obeyed_by_the_next_verdict(live, capsys) -> None:
    data_dir = str(live.settings.data_dir)
    body = b'{"event": "message.received"}'
    with live.client() as client:
        for i in range(10):
            secret = f"secret-{i}"
            assert main(["endpoint", "sig", "--secret", secret, "--data-dir", data_dir]) == 0
            client.post("/h/sig", content=body, headers=signed(secret, body))
            latest = client.get("/api/requests", params={"endpoint": "sig", "limit": 1}).json()
            assert latest["requests"][0]["signature"]["status"] == "valid", f"change #{i}"
            # And the API shows the CLI's change at once, too.
            shown = client.get("/api/endpoints/sig").json()["settings"]
            assert shown["secret"] == [secret]
    capsys.readouterr()


def test_an_api_change_is_obeyed_by_the_next_capture(live) -> None:
    with live.client() as client:
        for i in range(40):
            status = 500 + i % 20
            changed = client.put("/api/endpoints/y", json={"response": {"status": status}})
            assert changed.status_code == 200
            assert client.post("/h/y").status_code == status, f"change #{i}"


def test_the_writer_refuses_a_capture_prepared_with_older_settings(
    store_location: Path | str,
) -> None:
    server = Store(store_location).open()
    server.start()
    # Another connection, as the CLI process (or, on PostgreSQL, another replica) has.
    cli = Store(store_location).open()

    def capture(conn) -> str:
        return "stored"

    async def scenario() -> None:
        version = await server.read(endpoints.settings_version)
        assert await server.write_as_of(version, capture) == "stored"
        newer = cli.write_sync(endpoints.put_endpoint_settings, "e", {}, "now")
        with pytest.raises(StaleSettings):
            await server.write_as_of(version, capture)
        # Prepared again with what the store holds now: stored.
        assert await server.write_as_of(newer, capture) == "stored"
        # Jobs that do not depend on settings are never refused.
        assert await server.write(capture) == "stored"

    try:
        asyncio.run(scenario())
    finally:
        cli.close()
        server.close()
