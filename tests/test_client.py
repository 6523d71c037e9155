"""The typed client over a real server: every kind of call, errors as InspectorErrors, the
token, the async flavour and the stream."""

from __future__ import annotations

import asyncio

import pytest

from inspector import errors
from inspector.client import AsyncClient, Client

pytestmark = pytest.mark.live


def test_calls_and_answers(live) -> None:
    with Client(live.url) as api:
        api.configure("c", secret="s3cret", response={"status": 202})
        assert api.endpoint("c")["settings"]["response"] == {"status": 202}
        api.http.post("/h/c/x?y=1", content=b"\x00bytes")
        got = api.wait("c", count=1, timeout=10)
        assert not got["timed_out"]
        item = got["requests"][0]
        assert api.requests("c")["requests"][0]["id"] == item["id"]
        assert api.requests("c*", method="POST", status=202)["requests"][0]["id"] == item["id"]
        detail = api.request(item["id"])
        assert detail["path"] == "/h/c/x" and detail["query"] == "y=1"
        assert api.body(item["id"]) == b"\x00bytes"
        assert "curl" in api.curl(item["id"])
        assert b'"endpoint": "c"' in api.export("c") or b'"endpoint":"c"' in api.export("c")
        assert [e["name"] for e in api.endpoints()["endpoints"]] == ["c"]
        assert api.events("c")["endpoint"] == "c"
        assert {e["event"] for e in api.catalog()["events"]} >= {"message.received"}
        assert api.openapi()["openapi"] == "3.1.0"
        created = api.deliver(
            event="member.joined", url=live.url + "/h/rx", secret="s", time_scale=0.001
        )
        assert created["store"] and api.delivery(created["id"])["event"] == "member.joined"
        assert api.deliveries()["deliveries"][0]["id"] == created["id"]
        assert api.delete(item["id"]) == {"deleted": 1}
        assert api.clear("c") == {"deleted": 0}


def test_error_answers_are_inspector_errors(live) -> None:
    with Client(live.url) as api:
        with pytest.raises(errors.NotFound) as missing:
            api.request(999)
        assert missing.value.error == "not_found" and "999" in missing.value.detail
        with pytest.raises(errors.BadRequest) as bad:
            api.configure("c", colour="red")  # type: ignore[call-arg]
        assert bad.value.error == "unknown_setting"
        with pytest.raises(errors.BadRequest, match="timeout"):
            api.wait("c", timeout=301)
        live.server.config.app.state.runtime.waiters.limit = 0
        with pytest.raises(errors.Busy) as busy:
            api.wait("c", timeout=0)
        assert busy.value.status == 503 and busy.value.headers == {"retry-after": "1"}


def test_the_token_is_sent_as_bearer(live) -> None:
    # Pointed at a capture URL, the client's requests are captured: their headers show it.
    with Client(live.url + "/h/tok", token="t0ken") as api:
        assert api.http.get("/api/requests").text == "OK"
    with Client(live.url) as api:
        (captured,) = api.wait("tok")["requests"]
        headers = dict(api.request(captured["id"])["headers"])
    assert headers["authorization"] == "Bearer t0ken"


def test_the_async_client_and_the_stream(live) -> None:
    async def scenario() -> None:
        async with AsyncClient(live.url) as api:
            events = api.stream(endpoint="s")
            ready = await anext(events)
            assert ready.event == "ready"
            await api.http.post("/h/s", content=b"live")
            captured = await anext(events)
            assert captured.event == "request" and captured.json()["endpoint"] == "s"
            await events.aclose()
            waited = await api.wait("s", timeout=5)
            assert waited["requests"][0]["id"] == int(captured.id or 0)
            assert await api.body(waited["requests"][0]["id"]) == b"live"

    asyncio.run(scenario())
