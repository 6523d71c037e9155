"""The one error hierarchy.

Every error the inspector raises on purpose is an ``InspectorError``. It carries the HTTP
status it maps to, a short machine-readable ``error`` code and a human ``detail``. One
handler in ``app.py`` turns it into JSON for ``/api`` and HTML for pages; the CLI turns it
into an exit code.

    InspectorError
    ├── BadRequest          400: a parameter, body or name the user sent is not acceptable
    │   └── FaultParamError 400: a failure-mode parameter (``?delay=-1``) is out of range
    ├── Unauthorized        401: the server requires its token (``serve --token``)
    ├── NotFound            404
    ├── Forbidden           403: cross-origin write (CSRF defence), refused target address
    ├── MisdirectedHost     421: Host header not in the allow-list (DNS-rebinding defence)
    ├── PayloadTooLarge     413
    ├── RangeNotSatisfiable 416: a body's byte range starts beyond its end
    ├── StoreUnavailable    503: the store could not commit; the sender should retry
    │   └── SchemaTooNew    503: the store was migrated by a newer version (refuse to start)
    ├── CertificateError    500: the local CA or a certificate cannot be made or read
                                 (``certificates.py``, which only ``serve --https`` imports)
    └── Busy                503: a bounded resource (long-poll waiters) is full; Retry-After
"""

from __future__ import annotations

from inspector.jsontypes import JSONValue


class InspectorError(Exception):
    status: int = 500
    error: str = "internal_error"
    headers: dict[str, str] | None = None  # extra response headers (Retry-After)

    def __init__(self, detail: JSONValue = None, *, error: str | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else (error or self.error))
        self.detail = detail
        if error is not None:
            self.error = error

    def to_dict(self) -> dict[str, JSONValue]:
        return {"error": self.error, "detail": self.detail}


class BadRequest(InspectorError):
    status = 400
    error = "bad_request"


class FaultParamError(BadRequest):
    """A failure-mode parameter has an invalid value; ``param`` names it."""

    error = "invalid_parameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class Unauthorized(InspectorError):
    status = 401
    error = "unauthorized"


class NotFound(InspectorError):
    status = 404
    error = "not_found"


class Forbidden(InspectorError):
    status = 403
    error = "forbidden"


class MisdirectedHost(InspectorError):
    status = 421
    error = "misdirected_request"


class PayloadTooLarge(InspectorError):
    status = 413
    error = "payload_too_large"


class RangeNotSatisfiable(InspectorError):
    """A ``Range`` that no byte of the body falls in (``size``: how many there are)."""

    status = 416
    error = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"The body has {size} bytes: no byte of the range asked for is there.")
        self.headers = {"content-range": f"bytes */{size}"}


class StoreUnavailable(InspectorError):
    status = 503
    error = "store_unavailable"


class SchemaTooNew(StoreUnavailable):
    error = "schema_too_new"

    def __init__(self, found: int, known: int, where: str) -> None:
        super().__init__(
            f"The store at {where} has schema version {found}, newer than this "
            f"webhook-inspector knows (version {known}). Upgrade webhook-inspector on this "
            "machine (every replica must run the same or a newer version), or use another store."
        )
        self.found = found
        self.known = known


class Busy(InspectorError):
    """Too many at once of something bounded; the client may try again after ``retry_after``."""

    status = 503
    error = "busy"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.headers = {"retry-after": str(retry_after)}
