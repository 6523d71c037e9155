"""What differs between two requests: the request line, the query, the headers, the body.

    result = diff(side_a, side_b, ignore_key_order=False)   # a RequestDiff (JSON-shaped)

A ``Side`` is a captured request (``captured``) or what a replay sent (``replayed``). Each
part is compared the way it is read: the query and form bodies by field name (values in order,
duplicates kept), headers by name (case-insensitive) and by the order they came in, JSON
bodies by path (``$.data.items[2]``; a different key order is a change of its own unless
``ignore_key_order``), other UTF-8 text by line, and anything else byte by byte (the first
differing range, in hex). When the bodies are the same JSON or the same form in different
bytes, the note says so: a signature over one does not match the other.

Pure and bounded: bodies over ``MAX_PARSED`` bytes and text over ``MAX_LINES`` lines are
compared as bytes, JSON values nested deeper than ``MAX_DEPTH`` as a whole; at most
``MAX_CHANGES`` changes are listed per part (``more`` counts the rest); values are cut to
``MAX_VALUE`` characters.
"""

from __future__ import annotations

import base64
import difflib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypedDict
from urllib.parse import parse_qsl, urlsplit

from inspector.store.replays import ReplayDetail
from inspector.store.requests import RequestDetail

MAX_PARSED = 1024 * 1024  # bytes per body read as JSON, a form or text lines
MAX_LINES = 2000  # lines per text body diffed line by line (difflib is quadratic at worst)
MAX_DEPTH = 64  # JSON nesting followed; deeper values are compared whole
MAX_CHANGES = 200  # changes listed per part
MAX_VALUE = 240  # characters of a value shown
WINDOW = 24  # bytes shown from the first byte-level difference

ADDED, REMOVED, CHANGED, MOVED = "added", "removed", "changed", "moved"
SAME_JSON = (
    "The same JSON in different bytes (spacing, escapes, number spelling or key order): "
    "a signature over one does not match the other."
)
SAME_FORM = (
    "The same form fields in different bytes (+ or %20, escapes or field order): a signature "
    "over one does not match the other."
)


@dataclass(frozen=True)
class Side:
    """One side of a diff: a captured request, or what a replay sent."""

    label: str  # "#12", "replay #3 of #12"
    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    content_type: str | None = None


def captured(detail: RequestDetail) -> Side:
    """A captured request as a side of a diff."""
    return Side(
        label=f"#{detail['id']}",
        method=detail["method"],
        path=detail["path"],
        query=detail["query"],
        headers=[(name, value) for name, value in detail["headers"]],
        body=base64.b64decode(detail["body_base64"]),
        content_type=detail["content_type"],
    )


def replayed(replay: ReplayDetail) -> Side:
    """What a replay, mirror or proxy exchange sent, as a side of a diff."""
    url = urlsplit(replay["url"])
    headers = [(name, value) for name, value in replay["request_headers"]]
    types = [value for name, value in headers if name.lower() == "content-type"]
    return Side(
        label=f"{replay['kind']} #{replay['id']} of #{replay['request_id']}",
        method=replay["method"],
        path=url.path or "/",
        query=url.query,
        headers=headers,
        body=base64.b64decode(replay["request_body_base64"]),
        content_type=types[0] if types else None,
    )


class Change(TypedDict):
    """One difference: where (a name, a JSON path, a line), what kind, and both values."""

    where: str
    kind: str  # added | removed | changed | moved (the same names in another order)
    a: str | None  # the value in A (None: absent); several values one per line
    b: str | None


class HeaderDiff(TypedDict):
    changes: list[Change]  # by lower-case name: added, removed, changed values (all of them)
    order_changed: bool  # the names both carry come in another order
    order_a: list[str]  # header names in the order they first appear
    order_b: list[str]


class ByteRange(TypedDict):
    """Where the bytes differ: after the common prefix, before the common suffix."""

    offset: int  # the first differing byte
    a_end: int  # the differing range ends here in A (exclusive)
    b_end: int
    a_hex: str  # up to WINDOW bytes of A from ``offset``, in hex
    b_hex: str


class BodyDiff(TypedDict):
    mode: str  # same | json | form | text | bytes
    equal: bool  # byte for byte
    size_a: int
    size_b: int
    note: str | None  # one sentence on what the comparison shows or could not do
    changes: list[Change]
    more: int  # changes past MAX_CHANGES, not listed
    bytes: ByteRange | None  # None when equal


class RequestDiff(TypedDict):
    """``GET /api/requests/{a}/diff/{b}``: what differs from A to B."""

    a: str  # labels of the two sides
    b: str
    equal: bool  # nothing differs, byte for byte
    ignore_key_order: bool
    line: list[Change]  # method, path, query (as sent)
    query: list[Change]  # by parameter name
    more_query: int
    headers: HeaderDiff
    body: BodyDiff


def diff(a: Side, b: Side, *, ignore_key_order: bool = False) -> RequestDiff:
    """Everything that differs from ``a`` to ``b``."""
    line = [
        _change(field, x, y)
        for field, x, y in (("method", a.method, b.method), ("path", a.path, b.path))
        if x != y
    ]
    if a.query != b.query:
        line.append(_change("query", a.query or None, b.query or None))
    query, _ = _by_name(_query_pairs(a.query), _query_pairs(b.query))
    headers = _headers(a.headers, b.headers)
    body = _body(a, b, ignore_key_order)
    equal = not line and not headers["changes"] and not headers["order_changed"] and body["equal"]
    return {
        "a": a.label,
        "b": b.label,
        "equal": equal,
        "ignore_key_order": ignore_key_order,
        "line": line,
        "query": query[:MAX_CHANGES],
        "more_query": max(0, len(query) - MAX_CHANGES),
        "headers": headers,
        "body": body,
    }


# -- names and values ------------------------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _change(where: str, a: str | None, b: str | None) -> Change:
    kind = ADDED if a is None else REMOVED if b is None else CHANGED
    return {
        "where": where,
        "kind": kind,
        "a": None if a is None else _cut(a),
        "b": None if b is None else _cut(b),
    }


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Values by name, in order; the dict keeps the order names first appear in."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _by_name(
    a_pairs: Sequence[tuple[str, str]], b_pairs: Sequence[tuple[str, str]]
) -> tuple[list[Change], bool]:
    """Changes by name (several values one per line), and whether the names both sides
    carry come in another order."""
    a, b = _grouped(a_pairs), _grouped(b_pairs)
    changes: list[Change] = []
    for name in [*a, *(n for n in b if n not in a)]:
        x, y = a.get(name), b.get(name)
        if x != y:
            changes.append(
                _change(
                    name, None if x is None else "\n".join(x), None if y is None else "\n".join(y)
                )
            )
    shared_a = [n for n in a if n in b]
    shared_b = [n for n in b if n in a]
    return changes, shared_a != shared_b


def _headers(a: Sequence[tuple[str, str]], b: Sequence[tuple[str, str]]) -> HeaderDiff:
    a_pairs = [(name.lower(), value) for name, value in a]
    b_pairs = [(name.lower(), value) for name, value in b]
    changes, reordered = _by_name(a_pairs, b_pairs)
    return {
        "changes": changes,
        "order_changed": reordered,
        "order_a": list(_grouped(a_pairs)),
        "order_b": list(_grouped(b_pairs)),
    }


# -- bodies ----------------------------------------------------------------------------------


def _body(a: Side, b: Side, ignore_key_order: bool) -> BodyDiff:
    equal = a.body == b.body
    mode, changes, note = ("same", [], None) if equal else _compare(a, b, ignore_key_order)
    return {
        "mode": mode,
        "equal": equal,
        "size_a": len(a.body),
        "size_b": len(b.body),
        "note": note,
        "changes": changes[:MAX_CHANGES],
        "more": max(0, len(changes) - MAX_CHANGES),
        "bytes": None if equal else byte_range(a.body, b.body),
    }


def _compare(a: Side, b: Side, ignore_key_order: bool) -> tuple[str, list[Change], str | None]:
    """How two different bodies are compared (mode), the changes found, and a note."""
    if max(len(a.body), len(b.body)) > MAX_PARSED:
        return "bytes", [], f"Bodies over {MAX_PARSED // 1024} KiB are compared byte by byte."
    a_json, b_json = _json(a.body), _json(b.body)
    if a_json is not _NOT_JSON and b_json is not _NOT_JSON:
        try:
            changes = list(_json_changes(a_json, b_json, "$", ignore_key_order, 0))
        except RecursionError:  # a deep value compared or shown whole
            return "bytes", [], "JSON nested too deeply to compare by path: compared as bytes."
        return "json", changes, None if changes else SAME_JSON
    a_form = _form(a.body) if _is_form(a) or _is_form(b) else None
    b_form = _form(b.body) if a_form is not None else None
    if a_form is not None and b_form is not None:
        changes, reordered = _by_name(a_form, b_form)
        if reordered:
            order = ", ".join(_grouped(a_form)), ", ".join(_grouped(b_form))
            changes.insert(0, {"where": "field order", "kind": MOVED, "a": order[0], "b": order[1]})
        return "form", changes, None if changes else SAME_FORM
    try:
        a_text, b_text = a.body.decode("utf-8"), b.body.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes", [], None
    a_lines, b_lines = a_text.splitlines(keepends=True), b_text.splitlines(keepends=True)
    if max(len(a_lines), len(b_lines)) > MAX_LINES:
        return "bytes", [], f"Text over {MAX_LINES} lines is compared byte by byte."
    return "text", list(_line_changes(a_lines, b_lines)), None


def byte_range(a: bytes, b: bytes) -> ByteRange:
    """The range where ``a`` and ``b`` differ: after their common prefix, before their common
    suffix (which does not overlap it). Linear, and a block at a time where they agree."""
    size, block = min(len(a), len(b)), 4096
    prefix = 0
    while prefix + block <= size and a[prefix : prefix + block] == b[prefix : prefix + block]:
        prefix += block
    while prefix < size and a[prefix] == b[prefix]:
        prefix += 1
    room, suffix = size - prefix, 0
    while (
        suffix + block <= room
        and a[len(a) - suffix - block : len(a) - suffix]
        == b[len(b) - suffix - block : len(b) - suffix]
    ):
        suffix += block
    while suffix < room and a[len(a) - suffix - 1] == b[len(b) - suffix - 1]:
        suffix += 1
    return {
        "offset": prefix,
        "a_end": len(a) - suffix,
        "b_end": len(b) - suffix,
        "a_hex": a[prefix : prefix + WINDOW].hex(" "),
        "b_hex": b[prefix : prefix + WINDOW].hex(" "),
    }


# -- JSON ------------------------------------------------------------------------------------

_NOT_JSON = object()
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _json(body: bytes) -> object:
    """The body's JSON value, or ``_NOT_JSON`` (not UTF-8 JSON, NaN/Infinity, too deep)."""
    if not body.strip():
        return _NOT_JSON
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{_show(key)}]"


def _same_scalar(a: object, b: object) -> bool:
    # JSON true is not 1 (Python says it is); 1 and 1.0 are the same number.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _json_changes(
    a: object, b: object, path: str, ignore_order: bool, depth: int
) -> Iterator[Change]:
    if isinstance(a, dict) and isinstance(b, dict) and depth < MAX_DEPTH:
        if not ignore_order:
            shared_a = [k for k in a if k in b]
            shared_b = [k for k in b if k in a]
            if shared_a != shared_b:
                yield {
                    "where": path,
                    "kind": MOVED,
                    "a": _cut(", ".join(shared_a)),
                    "b": _cut(", ".join(shared_b)),
                }
        for key in [*a, *(k for k in b if k not in a)]:
            where = _key_path(path, key)
            if key not in b:
                yield _change(where, _show(a[key]), None)
            elif key not in a:
                yield _change(where, None, _show(b[key]))
            else:
                yield from _json_changes(a[key], b[key], where, ignore_order, depth + 1)
    elif isinstance(a, list) and isinstance(b, list) and depth < MAX_DEPTH:
        for index in range(max(len(a), len(b))):
            where = f"{path}[{index}]"
            if index >= len(b):
                yield _change(where, _show(a[index]), None)
            elif index >= len(a):
                yield _change(where, None, _show(b[index]))
            else:
                yield from _json_changes(a[index], b[index], where, ignore_order, depth + 1)
    elif isinstance(a, dict | list) or isinstance(b, dict | list):
        if not (type(a) is type(b) and a == b):
            yield _change(path, _show(a), _show(b))
    elif not _same_scalar(a, b):
        yield _change(path, _show(a), _show(b))


# -- forms and text --------------------------------------------------------------------------


def _is_form(side: Side) -> bool:
    return "application/x-www-form-urlencoded" in (side.content_type or "").lower()


def _form(body: bytes) -> list[tuple[str, str]] | None:
    """The fields of a form body, or None if it does not read as one."""
    try:
        text = body.decode("ascii")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        return None


def _lines_label(start: int, end: int) -> str:
    return f"line {start + 1}" if end - start <= 1 else f"lines {start + 1}-{end}"


def _line_changes(a: Sequence[str], b: Sequence[str]) -> Iterator[Change]:
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        a_text = "".join(a[i1:i2]) if i2 > i1 else None
        b_text = "".join(b[j1:j2]) if j2 > j1 else None
        where = _lines_label(i1, i2) if i2 > i1 else f"after line {i1}" if i1 else "at the start"
        if tag == "insert":
            where = _lines_label(j1, j2) + " of B"
        yield _change(where, a_text, b_text)
