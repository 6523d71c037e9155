"""The JSON API's shapes that are not store records: the envelopes its answers come in, the
bodies its writes take, and its error.

The records themselves are declared beside the SQL that shapes them (``store/requests.py``,
``store/deliveries.py``, ...). Together they are the one source for what the routes return
(``api/``), what the OpenAPI document says (``openapi.py`` turns them into JSON Schema) and
what the typed client (``client.py``) hands back.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from inspector.endpoints import SettingsDict
from inspector.jsontypes import JSONObject, JSONValue
from inspector.store.deliveries import DeliveryItem
from inspector.store.endpoints import EndpointItem
from inspector.store.replays import ReplaySummary
from inspector.store.requests import HeaderPairs, ListedRequest
from inspector.timeline import TimelineReport


class ErrorBody(TypedDict):
    """Every error: a short machine-readable code and what is wrong, for a person."""

    error: str  # bad_request, not_found, invalid_endpoint, busy, ...
    detail: JSONValue  # usually a sentence


# -- requests --------------------------------------------------------------------------------


class RequestPage(TypedDict):
    """``GET /api/requests``: newest first; ``next_before`` pages on (None: no more)."""

    requests: list[ListedRequest]
    next_before: int | None


class WaitResult(TypedDict):
    """``GET /api/requests/wait``: the matching requests, oldest first (at most ``count``), and
    whether the time ran out before ``count`` of them were stored."""

    requests: list[ListedRequest]
    timed_out: bool


class RequestCount(TypedDict):
    """``GET /api/requests/count``: how many requests with ``after < id < before`` match."""

    count: int
    after: int
    before: int | None


class Deleted(TypedDict):
    """How many requests a delete removed."""

    deleted: int


# -- endpoints -------------------------------------------------------------------------------


class EndpointList(TypedDict):
    """``GET /api/endpoints``: every endpoint seen or configured, most recent first."""

    endpoints: list[EndpointItem]


class EndpointSettingsView(TypedDict):
    """``GET/PUT /api/endpoints/{name}``: an endpoint's settings (defaults where unset)."""

    name: str
    settings: SettingsDict


class HmacSettings(TypedDict, total=False):
    """The generic HMAC scheme: which header, algorithm, encoding and prefix."""

    header: str
    algorithm: Literal["sha1", "sha256", "sha512"]
    encoding: Literal["hex", "base64"]
    prefix: str


class SettingsChange(TypedDict, total=False):
    """``PUT /api/endpoints/{name}``: the keys to change; ``null`` resets a key."""

    secret: str | list[str] | None  # several while rotating
    scheme: str | None  # auto, or a scheme name
    tolerance: int | None
    enforce: bool | None
    hmac: HmacSettings | None
    response: dict[str, JSONValue] | None  # failure-mode rules: {"status": 503, "fail": 2, ...}
    schedule: list[float] | None
    schedule_tolerance: float | None
    forward_to: str | None
    forward_mode: Literal["mirror", "proxy"] | None
    replay_to: str | None


# -- events ----------------------------------------------------------------------------------


class EventPage(TypedDict):
    """``GET /api/events``: an endpoint's events with their judged retry timelines."""

    endpoint: str
    events: list[TimelineReport]
    next_before: int | None


# -- replays ---------------------------------------------------------------------------------


class ReplayChange(TypedDict, total=False):
    """``POST /api/requests/{id}/replay``: where to, and what to change on the way."""

    url: str | None  # default: the endpoint's remembered replay_to
    resign: bool  # sign again with the endpoint's secret
    headers: dict[str, str | list[str] | None]  # replace a header's values; null drops it
    body_base64: str | None
    body_text: str | None
    method: str | None
    timeout: float | None


class ReplayResult(ReplaySummary):
    """One replay as it went: the headers sent, and the answer (its first 1 MiB)."""

    request_headers: HeaderPairs
    headers: HeaderPairs  # the answer's
    body_base64: str  # the answer's
    tls: str | None  # the TLS version of an https:// exchange ("TLSv1.3"); None for http://


class ReplayList(TypedDict):
    """``GET /api/requests/{id}/replays``: newest first."""

    replays: list[ReplaySummary]


# -- deliveries ------------------------------------------------------------------------------


class DeliveryOrder(TypedDict, total=False):
    """``POST /api/deliveries``: an event to send as the platform would."""

    event: str | None  # one of the catalog's four; optional with ``body``
    url: str
    secret: str | None  # default: the server's --secret
    body: str | None  # sent byte-exact as UTF-8 (default: the event's sample)
    set: dict[str, JSONValue] | None  # {"data.content": "hello"}: overrides in the sample
    scheme: str
    schedule: list[float]  # seconds before each retry
    time_scale: float
    wait_from: str  # end (default) or start: where each retry wait counts from
    timeout: float
    headers: list[tuple[str, str]] | dict[str, str] | None
    ca_file: str | None  # a CA (PEM) trusted as well for an https:// url
    insecure: bool  # do not verify the receiver's certificate (marked in the log)


class CreatedDelivery(DeliveryItem):
    """``POST /api/deliveries``'s answer: the new delivery, and the store that holds it."""

    store: str  # the data file, so a CLI can tell whether it shares this server's store


class DeliveryPage(TypedDict):
    """``GET /api/deliveries``: newest first; ``next_before`` pages on (None: no more)."""

    deliveries: list[DeliveryItem]
    next_before: int | None
    store: str


class CatalogEvent(TypedDict):
    event: str
    description: str
    sample: JSONObject  # a fresh sample body


class Catalog(TypedDict):
    """``GET /api/catalog``: the platform's event types, each with a sample body."""

    events: list[CatalogEvent]
