"""webhook-inspector: a local webhook inspector and tunnel-free test server."""

from __future__ import annotations

__version__ = "0.1.0"
