"""Failure modes: the vocabulary that makes a capture endpoint misbehave on purpose.

Users ask for a failure either with query parameters on the capture URL
(``/h/orders?fail=2&delay=3``) or with endpoint rules stored as JSON
(``{"response": {"fail": 2, "delay": 3}}``). Both are validated here into plain dicts
(``parse_query``, ``parse_rules``), merged into one ``ResponsePlan`` (``build_plan``: the
query wins, field by field) and turned into a concrete answer per attempt (``decide``).

Order of evaluation used by the capture route:

1. signature enforcement: a bad signature answers 401 before any failure mode applies;
2. ``drop``: close the connection without an HTTP response (on every attempt);
3. ``fail`` then ``rate``: the first ``fail`` attempts of an event answer ``fail_status``;
   a later attempt may still fail with probability ``rate``;
4. otherwise ``status`` / ``body`` / ``content_type`` (default ``200 OK``).

``delay`` applies before whatever answer was chosen, including a drop. ``Retry-After`` is
added to failing answers only: those chosen by ``fail``/``rate`` and an explicit
``status`` of 400 or more (so ``?status=429&retry_after=10`` simulates rate limiting).

Nothing here does I/O; ``decide`` is on the capture hot path and stays cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypedDict, TypeGuard, cast
from urllib.parse import unquote_to_bytes

from inspector.errors import BadRequest, FaultParamError

PARAMS: tuple[str, ...] = (
    "status",
    "body",
    "content_type",
    "delay",
    "fail",
    "fail_status",
    "rate",
    "seed",
    "retry_after",
    "drop",
)
_PARAM_SET = frozenset(PARAMS)

DEFAULT_BODY = "OK"
DEFAULT_CONTENT_TYPE = "text/plain; charset=utf-8"
MAX_FAIL = 1000
MAX_RETRY_AFTER = 86_400  # a day: longer is never useful in a test and keeps headers sane
MAX_SEED = 100
MAX_BODY = 65_536  # rules are stored per endpoint; a canned answer does not need more
MAX_CONTENT_TYPE = 200

_INT = re.compile(r"[+-]?[0-9]{1,15}")
# Plain decimal notation only: float() would also take "nan", "inf" and "1_0".
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_CONTENT_TYPE = re.compile(r"[!-~][ -~]*")  # visible ASCII: no CR/LF header injection
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})


# What one validated fault parameter or rule can be.
FaultValue = int | float | str | bool


class FaultRules(TypedDict, total=False):
    """Validated fault parameters or endpoint rules: only the keys that were given."""

    status: int
    body: str
    content_type: str
    delay: float
    fail: int
    fail_status: int
    rate: float
    seed: str
    retry_after: int
    drop: bool


@dataclass(frozen=True)
class ResponsePlan:
    """How the capture endpoint should answer; the defaults answer ``200 OK`` at once."""

    status: int | None = None
    body: str | None = None
    content_type: str | None = None
    delay: float = 0.0
    fail: int = 0
    fail_status: int = 500
    rate: float = 0.0
    seed: str | None = None
    retry_after: int | None = None
    drop: bool = False

    def is_default(self) -> bool:
        """True when nothing is set, so the capture route can take its fast path."""
        return self == _DEFAULT_PLAN

    def to_dict(self) -> FaultRules:
        """The fields that differ from the defaults, as stored in rules and shown by the API."""
        changed = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }
        return cast(FaultRules, changed)  # the fields are FaultRules' keys, same types


_DEFAULT_PLAN = ResponsePlan()


@dataclass(frozen=True)
class Outcome:
    """The concrete answer for one attempt.

    ``status`` is 0 and ``body`` empty when ``drop`` is set: there is no HTTP response.
    ``failed`` is True when ``fail`` or ``rate`` chose to fail this attempt.
    """

    status: int
    body: bytes
    content_type: str
    headers: list[tuple[str, str]]
    delay: float
    drop: bool
    failed: bool


# -- validation ----------------------------------------------------------------------------


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) <= 40:
        return text
    if isinstance(value, str):
        return f"{text[:20]}... ({len(value)} characters)"
    return text[:37] + "..."


def _bad(param: str, rule: str, value: object) -> FaultParamError:
    return FaultParamError(param, f"must be {rule}, got {_shown(value)}")


def _to_int(param: str, value: object, lo: int, hi: int, rule: str) -> int:
    number: int | None = None
    if isinstance(value, bool):  # bool is an int subclass; true is not a status code
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or not lo <= number <= hi:
        raise _bad(param, rule, value)
    return number


def _to_float(param: str, value: object, lo: float, hi: float, rule: str) -> float:
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        number = float(value.strip())
    if number is None or not math.isfinite(number) or not lo <= number <= hi:
        raise _bad(param, rule, value)
    return number


def _status(param: str, value: object) -> int:
    return _to_int(param, value, 100, 599, "an HTTP status code between 100 and 599")


def _fail(value: object) -> int:
    rule = f"a whole number of attempts between 0 and {MAX_FAIL}"
    return _to_int("fail", value, 0, MAX_FAIL, rule)


def _rate(value: object) -> float:
    return _to_float("rate", value, 0.0, 1.0, "a probability between 0 and 1")


def _retry_after(value: object) -> int:
    rule = f"a whole number of seconds between 0 and {MAX_RETRY_AFTER}"
    return _to_int("retry_after", value, 0, MAX_RETRY_AFTER, rule)


def _drop(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _bad("drop", "one of 1, 0, true, false, yes, no", value)


def _is_text(value: object, limit: int) -> TypeGuard[str]:
    """A str short enough that encodes to UTF-8: JSON's "\\ud800" yields a lone surrogate
    that would break encoding the answer and storing the rule."""
    if not isinstance(value, str) or len(value) > limit:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _body(value: object) -> str:
    if not _is_text(value, MAX_BODY):
        raise _bad("body", f"text of at most {MAX_BODY} characters", value)
    return value


# Capture answers share the page's origin: a type a browser would run as a script or apply as
# a style is never one of them, so no answer can ever be loaded by the page as code, even if an
# injection were found one day (the page's CSP also allows scripts from /static/ only).
_CODE_TYPES = frozenset({"text/css", "text/jscript", "text/livescript", "application/wasm"})


def is_code_type(content_type: str) -> bool:
    """Whether a browser runs (or applies) content of this media type as code or style."""
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence in _CODE_TYPES or essence.endswith(("javascript", "ecmascript"))


def _content_type(value: object) -> str:
    if isinstance(value, str):
        text: str = value.strip()
        if len(text) <= MAX_CONTENT_TYPE and _CONTENT_TYPE.fullmatch(text):
            if is_code_type(text):
                rule = "a media type that is not script or style (not JavaScript or CSS)"
                raise _bad("content_type", rule, value)
            return text
    rule = f"a media type of 1 to {MAX_CONTENT_TYPE} visible ASCII characters"
    raise _bad("content_type", rule, value)


def _seed(value: object) -> str:
    # JSON rules may naturally say {"seed": 42}; the seed is hashed as text either way.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not _is_text(value, MAX_SEED):
        raise _bad("seed", f"a string of at most {MAX_SEED} characters", value)
    return value


def _validators(max_delay: float) -> dict[str, Callable[[object], FaultValue]]:
    delay_rule = f"a number of seconds between 0 and {max_delay:g}"
    return {
        "status": lambda v: _status("status", v),
        "body": _body,
        "content_type": _content_type,
        "delay": lambda v: _to_float("delay", v, 0.0, max_delay, delay_rule),
        "fail": _fail,
        "fail_status": lambda v: _status("fail_status", v),
        "rate": _rate,
        "seed": _seed,
        "retry_after": _retry_after,
        "drop": _drop,
    }


def _unquote(text: str) -> str:
    """Percent-decode one query component received as a latin-1 ``str``."""
    if text.isascii() and "%" not in text and "+" not in text:
        return text
    try:
        raw = text.encode("latin-1")  # undo the ASGI latin-1 decoding to get the wire bytes
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


def parse_query(query_string: str, *, max_delay: float = 600.0) -> FaultRules:
    """Return the recognised fault parameters of a raw query string, validated and converted.

    Unknown parameters are ignored: they belong to the sender. Names are case-sensitive.
    A repeated parameter: the last one wins. Raises ``FaultParamError`` naming the
    parameter and its allowed range.
    """
    if not query_string:
        return {}
    found: dict[str, str] = {}
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = _unquote(name)
        if name in _PARAM_SET:
            found[name] = _unquote(value)
    if not found:
        return {}
    validators = _validators(max_delay)
    # Each key's validator returns that key's type.
    return cast(FaultRules, {name: validators[name](value) for name, value in found.items()})


def parse_rules(rules: Mapping[str, object], *, max_delay: float = 600.0) -> FaultRules:
    """Validate endpoint rules (the ``"response"`` object) like query parameters.

    Numbers may come as int, float or numeric strings. A ``null`` value means "not set".
    Unknown keys raise ``BadRequest`` naming them.
    """
    if not isinstance(rules, Mapping):
        raise BadRequest(f"response rules must be a JSON object, got {type(rules).__name__}")
    unknown = sorted(str(key) for key in rules if key not in _PARAM_SET)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise BadRequest(f"unknown response rule(s) {names}; allowed: {', '.join(PARAMS)}")
    validators = _validators(max_delay)
    checked = {key: validators[key](value) for key, value in rules.items() if value is not None}
    return cast(FaultRules, checked)  # each key's validator returns that key's type


def build_plan(rules: FaultRules | None, query: FaultRules | None) -> ResponsePlan:
    """Merge validated rules and query parameters; the query wins field by field.

    ``?fail=0`` therefore switches off a stored ``fail`` rule for one request.
    """
    if not rules and not query:
        return _DEFAULT_PLAN
    merged = FaultRules()
    merged.update(rules or {})
    merged.update(query or {})
    return ResponsePlan(**merged)


# -- deciding one attempt ------------------------------------------------------------------


def _unit(seed: str, event_key: str, attempt: int) -> float:
    """A reproducible float in [0, 1) from (seed, event, attempt): no shared RNG state."""
    # surrogatepass: event keys come from headers and bodies and must never make this raise.
    material = f"{seed}\x00{event_key}\x00{attempt}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(material).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) * 2.0**-53


def decide(plan: ResponsePlan, *, attempt: int, event_key: str) -> Outcome:
    """Choose the answer for attempt number ``attempt`` (1-based) of event ``event_key``.

    See the module docstring for the order of evaluation. Never raises for a valid plan.
    """
    if plan.drop:
        return Outcome(0, b"", "", [], plan.delay, drop=True, failed=False)

    reason = None
    if attempt <= plan.fail:
        reason = f"attempt {attempt} of fail={plan.fail}"
    elif plan.rate > 0.0:
        draw = random.random() if plan.seed is None else _unit(plan.seed, event_key, attempt)
        if draw < plan.rate:
            reason = f"attempt {attempt}, rate={plan.rate:g}"

    headers: list[tuple[str, str]] = []
    if reason is not None:
        if plan.retry_after is not None:
            headers.append(("Retry-After", str(plan.retry_after)))
        body = f"Simulated failure ({reason})".encode()
        return Outcome(
            plan.fail_status, body, DEFAULT_CONTENT_TYPE, headers, plan.delay, False, True
        )

    status = 200 if plan.status is None else plan.status
    if status >= 400 and plan.retry_after is not None:
        headers.append(("Retry-After", str(plan.retry_after)))
    body = (DEFAULT_BODY if plan.body is None else plan.body).encode()
    content_type = plan.content_type or DEFAULT_CONTENT_TYPE
    return Outcome(status, body, content_type, headers, plan.delay, drop=False, failed=False)
