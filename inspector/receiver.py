"""The capture route ``/h/{endpoint}[/...]``: a plain ASGI app on the hot path.

Flow for one request (see ARCHITECTURE.md):
read the whole body (bounded) -> signature verdict (without the doctor) -> event identity ->
response plan from endpoint rules and query parameters -> **commit** (the writer assigns id and
attempt and picks the response; the stream is told as soon as the batch is committed) -> on
disk (the store's syncer) -> hand a failing signature to the
``Diagnoser`` (it runs after the answer) -> answer: at once, after a stall, or by dropping the
connection.

Order of evaluation for the answer: body too large (413) -> signature enforcement (401) ->
invalid failure-mode parameter (400) -> drop -> fail/rate -> status/body. A delay applies to
whichever answer the plan picks (not to 413/401/400). In proxy mode (endpoint ``forward_to``
with ``forward_mode: proxy``) the app's answer takes the place of status/body: the request is
recorded in progress, sent to the app after any delay, and the app's answer relayed; 413, 400,
401, drop, fail/rate and an explicit status/body still answer without contacting the app.

It is dispatched ahead of Starlette's middleware (capture routes accept any Host and Origin)
and receives the server's own ``send``, which is what lets ``drop=1`` close the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from inspector import faults, timeline
from inspector.broadcast import Broadcaster
from inspector.capture import (
    OK_HEADERS,
    PEER_GONE,
    BodyBudget,
    CapturedRequest,
    ResponseRecord,
    endpoint_from_path,
    read_request,
)
from inspector.diagnosis import Diagnoser, waiting
from inspector.endpoints import Endpoint, EndpointCache
from inspector.errors import BadRequest, InspectorError, StoreUnavailable
from inspector.signatures import verify
from inspector.store import Store, intake
from inspector.store.core import StaleSettings
from inspector.tls import connection_tls

log = logging.getLogger("inspector.receiver")


TEXT = "text/plain; charset=utf-8"
OFF_LOOP_BYTES = 256 * 1024
# Tries at preparing a capture when the settings changed under it (see ``Receiver._capture``).
STALE_RETRIES = 3
# Runs after a capture's commit (mirror): must return at once, starting its own work.
AfterCapture = Callable[[Endpoint, CapturedRequest, int], None]
# Answers a request in proxy mode with the app's answer (``replay.Replayer.proxy``).
ProxyHook = Callable[[Endpoint, CapturedRequest, int], Awaitable[ResponseRecord]]


def plain(status: int, text: str, extra: list[tuple[str, str]] | None = None) -> ResponseRecord:
    body = text.encode("utf-8")
    headers = [("content-type", TEXT), *(extra or [])]
    return ResponseRecord(status, headers, body)


RETRY_AFTER = "5"


def stalled_answer(seconds: float) -> ResponseRecord:
    """The 408 the connection layer writes when a body stalls (and the record of it)."""
    text = f"Request timeout: the body made no progress for {seconds:g} s.\n"
    return plain(408, text, [("connection", "close")])


def busy_answer() -> ResponseRecord:
    return plain(
        503,
        "Busy: too many large bodies are being received. Retry later.\n",
        [("retry-after", RETRY_AFTER)],
    )


class Receiver:
    """The capture route, an ASGI app. ``after_capture`` hooks (mirror) and ``proxy`` come
    from the replay engine, built before it (``runtime.py``)."""

    def __init__(
        self,
        store: Store,
        endpoints: EndpointCache,
        hub: Broadcaster,
        *,
        max_body: int,
        max_delay: float,
        budget: BodyBudget | None = None,
        after_capture: Sequence[AfterCapture] = (),
        proxy: ProxyHook | None = None,
        diagnoser: Diagnoser | None = None,
    ) -> None:
        self.store = store
        self.endpoints = endpoints
        self.hub = hub
        self.max_body = max_body
        self.max_delay = max_delay
        self.budget = budget or BodyBudget(max(64 * 1024 * 1024, max_body))
        self.after_capture = tuple(after_capture)
        self.proxy = proxy
        self.diagnoser = diagnoser

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            name = endpoint_from_path(scope["path"])
        except BadRequest as exc:
            await respond(send, plain(400, str(exc.detail) + "\n"), head=False)
            return
        # Before the body: a client that leaves mid-body takes its connection's TLS state along.
        tls = connection_tls(send) if scope.get("scheme") == "https" else None
        rec = await read_request(scope, receive, name, self.max_body, self.budget)
        if tls is not None:  # plain HTTP pays one lookup, nothing more
            rec.tls_version, rec.tls_server_name = tls.version, tls.server_name
        try:
            endpoint, inserted, diagnosing = await self._capture(rec, name, started)
        except StoreUnavailable as exc:
            log.error("capture not stored, answering 503: %s", exc.detail)
            if rec.stalled_after is None:  # else the connection layer answered and closed
                await respond(
                    send,
                    plain(503, "Not stored: the inspector's store is unavailable. Retry later.\n"),
                    head=False,
                )
            return
        finally:
            # A large body holds its share of the memory budget until it is stored.
            if rec.held:
                self.budget.give(rec.held)
                rec.held = 0
        for hook in self.after_capture:
            hook(endpoint, rec, inserted.id)
        if diagnosing:
            self._diagnose_later(rec, inserted.id, endpoint)

        response = inserted.response
        if rec.stalled_after is not None:
            return  # the connection layer has answered 408 and closed: nothing to send
        if response.in_progress and response.status is None and not response.dropped:
            await self._finish_proxy(
                endpoint, rec, inserted.id, response, started, scope, receive, send
            )
        elif response.in_progress:
            await self._finish_stall(inserted.id, response, started, scope, receive, send)
        elif response.dropped:
            await drop(send, receive, informational=response.status)
        elif response.status is not None:
            await respond(send, response, head=rec.method == "HEAD")
            if PEER_GONE in scope:
                await self._not_delivered(inserted.id, response, started)

    async def _not_delivered(
        self, request_id: int, response: ResponseRecord, started: float
    ) -> None:
        """The client went away (closed, or half-closed) before its answer was written:
        record that it was not delivered, the way a sender that gave up during a stall is."""
        gone_ms = (time.perf_counter() - started) * 1000
        response.status = None
        response.in_progress = False
        await self._record_end(request_id, response, gone_ms)

    async def _capture(
        self, rec: CapturedRequest, name: str, started: float
    ) -> tuple[Endpoint, intake.Inserted, bool]:
        """Inspect and commit a capture under the endpoint's current settings; also whether
        it holds a place in the doctor's queue (taken before the commit, so that a full queue
        is said in the verdict stored, at no extra write).

        Settings changed by another process since the cache last read them make the store
        refuse the capture (``StaleSettings``): refresh and prepare it again. A change on every
        try is not a thing a person does; after a few the capture is stored as prepared.
        """
        claimed = False
        try:
            for attempt in range(STALE_RETRIES + 1):
                version = self.endpoints.version if attempt < STALE_RETRIES else None
                endpoint = self.endpoints.get(name)
                if rec.size > OFF_LOOP_BYTES and not rec.truncated:
                    # Hashing megabytes would stall the event loop (a truncated body is not
                    # hashed).
                    fixed = await anyio.to_thread.run_sync(self._inspect, rec, endpoint)
                else:
                    fixed = self._inspect(rec, endpoint)
                decide = self._decide(rec, endpoint, fixed, started)
                claimed = claimed or self._claim_diagnosis(rec)
                try:
                    # Awaited here, not in a coroutine of its own: a frame less per capture.
                    inserted = await self.store.write_announced(
                        version, self._announce, intake.insert_request, rec, decide
                    )
                except StaleSettings:
                    await self.endpoints.refresh()
                    continue
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    inserted = await self._store_bare(rec, decide, exc)
                return endpoint, inserted, claimed
        except BaseException:
            if claimed and self.diagnoser is not None:
                self.diagnoser.release()
            raise
        raise AssertionError("unreachable: the last try is not checked")

    def _claim_diagnosis(self, rec: CapturedRequest) -> bool:
        """Take the doctor's place for a failing verdict; when there is none, the verdict
        says why, and is stored so."""
        if self.diagnoser is None or rec.signature is None or not waiting(rec.signature):
            return False
        if self.diagnoser.claim():
            return True
        rec.signature = self.diagnoser.skipped(rec.signature)
        return False

    def _diagnose_later(self, rec: CapturedRequest, request_id: int, endpoint: Endpoint) -> None:
        """Fill the place taken: the worker cannot start before this request is answered."""
        assert self.diagnoser is not None
        if waiting(rec.signature):
            self.diagnoser.submit(request_id, endpoint)
        else:  # prepared again under new settings, or stored bare after an internal error
            self.diagnoser.release()

    def _decide(
        self,
        rec: CapturedRequest,
        endpoint: Endpoint,
        fixed: ResponseRecord | None,
        started: float,
    ) -> Callable[[int], ResponseRecord]:
        """The answer's decision function, given the verdict and event identity (on ``rec``)
        and the fixed answer they led to, if any."""
        plan: faults.ResponsePlan | None = None
        if fixed is None:
            try:
                query = faults.parse_query(rec.query, max_delay=self.max_delay)
            except InspectorError as exc:
                fixed = plain(400, f"Invalid failure-mode parameter: {exc.detail}\n")
            else:
                if query or endpoint.has_rules:
                    plan = faults.build_plan(endpoint.rules, query)

        settings = endpoint.settings
        # A truncated capture always has a fixed answer, so it is never proxied.
        proxying = (
            self.proxy is not None
            and settings.forward_mode == "proxy"
            and bool(settings.forward_to)
        )

        def decide(attempt: int) -> ResponseRecord:
            # Runs in the store's writer, which knows the attempt number for certain.
            outcome = None
            if fixed is None and plan is not None:
                outcome = faults.decide(plan, attempt=attempt, event_key=rec.event_key or "")
            if fixed is not None:
                response = fixed
            elif proxying and _app_answers(plan, outcome):
                # In progress, no status, not dropped: the app will answer (see below).
                response = ResponseRecord(None, in_progress=True)
                if outcome is not None and outcome.delay > 0:
                    response.delay_ms = outcome.delay * 1000
            elif outcome is None:
                response = ResponseRecord(200, OK_HEADERS, b"OK")
            else:
                response = _from_outcome(outcome)
            response.ms = (time.perf_counter() - started) * 1000
            return response

        return decide

    async def _store_bare(
        self, rec: CapturedRequest, decide: Callable[[int], ResponseRecord], exc: Exception
    ) -> intake.Inserted:
        """Storing a capture failed for a reason not the store's. What we derived from it
        (event key, type, verdict) must never cost the request itself: store it bare."""
        log.error("storing capture failed; storing it without derived fields", exc_info=exc)
        rec.event_key = rec.event_type = None
        rec.signature = None
        rec.note = f"Stored without event key and verdict after an internal error: {exc!r}"
        try:
            return await self.store.write_announced(
                None, self._announce, intake.insert_request, rec, decide
            )
        except StoreUnavailable:
            raise
        except Exception as again:
            raise StoreUnavailable(f"the capture could not be stored: {again!r}") from again

    def _announce(self, inserted: intake.Inserted) -> None:
        """Tell the live views about a capture as soon as readers can fetch it (committed;
        its sender's answer waits until it is also on disk)."""
        if self.hub.has_subscribers:
            self.hub.publish("request", inserted.item(), id=inserted.id)

    def _inspect(self, rec: CapturedRequest, endpoint: Endpoint) -> ResponseRecord | None:
        """Signature verdict and event identity; returns a fixed answer (408/413/503/401) if
        any."""
        if rec.stalled_after is not None:
            # The connection layer has answered 408 and closed: record that answer.
            return stalled_answer(rec.stalled_after)
        if rec.oversize:
            return plain(413, f"Payload too large: {rec.note}\n")
        if rec.busy:
            return busy_answer()
        if rec.truncated:
            # The sender left mid-body: no answer will reach it, and a partial body has no
            # event key or verdict worth recording.
            return ResponseRecord(None)
        rec.event_key, rec.event_type = timeline.event_identity(rec.headers, rec.body)
        try:
            # The doctor runs after the answer (``diagnosis.Diagnoser``), never before it.
            verdict = verify(rec.headers, rec.body, endpoint.signature, diagnose=False)
        except Exception:  # verification must never cost a capture
            log.exception("signature verification failed unexpectedly")
            verdict = None
        # Assigned either way: a capture prepared again under new settings may have none now.
        rec.signature = verdict.to_dict() if verdict is not None else None
        if endpoint.settings.enforce and (verdict is None or verdict.status != "valid"):
            return plain(401, "Invalid signature")
        return None

    async def _finish_stall(
        self,
        request_id: int,
        response: ResponseRecord,
        started: float,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Wait out a delay (the record is already visible as in progress); stop at once if
        the client gives up, and record when it did."""
        delay = (response.delay_ms or 0) / 1000
        gave_up_ms: float | None = None
        try:
            async with asyncio.timeout(delay):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        gave_up_ms = (time.perf_counter() - started) * 1000
                        break
        except TimeoutError:
            pass
        response.in_progress = False
        response.ms = (time.perf_counter() - started) * 1000
        if gave_up_ms is not None:
            response.status = None
        await self._record_end(request_id, response, gave_up_ms)
        if gave_up_ms is not None:
            return
        if response.dropped:
            await drop(send, receive, informational=response.status)
        else:
            await respond(send, response, head=scope["method"] == "HEAD")
            if PEER_GONE in scope:
                await self._not_delivered(request_id, response, started)

    async def _record_end(
        self, request_id: int, response: ResponseRecord, gave_up_ms: float | None
    ) -> None:
        """Record how a request that was in progress ended, and tell the live views."""
        try:
            item = await self.store.write(intake.finish_request, request_id, response, gave_up_ms)
        except StoreUnavailable as exc:
            log.error("could not record the end of request %s: %s", request_id, exc.detail)
            return
        if item is not None and self.hub.has_subscribers:
            self.hub.publish("update", item, id=request_id)

    async def _finish_proxy(
        self,
        endpoint: Endpoint,
        rec: CapturedRequest,
        request_id: int,
        response: ResponseRecord,
        started: float,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Proxy mode: after any delay, send the request to the app and relay its answer.

        The record shows the request in progress meanwhile. A sender that gives up during the
        delay stops it (the app is not contacted); one that gives up while the app works is
        recorded as such, and the app's answer is still awaited and recorded (not sent).
        """
        assert self.proxy is not None
        gone = asyncio.get_running_loop().create_task(_disconnected(receive))
        try:
            delay = (response.delay_ms or 0) / 1000
            if delay > 0:
                await asyncio.wait({gone}, timeout=delay)
            if gone.done():
                answer = ResponseRecord(None)
            else:
                try:
                    answer = await self.proxy(endpoint, rec, request_id)
                except Exception:  # a bug in forwarding must not cost the sender an answer
                    log.exception("proxying request %s failed unexpectedly", request_id)
                    answer = plain(502, "Bad gateway: the inspector failed to forward.\n")
            gave_up_ms = None
            if gone.done() and not gone.cancelled() and gone.exception() is None:
                gave_up_ms = (gone.result() - started) * 1000
        finally:
            gone.cancel()
        answer.delay_ms = response.delay_ms
        answer.ms = (time.perf_counter() - started) * 1000
        if gave_up_ms is not None:
            answer.status = None
        await self._record_end(request_id, answer, gave_up_ms)
        if gave_up_ms is None:
            await respond(send, answer, head=rec.method == "HEAD")
            if PEER_GONE in scope:
                await self._not_delivered(request_id, answer, started)


def _app_answers(plan: faults.ResponsePlan | None, outcome: faults.Outcome | None) -> bool:
    """In proxy mode the app answers unless a failure mode picked the answer itself."""
    if plan is None or outcome is None:
        return True
    return not (outcome.drop or outcome.failed or plan.status is not None or plan.body is not None)


async def _disconnected(receive: Receive) -> float:
    """Wait until the client goes away; returns when (``time.perf_counter()``)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    return time.perf_counter()


def _from_outcome(outcome: faults.Outcome) -> ResponseRecord:
    if outcome.drop:
        response = ResponseRecord(None, dropped=True)
    elif outcome.status < 200:
        # HTTP/1.1 has no final 1xx answer: send the informational line, then close.
        response = ResponseRecord(outcome.status, dropped=True)
    elif outcome.status in _NO_BODY:
        # Record what goes on the wire: a 204 or 304 carries neither a body nor its type.
        response = ResponseRecord(outcome.status, list(outcome.headers))
    else:
        headers = [("content-type", outcome.content_type), *outcome.headers]
        response = ResponseRecord(outcome.status, headers, outcome.body)
    if outcome.delay > 0:
        response.delay_ms = outcome.delay * 1000
        response.in_progress = True
    return response


_NO_BODY = {204, 304}


# Capture answers share the page's origin, and ?body= / ?content_type= (or a proxied app) choose
# what they contain: a browser must never run them there, or any web page could link to
# /h/x?content_type=text/html&body=<script>... and drive the API same-origin.
INERT = [
    (b"content-security-policy", b"sandbox; default-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


async def respond(send: Send, response: ResponseRecord, *, head: bool) -> None:
    if response.headers is OK_HEADERS and response.status == 200:  # the common answer
        await send(_OK_START)
        await send({"type": "http.response.body", "body": b"" if head else response.body})
        return
    status = response.status or 500
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    body = response.body
    if status in _NO_BODY:
        body = b""
        headers = [h for h in headers if h[0] != b"content-type"]
    else:
        headers.append((b"content-length", str(len(body)).encode("ascii")))
    headers.extend(INERT)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


# The answer to nearly every capture (``capture.OK_HEADERS``), its headers encoded once.
_OK_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", TEXT.encode()), (b"content-length", b"2"), *INERT],
}


async def drop(send: Send, receive: Receive, *, informational: int | None = None) -> None:
    """Close the connection without a final HTTP response (after an ``informational`` 1xx
    status line, if given).

    ASGI has no message for this, so we reach the server's transport through its ``send``
    (uvicorn's is a bound method of the request cycle). Elsewhere, fall back to an
    incomplete response, which senders also see as a protocol error.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        if informational is not None:
            transport.write(b"HTTP/1.1 %d Informational\r\n\r\n" % informational)
        transport.close()
        # Wait for the server to notice, so it does not try to answer for us.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while (await receive())["type"] != "http.disconnect":
                    pass
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
    )
    raise ConnectionAbortedError("drop=1: connection closed without a complete response")
