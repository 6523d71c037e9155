"""HTTPS on localhost, and TLS that tells the truth — real handshakes on loopback.

* ``serve --https`` (a real process): curl and httpx trust it through the generated CA and
  get 200, the capture records TLS version and SNI; without the CA both refuse it.
* Outbound: replay, send and ``check`` to real uvicorn HTTPS receivers whose certificates
  come from a test CA (valid, expired, wrong name), with ``--ca-file``, with ``--insecure``
  and with neither — each failure names its cause and what to do.
* The inspector trusts its own local CA when it targets itself (loopback), and only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from inspector import certificates, listeners, outbound
from inspector.cli import main
from inspector.embedded import ServerThread
from inspector.outbound import TlsOptions
from inspector.settings import Settings
from inspector.store import Store, deliveries, replays
from tests.conftest import LiveInspector, Spawn, start_app
from tests.test_page import Page

SECRET = "s3cret"
EVENT = b'{"event": "member.joined", "timestamp": "2025-01-15T08:30:00Z", "data": {}}'


# -- a test CA and receivers that use its certificates -----------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    good: tuple[Path, Path]  # for localhost and 127.0.0.1
    expired: tuple[Path, Path]
    wrong_name: tuple[Path, Path]  # for other.test only


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = certificates.new_authority("webhook-inspector test CA")
    certificates.write_file(root / "ca.crt", certificates.cert_pem(ca.cert))

    def issue(name: str, names: list[str], **when: Any) -> tuple[Path, Path]:
        cert, key = certificates.issue(ca, names, **when)
        certificates.write_file(root / f"{name}.crt", certificates.cert_pem(cert))
        certificates.write_file(root / f"{name}.key", certificates.key_pem(key), private=True)
        return root / f"{name}.crt", root / f"{name}.key"

    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    return Pki(
        ca_file=root / "ca.crt",
        good=issue("good", ["localhost", "127.0.0.1"]),
        expired=issue("expired", ["localhost", "127.0.0.1"], now=past, days=1),
        wrong_name=issue("wrong", ["other.test"]),
    )


class Receiver:
    """A real uvicorn serving HTTPS with the given certificate; it answers 200 and keeps
    what it was sent."""

    def __init__(self, cert: tuple[Path, Path] | None) -> None:
        self.bodies: list[bytes] = []

        async def hook(request: Request) -> PlainTextResponse:
            self.bodies.append(await request.body())
            return PlainTextResponse("OK")

        app = Starlette(routes=[Route("/{path:path}", hook, methods=["GET", "POST"])])
        tls = {} if cert is None else {"ssl_certfile": str(cert[0]), "ssl_keyfile": str(cert[1])}
        # A TLS connection the client keeps idle would hold the shutdown for asyncio's 30 s
        # wait on the client's close_notify.
        self.server = start_app(app, timeout_graceful_shutdown=1, **tls)
        self.url = f"https://127.0.0.1:{self.server.port}/webhook"


@pytest.fixture
def receivers(pki: Pki) -> Iterator[dict[str, Receiver]]:
    """``good``, ``expired``, ``wrong_name`` (all TLS) and ``plain`` (HTTP, reached at an
    https:// URL)."""
    made = {
        "good": Receiver(pki.good),
        "expired": Receiver(pki.expired),
        "wrong_name": Receiver(pki.wrong_name),
        "plain": Receiver(None),
    }
    yield made
    for receiver in made.values():
        receiver.server.stop()


def untrusted(url: str) -> str:
    where = httpx.URL(url).netloc.decode()
    return (
        f"TLS: certificate verify failed for {where}: not issued by a trusted CA (unable to get "
        "local issuer certificate) — pass --ca-file with the CA that issued it, or --insecure"
    )


# -- an inspector with its HTTPS listener, in this process -------------------------------------


class TlsInspector(LiveInspector):
    """``LiveInspector`` plus the TLS listener ``serve --https`` adds (``listeners.Server``),
    with a certificate from the local CA in its data dir."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        tls_sock = listeners.bind("127.0.0.1", 0)
        settings = replace(settings, https=True, https_port=tls_sock.getsockname()[1])
        context, made = listeners.tls_context(settings)
        self.made = made
        listener = listeners.TlsListener(tls_sock, context, made)
        super().__init__(settings, tls=[listener], **options)

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.settings.https_port}"


@pytest.fixture
def tls_live(tmp_path: Path) -> Iterator[TlsInspector]:
    server = TlsInspector(Settings(data_dir=tmp_path / "data", port=0)).start()
    yield server
    server.stop()


def trusting(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def exchange(url: str, tls: TlsOptions | None = None, own_ca: Path | None = None) -> Any:
    async def go() -> outbound.Exchange:
        async with outbound.open_client(keepalive=0, own_ca=own_ca) as client:
            request = client.build_request("POST", url, content=EVENT)
            return await outbound.send(client, request, timeout=10, cap=1000, tls=tls)

    return asyncio.run(go())


# -- serve --https, a real process ------------------------------------------------------------


def start_serve(spawn: Spawn, data_dir: Path, *extra: str) -> tuple[Any, dict[str, str]]:
    """``serve --https`` on free ports; returns the process and what its banner said."""
    proc = spawn(
        "serve", "--port", "0", "--https", "--https-port", "0", "--data-dir", str(data_dir), *extra
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or "Ctrl-C to stop." not in lines[-1]:
        line = proc.stdout.readline()
        assert line, f"serve exited: {''.join(lines)} {proc.stderr.read() if proc.stderr else ''}"
        lines.append(line)
    text = "".join(lines)
    found = {
        "text": text,
        "http": re.search(r"page: +(http://\S+?)/\n", text)[1],  # type: ignore[index]
        "https": re.search(r"https: +(https://\S+?)/h/", text)[1],  # type: ignore[index]
        "ca": re.search(r"CA: +(\S+)", text)[1],  # type: ignore[index]
    }
    deadline = time.monotonic() + 30  # up, lifespan and all (a Ctrl-C before is exit 130)
    while True:
        try:
            httpx.get(found["http"] + "/api/tls", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.05)
    return proc, found


def stop(proc: Any) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    return str(out)


@pytest.mark.live
@pytest.mark.slow
def test_serve_https_answers_curl_and_httpx_that_trust_its_ca_and_records_tls(
    spawn: Spawn, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    proc, said = start_serve(spawn, data, "--allow-host", "hooks.test")
    ca = Path(said["ca"])
    port = httpx.URL(said["https"]).port
    assert ca == data / "tls" / "ca.crt" and ca.is_file()
    assert "A new local CA was made" in said["text"]
    for how in ("curl --cacert", "SSL_CERT_FILE=", "REQUESTS_CA_BUNDLE=", "NODE_EXTRA_CA_CERTS=",
                "OS trust store", "/api/tls/ca.crt"):  # fmt: skip
        assert how in said["text"], how
    assert "localhost, 127.0.0.1, ::1" in said["text"] and "hooks.test" in said["text"]

    # httpx: trusting the CA -> 200 (SNI localhost); trusting only the public CAs -> refused.
    with httpx.Client(verify=trusting(ca), timeout=10) as client:
        answer = client.post(f"https://localhost:{port}/h/tls-demo", content=EVENT)
    assert answer.status_code == 200 and answer.text == "OK"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.post(f"https://localhost:{port}/h/tls-demo", content=EVENT, timeout=10)

    # curl: --cacert -> 200 (to an IP address: no SNI); without it -> exit 60, verify error.
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed (./scripts/test installs it)"
    url = f"https://127.0.0.1:{port}/h/tls-demo"
    ok = subprocess.run(
        [curl, "-sS", "--cacert", str(ca), "-d", "from curl", url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert ok.returncode == 0 and ok.stdout == "OK", ok.stderr
    refused = subprocess.run(
        [curl, "-sS", "-d", "x", url], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 60 and "certificate" in refused.stderr

    with httpx.Client(base_url=said["http"], timeout=10) as client:
        items = client.get("/api/requests", params={"endpoint": "tls-demo"}).json()["requests"]
        assert [it["scheme"] for it in items] == ["https", "https"]
        by_curl, by_httpx = items
        assert by_httpx["tls"]["server_name"] == "localhost"
        assert by_curl["tls"]["server_name"] is None  # an IP address is not sent as SNI
        assert {it["tls"]["version"] for it in items} <= {"TLSv1.2", "TLSv1.3"}
        detail = client.get(f"/api/requests/{by_httpx['id']}").json()
        assert detail["tls"] == by_httpx["tls"] and detail["scheme"] == "https"
        plain = client.post("/h/tls-demo", content=EVENT)
        assert plain.status_code == 200
        latest = client.get("/api/requests", params={"limit": 1}).json()["requests"][0]
        assert latest["scheme"] == "http" and latest["tls"] is None
        # The CA for download, and where HTTPS is.
        download = client.get("/api/tls/ca.crt")
        assert download.content == ca.read_bytes()
        assert "attachment" in download.headers["content-disposition"]
        assert client.get("/api/tls").json() == {
            "https": True,
            "port": port,
            "ca": "/api/tls/ca.crt",
        }
        page = client.get("/")
        assert f"https://127.0.0.1:{port}/h/" in page.text and "/api/tls/ca.crt" in page.text
    # The page over HTTPS too (same app, same lifespan).
    with httpx.Client(verify=trusting(ca), timeout=10) as client:
        assert client.get(f"https://localhost:{port}/api/tls").json()["https"] is True
    assert "webhook-inspector stopped." in stop(proc)

    # Same names: the certificate is kept. A new --allow-host name: issued again, same CA.
    ca_bytes = ca.read_bytes()
    proc, said = start_serve(spawn, data, "--allow-host", "hooks.test")
    assert "(issued now)" not in said["text"] and "A new local CA" not in said["text"]
    stop(proc)
    proc, said = start_serve(spawn, data, "--allow-host", "other.test")
    assert "(issued now)" in said["text"] and "other.test" in said["text"]
    assert ca.read_bytes() == ca_bytes
    stop(proc)


def test_serve_tls_flags_are_checked_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pki: Pki
) -> None:
    base = ["serve", "--port", "0", "--data-dir", str(tmp_path)]
    cases = [
        (["--https", "--cert", str(pki.good[0])], "--cert and --key go together"),
        (["--cert", str(pki.good[0]), "--key", str(pki.good[1])], "add --https"),
        (["--ca-file", str(tmp_path / "missing.pem")], "no such file"),
        (["--ca-file", str(pki.good[1])], "no PEM certificate in it"),
        (["--https", "--https-port", "0", "--cert", str(pki.good[1]), "--key", str(pki.good[1])],
         "Cannot use --cert"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main([*base, *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv


# -- outbound: each TLS failure names its cause and what to do ---------------------------------


@pytest.mark.live
def test_outbound_tls_failures_name_the_cause_and_what_to_do(
    receivers: dict[str, Receiver], pki: Pki, tmp_path: Path
) -> None:
    good, expired, wrong, plain = (
        receivers[k].url for k in ("good", "expired", "wrong_name", "plain")
    )
    trust = TlsOptions(ca_file=str(pki.ca_file))

    untrusted_answer = exchange(good)
    assert untrusted_answer.failure == outbound.Failure("tls", untrusted(good))
    assert untrusted_answer.status is None

    verified = exchange(good, trust)
    assert verified.ok and verified.tls in ("TLSv1.2", "TLSv1.3")
    skipped = exchange(good, TlsOptions(insecure=True))
    assert skipped.ok and skipped.tls is not None
    assert len(receivers["good"].bodies) == 2  # only the two that were allowed through

    where = httpx.URL(expired).netloc.decode()
    assert exchange(expired, trust).error == (
        f"TLS: certificate verify failed for {where}: the certificate has expired — renew it "
        "on the server, or pass --insecure"
    )
    where = httpx.URL(wrong).netloc.decode()
    assert exchange(wrong, trust).error == (
        f"TLS: certificate verify failed for {where}: the certificate is not valid for 127.0.0.1 "
        "(IP address mismatch, certificate is not valid for '127.0.0.1') — use a URL with a name "
        "it covers, issue one that covers 127.0.0.1, or pass --insecure"
    )
    by_name = f"https://localhost:{httpx.URL(wrong).port}/webhook"
    assert "the certificate is not valid for localhost (hostname mismatch" in str(
        exchange(by_name, trust).error
    )
    where = httpx.URL(plain).netloc.decode()
    assert exchange(plain).error == (
        f"TLS: {where} answered in plain HTTP, not TLS — use http:// for it, or the server's "
        "HTTPS port"
    )
    # --insecure takes any certificate, but plain HTTP is still not TLS.
    assert exchange(expired, TlsOptions(insecure=True)).ok
    assert exchange(wrong, TlsOptions(insecure=True)).ok
    assert exchange(plain, TlsOptions(insecure=True)).failure.kind == "tls"  # type: ignore[union-attr]

    gone = str(tmp_path / "gone.pem")
    assert exchange(good, TlsOptions(ca_file=gone)).failure == outbound.Failure(
        "tls",
        f"TLS: cannot use the CA file {gone} (no such file) — pass --ca-file a PEM file of CA "
        "certificates",
    )


class RawTlsServer:
    """A bare TLS server in a thread: ``context`` decides what it accepts."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.context = context
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.settimeout(10)
        wrapped = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with wrapped:
            try:
                wrapped.do_handshake()  # a missing client certificate fails here
                wrapped.recv(65536)
                wrapped.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                # Let the client read the alert: take what it sent, then close with a FIN
                # (closing with unread data would reset the connection instead).
                with contextlib.suppress(OSError):
                    wrapped.shutdown(socket.SHUT_WR)
                    while wrapped.recv(65536):
                        pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


@pytest.mark.live
def test_a_handshake_without_agreement_or_wanting_a_client_certificate_says_so(
    pki: Pki,
) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    old.load_cert_chain(*pki.good)
    old.minimum_version = ssl.TLSVersion.TLSv1_2
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.set_ciphers("AES128-SHA")  # no forward secrecy: nothing a default client offers
    server = RawTlsServer(old)
    try:
        text = exchange(f"https://127.0.0.1:{server.port}/", TlsOptions(str(pki.ca_file))).error
    finally:
        server.close()
    assert text is not None and text.startswith(
        f"TLS: handshake with 127.0.0.1:{server.port} failed ("
    )
    assert text.endswith(
        "no TLS version or cipher in common — check the server's TLS settings (the inspector "
        "speaks TLS 1.2 and 1.3)"
    )

    mutual = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mutual.load_cert_chain(*pki.good)
    mutual.load_verify_locations(cafile=str(pki.ca_file))
    mutual.verify_mode = ssl.CERT_REQUIRED
    server = RawTlsServer(mutual)
    try:
        text = exchange(f"https://127.0.0.1:{server.port}/", TlsOptions(str(pki.ca_file))).error
    finally:
        server.close()
    assert text is not None and "the server wants a client certificate" in text


def test_the_local_ca_is_trusted_only_for_this_machine(tmp_path: Path) -> None:
    for host in ("localhost", "api.localhost", "127.0.0.1", "127.8.9.10", "[::1]", "::1",
                 socket.gethostname()):  # fmt: skip
        assert outbound.self_target(host), host
    for host in ("example.com", "10.0.0.1", "192.168.1.2", "[fe80::1]", "localhost.example"):
        assert not outbound.self_target(host), host


# -- replay, send and check to an HTTPS receiver ----------------------------------------------


@pytest.mark.live
def test_replay_to_an_https_receiver_with_ca_file_insecure_and_neither(
    live: LiveInspector,
    client: httpx.Client,
    receivers: dict[str, Receiver],
    pki: Pki,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert client.post("/h/shop", content=EVENT).status_code == 200
    data = ["--data-dir", str(live.settings.data_dir)]
    url = receivers["good"].url

    assert main(["replay", "1", "--to", url, *data]) == 1
    out = capsys.readouterr().out
    assert f"#1  POST {url}  ->  {untrusted(url)}" in out

    assert main(["replay", "1", "--to", url, "--ca-file", str(pki.ca_file), *data]) == 0
    out = capsys.readouterr().out
    assert re.search(r"->  200  \(\d+\.\d ms, TLSv1\.[23]\)\n", out), out

    assert main(["replay", "1", "--to", url, "--insecure", *data]) == 0
    said = capsys.readouterr()
    assert "certificate NOT verified (--insecure)" in said.out
    assert "WARNING: --insecure" in said.err
    assert receivers["good"].bodies == [EVENT, EVENT]

    listed = client.get("/api/requests/1/replays").json()["replays"]
    assert [r["insecure"] for r in listed] == [True, False, False]  # newest first
    assert listed[2]["error"] == untrusted(url)

    # The endpoint can carry the options (for forwards and API replays): trust the test CA.
    put = client.put("/api/endpoints/shop", json={"ca_file": str(pki.ca_file)})
    assert put.status_code == 200 and put.json()["settings"]["ca_file"] == str(pki.ca_file)
    replayed = client.post("/api/requests/1/replay", json={"url": url}).json()
    assert replayed["status"] == 200 and replayed["insecure"] is False, replayed
    bad = client.put("/api/endpoints/shop", json={"ca_file": "/nonexistent/ca.pem"})
    assert bad.status_code == 400 and "no such file" in bad.json()["detail"]
    expired = client.post(
        "/api/requests/1/replay", json={"url": receivers["expired"].url, "insecure": True}
    ).json()
    assert expired["status"] == 200 and expired["insecure"] is True

    # The same settings from the command line (and a CA file that does not load: refused).
    capsys.readouterr()
    assert main(["endpoint", "shop", "--insecure", "--ca-file", "", *data]) == 0
    shown = json.loads(capsys.readouterr().out)["settings"]
    assert shown["insecure"] is True and shown["ca_file"] is None
    assert main(["endpoint", "shop", "--ca-file", f"{pki.ca_file}.missing", *data]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.live
def test_send_to_an_https_receiver_with_ca_file_insecure_and_neither(
    tmp_path: Path,
    receivers: dict[str, Receiver],
    pki: Pki,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = receivers["good"].url
    data = ["--data-dir", str(tmp_path)]
    base = ["send", "message.received", "--to", url, "--secret", SECRET, "--schedule", "",
            "--wait", *data]  # fmt: skip

    assert main(base) == 1
    out = capsys.readouterr().out
    assert "attempt 1/1" in out and untrusted(url) in out
    assert main([*base, "--ca-file", str(pki.ca_file)]) == 0
    assert "trusting the CA in" in capsys.readouterr().out
    assert main([*base, "--insecure"]) == 0
    said = capsys.readouterr()
    assert "WARNING: --insecure" in said.err
    assert said.out.count("certificate NOT verified") == 2  # the header and the attempt

    store = Store(tmp_path / "inspector.db").open()
    try:
        items, _ = store.read_sync(deliveries.list_deliveries, 10, None, None)
        failed = store.read_sync(deliveries.get_delivery, items[-1]["id"])
    finally:
        store.close()
    assert [(it["state"], it["insecure"]) for it in items] == [
        ("succeeded", True),
        ("succeeded", False),
        ("failed", False),
    ]
    assert items[1]["ca_file"] == str(pki.ca_file)
    assert failed is not None and failed["log"][0]["error"] == untrusted(url)  # the log says why
    assert main(["deliveries", *data]) == 0
    assert "[insecure]" in capsys.readouterr().out
    assert main(["deliveries", "--id", str(items[0]["id"]), *data]) == 0
    assert "certificate NOT verified" in capsys.readouterr().out
    assert len(receivers["good"].bodies) == 2


@pytest.mark.live
def test_api_deliveries_take_tls_options(
    client: httpx.Client, receivers: dict[str, Receiver], pki: Pki
) -> None:
    def deliver(**tls: Any) -> dict[str, Any]:
        payload = {"event": "member.left", "url": receivers["expired"].url, "secret": SECRET,
                   "schedule": [], **tls}  # fmt: skip
        created = client.post("/api/deliveries", json=payload)
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 15
        while (found := client.get(f"/api/deliveries/{created.json()['id']}").json())[
            "state"
        ] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return found

    expired = deliver(ca_file=str(pki.ca_file))
    assert (
        expired["state"] == "failed" and "the certificate has expired" in expired["log"][0]["error"]
    )
    anyway = deliver(insecure=True)
    assert anyway["state"] == "succeeded" and anyway["insecure"] is True
    bad = client.post(
        "/api/deliveries",
        json={"event": "member.left", "url": receivers["good"].url, "secret": SECRET,
              "ca_file": "relative/missing.pem"},
    )  # fmt: skip
    assert bad.status_code == 400 and "cannot use the CA file" in bad.json()["detail"]
    assert client.post(
        "/api/deliveries",
        json={"event": "member.left", "url": receivers["good"].url, "secret": SECRET,
              "insecure": "yes"},
    ).status_code == 400  # fmt: skip


@pytest.mark.live
def test_check_reports_the_platforms_https_requirement(
    receivers: dict[str, Receiver],
    pki: Pki,
    make_server: Callable[..., ServerThread],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from inspector.check import check_receiver
    from tests import test_check

    # A receiver that passes every other row, over TLS with the test CA's certificate.
    good = make_server(
        test_check.app_for(test_check.correct),
        ssl_certfile=str(pki.good[0]),
        ssl_keyfile=str(pki.good[1]),
    )
    url = f"https://127.0.0.1:{good.port}/webhook"

    def https_row(url: str, **options: Any) -> tuple[str, str, bool]:
        report = asyncio.run(
            check_receiver(url, test_check.SECRET, oversize=test_check.SMALL, **options)
        )
        first = report.rows[0]
        assert first.check == "HTTPS"
        return first.verdict, first.detail, report.passed

    try:
        assert https_row(url) == ("fail", untrusted(url), False)
        verdict, detail, passed = https_row(url, tls=TlsOptions(str(pki.ca_file)))
        assert verdict == "warn" and passed, detail
        assert "verified only with --ca-file: the platform trusts the public CAs" in detail
        verdict, detail, passed = https_row(url, tls=TlsOptions(insecure=True))
        assert verdict == "warn" and passed and "NOT verified (--insecure)" in detail
        expired = receivers["expired"].url
        verdict, detail, _ = https_row(expired, tls=TlsOptions(str(pki.ca_file)))
        assert verdict == "fail" and "has expired" in detail

        base = ["check", url, "--secret", test_check.SECRET, "--oversize", "1000"]
        assert main([*base, "--ca-file", str(pki.ca_file)]) == 0
        assert "ready, but read the warnings" in capsys.readouterr().out
        assert main([*base, "--ca-file", str(pki.ca_file), "--strict"]) == 1
        assert "the warnings above fail the run (--strict)" in capsys.readouterr().out
        assert main([*base]) == 1  # untrusted: every row fails, HTTPS first
        assert untrusted(url) in capsys.readouterr().out
    finally:
        good.stop()


# -- the inspector trusts its own CA when it targets itself ------------------------------------


@pytest.mark.live
def test_replays_forwards_and_deliveries_to_its_own_https_listener_just_work(
    tls_live: TlsInspector, receivers: dict[str, Receiver]
) -> None:
    own = tls_live.https_url
    with tls_live.client() as client:
        assert client.post("/h/first", content=EVENT).status_code == 200
        replayed = client.post("/api/requests/1/replay", json={"url": f"{own}/h/back"}).json()
        assert replayed["status"] == 200 and replayed["error"] is None, replayed
        assert replayed["tls"] in ("TLSv1.2", "TLSv1.3") and replayed["insecure"] is False
        back = client.get("/api/requests", params={"endpoint": "back"}).json()["requests"][0]
        assert back["tls"]["server_name"] == "localhost"  # it came over TLS, by name

        created = client.post(
            "/api/deliveries",
            json={"event": "message.received", "url": f"{own}/h/delivered", "secret": SECRET},
        ).json()
        deadline = time.monotonic() + 15
        while client.get(f"/api/deliveries/{created['id']}").json()["state"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.get(f"/api/deliveries/{created['id']}").json()["state"] == "succeeded"

        # Only this machine: a loopback receiver with a foreign CA's certificate is not
        # vouched for by the local CA.
        foreign = client.post("/api/requests/1/replay", json={"url": receivers["good"].url})
        assert foreign.json()["error"] == untrusted(receivers["good"].url)

        # The page offers the https capture URL and the CA.
        page = client.get("/?endpoint=first").text
        assert f"https://127.0.0.1:{tls_live.settings.https_port}/h/first" in page
        assert 'href="/api/tls/ca.crt"' in page


def test_check_passes_https_to_this_machine_through_the_local_ca(tls_live: TlsInspector) -> None:
    from inspector.check import check_receiver

    report = asyncio.run(
        check_receiver(
            f"{tls_live.https_url}/h/checked",
            SECRET,
            oversize=1000,
            own_ca=tls_live.settings.data_dir / "tls" / "ca.crt",
        )
    )
    https = report.rows[0]
    assert https.verdict == "pass", https.detail
    assert "certificate verified (a local CA is trusted for this machine)" in https.detail


# -- the store keeps TLS through migrations, export and import --------------------------------


def test_a_store_from_before_tls_gains_its_columns(tmp_path: Path) -> None:
    from inspector.store import schema
    from inspector.store.sqlite import SqliteBackend

    path = tmp_path / "old.db"
    conn = SqliteBackend(path, busy_timeout=1).connect()
    for script in schema.SQLITE[:3]:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version=3")
    conn.execute(
        "INSERT INTO replays (request_id, kind, url, method, request_headers, sent_at)"
        " VALUES (1, 'replay', 'https://x.test/', 'POST', '[]', '2025-01-01T00:00:00Z')"
    )
    conn.close()
    store = Store(path).open()
    try:
        listed = store.read_sync(replays.list_replays, 1, 10)
        version = store.read_sync(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
    finally:
        store.close()
    assert version == len(schema.SQLITE) and listed[0]["insecure"] is False


@pytest.mark.live
def test_export_and_import_keep_how_a_capture_arrived(
    tls_live: TlsInspector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tls_live.settings.data_dir / "tls" / "ca.crt"
    with httpx.Client(verify=trusting(ca), timeout=10) as secure:
        assert secure.post(f"{tls_live.https_url}/h/kept", content=EVENT).status_code == 200
    data = ["--data-dir", str(tls_live.settings.data_dir)]
    assert main(["export", "--endpoint", "kept", "-o", str(tmp_path / "kept.jsonl"), *data]) == 0
    record = json.loads((tmp_path / "kept.jsonl").read_text())
    assert record["tls"]["server_name"] == "localhost"
    other = ["--data-dir", str(tmp_path / "other")]
    os.makedirs(tmp_path / "other")
    Store(tmp_path / "other" / "inspector.db").open().close()
    assert main(["import", str(tmp_path / "kept.jsonl"), *other]) == 0
    capsys.readouterr()
    assert main(["export", *other]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["tls"] == record["tls"]


# -- the page --------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.live
def test_the_page_offers_the_https_url_and_the_detail_shows_the_connection(
    browser: Any, tls_live: TlsInspector
) -> None:
    port = tls_live.settings.https_port
    ca = tls_live.settings.data_dir / "tls" / "ca.crt"
    with httpx.Client(verify=trusting(ca), timeout=10) as secure:
        assert secure.post(f"https://localhost:{port}/h/secure", content=EVENT).status_code == 200
    with tls_live.client() as client:
        assert client.post("/h/secure", content=EVENT).status_code == 200
    ui = Page(browser, tls_live)
    try:
        page = ui.open("/?endpoint=secure")
        https_url = page.locator("#endpoint-url-https")
        assert https_url.text_content() == f"https://127.0.0.1:{port}/h/secure"
        assert page.locator('.endpoint-bar a[href="/api/tls/ca.crt"]').count() == 1
        detail = ui.select(1)
        text = detail.inner_text()
        assert re.search(r"HTTPS · TLSv1\.[23] · SNI localhost", text), text
        assert detail.locator(".d-title .url").inner_text() == f"https://localhost:{port}/h/secure"
        plain = ui.select(2).inner_text()
        assert "HTTPS ·" not in plain and "Connection\tHTTP" in plain
        assert ui.errors == []
    finally:
        ui.close()
