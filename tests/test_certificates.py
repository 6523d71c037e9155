"""The local CA and the server certificate it issues: made once, private keys private,
issued again when the names change or the end is near, and accepted by a real TLS stack."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from inspector import certificates
from inspector.certificates import CertificateError, covered_names, server_names
from inspector.tls import server_context

NAMES = ("localhost", "127.0.0.1", "::1", "hooks.test")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_server_names_are_the_loopback_names_the_host_and_every_allowed_host() -> None:
    names = server_names(["Hooks.Test:8765", "[fe80::1]", "localhost", "10.0.0.5"], "box")
    assert names == ("localhost", "127.0.0.1", "::1", "box", "hooks.test", "fe80::1", "10.0.0.5")
    assert server_names()[3] == socket.gethostname().lower()


def test_the_ca_and_the_server_certificate_are_made_on_first_use_keys_private(
    tmp_path: Path,
) -> None:
    tls = tmp_path / "tls"
    made = certificates.ensure_server_certificate(tls, NAMES)
    assert made.ca_created and made.issued
    assert {p.name for p in tls.iterdir()} == {"ca.crt", "ca.key", "server.crt", "server.key"}
    assert mode(tls) == 0o700
    assert mode(tls / "ca.key") == mode(tls / "server.key") == 0o600
    assert mode(tls / "ca.crt") == 0o644
    server, ca = cert(tls / "server.crt"), cert(tls / "ca.crt")
    server.verify_directly_issued_by(ca)
    assert covered_names(server) == NAMES
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert made.not_after == server.not_valid_after_utc
    # A second start changes nothing: what people trusted stays trusted.
    before = {p.name: p.read_bytes() for p in tls.iterdir()}
    again = certificates.ensure_server_certificate(tls, NAMES)
    assert not again.ca_created and not again.issued
    assert {p.name: p.read_bytes() for p in tls.iterdir()} == before


def test_the_certificate_is_issued_again_when_the_names_change_or_its_end_nears(
    tmp_path: Path,
) -> None:
    tls = tmp_path / "tls"
    first = certificates.ensure_server_certificate(tls, NAMES)
    ca_bytes = (tls / "ca.crt").read_bytes()

    more = certificates.ensure_server_certificate(tls, (*NAMES, "new.test"))
    assert more.issued and not more.ca_created
    assert "new.test" in covered_names(cert(tls / "server.crt"))
    assert (tls / "ca.crt").read_bytes() == ca_bytes  # same CA: nothing to trust again

    later = first.not_after - dt.timedelta(days=29)  # inside the renewal window
    renewed = certificates.ensure_server_certificate(tls, (*NAMES, "new.test"), now=later)
    assert renewed.issued and not renewed.ca_created
    assert renewed.not_after > first.not_after

    ca_end = cert(tls / "ca.crt").not_valid_after_utc
    new_ca = certificates.ensure_server_certificate(tls, NAMES, now=ca_end - dt.timedelta(days=1))
    assert new_ca.ca_created and new_ca.issued
    cert(tls / "server.crt").verify_directly_issued_by(cert(tls / "ca.crt"))


def test_a_certificate_from_another_ca_or_a_foreign_key_is_replaced(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    certificates.ensure_server_certificate(tls, NAMES)
    other = certificates.new_authority("someone else")
    foreign, key = certificates.issue(other, NAMES)
    certificates.write_file(tls / "server.crt", certificates.cert_pem(foreign))
    certificates.write_file(tls / "server.key", certificates.key_pem(key), private=True)
    assert certificates.ensure_server_certificate(tls, NAMES).issued
    cert(tls / "server.crt").verify_directly_issued_by(cert(tls / "ca.crt"))
    (tls / "server.key").write_bytes(certificates.key_pem(key))
    assert certificates.ensure_server_certificate(tls, NAMES).issued


def test_a_broken_ca_says_what_to_do(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    certificates.ensure_server_certificate(tls, NAMES)
    (tls / "ca.key").write_bytes(b"not a key")
    with pytest.raises(CertificateError, match=r"Move ca\.crt and ca\.key away"):
        certificates.ensure_server_certificate(tls, NAMES)
    with pytest.raises(CertificateError, match="not a valid host name"):
        certificates.issue(certificates.new_authority(), ["bad name\x00"])


def test_a_real_handshake_trusts_it_through_the_ca_and_names_the_sni(tmp_path: Path) -> None:
    """An ssl client that trusts only ca.crt completes a handshake with the server
    context, for a DNS name (SNI sent) and for an IP address (no SNI)."""
    tls = tmp_path / "tls"
    made = certificates.ensure_server_certificate(tls, NAMES)
    context = server_context(made.cert_file, made.key_file)
    client = ssl.create_default_context(cafile=str(made.ca_file))
    seen: list[tuple[str | None, str | None]] = []

    def serve(listener: socket.socket) -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = context.wrap_bio(incoming, outgoing, server_side=True)
            while True:  # a handshake over memory BIOs, as asyncio does it
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    conn.sendall(outgoing.read())
                    incoming.write(conn.recv(65536))
            conn.sendall(outgoing.read())
            seen.append((obj.version(), getattr(obj, "requested_name", None)))
            conn.close()

    with socket.create_server(("127.0.0.1", 0)) as listener:
        thread = threading.Thread(target=serve, args=(listener,), daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        for name in ("localhost", "127.0.0.1"):
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                client.wrap_socket(raw, server_hostname=name) as wrapped,
            ):
                assert wrapped.version() in ("TLSv1.2", "TLSv1.3")
        thread.join(timeout=10)
    assert [name for _, name in seen] == ["localhost", None]
    assert all(version in ("TLSv1.2", "TLSv1.3") for version, _ in seen)
