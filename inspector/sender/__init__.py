"""The delivery engine: play the platform — send signed events, retry them on its schedule.

One engine serves the server (started in the lifespan; the API and the page submit to it)
and ``webhook-inspector send --wait`` (run in the CLI process against the same store).

The package, one module per concept (everything is re-exported here):

* ``delivery`` — what to send: ``prepare`` validates a delivery into a ``DeliveryRequest``
  (``check_url``, ``check_secret``, ``check_scheme``, ``check_schedule``, ``check_headers``
  and the limits).
* ``attempt`` — one attempt: ``make_client``, ``signed_headers``, ``send_once`` (through
  ``inspector.outbound``, whose ``Exchange`` it returns) and ``attempt_record``, its log row.
* ``dispatcher`` — carriers (``cli_carrier``, ``carrier_alive``), the ``Dispatcher`` and
  ``describe_schedule``.

A delivery, as the platform makes it:

* ``POST`` with ``Content-Type: application/json``, the exact body bytes, signed with
  ``X-Webhook-Signature: sha256=<hex>`` (or another scheme from ``inspector.signatures``);
  the whole exchange must finish within ``timeout`` (30 s). Redirects are not followed.
* 2xx is success. Any other status, a timeout, a connection error or a redirect is a
  failure, retried after each wait of ``schedule`` (60, 300, 1800 s), each multiplied by
  ``time_scale``; after the last retry fails the delivery is ``failed``. Each wait counts
  from the failed attempt's *end* (its answer, or its timeout) by default — the platform's
  document retries "N minutes after" the receiver answered non-2xx — or from its *start*
  (``wait_from="start"``), when a slow failure shortens the wait (and one whose wait has
  already passed under a small time scale goes at once). ``timeline.build_timeline``
  judges a capture's retries the same way.
* Every attempt sends the same bytes; only timestamped schemes (Stripe, Slack, Standard
  Webhooks) sign again, and Standard Webhooks keeps one ``webhook-id`` for all attempts.

Durability: a delivery is committed before its first attempt, every finished attempt is
committed together with the next due time (``next_attempt_ts``), and the engine sleeps until
the soonest due delivery (or until ``notify()``). A restart resumes each delivery on time;
an attempt that was in flight when the process died was never logged, so it is sent again
(at-least-once, like the platform: receivers must be idempotent).
"""

from __future__ import annotations

from inspector.sender.attempt import (
    RESPONSE_CAP,
    USER_AGENT,
    attempt_record,
    make_client,
    send_once,
    signed_headers,
)
from inspector.sender.delivery import (
    DEFAULT_TIMEOUT,
    MAX_BODY,
    MAX_RETRIES,
    MAX_TIME_SCALE,
    MAX_TIMEOUT,
    MAX_URL,
    MAX_WAIT,
    DeliveryRequest,
    check_headers,
    check_schedule,
    check_scheme,
    check_secret,
    check_url,
    prepare,
)
from inspector.sender.dispatcher import (
    DeliveryChange,
    Dispatcher,
    Listener,
    SendingAttempt,
    carrier_alive,
    cli_carrier,
    describe_schedule,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BODY",
    "MAX_RETRIES",
    "MAX_TIMEOUT",
    "MAX_TIME_SCALE",
    "MAX_URL",
    "MAX_WAIT",
    "RESPONSE_CAP",
    "USER_AGENT",
    "DeliveryChange",
    "DeliveryRequest",
    "Dispatcher",
    "Listener",
    "SendingAttempt",
    "attempt_record",
    "carrier_alive",
    "check_headers",
    "check_schedule",
    "check_scheme",
    "check_secret",
    "check_url",
    "cli_carrier",
    "describe_schedule",
    "make_client",
    "prepare",
    "send_once",
    "signed_headers",
]
