"""``webhook-inspector wait`` over a real server: found, later, timed out, filtered."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from inspector.cli import main

pytestmark = [pytest.mark.live, pytest.mark.backends]


def test_prints_what_arrived_and_exits_0(live, client, capsys) -> None:
    client.post("/h/ci", json={"event": "member.joined", "timestamp": "t", "data": {}})
    client.put("/h/ci?status=503")
    assert main(["wait", "--url", live.url, "--endpoint", "ci", "--count", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "POST" in lines[0] and "member.joined" in lines[0]
    assert "PUT" in lines[1] and "503" in lines[1]


def test_filters_and_json(live, client, capsys) -> None:
    client.post("/h/f", content=b"a")
    client.put("/h/f?status=503", content=b"b")
    code = main(["wait", "--url", live.url, "--endpoint", "f", "--status", "503", "--json"])
    assert code == 0
    got = json.loads(capsys.readouterr().out)
    assert got["timed_out"] is False
    assert [r["method"] for r in got["requests"]] == ["PUT"]
    assert main(["wait", "--url", live.url, "--endpoint", "f*", "--method", "POST"]) == 0
    assert "POST" in capsys.readouterr().out


def test_times_out_with_exit_1(live, client, capsys) -> None:
    client.post("/h/t")
    args = ["wait", "--url", live.url, "--endpoint", "t", "--count", "2", "--timeout", "0.3"]
    assert main(args) == 1
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 1  # the one that did arrive
    assert "timed out after 0.3 s with 1 of 2" in out.err


def test_waits_for_a_capture_sent_later(live, client) -> None:
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inspector",
            "wait",
            "--url",
            live.url,
            "--endpoint",
            "later",
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rt = live.server.config.app.state.runtime
    deadline = time.monotonic() + 30
    while rt.waiters.active == 0:  # the CLI is waiting on the server
        assert time.monotonic() < deadline and waiting.poll() is None
        time.sleep(0.02)
    client.post("/h/later", content=b"now")
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "later" in out and "POST" in out


def test_usage_errors_exit_2(live, capsys) -> None:
    assert main(["wait", "--url", "http://127.0.0.1:9", "--timeout", "1"]) == 2
    assert "No inspector is answering" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["wait", "--timeout", "301"])
    assert bad.value.code == 2
    assert main(["wait", "--url", live.url, "--endpoint", "bad name"]) == 2
    assert "Invalid endpoint name" in capsys.readouterr().err
