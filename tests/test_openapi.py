"""The OpenAPI 3.1 document: valid, complete (every /api route), served, and true — schemathesis
calls every operation with generated input and checks every answer against it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from inspector import openapi
from inspector.app import create_app
from inspector.settings import Settings
from tests.conftest import LiveInspector

# A closed loopback port: deliveries and replays the fuzzer asks for go nowhere.
NOWHERE = "http://127.0.0.1:9/"
STREAMS = ("/api/stream", "/api/deliveries/stream")  # endless: not something to call and check


def test_the_document_is_valid_openapi_3_1(tmp_path) -> None:
    doc = openapi.document(create_app(Settings(data_dir=tmp_path)).routes)
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # against the OpenAPI 3.1 meta-schema (raises if invalid)


def test_every_api_route_is_described(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    doc = openapi.document(app.routes)
    api_routes = [r for r in app.routes if isinstance(r, Route) and r.path.startswith("/api")]
    assert api_routes
    for route in api_routes:
        assert isinstance(route, openapi.ApiRoute), f"{route.path} has no Operation"
        path = route.path.replace(":path}", "}")
        for method in (route.methods or set()) - {"HEAD"}:
            described = doc["paths"][path][method.lower()]
            assert described["responses"], (path, method)


@pytest.mark.live
def test_the_document_is_served(client) -> None:
    served = client.get("/api/openapi.json")
    assert served.status_code == 200
    doc = served.json()
    assert "/api/requests/wait" in doc["paths"]
    wait = doc["paths"]["/api/requests/wait"]["get"]
    assert {p["name"] for p in wait["parameters"]} >= {"endpoint", "count", "after", "timeout"}
    answer = wait["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/WaitResult"}
    item = doc["components"]["schemas"]["ListedRequest"]
    assert {"id", "endpoint", "signature", "response", "summary"} <= set(item["required"])
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["detail", "error"]


# -- schemathesis ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory) -> Iterator[LiveInspector]:
    data = tmp_path_factory.mktemp("fuzz")
    # synchronous=OFF: durability is not under test here, and fsyncs would slow every write.
    server = LiveInspector(Settings(data_dir=data, port=0, synchronous="OFF")).start()
    with server.client() as client:  # something to read, replay and delete
        for i in range(3):
            client.post(f"/h/fuzz{i}", json={"event": "member.joined", "n": i})
    yield server
    server.stop()


@pytest.fixture
def only_loopback(monkeypatch) -> None:
    """No name is resolved and no address but loopback reached, whatever the fuzzer sends."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = name == "localhost" or ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise socket.gaierror(socket.EAI_NONAME, f"test fence: {name} is not loopback")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


# The document as the app makes it (building the app opens nothing; the server serves the same).
schema = schemathesis.openapi.from_dict(openapi.document(create_app().routes))


@pytest.mark.live
@schema.exclude(path=list(STREAMS)).parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_documented(
    case: Any, fuzzed_server: LiveInspector, only_loopback: None
) -> None:
    if isinstance(case.body, dict) and "url" in case.body:
        case.body["url"] = NOWHERE
    if isinstance(case.body, dict):
        for key in ("forward_to", "replay_to"):
            if key in case.body:
                case.body[key] = NOWHERE
    if case.path == "/api/requests/wait" and isinstance(case.query, dict):
        case.query["timeout"] = 0  # answer at once: whether it waits is tested elsewhere
    case.call_and_validate(
        base_url=fuzzed_server.url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
        ],
    )


@pytest.mark.live
def test_the_reference_page_reads_the_document(client) -> None:
    page = client.get("/reference")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<code>GET /api/requests/wait</code>" in html
    assert 'href="#schema-WaitResult"' in html and 'id="schema-ListedRequest"' in html
    assert "integer (minimum 1, maximum 1000)" in html  # count's bounds, as checked
    assert "<script" not in html  # nothing to run: the CSP allows no inline script anyway
