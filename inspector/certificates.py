"""The local certificate authority and the server certificate it issues (``serve --https``).

On first use ``<data-dir>/tls/`` gets:

* ``ca.crt`` — the local CA's certificate: the one file people trust (``curl --cacert``,
  ``SSL_CERT_FILE``, ``NODE_EXTRA_CA_CERTS``, the OS store). ``ca.key``, its key (0600).
* ``server.crt`` and ``server.key`` (0600) — what the HTTPS listener presents: a certificate
  for ``localhost``, ``127.0.0.1``, ``::1``, the machine's host name and every
  ``--allow-host`` name, issued by the CA.

``ensure_server_certificate`` issues the server certificate again when the names change, when
it has less than ``RENEW_BEFORE`` left, or when it was not issued by the CA on disk; nothing
changes otherwise, so the files people trusted stay valid. The CA lasts ten years.

The cryptography is the ``cryptography`` library's; nothing here is hand-rolled. Keys are
ECDSA P-256: generated in a millisecond and accepted by every TLS stack people test with.
This module costs a few hundred milliseconds to import: only ``serve --https`` and tests use it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inspector.errors import InspectorError

CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)
LOOPBACK = ("localhost", "127.0.0.1", "::1")
_BACKDATE = dt.timedelta(minutes=5)  # clocks of clients a little behind still accept it

SAN = x509.DNSName | x509.IPAddress
_LABEL = re.compile(r"\*|[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE)


class CertificateError(InspectorError):
    """The local CA or a certificate cannot be made or read (a file, a name)."""

    status = 500
    error = "certificate_error"


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class ServerCertificate:
    """The files the HTTPS listener uses, what they cover, and what was done to get them."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    names: tuple[str, ...]
    not_after: dt.datetime
    ca_created: bool  # a new CA: whatever trusted the old one must trust this one
    issued: bool  # the server certificate was (re-)issued just now


# -- names -----------------------------------------------------------------------------------


def server_names(allow_hosts: Iterable[str] = (), hostname: str | None = None) -> tuple[str, ...]:
    """What the server certificate covers: the loopback names, the host name and each
    ``--allow-host`` name (port and brackets removed, lower-cased), without duplicates."""
    names: list[str] = list(LOOPBACK)
    host = _bare(socket.gethostname() if hostname is None else hostname)
    try:
        _san(host)
    except CertificateError:
        host = ""  # a host name no certificate can carry: the other names still work
    for name in [host, *(_bare(raw) for raw in allow_hosts)]:
        if name and name not in names:
            names.append(name)
    return tuple(names)


def _bare(host: str) -> str:
    """``[::1]:8443`` -> ``::1``; ``Example.test:80`` -> ``example.test``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _san(name: str) -> SAN:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels) or "*" in labels[1:]:
        raise CertificateError(
            f"{name!r} cannot be a name in a certificate (not a valid host name)."
        )
    return x509.DNSName(ascii_name)


def covered_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The names (DNS and IP) a certificate's subject alternative names cover, in order."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(name.value) for name in san if isinstance(name, x509.DNSName | x509.IPAddress))


# -- making ----------------------------------------------------------------------------------


def new_authority(
    common_name: str | None = None, *, now: dt.datetime | None = None, days: int = CA_DAYS
) -> Authority:
    """A new self-signed CA that may issue server certificates (and nothing else: no
    intermediate CAs)."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = common_name or (
        f"webhook-inspector local CA ({socket.gethostname()}, {now:%Y-%m-%d %H:%M:%S})"
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "webhook-inspector"),
            x509.NameAttribute(NameOID.COMMON_NAME, name[:64]),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def issue(
    authority: Authority,
    names: Sequence[str],
    *,
    now: dt.datetime | None = None,
    days: int = SERVER_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for ``names`` (host names and IP addresses), signed by
    ``authority``, valid from ``now`` for ``days``; and its new private key."""
    if not names:
        raise CertificateError("A server certificate needs at least one name.")
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    ca_public = authority.cert.public_key()
    assert isinstance(ca_public, ec.EllipticCurvePublicKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(authority.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
        )
        .sign(authority.key, hashes.SHA256())
    )
    return cert, key


# -- files -----------------------------------------------------------------------------------


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file, then a rename);
    ``private`` files are readable by their owner only (0600) from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = 0o600 if private else 0o644
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temporary, mode)  # O_CREAT's mode is masked by the umask
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def load_authority(directory: Path) -> Authority | None:
    """The CA in ``directory`` (``ca.crt``, ``ca.key``), or None if it has none yet."""
    cert_file, key_file = directory / "ca.crt", directory / "ca.key"
    if not cert_file.exists() and not key_file.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(
            f"The local CA in {directory} cannot be read ({exc}). Move ca.crt and ca.key "
            "away to have a new CA made (and trust the new ca.crt), or pass --cert and --key."
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise CertificateError(
            f"{key_file} is not the key of {cert_file}. Move both away to have a new CA made."
        )
    return Authority(cert, key)


def ensure_authority(directory: Path, *, now: dt.datetime | None = None) -> tuple[Authority, bool]:
    """The CA in ``directory``, made (and written) if there is none or it is about to expire;
    returns it and whether it is new."""
    now = now or _now()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    authority = load_authority(directory)
    if authority is not None and authority.cert.not_valid_after_utc - now > RENEW_BEFORE:
        return authority, False
    authority = new_authority(now=now)
    # The key first: a crash in between leaves no certificate without its key.
    write_file(directory / "ca.key", key_pem(authority.key), private=True)
    write_file(directory / "ca.crt", cert_pem(authority.cert))
    return authority, True


def needs_issue(
    cert_file: Path,
    key_file: Path,
    authority: Authority,
    names: Sequence[str],
    now: dt.datetime,
) -> str | None:
    """Why the server certificate on disk must be issued again, or None if it is good."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except FileNotFoundError:
        return "there is none yet"
    except (OSError, ValueError, TypeError):
        return "the files cannot be read"
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return "the key does not match the certificate"
    try:
        cert.verify_directly_issued_by(authority.cert)
    except (ValueError, TypeError, InvalidSignature):
        return "it was issued by another CA"
    if set(covered_names(cert)) != {_canonical(n) for n in names}:
        return "the names changed"
    if cert.not_valid_after_utc - now <= RENEW_BEFORE:
        return "it expires soon"
    return None


def _canonical(name: str) -> str:
    """A name as ``covered_names`` reads it back from a certificate."""
    san = _san(name)
    return str(san.value)


def ensure_server_certificate(
    directory: Path, names: Sequence[str], *, now: dt.datetime | None = None
) -> ServerCertificate:
    """The local CA and a server certificate for ``names`` in ``directory``: made on first
    use, issued again when the names change, when it expires within ``RENEW_BEFORE`` or when
    the CA is new; left alone otherwise."""
    now = now or _now()
    authority, ca_created = ensure_authority(directory, now=now)
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    issued = needs_issue(cert_file, key_file, authority, names, now) is not None
    if issued:
        cert, key = issue(authority, names, now=now)
        write_file(key_file, key_pem(key), private=True)
        write_file(cert_file, cert_pem(cert))
    else:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return ServerCertificate(
        ca_file=directory / "ca.crt",
        cert_file=cert_file,
        key_file=key_file,
        names=tuple(names),
        not_after=cert.not_valid_after_utc,
        ca_created=ca_created,
        issued=issued,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
