"""``webhook-inspector tail``: its lines, and following a real server across a restart."""

from __future__ import annotations

import queue
import signal
import threading
import time
from typing import Any

import pytest

from inspector.cli.tail import describe, parse_sse, request_line
from inspector.cli.terminal import answer, safe
from tests.conftest import LiveInspector, Spawn


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 12,
        "endpoint": "orders",
        "method": "POST",
        "path": "/h/orders",
        "query": "",
        "received_at": "2026-11-28T07:30:00.123456Z",
        "size": 102400,
        "truncated": False,
        "attempt": 1,
        "event_type": "file.uploaded",
        "signature": {"status": "valid", "scheme": "platform", "reason": "", "diagnosis": None},
        "response": {
            "status": 200,
            "in_progress": False,
            "dropped": False,
            "client_gave_up_after_ms": None,
        },
    }
    base.update(changes)
    return base


def test_a_request_line_has_every_column() -> None:
    line = request_line(item(query="a=1", attempt=2))
    for part in ("#12", "orders", "POST", "/h/orders?a=1", "100 KiB", "200", "valid"):
        assert part in line
    assert "attempt 2" in line and line.endswith("file.uploaded")
    assert line.index("orders") < line.index("POST") < line.index("/h/") < line.index("KiB")


@pytest.mark.parametrize(
    ("response", "shown"),
    [
        ({"in_progress": True, "status": None}, "stalling…"),
        ({"dropped": True, "status": None}, "dropped"),
        ({"client_gave_up_after_ms": 30000.0, "status": None}, "sender gave up after 30.0 s"),
        ({"status": 503}, "503"),
        ({"status": None}, "-"),
    ],
)
def test_answers_read_like_the_page(response: dict[str, Any], shown: str) -> None:
    assert answer(response) == shown


def test_captured_text_cannot_drive_the_terminal() -> None:
    assert safe("/h/x\x1b[2J\x07\u202eevil") == "/h/x\\x1b[2J\\x07\\u202eevil"
    line = request_line(item(path="/h/orders/\x1b]0;owned\x07", method="P\x1bOST"))
    assert "\x1b" not in line and "\x07" not in line


def test_parse_sse_and_describe_every_kind() -> None:
    lines = [
        ": ping",
        "id: 3",
        "event: ready",
        'data: {"after": 3, "head": 3}',
        "retry: 1000",
        "",
        "event: deleted",
        'data: {"id": 4}',
        "",
        "event: cleared",
        'data: {"endpoint": null}',
        "",
    ]
    events = list(parse_sse(lines))
    assert [(e.event, e.id) for e in events] == [
        ("ready", "3"),
        ("deleted", None),
        ("cleared", None),
    ]
    assert describe(events[0]) is None
    assert "#4" in (describe(events[1]) or "") and "deleted" in (describe(events[1]) or "")
    assert "every endpoint" in (describe(events[2]) or "")


# How long a signalled ``tail`` may take to exit: an interpreter shutting down on a loaded
# machine has been seen to need more than 10 s. A ``tail`` that ignored the signal would
# still fail here, only later.
EXIT_WAIT = 60


class Tail:
    """``webhook-inspector tail`` in a subprocess, its output lines on queues."""

    def __init__(self, spawn: Spawn, *args: str, ignore_sigint: bool = False) -> None:
        self.proc = spawn("tail", *args, ignore_sigint=ignore_sigint)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        for stream, target in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, target), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, target: queue.Queue[str]) -> None:
        for line in stream:
            target.put(line.rstrip("\n"))

    def wait_err(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.err.get(timeout=max(0.01, deadline - time.monotonic()))
            if text in line:
                return line

    def lines(self, count: int, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        return [self.out.get(timeout=max(0.01, deadline - time.monotonic())) for _ in range(count)]


@pytest.mark.live
def test_tail_follows_across_a_restart_and_exits_0_on_ctrl_c(
    live: LiveInspector, spawn: Spawn
) -> None:
    tail = Tail(spawn, "--url", live.url)
    try:
        tail.wait_err("following every endpoint")
        with live.client() as client:
            client.post("/h/one/a?x=1", json={"event": "member.joined"})
            client.post("/h/two", content=b"\x00\x01")
        first = tail.lines(2)
        assert "#1" in first[0] and "one" in first[0] and "/h/one/a?x=1" in first[0]
        assert "member.joined" in first[0] and "#2" in first[1] and "2 B" in first[1]

        live.close_streams()
        tail.wait_err("closed the stream")
        live.restart()
        with live.client() as client:  # likely before tail is back: must come from the store
            for n in range(3):
                client.post("/h/after", content=f"{n}".encode())
        tail.wait_err("reconnected")
        after = tail.lines(3)
        assert [line.split()[1] for line in after] == ["#3", "#4", "#5"]
        with live.client() as client:
            client.post("/h/live", content=b"x")
        assert tail.lines(1)[0].split()[1] == "#6"
        assert tail.out.empty()
    finally:
        tail.proc.send_signal(signal.SIGINT)
        _, _ = tail.proc.communicate(timeout=EXIT_WAIT)
    assert tail.proc.returncode == 0
    while not tail.err.empty():
        assert "Traceback" not in tail.err.get()


@pytest.mark.live
def test_tail_waits_for_a_server_that_is_not_up_yet(live: LiveInspector, spawn: Spawn) -> None:
    port = live.port
    live.close_streams()
    live.stop()
    tail = Tail(spawn, "--url", f"http://127.0.0.1:{port}", "--endpoint", "only")
    try:
        tail.wait_err("cannot reach")
        live.start_again()
        tail.wait_err("reconnected", timeout=60)
        with live.client() as client:
            client.post("/h/other", content=b"no")
            client.post("/h/only", content=b"yes")
        (line,) = tail.lines(1)
        assert "only" in line and "other" not in line
    finally:
        tail.proc.send_signal(signal.SIGINT)
        tail.proc.communicate(timeout=EXIT_WAIT)
    assert tail.proc.returncode == 0


@pytest.mark.live
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_tail_stops_on_ctrl_c_even_as_a_background_job(
    live: LiveInspector, spawn: Spawn, signum: int
) -> None:
    """`tail &` from a script starts with SIGINT ignored; `kill -INT` (or -TERM) still ends it,
    with status 0 and no traceback."""
    tail = Tail(spawn, "--url", live.url, ignore_sigint=True)
    tail.wait_err("following every endpoint")
    tail.proc.send_signal(signum)
    assert tail.proc.wait(timeout=EXIT_WAIT) == 0
    while not tail.err.empty():
        assert "Traceback" not in tail.err.get()
