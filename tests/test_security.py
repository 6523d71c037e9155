"""Control routes: Host allow-list (DNS rebinding), same-origin writes (CSRF), inert content.

All in-process: what is judged here is the app's answer to a request, no socket needed."""

from __future__ import annotations

import httpx
import pytest

from inspector.security import cross_origin_problem, host_name


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("localhost:8765", "localhost"),
        ("LOCALHOST", "localhost"),
        ("127.0.0.1:1", "127.0.0.1"),
        ("[::1]:8765", "[::1]"),
        ("[::1]", "[::1]"),
        ("evil.example:80", "evil.example"),
    ],
)
def test_host_name(host: str, name: str) -> None:
    assert host_name(host) == name


@pytest.mark.parametrize("path", ["/", "/api/requests", "/api/endpoints", "/static/app.css"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.nip.io", ""])
def test_foreign_host_gets_421_on_control_routes(
    app_client: httpx.Client, path: str, host: str
) -> None:
    response = app_client.get(path, headers={"host": host})
    assert response.status_code == 421
    assert response.json()["error"] == "misdirected_request"


@pytest.mark.parametrize("host", ["localhost:1234", "127.0.0.1", "[::1]:9"])
def test_loopback_hosts_are_served(app_client: httpx.Client, host: str) -> None:
    assert app_client.get("/api/requests", headers={"host": host}).status_code == 200


def test_allow_host_extends_the_list(make_in_process) -> None:
    in_process = make_in_process(allow_hosts=("inspector.test",))
    with in_process.client() as client:
        assert client.get("/", headers={"host": "inspector.test:8765"}).status_code == 200
        assert client.get("/", headers={"host": "other.test"}).status_code == 421


def test_capture_routes_accept_any_host_and_origin(app_client: httpx.Client) -> None:
    response = app_client.post(
        "/h/anyhost",
        content=b"x",
        headers={
            "host": "hooks.example.com",
            "origin": "https://elsewhere.example",
            "sec-fetch-site": "cross-site",
            "content-type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "text/plain"},
    ],
)
def test_cross_origin_or_form_writes_get_403(app_client: httpx.Client, headers: dict) -> None:
    app_client.post("/h/victim", content=b"x")
    response = app_client.delete("/api/requests/1", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "cross_origin"
    assert app_client.get("/api/requests/1").status_code == 200  # nothing was deleted
    put = app_client.put("/api/endpoints/victim", content=b"{}", headers=headers)
    assert put.status_code == 403


def test_same_origin_writes_pass(in_process, app_client: httpx.Client) -> None:
    app_client.post("/h/mine", content=b"x")
    origin = in_process.url  # the address the app sees itself at
    response = app_client.delete(
        "/api/requests/1", headers={"origin": origin, "sec-fetch-site": "same-origin"}
    )
    assert response.status_code == 200


def test_cross_origin_problem_unit() -> None:
    assert cross_origin_problem({}, "localhost:1") is None
    assert cross_origin_problem({"origin": "http://localhost:1"}, "localhost:1") is None
    assert cross_origin_problem({"origin": "http://localhost:2"}, "localhost:1") is not None
    assert cross_origin_problem({"content-type": "application/json"}, "x") is None


def test_control_responses_carry_security_headers(app_client: httpx.Client) -> None:
    for path in ("/", "/api/requests", "/static/app.css", "/api/nope"):
        response = app_client.get(path)
        csp = response.headers["content-security-policy"]
        # Scripts and styles from /static/ only: never from a capture URL of the same origin.
        assert (
            f"script-src {str(app_client.base_url).rstrip('/')}/static/;" in csp
            and "unsafe-inline" not in csp
        )
        assert "'self'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"


def test_capture_answers_are_inert_even_with_chosen_html(app_client: httpx.Client) -> None:
    """A capture URL must not become a same-origin page: ?content_type=text/html&body=<script>
    would otherwise let any web site drive the API through a link."""
    response = app_client.get(
        "/h/x", params={"content_type": "text/html", "body": "<script>fetch('/api')</script>"}
    )
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    for path in ("/h/x?status=500", "/h/x?delay=0.01", "/h/", "/h/x?status=abc"):
        assert "sandbox" in app_client.get(path).headers["content-security-policy"], path
