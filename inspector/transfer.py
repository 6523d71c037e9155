"""Export and import captured requests: JSON Lines fixtures, HAR 1.2, and curl commands.

**JSON Lines** (``export --format jsonl``) is the round-trip format: one request per line,
oldest first, with every stored field — headers as ordered ``[name, value]`` pairs, bodies
as base64, ``received_at``/``received_ts``, query, client, signature verdict and the answer
the inspector gave. ``import`` writes each line as a new request (new id; the file's id is
kept as ``original_id``), in file order, so captured events become fixtures in a repository
and come back byte for byte.

**HAR 1.2** (``--format har``) opens in browser dev tools: the request with ``postData``
(text, or base64 with ``"encoding": "base64"`` for binary bodies) and, as the response, what
the inspector answered. Inspector fields ride along as ``_id``, ``_endpoint``, ``_signature``.
"""

from __future__ import annotations

import base64
import contextlib
import http
import json
import re
import shlex
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TypedDict, TypeVar
from urllib.parse import parse_qsl

from inspector import __version__
from inspector.capture import ENDPOINT_RE, header_value
from inspector.errors import BadRequest
from inspector.replay import strip_hop_by_hop
from inspector.store import Store, replays
from inspector.store.replays import StoredRequest
from inspector.store.requests import (
    ConnectionTls,
    HeaderPairs,
    RequestDetail,
    SignatureVerdict,
    SqlValue,
)

FORMAT = "webhook-inspector/1"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
FORMATS = ("jsonl", "har")
PAGE = 200
IMPORT_BATCH = 500

T = TypeVar("T")
# An imported line as ``replays.import_rows`` writes it: its columns, and its body.
ImportRow = tuple[dict[str, SqlValue], bytes]
# HAR is written, never read back: its objects are only ever handed to ``json.dumps``.
HarObject = dict[str, object]


class ExportedAnswer(TypedDict):
    """What the inspector answered, in a JSON Lines record."""

    status: int | None
    headers: HeaderPairs
    body_base64: str
    ms: float | None
    delay_ms: float | None
    dropped: bool
    client_gave_up_after_ms: float | None


class ExportRecord(TypedDict):
    """One request as a line of the JSON Lines export (``FORMAT``)."""

    format: str
    id: int
    endpoint: str
    method: str
    path: str
    query: str
    headers: HeaderPairs
    body_base64: str
    client: str | None
    received_at: str
    received_ts: float
    size: int
    content_type: str | None
    truncated: bool
    note: str | None
    event_key: str | None
    event_type: str | None
    attempt: int
    first_attempt_id: int | None
    original_id: int | None
    signature: SignatureVerdict | None
    tls: ConnectionTls | None
    response: ExportedAnswer


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pairs_of(text: str | None) -> HeaderPairs:
    """A JSON headers column (``[[name, value], ...]``; the store wrote it)."""
    pairs: HeaderPairs = json.loads(text) if text else []
    return pairs


def _verdict_of(text: str | None) -> SignatureVerdict | None:
    """The JSON signature column (``signatures.Verdict.to_dict``; the store wrote it)."""
    verdict: SignatureVerdict | None = json.loads(text) if text else None
    return verdict


# -- export ----------------------------------------------------------------------------------


def record(row: StoredRequest, body: bytes) -> ExportRecord:
    """One request as a JSON Lines record (from ``replays.export_page``'s row)."""
    return {
        "format": FORMAT,
        "id": row["id"],
        "endpoint": row["endpoint"],
        "method": row["method"],
        "path": row["path"],
        "query": row["query"],
        "headers": _pairs_of(row["headers"]),
        "body_base64": _b64(body),
        "client": row["client"],
        "received_at": row["received_at"],
        "received_ts": row["received_ts"],
        "size": row["size"],
        "content_type": row["content_type"],
        "truncated": bool(row["truncated"]),
        "note": row["note"],
        "event_key": row["event_key"],
        "event_type": row["event_type"],
        "attempt": row["attempt"],
        "first_attempt_id": row["first_attempt_id"],
        "original_id": row["original_id"],
        "signature": _verdict_of(row["signature"]),
        "tls": _tls(row["tls_version"], row["tls_server_name"]),
        "response": {
            "status": row["response_status"],
            "headers": _pairs_of(row["response_headers"]),
            "body_base64": _b64(row["response_body"] or b""),
            "ms": row["response_ms"],
            "delay_ms": row["delay_ms"],
            "dropped": bool(row["dropped"]),
            "client_gave_up_after_ms": row["client_gave_up_after_ms"],
        },
    }


def _tls(version: str | None, server_name: str | None) -> ConnectionTls | None:
    return {"version": version, "server_name": server_name} if version else None


def records_sync(store: Store, endpoint: str | None) -> Iterator[ExportRecord]:
    """Every request (of ``endpoint``), oldest first, a page at a time (CLI)."""
    after = 0
    while True:
        page = store.read_sync(replays.export_page, endpoint, after, PAGE)
        for row, body in page:
            yield record(row, body)
        if len(page) < PAGE:
            return
        after = page[-1][0]["id"]


async def records(store: Store, endpoint: str | None) -> AsyncIterator[ExportRecord]:
    """``records_sync`` for the server: each page is read in a worker thread."""
    after = 0
    while True:
        page = await store.read(replays.export_page, endpoint, after, PAGE)
        for row, body in page:
            yield record(row, body)
        if len(page) < PAGE:
            return
        after = page[-1][0]["id"]


def jsonl_line(rec: ExportRecord) -> bytes:
    return json.dumps(rec).encode("ascii") + b"\n"


def har_head() -> bytes:
    creator = {"name": "webhook-inspector", "version": __version__}
    head = json.dumps({"version": "1.2", "creator": creator, "pages": []})
    return b'{"log": ' + head[:-1].encode("ascii") + b', "entries": [\n'


HAR_TAIL = b"\n]}}\n"


def _content(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"text": _b64(data), "encoding": "base64"}


def _pairs(headers: Iterable[list[str] | tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in headers]


def har_entry(rec: ExportRecord) -> HarObject:
    """A JSON Lines record as a HAR 1.2 entry."""
    headers = [(n, v) for n, v in rec["headers"]]
    host = header_value(headers, "host") or "localhost"
    scheme = "https" if rec.get("tls") else "http"
    url = f"{scheme}://{host}{rec['path']}" + (f"?{rec['query']}" if rec["query"] else "")
    body = base64.b64decode(rec["body_base64"])
    request: HarObject = {
        "method": rec["method"],
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _pairs(headers),
        "queryString": _pairs(parse_qsl(rec["query"], keep_blank_values=True)),
        "headersSize": -1,
        "bodySize": len(body),
    }
    if body or rec["method"] in ("POST", "PUT", "PATCH"):
        request["postData"] = {"mimeType": rec["content_type"] or "", **_content(body)}
    answer = rec["response"]
    answer_headers = [(n, v) for n, v in answer["headers"]]
    answer_body = base64.b64decode(answer["body_base64"])
    status = answer["status"] or 0
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    response: HarObject = {
        "status": status,
        "statusText": phrase,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _pairs(answer_headers),
        "content": {
            "size": len(answer_body),
            "mimeType": header_value(answer_headers, "content-type") or "",
            **_content(answer_body),
        },
        "redirectURL": header_value(answer_headers, "location") or "",
        "headersSize": -1,
        "bodySize": len(answer_body),
    }
    if answer["dropped"]:
        response["_error"] = "dropped: the inspector closed the connection without an answer"
    ms = answer["ms"] or 0
    return {
        "startedDateTime": rec["received_at"],
        "time": ms,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": 0,
            "wait": ms,
            "receive": 0,
        },
        "_id": rec["id"],
        "_endpoint": rec["endpoint"],
        "_signature": rec["signature"],
    }


def export_chunks(items: Iterable[ExportRecord], fmt: str) -> Iterator[bytes]:
    """The export file, a piece at a time."""
    if fmt == "jsonl":
        for rec in items:
            yield jsonl_line(rec)
        return
    yield har_head()
    for index, rec in enumerate(items):
        yield (b",\n" if index else b"") + json.dumps(har_entry(rec)).encode("ascii")
    yield HAR_TAIL


async def export_stream(store: Store, endpoint: str | None, fmt: str) -> AsyncIterator[bytes]:
    """``export_chunks`` for the server, reading the store a page at a time."""
    if fmt == "har":
        yield har_head()
    index = 0
    async for rec in records(store, endpoint):
        if fmt == "jsonl":
            yield jsonl_line(rec)
        else:
            yield (b",\n" if index else b"") + json.dumps(har_entry(rec)).encode("ascii")
        index += 1
    if fmt == "har":
        yield HAR_TAIL


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadRequest(f"format: one of {', '.join(FORMATS)}, got {fmt[:20]!r}.")
    return fmt


# -- import ----------------------------------------------------------------------------------


def _optional(
    obj: Mapping[str, object], name: str, kind: type[T] | tuple[type[T], ...], line: int
) -> T | None:
    """``obj[name]`` if it is a ``kind`` (never a bool for a number), None if absent."""
    value = obj.get(name)
    if value is None:
        return None
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise BadRequest(f"line {line}: {name} has the wrong type.", error="invalid_import")
    return value


def _required(
    obj: Mapping[str, object], name: str, kind: type[T] | tuple[type[T], ...], line: int
) -> T:
    value = _optional(obj, name, kind, line)
    if value is None:
        raise BadRequest(f"line {line}: {name} is missing.", error="invalid_import")
    return value


def _header_pairs(value: object, name: str, line: int) -> list[list[str]]:
    """Ordered ``[name, value]`` pairs of latin-1 text (what a capture holds)."""
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(_latin1(s) for s in p) for p in value
    ):
        raise BadRequest(
            f"line {line}: {name} must be [name, value] pairs of latin-1 text.",
            error="invalid_import",
        )
    return value


def _latin1(value: object) -> bool:
    return isinstance(value, str) and all(ord(ch) <= 0xFF for ch in value)


def _bytes(value: object, name: str, line: int) -> bytes:
    text = value or ""
    if isinstance(text, str):
        with contextlib.suppress(ValueError):
            return base64.b64decode(text, validate=True)
    raise BadRequest(f"line {line}: {name} is not base64.", error="invalid_import")


def _method(value: str, line: int) -> str:
    if not _TOKEN.fullmatch(value):
        raise BadRequest(f"line {line}: method {value[:20]!r} is not an HTTP method.")
    return value


def columns(obj: object, line: int, endpoint: str | None = None) -> ImportRow:
    """A JSON Lines record as the columns ``replays.import_rows`` writes, and its body."""
    if not isinstance(obj, Mapping):
        raise BadRequest(f"line {line}: not a JSON object.", error="invalid_import")
    name = endpoint or _required(obj, "endpoint", str, line)
    if not ENDPOINT_RE.fullmatch(name):
        raise BadRequest(f"line {line}: invalid endpoint name {name[:80]!r}.")
    headers = _header_pairs(obj.get("headers"), "headers", line)
    body = _bytes(obj.get("body_base64"), "body_base64", line)
    answer = obj.get("response") or {}
    if not isinstance(answer, Mapping):
        raise BadRequest(f"line {line}: response must be an object.", error="invalid_import")
    signature = obj.get("signature")
    if signature is not None and not isinstance(signature, Mapping):
        raise BadRequest(f"line {line}: signature must be an object.", error="invalid_import")
    tls = obj.get("tls") or {}
    if not isinstance(tls, Mapping):
        raise BadRequest(f"line {line}: tls must be an object or null.", error="invalid_import")
    number = (int, float)
    cols: dict[str, SqlValue] = {
        "endpoint": name,
        "method": _method(_required(obj, "method", str, line), line),
        "path": _required(obj, "path", str, line),
        "query": _optional(obj, "query", str, line) or "",
        "headers": json.dumps(headers),
        "client": _optional(obj, "client", str, line),
        "received_at": _required(obj, "received_at", str, line),
        "received_ts": _optional(obj, "received_ts", number, line) or 0.0,
        "size": _optional(obj, "size", int, line) or len(body),
        "content_type": _optional(obj, "content_type", str, line),
        "truncated": int(bool(obj.get("truncated"))),
        "note": _optional(obj, "note", str, line),
        "event_key": _optional(obj, "event_key", str, line),
        "event_type": _optional(obj, "event_type", str, line),
        "attempt": _optional(obj, "attempt", int, line) or 1,
        "first_attempt_id": _optional(obj, "first_attempt_id", int, line),
        "signature": json.dumps(signature) if signature is not None else None,
        "sig_status": signature.get("status") if signature is not None else None,
        "response_status": _optional(answer, "status", int, line),
        "response_headers": json.dumps(
            _header_pairs(answer.get("headers") or [], "response.headers", line)
        ),
        "response_body": _bytes(answer.get("body_base64"), "response.body_base64", line),
        "response_ms": _optional(answer, "ms", number, line),
        "delay_ms": _optional(answer, "delay_ms", number, line),
        "dropped": int(bool(answer.get("dropped"))),
        "client_gave_up_after_ms": _optional(answer, "client_gave_up_after_ms", number, line),
        "in_progress": 0,  # an export taken during a stall: it will not finish here
        "original_id": _optional(obj, "id", int, line),
        "tls_version": _optional(tls, "version", str, line),
        "tls_server_name": _optional(tls, "server_name", str, line),
    }
    return cols, body


def parse_lines(lines: Iterable[bytes], endpoint: str | None = None) -> Iterator[ImportRow]:
    """Parse a JSON Lines export; ``BadRequest`` names the first bad line."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if number == 1 and (line.strip() == b"{" or b'"log"' in line[:100]):
            raise BadRequest(
                "This looks like a HAR file: import reads the JSON Lines export "
                "(export --format jsonl).",
                error="invalid_import",
            )
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise BadRequest(f"line {number}: not JSON ({exc}).", error="invalid_import") from None
        yield columns(obj, number, endpoint)


def import_sync(store: Store, lines: Iterable[bytes], endpoint: str | None = None) -> list[int]:
    """Import a JSON Lines export through ``Store.write_sync`` in batches; the new ids.

    Each batch is one transaction: a bad line stops the import, and the batches before it
    stay imported (the error names the line).
    """
    ids: list[int] = []
    id_map: dict[int, int] = {}
    batch: list[ImportRow] = []
    for row in parse_lines(lines, endpoint):
        batch.append(row)
        if len(batch) >= IMPORT_BATCH:
            ids += store.write_sync(replays.import_rows, batch, id_map).ids
            batch = []
    if batch:
        ids += store.write_sync(replays.import_rows, batch, id_map).ids
    return ids


# -- curl ------------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


_ESCAPED = re.compile(r"[\\'!]")


def ansi_c(data: bytes, *, utf8: bool) -> str:
    """Bash/zsh ``$'...'`` quoting of exact bytes.

    Printable characters stay (UTF-8 text as characters when ``utf8``); everything else is
    ``\\xHH``. ``'`` and ``!`` are escaped too, so no history expansion or quote confusion.
    """
    named = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    text = data.decode("utf-8") if utf8 else data.decode("latin-1")
    if text.isprintable() and (utf8 or text.isascii()) and not _ESCAPED.search(text):
        return f"$'{text}'"  # nothing to escape: no loop over (megabytes of) characters
    out = ["$'"]
    for ch in text:
        if ch in named:
            out.append(named[ch])
        elif ch in "'!" or not ch.isprintable() or (not utf8 and ord(ch) > 0x7E):
            raw = ch.encode("utf-8") if utf8 else ch.encode("latin-1")
            out.append("".join(f"\\x{b:02x}" for b in raw))
        else:
            out.append(ch)
    out.append("'")
    return "".join(out)


def shell_quote(text: str) -> str:
    """Quote latin-1 text (a header or URL) so the shell passes its exact bytes."""
    if _PLAIN.fullmatch(text):
        return text
    if text.isascii() and text.isprintable() and "'" not in text and "!" not in text:
        return shlex.quote(text)
    return ansi_c(text.encode("latin-1", "replace"), utf8=False)


def is_text(body: bytes) -> bool:
    """Whether ``body`` can go inline in a ``$'...'`` (UTF-8 without NUL)."""
    if b"\x00" in body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Longest body that goes inline in a curl command: Linux refuses a single argument over
# 128 KiB (MAX_ARG_STRLEN), and quoting can double a body's length.
INLINE_LIMIT = 64 * 1024


def curl_command(detail: RequestDetail, url: str, *, body_url: str) -> str:
    """A curl command that sends the captured request to ``url``.

    Headers in order, minus hop-by-hop, ``Host`` and ``Content-Length`` (curl sets them);
    curl's own ``User-Agent``, ``Accept`` and form ``Content-Type`` are suppressed when the
    capture had none. A text body up to ``INLINE_LIMIT`` goes inline, byte for byte; a
    binary or longer one is read from ``request-ID.bin``, which ``body_url`` downloads (so
    ``detail`` need only carry the body's first ``INLINE_LIMIT + 1`` bytes).
    """
    method = detail["method"]
    headers = [(n, v) for n, v in strip_hop_by_hop([(n, v) for n, v in detail["headers"]])]
    headers = [(n, v) for n, v in headers if n.lower() not in ("host", "content-length")]
    names = {n.lower() for n, _ in headers}
    body = base64.b64decode(detail["body_base64"])
    had_length = any(n.lower() == "content-length" for n, _ in detail["headers"])
    send_body = bool(body) or (had_length and method not in ("GET", "HEAD"))
    lines: list[str] = []
    first = ["curl"]
    if method == "HEAD":
        first.append("--head")
    elif not (method == "GET" and not send_body) and not (method == "POST" and send_body):
        first += ["-X", shell_quote(method)]
    first.append(shell_quote(url))
    parts = [" ".join(first)]
    # curl reads "Name:" (empty value) as "remove this header"; "Name;" sends it empty.
    parts += [f"-H {shell_quote(f'{n}: {v}' if v else f'{n};')}" for n, v in headers]
    for name, display in (("user-agent", "User-Agent"), ("accept", "Accept")):
        if name not in names:
            parts.append(f"-H {shell_quote(display + ':')}")
    if send_body:
        if "content-type" not in names:
            parts.append(f"-H {shell_quote('Content-Type:')}")
        if len(body) <= INLINE_LIMIT and is_text(body):
            parts.append(f"--data-binary {ansi_c(body, utf8=True)}")
        else:
            filename = f"request-{detail['id']}.bin"
            what = "binary" if len(body) <= INLINE_LIMIT else "too long for a command line"
            lines += [
                f"# The body is {what} ({detail['size']} bytes): save it next to this command "
                "first:",
                f"#   curl -o {filename} {shell_quote(body_url)}",
            ]
            parts.append(f"--data-binary @{filename}")
    lines.append(" \\\n  ".join(parts))
    return "\n".join(lines) + "\n"
