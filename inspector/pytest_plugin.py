"""The pytest plugin (registered through the ``pytest11`` entry point): fixtures that put a
real inspector in a test suite.

* ``webhook_inspector`` — a ``testing.WebhookInspector`` for the test: capture URLs,
  endpoint settings, ``wait_for`` captures, ``send`` events as the platform would.
* ``async_webhook_inspector`` — the same calls, awaitable (pytest-asyncio, anyio).
* ``webhook_inspector_server`` — the server itself (``embedded.EmbeddedServer``).

One server per test process — per worker under pytest-xdist — started on first use on a free
loopback port, with its own temporary data directory, and stopped at the end of the session.
Tests are isolated by endpoint names (see ``inspector.testing``), not by restarting or
clearing anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from inspector.embedded import EmbeddedServer
from inspector.settings import Settings
from inspector.testing import AsyncWebhookInspector, WebhookInspector


@pytest.fixture(scope="session")
def webhook_inspector_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """The inspector of this test process (of this xdist worker), started on first use."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    data_dir = tmp_path_factory.mktemp(f"webhook-inspector-{worker}")
    # NORMAL: a test store need not survive a power cut, and fsyncs slow every capture.
    settings = Settings(host="127.0.0.1", port=0, data_dir=data_dir, synchronous="NORMAL")
    server = EmbeddedServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def webhook_inspector(webhook_inspector_server: EmbeddedServer) -> Iterator[WebhookInspector]:
    """The inspector, as this test sees it: only its own endpoints and captures."""
    inspector = WebhookInspector(webhook_inspector_server.url)
    yield inspector
    inspector.close()


@pytest.fixture
def async_webhook_inspector(webhook_inspector_server: EmbeddedServer) -> AsyncWebhookInspector:
    """``webhook_inspector`` for async tests: the same calls, awaited."""
    return AsyncWebhookInspector(webhook_inspector_server.url)
