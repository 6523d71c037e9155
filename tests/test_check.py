"""``check``: grading receivers as the platform treats them, against real receivers.

Each receiver is a small Starlette app on a free loopback port with one characteristic
mistake (or none): the report must pass the correct one and fail the others on the right rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from inspector import catalog, check
from inspector.check import CheckReport, check_receiver
from inspector.cli import main
from inspector.embedded import ServerThread
from tests.conftest import bind_free

pytestmark = pytest.mark.live

SECRET = "whsec-test"
SMALL = 256 * 1024  # the oversized body in most tests; one test uses the 5 MiB default

Handler = Callable[[Request], Awaitable[Response]]
Start = Callable[[Handler], str]


def expected(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def raw_ok(request: Request, body: bytes) -> bool:
    given = request.headers.get("x-webhook-signature", "")
    return hmac.compare_digest(given.encode(), expected(body).encode())


def stringify(body: bytes) -> bytes:
    """What ``JSON.stringify(req.body)`` gives after ``express.json()`` parsed the body."""
    return json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()


async def correct(request: Request) -> Response:
    body = await request.body()
    if not raw_ok(request, body):
        return PlainTextResponse("Invalid signature", status_code=401)
    try:
        event = json.loads(body)
    except ValueError:
        return PlainTextResponse("not JSON", status_code=400)
    seen: set[str] = request.app.state.seen
    data = event.get("data") or {}
    key = f"{event.get('event')}-{data.get('messageId') or event.get('timestamp')}"
    seen.add(key)  # a duplicate is acknowledged and skipped
    return PlainTextResponse("OK")


async def reserializing(request: Request) -> Response:
    body = await request.body()
    try:
        event = json.loads(body)
    except ValueError:
        return PlainTextResponse("not JSON", status_code=400)
    given = request.headers.get("x-webhook-signature", "")
    if not hmac.compare_digest(given.encode(), expected(stringify(body)).encode()):
        return PlainTextResponse("Invalid signature", status_code=401)
    assert event["event"]
    return PlainTextResponse("OK")


async def accepts_anything(request: Request) -> Response:
    await request.body()
    return PlainTextResponse("OK")


async def trusting_and_picky(request: Request) -> Response:
    """Verifies nothing, but refuses JSON its hand-rolled reader does not expect."""
    body = await request.body()
    if b"\\/" in body or b"\\u" in body:
        return PlainTextResponse("unexpected escape", status_code=400)
    return PlainTextResponse("OK")


async def verifies_if_signed(request: Request) -> Response:
    """Checks a signature when there is one, lets unsigned requests in."""
    body = await request.body()
    if "x-webhook-signature" in request.headers and not raw_ok(request, body):
        return PlainTextResponse("Invalid signature", status_code=401)
    return PlainTextResponse("OK")


async def crashes_on_a_wrong_signature(request: Request) -> Response:
    body = await request.body()
    if not raw_ok(request, body):
        raise RuntimeError("unhandled bad signature")
    return PlainTextResponse("OK")


async def crashes_on_non_json(request: Request) -> Response:
    body = await request.body()
    if not raw_ok(request, body):
        return PlainTextResponse("Invalid signature", status_code=401)
    event = json.loads(body)  # no error handling: a non-JSON body is a 500
    return PlainTextResponse(f"got {event['event']}")


async def doc_sample(request: Request) -> Response:
    """The platform doc's verifier: timingSafeEqual throws when the lengths differ."""
    body = await request.body()
    given = request.headers.get("x-webhook-signature")
    if given is None or len(given) != len(expected(body)):
        raise RuntimeError("Input buffers must have the same byte length")
    if not hmac.compare_digest(given.encode(), expected(body).encode()):
        return PlainTextResponse("Invalid signature", status_code=401)
    return PlainTextResponse("OK")


async def conflict_on_duplicate(request: Request) -> Response:
    body = await request.body()
    if not raw_ok(request, body):
        return PlainTextResponse("Invalid signature", status_code=401)
    seen: set[bytes] = request.app.state.seen
    if body in seen:
        return PlainTextResponse("already processed", status_code=409)
    seen.add(body)
    return PlainTextResponse("OK")


async def slow(request: Request) -> Response:
    await asyncio.sleep(0.05)
    return await correct(request)


def app_for(handler: Handler) -> Starlette:
    app = Starlette(routes=[Route("/webhook", handler, methods=["POST"])])
    app.state.seen = set()
    return app


@pytest.fixture
def receiver(make_server: Callable[..., ServerThread]) -> Start:
    def start(handler: Handler) -> str:
        return make_server(app_for(handler)).url + "/webhook"

    return start


def run(url: str, **options: object) -> CheckReport:
    options.setdefault("oversize", SMALL)
    return asyncio.run(check_receiver(url, SECRET, **options))  # type: ignore[arg-type]


def verdicts(report: CheckReport) -> dict[str, str]:
    return {row.check.split(" (")[0]: row.verdict for row in report.rows}


def failing(report: CheckReport) -> set[str]:
    return {name for name, verdict in verdicts(report).items() if verdict == "fail"}


def row(report: CheckReport, name: str) -> check.CheckRow:
    return next(r for r in report.rows if r.check.startswith(name))


ALL_ROWS = [
    "HTTPS",
    *catalog.EVENT_TYPES,
    "wrong signature",
    "truncated signature",
    "missing signature",
    "raw body",
    "duplicate delivery",
    "non-JSON body",
    "oversized body",
    "still answering",
]


def test_a_correct_receiver_passes_every_row(
    receiver: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    url = receiver(correct)
    code = main(["check", url, "--secret", SECRET])  # the default 5 MiB oversized body
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out
    assert "oversized body (5 MiB)" in out
    assert "12 passed, 1 warning(s), 0 failed" in out  # http://: the platform wants https://
    report = run(url)
    assert list(verdicts(report)) == ALL_ROWS
    assert report.passed
    assert verdicts(report) == {**dict.fromkeys(ALL_ROWS, "pass"), "HTTPS": "warn"}
    assert row(report, "wrong signature").status == 401
    assert check.VERIFIES_RAW in row(report, "raw body").detail
    assert row(report, "duplicate delivery").statuses == [200, 200]
    exchanges = [r for r in report.rows if r.check != "HTTPS"]  # a row about the URL
    assert all(r.latency_ms is not None and r.latency_ms < 5000 for r in exchanges)


def test_an_http_url_is_a_warning_that_fails_the_run_only_when_strict(
    receiver: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    url = receiver(correct)
    https = row(run(url), "HTTPS")
    assert https.verdict == "warn" and https.group == "transport"
    assert "the platform accepts only https:// webhook URLs" in https.detail
    code = main(["check", url, "--secret", SECRET, "--oversize", "1000", "--strict"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "12 passed, 1 warning(s), 0 failed: the warnings above fail the run (--strict)" in out
    assert not run(url, strict=True).passed


def test_verifying_a_re_serialized_body_fails_the_raw_body_row_by_name(receiver: Start) -> None:
    report = run(receiver(reserializing))
    assert failing(report) == {"raw body"}
    trap = row(report, "raw body")
    assert trap.status == 401
    assert check.RESERIALIZED in trap.detail
    assert "JSON.stringify(req.body)" in trap.detail and "raw request bytes" in trap.detail
    assert not report.passed


def test_the_trap_body_defeats_re_serialization_but_is_a_valid_event() -> None:
    body = check.trap_body()
    event = json.loads(body)
    assert event["event"] == "message.received"
    assert set(event["data"]) == {"sender", "channelId", "messageId", "type", "content"}
    assert stringify(body) != body
    assert json.dumps(json.loads(body)).encode() != body  # Python's default spacing too
    assert b"\\/" in body and b"\\u00e9" in body and "王小明".encode() in body


def test_a_receiver_that_accepts_bad_signatures_fails_those_rows(receiver: Start) -> None:
    report = run(receiver(accepts_anything))
    assert failing(report) == {"wrong signature", "truncated signature", "missing signature"}
    assert "accepted a forged request" in row(report, "missing signature").detail
    assert row(report, "wrong signature").status == 200
    # It accepts the trap as it accepts anything: that shows nothing about verification.
    trap = row(report, "raw body")
    assert trap.verdict == "warn" and check.SHOWS_NOTHING in trap.detail
    assert "verifies the raw bytes" not in trap.detail


def test_each_raw_body_wording_follows_from_what_was_observed(receiver: Start) -> None:
    # Rejecting the trap while letting a wrong signature in is not a signature bug.
    report = run(receiver(trusting_and_picky))
    trap = row(report, "raw body")
    assert trap.verdict == "fail" and trap.status == 400
    assert check.RESERIALIZED not in trap.detail
    assert "not its signature check" in trap.detail and "how it reads JSON" in trap.detail
    # Rejecting the wrong signature is what shows it verifies, even if unsigned requests pass.
    report = run(receiver(verifies_if_signed))
    assert failing(report) == {"missing signature"}
    assert check.VERIFIES_RAW in row(report, "raw body").detail
    # A crash on the wrong signature shows neither.
    report = run(receiver(crashes_on_a_wrong_signature))
    trap = row(report, "raw body")
    assert trap.verdict == "warn" and "is not shown" in trap.detail


def test_a_receiver_that_crashes_on_non_json_fails_that_row(receiver: Start) -> None:
    report = run(receiver(crashes_on_non_json))
    assert failing(report) == {"non-JSON body"}
    crash = row(report, "non-JSON body")
    assert crash.status == 500 and "must not crash" in crash.detail


def test_the_doc_sample_verifier_crashes_on_odd_signatures(receiver: Start) -> None:
    report = run(receiver(doc_sample))
    assert failing(report) == {"truncated signature", "missing signature"}
    assert "crashed instead of rejecting" in row(report, "truncated signature").detail
    assert "timingSafeEqual" in row(report, "truncated signature").detail


def test_a_4xx_on_a_duplicate_is_a_warning_and_slowness_too(receiver: Start) -> None:
    report = run(receiver(conflict_on_duplicate))
    dup = row(report, "duplicate delivery")
    assert dup.verdict == "warn" and dup.statuses == [200, 409]
    assert "retries any non-2xx" in dup.detail
    assert report.passed  # warnings do not fail
    report = run(receiver(slow), slow=0.04)
    assert verdicts(report)["message.received"] == "warn"
    assert "answer first" in row(report, "message.received").detail


def test_an_unreachable_receiver_fails_everything_and_json_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sock = bind_free()
    where = f"127.0.0.1:{sock.getsockname()[1]}"
    url = f"http://{where}/webhook"
    try:
        code = main(["check", url, "--secret", SECRET, "--json", "--oversize", "1000"])
    finally:
        sock.close()
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["passed"] is False and out["counts"]["fail"] == len(ALL_ROWS) - 1
    assert out["rows"][0]["check"] == "HTTPS" and out["rows"][0]["verdict"] == "warn"
    assert out["rows"][1]["detail"].startswith(f"connection refused: nothing listens on {where}")


def test_check_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    assert main(["check", "http://127.0.0.1:9/x"]) == 2
    assert "secret is required" in capsys.readouterr().err
    assert main(["check", "ftp://127.0.0.1/x", "--secret", "s"]) == 2
    assert "http://" in capsys.readouterr().err
