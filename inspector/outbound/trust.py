"""Which certificates an outbound request trusts: the TLS options of a replay, a forward, a
delivery or a ``check``, and the SSL contexts made from them.

Verification is on by default, against the public CAs (certifi's bundle, as httpx uses;
nothing is taken from the environment). ``TlsOptions`` changes that per request:

* ``ca_file`` — a PEM file of CA certificates trusted as well (your own CA, a test CA);
* ``insecure`` — verify nothing: any certificate, any name. Callers mark it loudly.

The inspector's own local CA (``<data-dir>/tls/ca.crt``, ``serve --https``) is trusted
automatically, but only for targets that are this machine — a loopback address, ``localhost``
or the host name (``self_target``) — so replaying to its own HTTPS listener just works while
the CA's key can never vouch for anyone else's site.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi

from inspector.errors import BadRequest


@dataclass(frozen=True)
class TlsOptions:
    """How an outbound request checks the certificate of an https:// target."""

    ca_file: str | None = None  # PEM file of extra CA certificates to trust
    insecure: bool = False  # verify nothing (never the default; shown wherever it is used)

    def merged(self, default: TlsOptions) -> TlsOptions:
        """These options, falling back on ``default`` for what they leave unset."""
        return TlsOptions(self.ca_file or default.ca_file, self.insecure or default.insecure)


VERIFY = TlsOptions()


class CaFileError(OSError):
    """A CA file cannot be used (missing, unreadable, no PEM certificate in it)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot use the CA file {path} ({reason})")
        self.path = path
        self.reason = reason


def load_ca_file(context: ssl.SSLContext, path: str) -> None:
    """Trust the CA certificates in ``path`` too; ``CaFileError`` says why it cannot."""
    try:
        context.load_verify_locations(cafile=path)
    except FileNotFoundError:
        raise CaFileError(path, "no such file") from None
    except IsADirectoryError:
        raise CaFileError(path, "a directory, not a file") from None
    except PermissionError:
        raise CaFileError(path, "permission denied") from None
    except ssl.SSLError as exc:
        reason = "no PEM certificate in it" if "NO_CERTIFICATE" in str(exc).upper() else str(exc)
        raise CaFileError(path, reason) from None
    except OSError as exc:
        raise CaFileError(path, exc.strerror or str(exc)) from None


def check_ca_file(value: object, name: str = "ca_file") -> str | None:
    """A CA file a request may name: None, or the absolute path of a readable PEM file of
    CA certificates. ``BadRequest`` says what is wrong, before anything is sent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "\0" in value:
        raise BadRequest(f"{name}: the path of a PEM file of CA certificates.")
    path = str(Path(value).expanduser().resolve())
    try:
        load_ca_file(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), path)
    except CaFileError as exc:
        raise BadRequest(f"{name}: {exc}.", error="invalid_ca_file") from None
    return path


def check_insecure(value: object, name: str = "insecure") -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{name}: must be true or false.")
    return value


def client_context(options: TlsOptions, own_ca: Path | None = None) -> ssl.SSLContext:
    """The SSL context for ``options``: the public CAs, plus ``options.ca_file`` and
    ``own_ca`` (when it exists); or, ``insecure``, one that verifies nothing.

    Loading the bundle takes tens of milliseconds: callers make one per set of options and
    keep it (``GuardedTransport`` does, one per connection pool).
    """
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if options.ca_file:
        load_ca_file(context, options.ca_file)
    if own_ca is not None and own_ca.is_file():
        load_ca_file(context, str(own_ca))
    return context


def self_target(host: str) -> bool:
    """Whether ``host`` names this machine: a loopback address, ``localhost`` (or a name
    under it) or the host name. The local CA is trusted for these only."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        pass
    return host == socket.gethostname().lower()
