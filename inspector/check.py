"""The receiver check: grade a webhook receiver the way the platform will treat it.

    report = await check_receiver("http://127.0.0.1:3000/webhook", "s3cret")
    report.passed  # False if any row failed; warnings do not fail

Rows, in order (each one request, sent one after another):

1. each of the four events, validly signed: a 2xx within the timeout (30 s); slower than
   ``slow`` (5 s) is a warning — the docs advise answering first and processing later;
2. a wrong, a truncated and a missing signature: must be rejected with a 4xx. A 2xx means
   forged events get in; a 5xx means the check crashed (the doc's own sample does, since
   ``timingSafeEqual`` throws on a length mismatch) and the platform would retry it;
3. the raw-body trap: a validly signed body with non-ASCII text, ``\\u`` and ``\\/`` escapes,
   unusual spacing and key order. What its answer shows depends on the rows before it: only
   a receiver that rejected the wrong signature has shown that it verifies, so only then does
   accepting the trap say "it verifies the raw bytes" (a receiver that accepted the wrong
   signature accepts anything: a warning that nothing is shown), and rejecting it after
   accepting the plain events names the re-serialization bug (a receiver that does not verify
   rejected it for another reason: its JSON handling is named instead);
4. a duplicate: the same event (same bytes, same signature) twice. Both answers are
   reported; idempotency is the receiver's job, but a 5xx on the duplicate is a failure and
   a 4xx a warning (the platform would keep retrying it);
5. a non-JSON and an oversized body, both validly signed: no 5xx, no timeout;
6. a last valid event, to see the receiver is still answering after 5.

And first, the platform's HTTPS requirement (judged on the first event's connection): an
http:// URL is a warning (fine on this machine, refused by the platform), as is a certificate
that was not verified (``insecure``) or verified only with a ``ca_file``; a TLS failure fails.
Warnings fail the run only when ``strict``.
"""

from __future__ import annotations

import secrets as _random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from inspector import catalog, sender, timeline
from inspector.display import human_size
from inspector.outbound import BROKEN, VERIFY, Exchange, TlsOptions, self_target

MiB = 1024 * 1024
DEFAULT_OVERSIZE = 5 * MiB
DEFAULT_SLOW = 5.0

RESERIALIZED = (
    "your receiver verifies a re-serialized body (e.g. JSON.stringify(req.body)); "
    "verify the raw request bytes"
)
VERIFIES_RAW = "it rejected the wrong signature and accepts this one: it verifies the raw bytes"
SHOWS_NOTHING = (
    "it also accepted the wrong signature, so accepting this one shows nothing about how it "
    "verifies; fix the signature rows first"
)


@dataclass
class CheckRow:
    check: str
    group: str
    verdict: str  # "pass" | "warn" | "fail"
    detail: str
    status: int | None = None
    latency_ms: float | None = None
    statuses: list[int | None] = field(default_factory=list)


@dataclass
class CheckReport:
    url: str
    scheme: str
    rows: list[CheckRow]
    strict: bool = False  # warnings fail the run too

    @property
    def passed(self) -> bool:
        failing = ("fail", "warn") if self.strict else ("fail",)
        return all(row.verdict not in failing for row in self.rows)

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "warn": 0, "fail": 0}
        for row in self.rows:
            out[row.verdict] += 1
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "scheme": self.scheme,
            "strict": self.strict,
            "passed": self.passed,
            "counts": self.counts(),
            "rows": [asdict(row) for row in self.rows],
        }


def trap_body(now: str | None = None) -> bytes:
    """A valid ``message.received`` body that no JSON serializer reproduces byte for byte."""
    stamp = now or catalog.timestamp()
    message_id = catalog.message_id()
    return (
        '{ "timestamp" : "' + stamp + '",\n'
        '  "event":"message.received",\n'
        '  "data" : {"sender": {"displayName": "王小明", "userId": "U1234567890"},\n'
        '     "channelId":"C1234567890",  "messageId" : "' + message_id + '",\n'
        '     "type": "text",\n'
        '     "content": "caf\\u00e9 \\/ 大家早安! <b>&amp;</b> \\ud83d\\ude00 a\\/b" }\n'
        "}\n"
    ).encode()


def oversized_body(size: int) -> bytes:
    """A valid ``message.received`` of about ``size`` bytes (the content is padded)."""
    base = catalog.build("message.received", {"data.content": ""})
    pad = max(0, size - len(base))
    return catalog.build("message.received", {"data.content": "x" * pad})


class _Checker:
    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str,
        scheme: str,
        timeout: float,
        slow: float,
        tls: TlsOptions = VERIFY,
    ) -> None:
        self.client = client
        self.url = url
        self.secret = secret
        self.scheme = scheme
        self.timeout = timeout
        self.slow = slow
        self.tls = tls
        self.rows: list[CheckRow] = []
        self.forged: dict[str, Exchange] = {}  # the answers to the forged requests, by check

    def headers(self, body: bytes) -> list[tuple[str, str]]:
        return sender.signed_headers(
            self.scheme, self.secret, body, msg_id="msg_" + _random.token_hex(12)
        )

    async def post(self, body: bytes, headers: Sequence[tuple[str, str]]) -> Exchange:
        return await sender.send_once(
            self.client, self.url, headers, body, timeout=self.timeout, tls=self.tls
        )

    def add(self, check: str, group: str, verdict: str, detail: str, r: Exchange) -> None:
        self.rows.append(CheckRow(check, group, verdict, detail, r.status, r.elapsed_ms))

    def answered(self, r: Exchange) -> str:
        if r.status is None:
            return r.error or "no answer"
        head = f"answered {r.status} in {_secs(r.elapsed_ms)}"
        return f"{head} ({r.error})" if r.error else head

    def judge_valid(self, check: str, group: str, r: Exchange) -> None:
        """A validly signed event: the platform wants a 2xx within the timeout."""
        said = self.answered(r)
        if r.ok:
            if r.elapsed_ms > self.slow * 1000:
                self.add(
                    check,
                    group,
                    "warn",
                    f"{said}: slower than {self.slow:g} s; answer first, process afterwards",
                    r,
                )
            else:
                self.add(check, group, "pass", said, r)
            return
        if r.status is None:
            why = "the platform counts it a failure and retries"
            self.add(check, group, "fail", f"{said}: {why}", r)
        elif 300 <= r.status < 400:
            self.add(check, group, "fail", f"{said}: the platform does not follow redirects", r)
        elif r.status in (401, 403):
            why = "a validly signed event was rejected; check the secret and the verification"
            self.add(check, group, "fail", f"{said}: {why}", r)
        elif r.status >= 500:
            self.add(check, group, "fail", f"{said}: the receiver failed; the platform retries", r)
        else:
            self.add(check, group, "fail", f"{said}: a valid event must get a 2xx", r)

    def judge_forged(self, check: str, r: Exchange, crash_hint: str) -> None:
        self.forged[check] = r
        said = self.answered(r)
        if r.status is not None and 400 <= r.status < 500:
            self.add(check, "signature", "pass", f"rejected: {said}", r)
        elif r.ok or (r.status is not None and 200 <= r.status < 300):
            why = "accepted a forged request: verify X-Webhook-Signature and answer 401"
            if self.scheme != "platform":
                why = "accepted a forged request: verify the signature and answer 401"
            self.add(check, "signature", "fail", f"{said}: {why}", r)
        elif r.status is not None and r.status >= 500:
            why = f"crashed instead of rejecting ({crash_hint}); answer 401"
            self.add(check, "signature", "fail", f"{said}: {why}", r)
        else:
            self.add(check, "signature", "fail", f"{said}: must be rejected with a 4xx", r)

    def judge_robust(self, check: str, r: Exchange, *, may_close: bool = False) -> None:
        """No 5xx, no timeout. ``may_close``: closing the connection on a body too large to
        read is a warning (the platform would retry it), not a crash."""
        said = self.answered(r)
        if r.status is not None and r.status >= 500:
            self.add(check, "robustness", "fail", f"{said}: it must not crash the receiver", r)
        elif r.timed_out:
            self.add(check, "robustness", "fail", f"{said}: it must not hang the receiver", r)
        elif r.status is None and may_close and r.failure is not None and r.failure.kind in BROKEN:
            why = "the connection broke; the platform would count it a failure and retry"
            self.add(check, "robustness", "warn", f"{said}: {why}", r)
        elif r.status is None:
            self.add(check, "robustness", "fail", f"{said}: it must be answered, not dropped", r)
        else:
            self.add(check, "robustness", "pass", f"did not crash: {said}", r)

    # -- the checks ------------------------------------------------------------------------

    def https(self, first: Exchange) -> CheckRow:
        """The platform's rule: webhook URLs are HTTPS, with a certificate it can verify."""
        check, group = "HTTPS", "transport"
        if not self.url.lower().startswith("https://"):
            why = (
                "an http:// URL: the platform accepts only https:// webhook URLs (fine for "
                "testing on this machine)"
            )
            return CheckRow(check, group, "warn", why)
        if first.failure is not None and first.failure.kind == "tls":
            return CheckRow(check, group, "fail", first.failure.text)
        if first.status is None:
            return CheckRow(check, group, "fail", f"no TLS connection: {first.error}")
        version = first.tls or "TLS"
        if self.tls.insecure:
            why = (
                f"{version}, but the certificate was NOT verified (--insecure): the platform "
                "verifies it against the public CAs"
            )
            return CheckRow(check, group, "warn", why)
        if self.tls.ca_file:
            why = (
                f"{version}; the certificate was verified only with --ca-file: the platform "
                "trusts the public CAs, not yours"
            )
            return CheckRow(check, group, "warn", why)
        host = httpx.URL(self.url).host
        if self_target(host):
            why = f"{version}, certificate verified (a local CA is trusted for this machine)"
            return CheckRow(check, group, "pass", why)
        return CheckRow(check, group, "pass", f"{version}, certificate verified")

    async def run(self, oversize: int) -> None:
        for event in catalog.EVENT_TYPES:
            body = catalog.build(event)
            result = await self.post(body, self.headers(body))
            if not self.rows:
                self.rows.append(self.https(result))
            self.judge_valid(event, "events", result)
        accepted_any = any(row.verdict != "fail" for row in self.rows)

        body = catalog.build("message.received")
        wrong = sender.signed_headers(
            self.scheme, self.secret + "-wrong", body, msg_id="msg_" + _random.token_hex(12)
        )
        self.judge_forged(
            "wrong signature", await self.post(body, wrong), "on a signature that does not match"
        )
        body = catalog.build("message.received")
        truncated = [
            (name, value[:-8]) if self._is_signature(name) else (name, value)
            for name, value in self.headers(body)
        ]
        self.judge_forged(
            "truncated signature",
            await self.post(body, truncated),
            "e.g. timingSafeEqual throws when the lengths differ",
        )
        body = catalog.build("message.received")
        bare = [("Content-Type", "application/json")]
        self.judge_forged(
            "missing signature",
            await self.post(body, bare),
            "e.g. reading an absent header, or timingSafeEqual on undefined",
        )

        await self.raw_body_trap(accepted_any)
        await self.duplicate()

        body = b"this is not JSON {"
        self.judge_robust("non-JSON body", await self.post(body, self.headers(body)))
        body = oversized_body(oversize)
        self.judge_robust(
            f"oversized body ({human_size(len(body))})",
            await self.post(body, self.headers(body)),
            may_close=True,
        )
        # message.received: a fresh messageId, so no receiver takes it for a duplicate (two
        # member.joined samples of the same second are the same event by the platform's key).
        body = catalog.build("message.received")
        result = await self.post(body, self.headers(body))
        if result.ok:
            self.add("still answering", "robustness", "pass", self.answered(result), result)
        else:
            why = "a valid event after the bad bodies was not accepted; did the receiver crash?"
            self.add(
                "still answering", "robustness", "fail", f"{self.answered(result)}: {why}", result
            )

    def _is_signature(self, name: str) -> bool:
        return name.lower() not in ("content-type", "webhook-id", "webhook-timestamp") and (
            "signature" in name.lower() or "hmac" in name.lower()
        )

    async def raw_body_trap(self, accepted_any: bool) -> None:
        """Judge the trap by what the receiver has shown so far: whether it verifies at all
        (the wrong signature) and whether it accepts valid events."""
        body = trap_body()
        r = await self.post(body, self.headers(body))
        said = self.answered(r)
        check = "raw body"
        wrong = self.forged.get("wrong signature")
        verifies = wrong is not None and wrong.status is not None and 400 <= wrong.status < 500
        trusting = wrong is not None and wrong.ok
        if r.ok and verifies:
            self.add(check, "raw body", "pass", f"{said}: {VERIFIES_RAW}", r)
        elif r.ok:
            why = (
                SHOWS_NOTHING
                if trusting
                else (
                    "whether it verifies the raw bytes is not shown: it did not reject the wrong "
                    "signature"
                )
            )
            self.add(check, "raw body", "warn", f"{said}: {why}", r)
        elif r.status is not None and 400 <= r.status < 500 and accepted_any and verifies:
            self.add(check, "raw body", "fail", f"{said}: {RESERIALIZED}", r)
        elif r.status is not None and 400 <= r.status < 500 and accepted_any:
            why = (
                "a validly signed event was rejected, yet the wrong signature was not: not "
                "its signature check; check how it reads JSON (non-ASCII text, \\u and \\/ "
                "escapes, spacing)"
            )
            self.add(check, "raw body", "fail", f"{said}: {why}", r)
        elif r.status is not None and 400 <= r.status < 500:
            why = "rejected like the events above; fix those first"
            self.add(check, "raw body", "fail", f"{said}: {why}", r)
        else:
            self.judge_valid(check, "raw body", r)

    async def duplicate(self) -> None:
        body = catalog.build("message.received")
        headers = self.headers(body)
        first = await self.post(body, headers)
        second = await self.post(body, headers)
        key = timeline.event_key([], body)
        said = f"first {self.answered(first)}, then {self.answered(second)}"
        row = CheckRow("duplicate delivery", "duplicate", "pass", "", second.status)
        row.latency_ms = second.elapsed_ms
        row.statuses = [first.status, second.status]
        if not first.ok:
            row.verdict, row.detail = "fail", f"{said}: the first delivery was not accepted"
        elif second.ok:
            row.detail = f"{said}; make sure it was processed once (dedup key {key})"
        elif second.status is not None and second.status >= 500:
            why = "the duplicate crashed it; answer 2xx and skip work already done"
            row.verdict, row.detail = "fail", f"{said}: {why}"
        elif second.status is None:
            row.verdict = "fail"
            row.detail = f"{said}: the duplicate was not answered; the platform would retry"
        else:
            why = "the platform retries any non-2xx; answer 2xx to a duplicate and skip the work"
            row.verdict, row.detail = "warn", f"{said}: {why}"
        self.rows.append(row)


def _secs(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


async def check_receiver(
    url: str,
    secret: str,
    *,
    scheme: str = "platform",
    timeout: float = sender.DEFAULT_TIMEOUT,
    slow: float = DEFAULT_SLOW,
    oversize: int = DEFAULT_OVERSIZE,
    client: httpx.AsyncClient | None = None,
    tls: TlsOptions = VERIFY,
    own_ca: Path | None = None,
    strict: bool = False,
) -> CheckReport:
    """Run every check against ``url`` and return the report (never raises for the
    receiver's misbehaviour; ``BadRequest`` for an invalid URL, secret or scheme).

    ``tls`` says how an https:// receiver's certificate is checked; ``own_ca`` (the local
    CA) is trusted for receivers on this machine. ``strict``: warnings fail the report.
    """
    url = sender.check_url(url)
    secret = sender.check_secret(secret)
    scheme = sender.check_scheme(scheme)
    own = client is None
    http = client or sender.make_client(own_ca=own_ca)
    try:
        checker = _Checker(http, url, secret, scheme, timeout, slow, tls)
        await checker.run(oversize)
    finally:
        if own:
            await http.aclose()
    return CheckReport(url, scheme, checker.rows, strict)
