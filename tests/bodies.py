"""Capture bodies shaped to make a naive renderer build millions of nodes: a JSON array of a
million numbers, an object of 500,000 keys, a form of a million fields, 100,000 multipart
parts (2 to 10 MB each).

The browser tests (``test_page_big``) check that they open a screenful at a time and
``bench/detail.py`` times their first render, on the same bytes. Standard library only, and
built on first use (a second or more of CPU), so that importing this module — as collecting a
test module does, once per xdist worker — costs nothing.
"""

from __future__ import annotations

import functools

Body = tuple[bytes, str]  # the bytes and their content type

HUGE = ("array", "object", "form", "multipart")


def _build(name: str) -> Body:
    if name == "array":
        return b"[" + b",".join(b"0" for _ in range(1_000_000)) + b"]", "application/json"
    if name == "object":
        text = "{" + ",".join(f'"k{i}":{i}' for i in range(500_000)) + "}"
        return text.encode(), "application/json"
    if name == "form":
        form = "&".join(f"f{i}=v" for i in range(1_000_000))
        return form.encode(), "application/x-www-form-urlencoded"
    if name == "multipart":
        parts = b"".join(
            b'--BB\r\nContent-Disposition: form-data; name="p%d"\r\n\r\nv\r\n' % i
            for i in range(100_000)
        )
        return parts + b"--BB--\r\n", "multipart/form-data; boundary=BB"
    raise ValueError(f"no huge body named {name!r}: {', '.join(HUGE)}")


@functools.cache
def huge_bodies() -> dict[str, Body]:
    """Every body of ``HUGE`` by name, built once per process."""
    return {name: _build(name) for name in HUGE}
