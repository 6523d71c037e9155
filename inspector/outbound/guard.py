"""Where outbound requests may go: the address guard every replay, mirror, proxy, delivery
and check goes through.

Targets may be loopback or private addresses (your app is the point), but never link-local
or cloud-metadata ones: ``169.254.0.0/16``, ``fe80::/10``, ``fd00:ec2::254`` and
``100.100.100.200``, also when an IPv6 address carries one (IPv4-mapped ``::ffff:a.b.c.d``,
compatible, 6to4, NAT64, Teredo). Two checks:

* ``parse_target`` reads the URL's host in every numeric spelling ``inet_aton`` and URL
  parsers accept (``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376``,
  ``169.254.43518``, percent-encoded or full-width digits) and refuses at once.
* ``GuardedBackend`` (httpcore's network backend) resolves every name itself, checks every
  address, and connects to the address it checked (resolve, check, pin): the check is on the
  address actually connected to, before any connection is made, so a name that resolves to a
  metadata address (or changes its answer) cannot get through. ``resolve`` is a hook, so
  tests can map a name to such an address without contacting it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote, urlsplit

import anyio
import httpcore
import httpx

from inspector.errors import BadRequest, Forbidden

MAX_URL = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMBER = {16: re.compile(r"[0-9a-fA-F]*"), 8: re.compile(r"[0-7]+"), 10: re.compile(r"[0-9]+")}


class TargetRefused(Forbidden):
    """The target is a link-local or cloud-metadata address: never contacted."""

    error = "refused_target"


class NameNotResolved(httpcore.ConnectError):
    """The target's host name has no address (DNS said no, or had nothing)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"could not resolve {host}: {reason}")
        self.host = host
        self.reason = reason


def parse_ipv4_number(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any spelling ``inet_aton`` and URL parsers accept, or None.

    ``169.254.169.254``, ``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376``,
    ``169.254.43518``, ``0xa9.0xfe.0xa9.0xfe``: one to four parts, each decimal, ``0x`` hex
    or ``0`` octal; the last part fills the remaining bytes.
    """
    parts = host.removesuffix(".").split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if part[:2].lower() == "0x":
            base, digits = 16, part[2:]
        elif len(part) > 1 and part[0] == "0":
            base, digits = 8, part[1:]
        else:
            base, digits = 10, part
        if not part or not _NUMBER[base].fullmatch(digits):
            return None
        values.append(int(digits, base) if digits else 0)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host spells, if it is an address literal in any spelling."""
    text = unicodedata.normalize("NFKC", unquote(host)).strip().lower()
    for dot in ("\u3002", "\uff0e", "\uff61"):  # IDNA treats these as dots
        text = text.replace(dot, ".")
    text = text.removeprefix("[").removesuffix("]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return parse_ipv4_number(text)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: mapped, compatible, 6to4, NAT64, Teredo."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    number = int(ip)
    if ip in _NAT64 or (number >> 32 == 0 and number > 1):
        return ipaddress.IPv4Address(number & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` must never be contacted, or None if it may be."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            candidates.insert(0, inner)
    for candidate in candidates:
        if candidate.is_link_local or candidate in METADATA_ADDRESSES:
            return f"refused: {candidate} is a link-local/cloud-metadata address"
    return None


def address_refusal(address: str) -> str | None:
    """Why a resolved ``address`` must never be contacted, or None if it may be."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"refused: {address!r} is not an IP address"
    return refusal(ip)


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


# A socket option as httpcore's backends take them (``httpcore._backends.base.SOCKET_OPTION``).
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, refuse link-local/metadata addresses, then connect to the checked address.

    ``resolve`` is the hook tests use to map a name to an address without any DNS; without
    one, ``resolve_host`` (looked up when connecting) asks the system resolver.
    """

    def __init__(
        self, resolve: Resolver | None = None, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.resolve = resolve
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        resolve = self.resolve or resolve_host
        try:
            with anyio.fail_after(timeout):
                addresses = await resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {timeout:g} s") from None
        except socket.gaierror as exc:
            raise NameNotResolved(host, (exc.strerror or str(exc)).lower()) from None
        except OSError as exc:
            raise NameNotResolved(host, str(exc)) from None
        if not addresses:
            raise NameNotResolved(host, "no addresses")
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None:
                raise TargetRefused(
                    reason if address == host else f"{reason} ({host} resolves to it)"
                )
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("refused: unix sockets are never outbound targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def parse_target(url: object, name: str = "url") -> httpx.URL:
    """An outbound target (replay, forward, delivery): an http(s) URL whose host is not a
    refused address. ``name`` is the field named in errors."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise BadRequest(f"{name}: must be an http:// or https:// URL.", error="invalid_url")
    if len(url) > MAX_URL:
        raise BadRequest(f"{name}: at most {MAX_URL} characters.", error="invalid_url")
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}.", error="invalid_url") from None
    literal = literal_address(host) if host else None
    reason = refusal(literal) if literal is not None else None
    if reason is not None:
        raise TargetRefused(reason)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BadRequest(f"{name}: {exc}.", error="invalid_url") from None
    if not parsed.host:
        raise BadRequest(f"{name}: the URL has no host.", error="invalid_url")
    if parsed.userinfo:
        raise BadRequest(f"{name}: credentials in the URL are not sent; use a header.")
    return parsed.copy_with(fragment=None)
