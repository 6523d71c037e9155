"""The CLI: serve prints its URLs and stops on Ctrl-C; list/show with or without a server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from inspector.cli import main
from inspector.cli.browse import render_body


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        timeout=60,
    )


def start_serve(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inspector",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
    # Wait until it answers.
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/api/endpoints", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, base


@pytest.mark.live
def test_serve_prints_urls_captures_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc, base = start_serve(tmp_path)
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
def test_serve_prints_curl_example_and_warns_on_public_bind(tmp_path: Path) -> None:
    proc, _ = start_serve(tmp_path, "--host", "0.0.0.0")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert "WARNING" in stderr and "0.0.0.0" in stderr


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
    live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with live.client() as client:
        client.post("/h/direct/x?y=1", content=b"\x00\x01binary", headers={"x-a": "1"})
        client.post("/h/direct", content=b'{"event": "member.joined"}')
    data_dir = str(live.settings.data_dir)
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


def test_cli_writes_never_evict_beyond_the_servers_retention(make_live) -> None:
    """A CLI command writing beside a server (here: endpoint settings) must not apply a
    retention of its own: only the server's --retention evicts."""
    from inspector.store import Store, endpoints, requests
    from tests.test_store import ok, record

    live = make_live(retention=50)
    store = Store(live.settings.db_path).open()
    try:
        for _ in range(30):
            store.write_sync(requests.insert_request, record(), ok)
    finally:
        store.close()
    small = Store(live.settings.db_path).open()  # what every CLI command opens
    try:
        small.write_sync(endpoints.put_endpoint_settings, "e", {}, "now")
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
