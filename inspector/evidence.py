"""What a test reads: a ``Capture`` (a request the inspector captured, and its answer) and a
``Delivery`` (an event the inspector sent, with its attempts), made from the API's records.
``inspector.testing`` hands them out and re-exports them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from inspector.store.deliveries import AttemptDetail, DeliveryDetail
from inspector.store.requests import RequestDetail


@dataclass(frozen=True)
class Signature:
    """The verdict on a capture's signature; ``status`` is ``"none"`` when the endpoint had
    nothing to check (no secret, no signature header)."""

    status: str  # valid, invalid, malformed, missing, no_secret, expired, or none
    scheme: str | None = None
    reason: str = ""
    diagnosis: str | None = None  # why it failed, when it did
    doctor: str | None = None  # "pending" until the doctor has run (after the answer)


@dataclass(frozen=True)
class Answer:
    """What the inspector answered the sender."""

    status: int | None  # None: dropped, or the sender gave up first
    headers: tuple[tuple[str, str], ...]
    body: bytes
    ms: float | None
    delay_ms: float | None
    dropped: bool
    client_gave_up_after_ms: float | None  # the sender hung up during a delay after this long
    in_progress: bool


@dataclass(frozen=True)
class Capture:
    """One request as the inspector captured it: byte-exact body, headers in order."""

    id: int
    endpoint: str  # as the test named it
    method: str
    path: str  # as received, e.g. /h/t17.orders/sub
    query: str
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), in order, duplicates kept
    body: bytes
    signature: Signature
    event_key: str | None
    event_type: str | None
    attempt: int  # 1 for an event's first delivery, 2 for its first retry...
    received_at: str
    response: Answer

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key == wanted]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @classmethod
    def from_detail(cls, detail: RequestDetail, prefix: str) -> Capture:
        verdict = detail["signature"]
        answer = detail["response"]
        return cls(
            id=detail["id"],
            endpoint=detail["endpoint"].removeprefix(prefix),
            method=detail["method"],
            path=detail["path"],
            query=detail["query"],
            headers=tuple((k, v) for k, v in detail["headers"]),
            body=base64.b64decode(detail["body_base64"]),
            signature=Signature(**verdict) if verdict is not None else Signature("none"),
            event_key=detail["event_key"],
            event_type=detail["event_type"],
            attempt=detail["attempt"],
            received_at=detail["received_at"],
            response=Answer(
                status=answer["status"],
                headers=tuple((k, v) for k, v in answer["headers"]),
                body=base64.b64decode(answer["body_base64"]),
                ms=answer["ms"],
                delay_ms=answer["delay_ms"],
                dropped=answer["dropped"],
                client_gave_up_after_ms=answer["client_gave_up_after_ms"],
                in_progress=answer["in_progress"],
            ),
        )


@dataclass(frozen=True)
class Attempt:
    """One attempt of a delivery: what was sent and what the receiver answered."""

    number: int
    status: int | None  # None: no answer (see ``error``)
    ok: bool  # a 2xx without error
    error: str | None  # timeout, refused connection, redirect...
    elapsed_ms: float
    sent_at: str
    request_headers: tuple[tuple[str, str], ...]
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes

    @classmethod
    def from_detail(cls, a: AttemptDetail) -> Attempt:
        return cls(
            number=a["attempt"],
            status=a["status"],
            ok=a["ok"],
            error=a["error"],
            elapsed_ms=a["elapsed_ms"],
            sent_at=a["sent_at"],
            request_headers=tuple((k, v) for k, v in a["request_headers"]),
            response_headers=tuple((k, v) for k, v in a["response_headers"]),
            response_body=base64.b64decode(a["response_body_base64"]),
        )


@dataclass(frozen=True)
class Delivery:
    """An event the inspector sent as the platform would, with every attempt."""

    id: int
    event: str
    url: str
    state: str  # succeeded, failed, cancelled, or pending
    event_key: str | None
    body: bytes
    attempts: tuple[Attempt, ...]

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    @property
    def statuses(self) -> list[int | None]:
        return [a.status for a in self.attempts]

    @classmethod
    def from_detail(cls, d: DeliveryDetail) -> Delivery:
        return cls(
            id=d["id"],
            event=d["event"],
            url=d["url"],
            state=d["state"],
            event_key=d["event_key"],
            body=base64.b64decode(d["body_base64"]),
            attempts=tuple(Attempt.from_detail(a) for a in d["log"]),
        )
