"""Faults on a team instance: PostgreSQL stopped under load, a replica killed under load.

Nothing acknowledged is ever lost: every capture answered 2xx is in the database, whatever
happened around it. A capture that cannot be stored gets 503, and service comes back by
itself — without restarting the replicas.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import REQUIRE_POSTGRES, fresh_schema
from tests.test_replicas import wait_for
from tests.test_stream import SSEClient

pytestmark = [pytest.mark.live, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster of our own in a temporary directory, to stop and start at will."""

    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            reason = "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)"
            if os.environ.get(REQUIRE_POSTGRES):
                pytest.fail(reason)
            pytest.skip(reason)
        self.bin = Path(found[-1]).parent
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as "postgres"
            shutil.chown(root, "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        else:
            self.prefix = []
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    # Not under tmp_path: the "postgres" user must reach it (pytest's root is private).
    root = Path(tempfile.mkdtemp(prefix="inspector-pg-"))
    try:
        server = PostgresServer(root)
        server.start()
        yield server
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Load:
    """Captures with unique bodies, round robin over the replicas, until stopped."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.results: list[tuple[str, str, int | None, float]] = []  # url, token, status, time
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(4)]

    def _run(self, offset: int) -> None:
        n = offset
        with httpx.Client(timeout=10) as client:
            while not self.stopping.is_set():
                url = self.urls[n % len(self.urls)]
                n += 1
                token = secrets.token_hex(8)
                try:
                    status: int | None = client.post(url + "/h/load", content=token).status_code
                except httpx.HTTPError:
                    status = None  # no answer: not acknowledged
                self.results.append((url, token, status, time.monotonic()))
                time.sleep(0.005)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def acknowledged(self) -> set[str]:
        return {token for _, token, status, _ in self.results if status == 200}


def stored_bodies(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT body FROM bodies").fetchall()
    return {bytes(r[0]).decode() for r in rows}


def test_postgres_stopped_under_load_gives_503s_and_recovers(
    postgres: PostgresServer, make_live: Any
) -> None:
    a, b = make_live(database=postgres.url), make_live(database=postgres.url)
    try:
        with Load([a.url, b.url]) as load:
            wait_for(lambda: len(load.acknowledged()) > 20)
            postgres.stop()
            stopped_at = time.monotonic()
            time.sleep(3)
            # PostgreSQL accepts connections before pg_ctl's start returns: the window in
            # which every answer must be 503 ends when the start begins.
            starting_at = time.monotonic()
            postgres.start()
            restarted_at = time.monotonic()
            # Back by itself: captures are stored again on both replicas.
            wait_for(
                lambda: (
                    {u for u, _, s, t in load.results if s == 200 and t > restarted_at + 0.5}
                    == {a.url, b.url}
                ),
                timeout=60,
            )
        during = [s for _, _, s, t in load.results if stopped_at + 0.5 < t < starting_at]
        assert during and set(during) == {503}, set(during)
        assert {s for _, _, s, _ in load.results} <= {200, 503}
        missing = load.acknowledged() - stored_bodies(postgres.url)
        assert not missing, f"{len(missing)} acknowledged capture(s) lost"
        # The live view is back too: a capture on A reaches a new stream on B.
        stream = SSEClient(b.url + "/api/stream")
        try:
            assert stream.next(timeout=10).event == "ready"  # type: ignore[union-attr]
            with httpx.Client() as client:
                assert client.post(a.url + "/h/after", content=b"x").status_code == 200
            event = stream.next(timeout=15)
            assert event is not None and event.json["endpoint"] == "after"
        finally:
            stream.close()
    finally:
        for replica in (a, b):
            replica.stop()


def answers(base: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(base + "/api/endpoints").status_code == 200
    return False


def spawn(url: str, data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """A replica in its own process; returns it and its base URL."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "inspector", "serve", "--port", "0"),
            *("--database", url, "--data-dir", str(data_dir)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"page:\s+(http://\S+?)/\s*$", line)
        if found:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain
            base = found.group(1)

            wait_for(lambda base=base: answers(base))
            return proc, base
    raise AssertionError(f"replica did not start (exit {proc.wait()})")


def test_killing_one_replica_loses_no_acknowledged_capture(tmp_path: Path) -> None:
    with fresh_schema() as url:
        (a, a_url), (b, b_url) = spawn(url, tmp_path / "a"), spawn(url, tmp_path / "b")
        try:
            stream = SSEClient(b_url + "/api/stream")
            assert stream.next(timeout=10).event == "ready"  # type: ignore[union-attr]
            with Load([a_url, b_url]) as load:
                wait_for(lambda: len(load.acknowledged()) > 50)
                a.send_signal(signal.SIGKILL)
                a.wait()
                killed_at = time.monotonic()
                wait_for(
                    lambda: (
                        sum(1 for u, _, s, t in load.results if u == b_url and t > killed_at) > 50
                    )
                )
            after = [s for u, _, s, t in load.results if u == b_url and t > killed_at]
            assert set(after) == {200}, "the survivor keeps serving"
            missing = load.acknowledged() - stored_bodies(url)
            assert not missing, f"{len(missing)} acknowledged capture(s) lost"
            # The survivor keeps streaming: its stream got captures made after the kill.
            with httpx.Client() as client:
                newest = client.get(b_url + "/api/requests?limit=1").json()["requests"][0]["id"]
            ids: list[int] = []
            while newest not in ids:
                event = stream.next(timeout=15)
                assert event is not None
                if event.event == "request":
                    ids.append(int(event.id or 0))
            assert ids == sorted(set(ids)), "in order, once each"
            stream.close()
        finally:
            for proc in (a, b):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()


class HangingFirst:
    """A webhook receiver that never answers the first request it gets (it waits for its
    sender to go away), and answers 200 to every later one."""

    def __init__(self) -> None:
        self.arrived = 0
        self.lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        with self.lock:
            self.arrived += 1
            first = self.arrived == 1
        if first:
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_an_attempt_in_flight_on_a_killed_replica_is_sent_by_the_other(
    tmp_path: Path, make_server: Any
) -> None:
    receiver = HangingFirst()
    target = make_server(receiver)
    with fresh_schema() as url:
        (a, a_url), (b, b_url) = spawn(url, tmp_path / "a"), spawn(url, tmp_path / "b")
        try:
            created = httpx.post(
                a_url + "/api/deliveries",
                json={
                    "event": "message.received",
                    "url": target.url + "/hook",
                    "secret": "s",
                    "schedule": [],  # one attempt only: a second one is the same attempt
                    "timeout": 2,
                },
            )
            assert created.status_code == 201, created.text
            delivery_id = created.json()["id"]
            wait_for(lambda: receiver.arrived == 1)
            # The lease names its holder (host:pid:nonce): kill -9 that replica, mid-attempt.
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT lease_owner FROM deliveries WHERE id = %s", (delivery_id,)
                ).fetchone()
            assert row is not None and row[0] is not None
            holder = int(row[0].rsplit(":", 2)[1])
            victim, survivor = (a, b_url) if holder == a.pid else (b, a_url)
            assert holder == victim.pid
            victim.send_signal(signal.SIGKILL)
            victim.wait()

            def delivered() -> bool:
                found = httpx.get(f"{survivor}/api/deliveries/{delivery_id}").json()
                return bool(found["state"] == "succeeded")

            # Once the lease has run out (timeout + 10 s), the survivor sends attempt 1.
            wait_for(delivered, timeout=60)
            found = httpx.get(f"{survivor}/api/deliveries/{delivery_id}").json()
            assert found["attempts"] == 1
            assert [entry["status"] for entry in found["log"]] == [200], "logged once"
            assert receiver.arrived == 2  # sent twice: the killed replica's never answered
        finally:
            for proc in (a, b):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
