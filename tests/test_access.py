"""Shared on a network: the token, the Host allow-list it widens, configured targets that are
refused, capture answers that can never be code for the page, and a store that cannot start.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from inspector.cli.serve import new_token, token_in_effect
from inspector.settings import Settings
from tests.conftest import InProcessInspector, LiveInspector
from tests.test_cli import start_serve
from tests.test_tls import TlsInspector

TOKEN = "t0ken-for-tests"


@contextlib.contextmanager
def served(settings: Settings, host: str = "127.0.0.1:8765") -> Iterator[httpx.Client]:
    """An in-process inspector with ``settings`` (what is judged here is the app's answer, no
    socket is needed), and a client that says ``Host: host``."""
    inspector = InProcessInspector(settings).start()
    try:
        with inspector.client(headers={"host": host}, timeout=10) as client:
            yield client
    finally:
        inspector.stop()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[httpx.Client]:
    with served(Settings(data_dir=tmp_path / "data", token=TOKEN, host="0.0.0.0")) as client:
        yield client


def test_without_the_token_the_api_says_401_in_json_and_the_page_shows_a_login(
    guarded: httpx.Client,
) -> None:
    answer = guarded.get("/api/requests")
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized" and "Bearer" in answer.json()["detail"]
    assert answer.headers["www-authenticate"].startswith("Bearer")
    page = guarded.get("/")
    assert page.status_code == 401 and "text/html" in page.headers["content-type"]
    assert 'name="token"' in page.text and "<script" not in page.text
    assert guarded.get("/api/stream").status_code == 401
    assert guarded.get("/api/requests", headers={"authorization": "Bearer nope"}).status_code == 401
    # Capture routes stay open: senders cannot authenticate.
    assert guarded.post("/h/open", content=b"{}").status_code == 200
    # The page's own code and style are not secret.
    assert guarded.get("/static/app.css").status_code == 200


def test_bearer_token_opens_the_api_and_csrf_checks_stay(guarded: httpx.Client) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/api/requests", headers=auth).status_code == 200
    cross = guarded.put(
        "/api/endpoints/x",
        json={"enforce": True},
        headers={**auth, "origin": "https://evil.example"},
    )
    assert cross.status_code == 403


def test_token_in_the_url_logs_the_browser_in_with_a_strict_cookie(guarded: httpx.Client) -> None:
    wrong = guarded.get("/?endpoint=a&token=nope")
    assert wrong.status_code == 401 and "not right" in wrong.text
    login = guarded.get(f"/?endpoint=a&token={TOKEN}", follow_redirects=False)
    assert login.status_code == 200
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # the cookie holds an HMAC of the token, not the token
    assert 'content="0; url=/?endpoint=a"' in login.text  # on to the URL without the token
    assert login.headers["cache-control"] == "no-store"
    # The cookie now opens the page, the API and the stream's route.
    assert guarded.get("/?endpoint=a").status_code == 200
    assert guarded.get("/api/requests").status_code == 200


def test_with_a_token_the_host_allow_list_widens_to_the_bound_address(tmp_path: Path) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    bound = Settings(data_dir=tmp_path / "a", token=TOKEN, host="192.0.2.7", allow_hosts=("box",))
    with served(bound, "192.0.2.7:8765") as client:
        assert client.get("/api/requests", headers=auth).status_code == 200
        for host in ("box:8765", "localhost:8765"):
            assert client.get("/api/requests", headers={**auth, "host": host}).status_code == 200
        rebound = client.get("/api/requests", headers={**auth, "host": "evil.example:8765"})
        assert rebound.status_code == 421
    # Bound to every address: any IP literal, and the machine's name.
    anywhere = replace(bound, host="0.0.0.0", data_dir=tmp_path / "b")
    with served(anywhere, "10.1.2.3:8765") as client:
        assert client.get("/api/requests", headers=auth).status_code == 200
        machine = os.uname().nodename.lower()
        assert client.get("/", headers={**auth, "host": machine}).status_code == 200
        assert client.get("/", headers={**auth, "host": "evil.example"}).status_code == 421
    # Without a token, only loopback names (and --allow-host), as before.
    open_ = Settings(data_dir=tmp_path / "c", host="192.0.2.7")
    with served(open_, "192.0.2.7:8765") as client:
        assert client.get("/api/requests").status_code == 421


def test_serve_generates_a_token_for_a_network_address_unless_told_not_to() -> None:
    network = token_in_effect(Settings(host="0.0.0.0"))
    assert network.token and len(network.token) >= 32
    assert token_in_effect(Settings(host="0.0.0.0")).token != network.token
    assert token_in_effect(Settings()).token is None  # loopback: no token unless asked
    assert token_in_effect(Settings(host="0.0.0.0", no_token=True)).token is None
    assert token_in_effect(Settings(token="mine")).token == "mine"
    # One in 64 of token_urlsafe's starts with "-", which `--token TOKEN` would take for an option.
    assert not any(new_token().startswith("-") for _ in range(2_000))


@pytest.mark.live
def test_serve_prints_the_page_url_with_a_generated_token(spawn: Any, tmp_path: Path) -> None:
    proc, base = start_serve(spawn, tmp_path, "--host", "0.0.0.0")
    try:
        assert "?token=" in base
        url = httpx.URL(base)
        token = url.params["token"]
        root = f"http://127.0.0.1:{url.port}"
        assert httpx.get(f"{root}/api/requests").status_code == 401
        headers = {"authorization": f"Bearer {token}"}
        assert httpx.get(f"{root}/api/requests", headers=headers).status_code == 200
        assert httpx.post(f"{root}/h/cli", content=b"{}").status_code == 200
        # The CLI commands that talk to a server take the token too.
        command = [sys.executable, "-m", "inspector", "tail", "--url", root, "--after", "0"]
        refused = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and "401" in refused.stderr
        env = {**os.environ, "WEBHOOK_INSPECTOR_TOKEN": token}
        tail = spawn("tail", "--url", root, "--after", "0", env=env)
        assert tail.stdout is not None
        assert "/h/cli" in tail.stdout.readline()
        tail.terminate()
        tail.communicate(timeout=10)
        wait = [sys.executable, "-m", "inspector", "wait", "--url", root, "--timeout", "5"]
        refused = subprocess.run(wait, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and "requires its token" in refused.stderr
        waited = subprocess.run(
            [*wait, "--token", token], capture_output=True, text=True, timeout=30
        )
        assert waited.returncode == 0 and "/h/cli" in waited.stdout
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


@pytest.mark.live
def test_no_token_on_a_network_address_warns_loudly(spawn: Any, tmp_path: Path) -> None:
    proc, base = start_serve(spawn, tmp_path, "--host", "0.0.0.0", "--no-token")
    proc.terminate()
    _, stderr = proc.communicate(timeout=20)
    assert "?token=" not in base
    assert "NO token" in stderr and "WARNING" in stderr


# -- configured targets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/", "http://0xa9fea9fe/latest", "http://[::ffff:169.254.169.254]/"],
)
def test_configured_forward_targets_to_metadata_are_refused(tmp_path: Path, url: str) -> None:
    with served(Settings(data_dir=tmp_path / "d")) as client:
        for key in ("forward_to", "replay_to"):
            answer = client.put("/api/endpoints/x", json={key: url})
            assert answer.status_code == 403, answer.text
            assert "link-local/cloud-metadata" in answer.json()["detail"]
        assert client.get("/api/endpoints/x").json()["settings"]["forward_to"] is None
        assert client.put("/api/endpoints/x", json={"forward_to": "http://127.0.0.1:9/"}).is_success
    out = subprocess.run(
        [sys.executable, "-m", "inspector", "serve", "--port", "0", "--forward-to", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "--forward-to" in out.stderr and "link-local/cloud-metadata" in out.stderr
    assert "Traceback" not in out.stderr


# -- capture answers are never code for the page ----------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/javascript", "application/javascript; charset=utf-8", "text/css"]
)
def test_capture_answers_refuse_script_and_style_types(tmp_path: Path, content_type: str) -> None:
    with served(Settings(data_dir=tmp_path / "d")) as client:
        answer = client.get("/h/x", params={"content_type": content_type, "body": "alert(1)"})
        assert answer.status_code == 400 and "content_type" in answer.text
        assert not answer.headers["content-type"].startswith(content_type.split(";")[0])
        rule = client.put("/api/endpoints/x", json={"response": {"content_type": content_type}})
        assert rule.status_code == 400
        # Still captured.
        assert client.get("/api/requests?endpoint=x").json()["requests"]


def test_the_page_policy_allows_scripts_and_styles_from_static_only(tmp_path: Path) -> None:
    with served(Settings(data_dir=tmp_path / "d"), "localhost:9") as c:
        csp = c.get("/").headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "http://localhost:9/static/"
    assert directives["style-src"] == "http://localhost:9/static/"


# -- a store that cannot start -----------------------------------------------------------------


def in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as root of a new user and mount namespace (where it may mount a tmpfs),
    with ``$PY`` the Python running the tests."""
    if shutil.which("unshare") is None:
        pytest.fail("these tests need util-linux's unshare (apt-get install util-linux)")
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-ec", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PY": sys.executable},
    )


def one_clear_sentence(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("mount", "expected"),
    [
        ("mount -t tmpfs -o ro,size=1m tmpfs $D", "read-only"),
        (
            "mount -t tmpfs -o size=256k tmpfs $D; mkdir $D/data;"
            " dd if=/dev/zero of=$D/fill bs=4k count=100 2>/dev/null || true",
            "is full",
        ),
    ],
)
def test_serve_on_a_read_only_or_full_disk_says_so_and_exits(
    tmp_path: Path, mount: str, expected: str
) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    script = (
        f"D={target}; {mount}; cd {Path.cwd()}; "
        'exec timeout 20 "$PY" -m inspector serve --port 0 --data-dir $D/data'
    )
    line = one_clear_sentence(in_namespace(script))
    assert expected in line and str(target) in line


def test_serve_on_an_unreadable_data_dir_says_so_and_exits(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    command = [sys.executable, "-m", "inspector", "serve", "--port", "0", "--data-dir", str(locked)]
    if os.geteuid() == 0:  # root reads anything: run as nobody, who cannot
        tmp_path.chmod(0o755)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=Path.cwd())
    line = one_clear_sentence(out)
    assert "not readable" in line or "permission denied" in line
    # A file that is not a store is named as such.
    other = tmp_path / "other"
    other.mkdir()
    (other / "inspector.db").write_bytes(b"not sqlite at all" * 100)
    out = subprocess.run(
        [sys.executable, "-m", "inspector", "serve", "--port", "0", "--data-dir", str(other)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "not a database" in one_clear_sentence(out)


@pytest.mark.live
def test_live_inspector_with_a_token_serves_the_stream_to_the_cookie(tmp_path: Path) -> None:
    live = LiveInspector(Settings(data_dir=tmp_path / "d", token=TOKEN)).start()
    try:
        with httpx.Client(base_url=live.url, timeout=5) as client:
            login = client.get("/", params={"token": TOKEN})
            assert login.status_code == 200 and client.cookies
            with client.stream("GET", "/api/stream") as stream:
                assert stream.status_code == 200
                first = next(stream.iter_lines())
                assert first.startswith(("id:", "event:"))
    finally:
        live.stop()


@pytest.mark.live
def test_every_control_route_asks_for_the_token_on_both_listeners(tmp_path: Path) -> None:
    """Every route of the app but the captures, the static files and the CA certificate —
    the wait, OpenAPI, the reference, /api/tls, the diffs and the page's new-count included —
    answers 401 without the token, over HTTP and over HTTPS."""
    live = TlsInspector(Settings(data_dir=tmp_path / "data", port=0, token=TOKEN))
    live.start()
    assert live.made is not None
    trust = ssl.create_default_context(cafile=str(live.made.ca_file))
    routes = [r for r in live.server.config.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    assert {
        "/api/requests/wait",
        "/api/openapi.json",
        "/reference",
        "/api/tls",
        "/api/requests/count",
        "/api/requests/{a}/diff/{b}",
        "/api/replays/{id}/diff",
        "/api/requests/{id}/pairs",
    } <= {r.path for r in routes}
    try:
        bases = [live.url, f"https://localhost:{live.settings.https_port}"]
        for base in bases:
            with httpx.Client(base_url=base, verify=trust, timeout=10) as client:
                for route in routes:
                    url = re.sub(r"\{\w+(:\w+)?\}", "1", route.path)
                    for method in sorted((route.methods or set()) - {"HEAD"}):
                        answer = client.request(method, url, headers={"host": "localhost"})
                        if route.path == "/api/tls/ca.crt":
                            assert answer.status_code == 200, "the CA certificate is public"
                            assert answer.content.startswith(b"-----BEGIN CERTIFICATE-----")
                        else:
                            assert answer.status_code == 401, (base, method, url)
                auth = {"authorization": f"Bearer {TOKEN}"}
                wait = client.get("/api/requests/wait", params={"timeout": 0}, headers=auth)
                assert wait.status_code == 200 and "timed_out" in wait.json()
                doc = client.get("/api/openapi.json", headers=auth).json()
                assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
                assert "401" in doc["paths"]["/api/requests/wait"]["get"]["responses"]
                assert "401" not in doc["paths"]["/api/tls/ca.crt"]["get"]["responses"]
                assert client.get("/reference", headers=auth).status_code == 200
                assert client.get("/api/tls", headers=auth).json()["https"] is True
                assert client.post("/h/open", content=b"{}").status_code == 200
    finally:
        live.stop()
