"""Events: which captured requests are deliveries of the same event, and how its retries went.

``event_key`` groups attempts (the sender's delivery id, else a body-derived id, else a
hash of the body); ``build_timeline`` compares the gaps between attempts with the sender's
retry schedule (the platform's 1, 5 and 30 minutes by default) and says what went wrong.

Key and type run on the capture hot path for every request, so JSON is only parsed when the
body looks like a JSON object of bounded size, and nothing here ever raises on odd input.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

import msgspec

from inspector.capture import utc_timestamp
from inspector.jsontypes import JSONValue

# Highest priority first; all compared lower-cased.
ID_HEADERS: tuple[str, ...] = (
    "webhook-id",  # Standard Webhooks (Svix and friends)
    "x-webhook-id",
    "x-github-delivery",
    "x-shopify-webhook-id",
)
_ID_RANK = {name: rank for rank, name in enumerate(ID_HEADERS)}
MAX_JSON = 1024 * 1024  # parsing bigger bodies costs more than a key is worth
MAX_KEY = 200
_BOM = b"\xef\xbb\xbf"
_SPACE = re.compile(rb"[ \t\r\n]*")

DEFAULT_SCHEDULE: tuple[float, ...] = (60.0, 300.0, 1800.0)  # the platform's retries
# Where a retry's wait counts from: the failed attempt's start, or its end (its answer, or
# the sender's timeout). The platform's document retries "1 minute after" the server
# *answered* non-2xx (如果你的伺服器回傳非 2xx 狀態碼,我們會自動重試 … 1 分鐘後): the
# failure is only known at the end, so the wait counts from there.
WAIT_FROM: tuple[str, ...] = ("start", "end")
DEFAULT_WAIT_FROM = "end"


# -- event identity ------------------------------------------------------------------------


def _looks_like_object(body: bytes) -> bool:
    if not body or len(body) > MAX_JSON:
        return False
    if body[0] == 0x7B:  # "{": nearly every JSON webhook, without the regex
        return True
    start = 3 if body.startswith(_BOM) else 0
    end = _SPACE.match(body, start)
    return end is not None and body[end.end() : end.end() + 1] == b"{"


def _json_loads(data: bytes) -> JSONValue:
    try:
        value: JSONValue = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return None
    return value


class _Members(msgspec.Struct):
    """The members of a JSON object that an event's key and type are made of. Decoding into
    it skips the others without building them (a third of the cost of the whole object on
    the capture path); ``data`` is kept as its raw JSON, read only for ``messageId``."""

    id: Any = None
    object_: Any = msgspec.field(default=None, name="object")
    event: Any = None
    type_: Any = msgspec.field(default=None, name="type")
    timestamp: Any = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _Data(msgspec.Struct):
    messageId: Any = None


_decode_members = msgspec.json.Decoder(_Members).decode
_decode_data = msgspec.json.Decoder(_Data).decode


class _Fields(msgspec.Struct, gc=False):
    """What the key and type read of a JSON object body (as ``obj.get`` would give it). A
    msgspec Struct for its constructor's speed (a frozen dataclass's costs more than the
    parse it saves)."""

    id: Any
    object_: Any  # "object"
    event: Any
    type_: Any  # "type"
    timestamp: Any
    message_id: Any  # ``data.messageId`` when ``data`` is an object, else None


def _fields(body: bytes) -> _Fields | None:
    """The members of a JSON object body that identify its event, or None; bounded and never
    raising. The same values as ``obj.get`` on the whole object parsed."""
    if not _looks_like_object(body):
        return None
    data = body[3:] if body.startswith(_BOM) else body
    try:
        members = _decode_members(data)
        raw = bytes(members.data)
        message_id = _decode_data(raw).messageId if raw[:1] == b"{" else None
    except (msgspec.DecodeError, RecursionError):
        # What msgspec refuses (NaN, lone surrogates, numbers beyond a double) json still
        # reads, as before.
        obj = _json_loads(data)
        if not isinstance(obj, dict):
            return None
        inner = obj.get("data")
        return _Fields(
            obj.get("id"),
            obj.get("object"),
            obj.get("event"),
            obj.get("type"),
            obj.get("timestamp"),
            inner.get("messageId") if isinstance(inner, dict) else None,
        )
    return _Fields(
        members.id,
        members.object_,
        members.event,
        members.type_,
        members.timestamp,
        message_id,
    )


def _storable(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate (JSON's ``"\\ud800"``) becomes its
    backslash escape, since neither SQLite nor a UTF-8 response can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _cap(key: str) -> str:
    key = _storable(key)
    if len(key) <= MAX_KEY:
        return key
    # Truncating alone would merge distinct long ids that share a prefix.
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{key[: MAX_KEY - 17]}~{digest}"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _body_key(obj: _Fields, stripe_signed: bool) -> str | None:
    event_id = _text(obj.id)
    if event_id is not None and (
        stripe_signed or (event_id.startswith("evt_") and obj.object_ == "event")
    ):
        return event_id
    event = _text(obj.event)
    if event is None:
        return None
    # The platform's dedup key: `${event.event}-${event.data.messageId || event.timestamp}`
    message_id = _text(obj.message_id)
    if message_id is not None:
        return f"{event}-{message_id}"
    timestamp = obj.timestamp
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        return f"{event}-{timestamp}"
    if _text(timestamp) is not None:
        return f"{event}-{timestamp}"
    return None  # "message.received-undefined" would merge unrelated events


def _type_of(obj: _Fields | None) -> str | None:
    if obj is None:
        return None
    found = _text(obj.event) or _text(obj.type_)
    return None if found is None else _storable(found)[:MAX_KEY]


def event_identity(headers: Sequence[tuple[str, str]], body: bytes) -> tuple[str, str | None]:
    """``(event_key(headers, body), event_type(body, None))`` parsing the body at most once."""
    best_rank = len(ID_HEADERS)
    best = ""
    stripe_signed = False
    for name, value in headers:
        lowered = name.lower()
        rank = _ID_RANK.get(lowered)
        if rank is not None and rank < best_rank:
            value = value.strip()
            if value:
                best_rank, best = rank, value
        elif lowered == "stripe-signature":
            stripe_signed = True
    obj = _fields(body)
    if best:
        return _cap(best), _type_of(obj)
    key = _body_key(obj, stripe_signed) if obj is not None else None
    if key is None:
        key = "sha256:" + hashlib.sha256(body).hexdigest()[:16]
    return _cap(key), _type_of(obj)


def event_key(headers: Sequence[tuple[str, str]], body: bytes) -> str:
    """The identity shared by every delivery attempt of one event.

    The first of: a delivery-id header (``webhook-id``, ``X-Webhook-Id``,
    ``X-GitHub-Delivery``, ``X-Shopify-Webhook-Id``, in that priority, first non-empty);
    a Stripe event id in a JSON body; the platform's ``{event}-{data.messageId or
    timestamp}``; else ``"sha256:"`` and 16 hex digits of the body's hash. At most 200
    characters.
    """
    return event_identity(headers, body)[0]


def event_type(body: bytes, content_type: str | None) -> str | None:
    """The JSON ``"event"`` (platform) or ``"type"`` (Stripe, others) string, else None.

    ``content_type`` is not trusted: senders often label JSON ``text/plain`` or not at all,
    so the body is sniffed with the same bounds as ``event_key``.
    """
    return _type_of(_fields(body))


# -- retry timeline ------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as captured. ``status`` is None while in progress or if dropped."""

    id: int
    received_at: float
    status: int | None
    dropped: bool = False
    client_gave_up_after_ms: float | None = None
    answered_after_ms: float | None = None  # how long the inspector took to answer it

    @property
    def ended_at(self) -> float:
        """When the sender had its outcome: the answer, or the moment it gave up."""
        took = self.client_gave_up_after_ms
        if took is None:
            took = self.answered_after_ms
        return self.received_at + (took or 0.0) / 1000

    @property
    def succeeded(self) -> bool:
        """The sender saw a 2xx: answered in time, not dropped."""
        return (
            self.status is not None
            and 200 <= self.status < 300
            and not self.dropped
            and self.client_gave_up_after_ms is None
        )


@dataclass(frozen=True)
class Interval:
    """The gap before one retry (or before a retry that has not come)."""

    attempt: int
    expected: float | None
    actual: float | None
    verdict: str  # "ok" | "early" | "late" | "missing" | "pending" | "unexpected"
    message: str


@dataclass(frozen=True)
class Timeline:
    """An event's attempts, the gaps between them judged against the schedule, and a verdict."""

    attempts: list[Attempt]
    intervals: list[Interval]
    succeeded: bool
    stopped: (
        str  # "succeeded" | "gave_up_after_schedule" | "kept_going" | "waiting" | "stopped_early"
    )
    summary: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``dataclasses.asdict``)."""
        return asdict(self)


def _secs(value: float) -> str:
    """61.2 s, 5.0 s, but 0.61 s: scaled schedules need the second decimal."""
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"


def _judge(attempt: int, actual: float, expected: float, dev: float, after: str) -> Interval:
    head = f"retried {_secs(actual)} s after {after}, expected {expected:g} s"
    if actual < expected - dev:
        verdict = "early"
        head += f" ({_secs(expected - actual)} s early, tolerance {dev:g} s)"
    elif actual > expected + dev:
        verdict = "late"
        head += f" ({_secs(actual - expected)} s late, tolerance {dev:g} s)"
    else:
        verdict = "ok"
    return Interval(attempt, expected, actual, verdict, f"{head}: {verdict}")


def _describe(attempt: Attempt) -> str:
    if attempt.dropped:
        return "dropped"
    if attempt.client_gave_up_after_ms is not None:
        return f"timed out after {_secs(attempt.client_gave_up_after_ms / 1000)} s"
    if attempt.status is None:
        return "in progress"
    return f"answered {attempt.status}"


def build_timeline(
    attempts: Sequence[Attempt],
    schedule: Sequence[float] = DEFAULT_SCHEDULE,
    *,
    now: float,
    tolerance: float = 0.1,
    min_tolerance: float = 1.0,
    wait_from: str = DEFAULT_WAIT_FROM,
) -> Timeline:
    """Judge an event's attempts against a retry ``schedule`` (seconds between attempts).

    Each wait is measured from the previous attempt's arrival (``wait_from="start"``) or
    from its end (``"end"``: when it was answered, or when the sender gave up, as the
    capture recorded it) to the next attempt's arrival. A gap is on time within
    ``max(min_tolerance, tolerance * expected)`` seconds. After a failed last attempt the
    next scheduled retry is "pending" until that window has passed, then "missing".
    Attempts beyond the schedule, or after a success (a duplicate delivery), are
    "unexpected".
    """
    ordered = sorted(attempts, key=lambda a: (a.received_at, a.id))
    if not ordered:
        return Timeline([], [], False, "waiting", "No attempt received yet.")

    def deviation(expected: float) -> float:
        return max(min_tolerance, tolerance * expected)

    def since(attempt: Attempt) -> float:
        return attempt.ended_at if wait_from == "end" else attempt.received_at

    def after(number: int) -> str:
        return f"attempt {number} {'ended' if wait_from == 'end' else 'started'}"

    intervals: list[Interval] = []
    duplicates = 0
    seen_success = ordered[0].succeeded
    for index in range(1, len(ordered)):
        previous, current = ordered[index - 1], ordered[index]
        number = index + 1
        actual = current.received_at - since(previous)
        if seen_success:
            duplicates += 1
            message = f"delivered again {_secs(actual)} s after a success: unexpected"
            intervals.append(Interval(number, None, actual, "unexpected", message))
        elif index > len(schedule):
            message = f"retried after {_secs(actual)} s beyond the schedule: unexpected"
            intervals.append(Interval(number, None, actual, "unexpected", message))
        else:
            expected = schedule[index - 1]
            intervals.append(_judge(number, actual, expected, deviation(expected), after(index)))
        seen_success = seen_success or current.succeeded

    last = ordered[-1]
    count = len(ordered)
    retries = count - 1
    succeeded = last.succeeded
    outcome = f"attempt {count} {_describe(last)}"
    if count > len(schedule) + 1:
        stopped = "kept_going"
        summary = (
            f"The sender made {count} attempts, more than its schedule allows "
            f"(1 + {len(schedule)} retries); {outcome}"
        )
    elif succeeded:
        stopped = "succeeded"
        # With duplicates after it, the success that ended the retries is not the last attempt.
        first = next(n for n, a in enumerate(ordered, start=1) if a.succeeded)
        summary = (
            "Succeeded on the first attempt"
            if first == 1
            else f"Succeeded on attempt {first} after {first - 1} {_plural(first - 1, 'retry')}"
        )
    elif retries >= len(schedule):
        stopped = "gave_up_after_schedule"
        summary = f"The sender made all {len(schedule)} scheduled retries and gave up; {outcome}"
    else:
        expected = schedule[retries]
        dev = deviation(expected)
        waited = now - since(last)
        retry = f"retry {retries + 1}"
        head = f"{retry} (attempt {count + 1}) expected {expected:g} s after {after(count)}"
        if waited > expected + dev:
            stopped = "stopped_early"
            overdue = f"overdue by {_secs(waited - expected)} s"
            message = f"{head}, not received ({overdue}, tolerance {dev:g} s): missing"
            intervals.append(Interval(count + 1, expected, None, "missing", message))
            summary = f"The sender stopped early: {outcome} and {retry} is {overdue}"
        else:
            stopped = "waiting"
            due = expected - waited
            when = f"due in {_secs(due)} s" if due > 0 else "due now"
            message = f"{head}, {when}: pending"
            intervals.append(Interval(count + 1, expected, None, "pending", message))
            summary = f"Waiting: {outcome}; {retry} is {when}"

    off = [i for i in intervals if i.verdict in ("early", "late")]
    if off:
        detail = ", ".join(f"attempt {i.attempt} {i.verdict}" for i in off)
        summary += f"; {len(off)} {_plural(len(off), 'retry')} off schedule ({detail})"
    elif any(i.verdict == "ok" for i in intervals):
        summary += "; retries on schedule"
    if duplicates:
        summary += f"; {duplicates} duplicate {_plural(duplicates, 'delivery')} after a success"
    return Timeline(ordered, intervals, succeeded, stopped, summary + ".")


def _plural(count: int, word: str) -> str:
    if count == 1:
        return word
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


# -- reports (API and CLI) -----------------------------------------------------------------


@dataclass(frozen=True)
class SenderSchedule:
    """The schedule one of this tool's own deliveries kept (``send``, the API, the page)."""

    delivery_id: int
    schedule: tuple[float, ...]
    time_scale: float
    wait_from: str


# Our own engine's overhead between an answer and the next attempt (a committed log row, a
# wake-up, a new connection): tens of milliseconds that do not shrink with the time scale.
SENDER_SLACK = 0.25


@dataclass(frozen=True)
class Expected:
    """What an event's retries are judged against, and where that came from."""

    schedule: tuple[float, ...]
    tolerance: float
    wait_from: str = DEFAULT_WAIT_FROM
    source: str = "endpoint"  # endpoint | query | delivery #N (time scale F)
    slack: float = 0.0  # seconds always allowed (SENDER_SLACK for our own deliveries)

    def of(self, sent: SenderSchedule | None) -> Expected:
        """The schedule a delivery of this tool kept, scaled as it was sent, if there is one:
        its waits are what its retries should be judged by, not the endpoint's minutes."""
        if sent is None:
            return self
        return Expected(
            tuple(s * sent.time_scale for s in sent.schedule),
            self.tolerance,
            sent.wait_from,
            f"delivery #{sent.delivery_id} (time scale {sent.time_scale:g})",
            SENDER_SLACK,
        )


def judge(
    attempts: Sequence[Attempt],
    schedule: Sequence[float],
    tolerance: float,
    wait_from: str = DEFAULT_WAIT_FROM,
    slack: float = 0.0,
) -> Timeline:
    """``build_timeline`` now, with an absolute tolerance floor suited to the schedule."""
    # The absolute floor keeps the default (minutes) forgiving of a second of jitter while
    # letting scaled schedules (0.6 s, 3 s, 18 s) still be judged.
    floor = max(min(1.0, tolerance * min(schedule, default=1.0)), slack)
    return build_timeline(
        attempts,
        schedule,
        now=time.time(),
        tolerance=tolerance,
        min_tolerance=floor,
        wait_from=wait_from,
    )


class EventRow(TypedDict):
    """An event at an endpoint: the requests that delivered it (``store/attempts.py``)."""

    event_key: str
    event_type: str | None
    attempts: int
    first_id: int
    last_id: int
    first_at: str
    last_at: str


class AttemptView(TypedDict):
    attempt: int  # 1 for the first delivery
    id: int  # the request
    received_at: str
    status: int | None
    dropped: bool
    client_gave_up_after_ms: float | None
    succeeded: bool


class IntervalView(TypedDict):
    attempt: int
    expected: float | None
    actual: float | None
    verdict: str  # ok | early | late | missing | pending | unexpected
    message: str


class TimelineReport(EventRow):
    """An event with its attempts and its judged timeline (``/api/events``, ``events``)."""

    schedule: list[float]
    tolerance: float
    wait_from: str  # start | end: where each wait counts from
    schedule_from: str  # endpoint | query | delivery #N (time scale F): whose schedule
    attempt_list: list[AttemptView]
    intervals: list[IntervalView]
    succeeded: bool
    stopped: str  # succeeded | gave_up_after_schedule | kept_going | waiting | stopped_early
    summary: str


def attempt_dict(attempt: Attempt, number: int) -> AttemptView:
    return {
        "attempt": number,
        "id": attempt.id,
        "received_at": utc_timestamp(attempt.received_at),
        "status": attempt.status,
        "dropped": attempt.dropped,
        "client_gave_up_after_ms": attempt.client_gave_up_after_ms,
        "succeeded": attempt.succeeded,
    }


def timeline_report(
    event: EventRow, attempts: Sequence[Attempt], expected: Expected
) -> TimelineReport:
    """An event row plus its attempts and judged timeline, JSON-ready (API and CLI)."""
    judged = judge(
        attempts, expected.schedule, expected.tolerance, expected.wait_from, expected.slack
    )
    return {
        **event,
        "schedule": list(expected.schedule),
        "tolerance": expected.tolerance,
        "wait_from": expected.wait_from,
        "schedule_from": expected.source,
        "attempt_list": [attempt_dict(a, n) for n, a in enumerate(judged.attempts, start=1)],
        "intervals": [
            {
                "attempt": i.attempt,
                "expected": i.expected,
                "actual": i.actual,
                "verdict": i.verdict,
                "message": i.message,
            }
            for i in judged.intervals
        ],
        "succeeded": judged.succeeded,
        "stopped": judged.stopped,
        "summary": judged.summary,
    }
