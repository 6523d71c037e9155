"""The CLI: serve prints its URLs and stops on Ctrl-C; list/show with or without a server;
every command explains itself, ends quietly when its reader leaves, stops on Ctrl-C even as a
background job, and shows captured text inert."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.cli import build_parser, main
from inspector.cli.show import render_body
from inspector.cli.terminal import answer
from inspector.store import Store, deliveries, intake
from tests.conftest import (
    LiveInspector,
    Spawn,
    captured_request,
    new_delivery,
    ok,
    store_endpoint,
    store_request,
    wait_until_answering,
)


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        timeout=60,
    )


def start_serve(
    spawn: Spawn, data_dir: Path, *extra: str, **popen: Any
) -> tuple[subprocess.Popen[str], str]:
    proc = spawn("serve", "--port", "0", "--data-dir", str(data_dir), *extra, **popen)
    assert proc.stdout is not None
    base = None
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "page:" in line:
            base = line.split("page:", 1)[1].strip().rstrip("/")
        if "Ctrl-C" in line:
            break
    assert base, "".join(lines)
    wait_until_answering(base + "/api/endpoints")
    return proc, base


@pytest.mark.live
def test_serve_prints_urls_captures_and_stops_cleanly_on_ctrl_c(
    spawn: Spawn, tmp_path: Path
) -> None:
    proc, base = start_serve(spawn, tmp_path)
    try:
        assert base.startswith("http://127.0.0.1:")
        assert httpx.post(base + "/h/cli", content=b"hello").status_code == 200
        # list and show work while the server runs.
        out = run_cli("list", data_dir=tmp_path)
        assert out.returncode == 0 and b"cli" in out.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    # ...and after it stopped.
    out = run_cli("show", "1", "--raw", data_dir=tmp_path)
    assert out.returncode == 0 and out.stdout == b"hello"


@pytest.mark.live
def test_serve_prints_curl_example_and_warns_on_public_bind(spawn: Spawn, tmp_path: Path) -> None:
    proc, _ = start_serve(spawn, tmp_path, "--host", "0.0.0.0")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    # A network address: the control routes require a token (generated, in the page URL).
    assert "0.0.0.0" in stderr and "require the token" in stderr


def test_serve_refuses_a_store_it_cannot_use_in_one_sentence(tmp_path: Path) -> None:
    import socket

    env = {k: v for k, v in os.environ.items() if k != "WEBHOOK_INSPECTOR_DATABASE"}

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "inspector", "serve", "--port", "0", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: the connection is refused
        url = f"postgresql://nobody@127.0.0.1:{sock.getsockname()[1]}/inspector"
        out = serve("--database", url, "--data-dir", str(tmp_path / "a"))
    assert out.returncode == 2, out.stderr
    assert f"Cannot open the store {url}" in out.stderr and "Traceback" not in out.stderr
    newer = tmp_path / "b"
    Store(newer / "inspector.db").open().close()
    with sqlite3.connect(newer / "inspector.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    out = serve("--data-dir", str(newer))
    assert out.returncode == 2, out.stderr
    assert "newer than this webhook-inspector knows" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_reports_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "inspector",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert out.returncode == 2
    assert "Cannot listen" in out.stderr and "Traceback" not in out.stderr


def test_list_and_show_without_a_store_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--data-dir", str(tmp_path / "none")]) == 2
    assert "No store" in capsys.readouterr().err


def test_list_and_show_read_a_store_directly(
    in_process, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with in_process.client() as client:
        client.post("/h/direct/x?y=1", content=b"\x00\x01binary", headers={"x-a": "1"})
        client.post("/h/direct", content=b'{"event": "member.joined"}')
    data_dir = str(in_process.settings.data_dir)
    assert main(["list", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "/h/direct/x?y=1" in out and "ENDPOINT" in out
    assert main(["show", "1", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "x-a: 1" in out and "00 01 62 69" in out
    assert main(["show", "99", "--data-dir", data_dir]) == 2


def test_render_body_text_and_hex() -> None:
    assert render_body("héllo".encode()) == "héllo"
    assert render_body(b"\xff\x00").startswith("00000000  ff 00")


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "inspector", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "webhook-inspector" in out.stdout
    env = dict(os.environ)
    assert env  # the console script is exercised by the wheel test


def test_cli_writes_never_evict_beyond_the_servers_retention(make_in_process) -> None:
    """A CLI command writing beside a server (here: endpoint settings) must not apply a
    retention of its own: only the server's --retention evicts."""
    in_process = make_in_process(retention=50)
    store = Store(in_process.settings.store_location).open()
    try:
        for _ in range(30):
            store_request(store)
    finally:
        store.close()
    small = Store(in_process.settings.store_location).open()  # what every CLI command opens
    try:
        store_endpoint(small, "e", {})
        count = small.read_sync(lambda c: c.execute("SELECT count(*) FROM requests").fetchone()[0])
    finally:
        small.close()
    assert count == 30


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--retention", "0"), ("--max-body", "-1"), ("--port", "99999"), ("--max-delay", "0")],
)
def test_serve_refuses_bad_values_clearly(tmp_path: Path, flag: str, value: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "inspector", "serve", flag, value, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert flag in out.stderr and "Traceback" not in out.stderr


# -- a CLI that explains itself ----------------------------------------------------------------


def test_every_command_and_option_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {choice.dest: choice.help for choice in action._choices_actions}
    assert len(action.choices) == 15
    for name, sub in action.choices.items():
        summary = summaries[name]
        assert summary and "\n" not in summary and len(summary) <= 90, name
        assert sub.description, f"`{name} --help` has no description"
        for arg in sub._actions:
            if isinstance(arg, argparse._HelpAction):
                continue
            what = f"{name} {'/'.join(arg.option_strings) or arg.dest}"
            assert arg.help and arg.help != argparse.SUPPRESS, f"{what} has no help"
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    for name in action.choices:
        assert name in listing
    assert "Grade a receiver" in listing and "Replay captured requests" in listing


# -- pipes -------------------------------------------------------------------------------------

PIPE_BUFFER = 64 * 1024  # Linux's default: a writer blocks once this much is unread


def fill_store(data_dir: Path, count: int = 1200) -> None:
    """Enough captures and deliveries that any listing is several pipe buffers long."""
    path = "/h/e/" + "p" * 40
    captured = [captured_request(body=b"x" * 600, path=f"{path}{n}") for n in range(count)]
    url = f"http://127.0.0.1:3000/webhook/{'x' * 24}"
    new = [new_delivery(n, url=f"{url}/{n}") for n in range(count)]

    def insert_all(conn: sqlite3.Connection) -> None:  # one transaction: fast
        for rec in captured:
            intake.insert_request(conn, rec, ok)
        for delivery in new:
            deliveries.insert_delivery(conn, delivery)

    store = Store(data_dir / "inspector.db").open()
    try:
        store.write_sync(insert_all)
    finally:
        store.close()


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("full")
    fill_store(data_dir)
    return data_dir


@pytest.mark.parametrize(
    "command",
    [["export"], ["deliveries", "--limit", "1000"], ["list", "--limit", "1200"]],
    ids=["export", "deliveries", "list"],
)
def test_a_reader_that_stops_early_ends_the_command_quietly(
    spawn: Spawn,
    full_store: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    command: list[str],
) -> None:
    """`webhook-inspector export | head`: no BrokenPipeError traceback, status 0."""
    # The whole output is far more than the pipe holds, so the writer is still writing when
    # the reader leaves.
    assert main([*command, "--data-dir", str(full_store)]) == 0
    whole = capsysbinary.readouterr().out
    assert len(whole) > 2 * PIPE_BUFFER
    proc = spawn(*command, "--data-dir", str(full_store))
    assert proc.stdout is not None and proc.stderr is not None
    first = os.read(proc.stdout.fileno(), 100)  # like `head -c 100`, then gone
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert first and "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err


# -- show --------------------------------------------------------------------------------------


def show_output(data_dir: Path, request_id: int, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["show", str(request_id), "--data-dir", str(data_dir)]) == 0
    return capsys.readouterr().out


def answer_in_list(data_dir: Path, request_id: int, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["list", "--data-dir", str(data_dir)]) == 0
    rows = capsys.readouterr().out.splitlines()
    return next(row for row in rows if row.split()[0] == str(request_id))


def wait_item(client: httpx.Client, request_id: int, ready: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        found: dict[str, Any] = client.get(f"/api/requests/{request_id}").json()
        if ready(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.live
def test_show_describes_answers_like_list_tail_and_the_page(
    live: LiveInspector, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = live.settings.data_dir
    assert main(["endpoint", "signed", "--secret", "s3cret", "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    with live.client() as client:
        client.post("/h/signed", content=b"{}")  # no signature header: "missing", no scheme
        with pytest.raises(httpx.TransportError):
            client.post("/h/gone?drop=1", content=b"x")
        outcome: list[BaseException] = []

        def stall() -> None:  # the sender times out after 2 s: it "gives up"
            try:
                client.post("/h/slow?delay=60", content=b"x", timeout=2)
            except httpx.TimeoutException as exc:
                outcome.append(exc)

        stalled = threading.Thread(target=stall)
        stalled.start()
        try:
            found = wait_item(client, 3, lambda item: item.get("id") == 3)
            assert found["response"]["in_progress"]
            stalling = show_output(data_dir, 3, capsys)
            listed = answer_in_list(data_dir, 3, capsys)
        finally:
            stalled.join()
        assert outcome, "the stalled request was answered"
        gave_up = wait_item(
            client, 3, lambda item: item["response"]["client_gave_up_after_ms"] is not None
        )
    assert "answer    stalling…  (Stalling for 60.0 s before answering)" in stalling
    assert "stalling…" in listed
    words = answer(gave_up["response"])
    assert words.startswith("sender gave up after ")
    shown = show_output(data_dir, 3, capsys)
    assert (
        f"answer    {words}  (The sender hung up before the answer was sent: it was not delivered)"
        in shown
    )
    assert words in answer_in_list(data_dir, 3, capsys)
    dropped = show_output(data_dir, 2, capsys)
    assert "answer    dropped  (Closed the connection without an answer)" in dropped
    assert " dropped " in answer_in_list(data_dir, 2, capsys)
    missing = show_output(data_dir, 1, capsys)
    assert "signature missing: No signature header of a known scheme" in missing
    assert re.search(r"answer    200  in \d+\.\d ms", missing)
    for text in (stalling, shown, dropped, missing):
        assert "None" not in text


def test_captured_text_reaches_the_terminal_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "inspector.db").open()
    try:
        store_request(
            store,
            body="title \u202eevil\x9b\ttab\nline".encode(),  # text, but with C1/bidi
            path="/h/e/\x1b[2J",
            headers=[("x-evil", "\x1b[31mred\x9b"), ("x-ok", "plain")],
        )
    finally:
        store.close()
    out = show_output(tmp_path, 1, capsys)
    assert "x-evil: \\x1b[31mred\\x9b" in out and "x-ok: plain" in out
    assert "/h/e/\\x1b[2J" in out and "title \\u202eevil\\x9b\ttab\nline" in out
    assert main(["list", "--data-dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    for text in (out, listed):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text)


# -- Ctrl-C, also for background jobs ----------------------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_send_wait_stops_on_ctrl_c_even_as_a_background_job(
    live: LiveInspector, spawn: Spawn, tmp_path: Path, signum: int
) -> None:
    """A shell starts `send --wait &` with SIGINT ignored; `kill -INT` must still stop it,
    leaving the delivery pending for a server."""
    proc = spawn(
        "send", "member.left", "--to", f"{live.url}/h/down?status=500", "--secret", "s",
        "--wait", "--schedule", "60", "--data-dir", str(tmp_path),
        ignore_sigint=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "attempt 1/2" in line:
            break
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, out + err
    assert "stays pending" in err and "Traceback" not in err
    store = Store(tmp_path / "inspector.db").open()
    try:
        assert store.read_sync(deliveries.get_item, 1)["state"] == "pending"
    finally:
        store.close()
