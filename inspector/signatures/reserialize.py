"""The JSON re-serializations a sender may have signed instead of the bytes it sent.

The platform's own sample verifier HMACs ``JSON.stringify(req.body)``; Python senders often
sign ``json.dumps(payload)`` and then send different bytes. Used by the doctor only, never
on the verification path (which stays over the raw bytes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAX_JSON_BODY = 1024 * 1024  # parsing and re-encoding cost several times the body size


def reserialized(body: bytes) -> list[tuple[str, bytes]]:
    """The body as a JavaScript sender (``JSON.stringify``) and a Python sender
    (``json.dumps`` defaults) would re-serialize it; nothing if it is not JSON or too big."""
    if len(body) > MAX_JSON_BODY:
        return []
    try:
        value = json.loads(body, parse_constant=_refuse)  # JSON.parse refuses NaN too
    except (ValueError, RecursionError):
        return []
    variants: list[tuple[str, bytes]] = []
    serializers: list[tuple[str, Callable[[], bytes]]] = [
        (
            "compact",
            lambda: json.dumps(_js_like(value), separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8"
            ),
        ),
        ("python", lambda: json.dumps(value).encode("ascii")),
    ]
    for kind, serialize in serializers:
        try:
            variants.append((kind, serialize()))
        except (ValueError, RecursionError):  # UnicodeEncodeError: a lone surrogate
            continue
    return variants


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _js_like(value: Any) -> Any:
    """Approximate JSON.stringify: integral floats print without ".0", and integer-like
    object keys come first in ascending order (JavaScript property order)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, list):
        return [_js_like(v) for v in value]
    if isinstance(value, dict):
        indexes = sorted((k for k in value if _is_index(k)), key=int)
        rest = [k for k in value if not _is_index(k)]
        return {k: _js_like(value[k]) for k in indexes + rest}
    return value


def _is_index(key: str) -> bool:
    if not (key.isascii() and key.isdigit() and len(key) <= 10):
        return False
    return (key == "0" or key[0] != "0") and int(key) < 2**32 - 1
