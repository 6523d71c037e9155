"""The token that guards the control routes when the inspector is shared on a network.

``serve --token TOKEN`` (or ``WEBHOOK_INSPECTOR_TOKEN``; generated when binding a non-loopback
address) makes the page, ``/api`` and the live streams require it. ``ControlGuard`` asks
``Access.allows`` about every control request:

* API clients send ``Authorization: Bearer TOKEN``.
* A browser opens the page once with ``?token=TOKEN``: the answer sets a session cookie
  (HttpOnly, SameSite=Strict, Path=/) and sends the browser on to the same URL without the
  token. The redirect is a page that refreshes itself rather than a 303, so the next request
  is initiated by our own origin: a SameSite=Strict cookie would not be sent on a redirect
  that continues a navigation started from another site (a link in a chat or a mail).
  ``EventSource`` and ``fetch`` send the cookie same-origin, so the streams need nothing more.
* Anything else gets ``401``: JSON for ``/api``, a small login page for the browser.

The cookie holds an HMAC of the token, not the token, and is named after a digest of it, so
two inspectors on one host (cookies ignore ports) keep their sessions apart. Comparisons are
constant-time. Capture routes never come here: senders cannot authenticate. Open without the
token: the page's static files, and the local CA's certificate (``/api/tls/ca.crt``: public,
and senders that must trust the HTTPS listener have no token).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

from starlette.types import Scope, Send

from inspector.tls import CA_URL

TOKEN_PARAM = "token"
OPEN_PREFIXES = ("/static/", "/favicon.ico")  # the page's own code and style: nothing secret
# The local CA's certificate is public by nature — whoever is to trust the HTTPS listener
# needs it, senders included, and senders have no token.
OPEN_PATHS = frozenset({CA_URL})


class Access:
    """What a control request must carry when a token is in effect."""

    def __init__(self, token: str) -> None:
        self.token = token.encode("utf-8")
        digest = hashlib.sha256(b"webhook-inspector cookie name\0" + self.token).hexdigest()
        self.cookie_name = f"inspector_{digest[:12]}"
        self.cookie_value = hmac.new(
            self.token, b"webhook-inspector session", hashlib.sha256
        ).hexdigest()

    def matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode("utf-8"), self.token)

    def allows(self, scope: Scope, headers: dict[str, str]) -> bool:
        """A valid Bearer token or session cookie (or an open path)."""
        path: str = scope["path"]
        if path.startswith(OPEN_PREFIXES) or path in OPEN_PATHS:
            return True
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and self.matches(credentials.strip()):
            return True
        return self._cookie(headers.get("cookie", "")) is not None

    def _cookie(self, header: str) -> str | None:
        if self.cookie_name not in header:
            return None
        try:
            jar = SimpleCookie(header)
        except CookieError:
            return None
        morsel = jar.get(self.cookie_name)
        if morsel is not None and hmac.compare_digest(
            morsel.value.encode("ascii", "replace"), self.cookie_value.encode("ascii")
        ):
            return morsel.value
        return None

    def login_attempt(self, scope: Scope) -> tuple[bool, str] | None:
        """For ``?token=`` on a page: (whether it matches, the URL without it); else None."""
        if scope["method"] not in ("GET", "HEAD"):
            return None
        query = scope["query_string"].decode("latin-1")
        if f"{TOKEN_PARAM}=" not in query:
            return None
        pairs = parse_qsl(query, keep_blank_values=True)
        given = [value for key, value in pairs if key == TOKEN_PARAM]
        if not given:
            return None
        rest = urlencode([(k, v) for k, v in pairs if k != TOKEN_PARAM])
        target = quote(scope["path"]) + (f"?{rest}" if rest else "")
        return self.matches(given[-1]), target

    async def log_in(
        self, scope: Scope, send: Send, target: str, extra: list[tuple[bytes, bytes]]
    ) -> None:
        """Set the session cookie and move on to ``target`` (the URL without the token)."""
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = (
            f"{self.cookie_name}={self.cookie_value}; Path=/; HttpOnly; SameSite=Strict{secure}"
        )
        shown = html.escape(target, quote=True)
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="0; url={shown}">'
            "<title>Signed in · webhook-inspector</title></head>"
            f'<body><p>Signed in. <a href="{shown}">Continue</a>.</p></body></html>'
        ).encode()
        await _answer(
            send,
            200,
            "text/html; charset=utf-8",
            body,
            [(b"set-cookie", cookie.encode("latin-1")), (b"cache-control", b"no-store"), *extra],
        )


def login_page(path: str, wrong: bool) -> bytes:
    """The small page a browser without the token sees (no script, no inline style)."""
    action = html.escape(quote(path), quote=True)
    problem = "<p><strong>That token is not right.</strong></p>" if wrong else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Token required · webhook-inspector</title>"
        '<link rel="stylesheet" href="/static/app.css"></head>'
        '<body class="login"><main class="login-box"><h1>webhook-inspector</h1>'
        "<p>This inspector is shared on a network: enter its token (printed by "
        "<code>webhook-inspector serve</code>), or open the link it printed.</p>"
        f'{problem}<form method="get" action="{action}">'
        '<label>Token <input name="token" type="password" autocomplete="current-password" '
        "required autofocus></label> <button>Open</button></form></main></body></html>"
    ).encode()


async def refuse(
    send: Send, scope: Scope, *, api: bool, wrong: bool, extra: list[tuple[bytes, bytes]]
) -> None:
    """401: JSON for the API and the streams' clients, the login page for a browser."""
    challenge = (b"www-authenticate", b'Bearer realm="webhook-inspector"')
    if api:
        detail = (
            "This inspector requires its token: send Authorization: Bearer TOKEN "
            "(the CLI: --token or WEBHOOK_INSPECTOR_TOKEN), or open the page with ?token=TOKEN."
        )
        body = json.dumps({"error": "unauthorized", "detail": detail}).encode()
        await _answer(send, 401, "application/json", body, [challenge, *extra])
    else:
        page = login_page(scope["path"], wrong)
        await _answer(send, 401, "text/html; charset=utf-8", page, [challenge, *extra])


async def _answer(
    send: Send,
    status: int,
    content_type: str,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
