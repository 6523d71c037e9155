"""Endpoint settings: what an endpoint verifies, how it answers, where it forwards.

Settings are stored as JSON in the ``endpoints`` table and cached in memory by the server
(``EndpointCache``), compiled into what the capture path needs. The API writes them and
refreshes the cache before it answers. The CLI may write the table directly while a server
runs: a capture carries the cache's version into the store's writer, which refuses it if the
store holds newer settings (``Store.write_as_of``); the receiver then refreshes the cache and
prepares it again. So a change has taken effect for every capture that arrives after it
returned, with no read on the capture path. A poll (once a second) also refreshes the cache
for everything else that shows settings (re-verification, the page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

from inspector import faults
from inspector.errors import BadRequest, InspectorError
from inspector.faults import FaultRules
from inspector.outbound.guard import parse_target
from inspector.outbound.trust import TlsOptions, check_insecure
from inspector.signatures import SignatureConfig
from inspector.store import Store
from inspector.store.endpoints import all_endpoint_settings, settings_version
from inspector.timeline import DEFAULT_SCHEDULE, DEFAULT_WAIT_FROM, WAIT_FROM

log = logging.getLogger("inspector.endpoints")

FORWARD_MODES = ("mirror", "proxy")

_KEYS = (
    "secret",
    "scheme",
    "tolerance",
    "enforce",
    "hmac",
    "response",
    "schedule",
    "schedule_tolerance",
    "wait_from",
    "forward_to",
    "forward_mode",
    "replay_to",
    "ca_file",
    "insecure",
    "retired_secrets",
)
# Secrets removed from an endpoint are remembered, newest first, so the doctor can say "the
# sender still uses the secret you rotated out"; a few suffice (each costs one HMAC there).
MAX_RETIRED = 8


class SettingsDict(TypedDict):
    """An endpoint's settings as stored and as ``/api/endpoints/{name}`` shows them."""

    secret: list[str]  # several while rotating
    scheme: str  # auto, or one of signatures.SCHEMES
    tolerance: int  # seconds a signed timestamp may be off
    enforce: bool  # answer 401 to a bad signature
    hmac: dict[str, str]  # header, algorithm, encoding, prefix (the generic HMAC scheme)
    response: FaultRules  # failure-mode rules, as ``faults.parse_rules`` validated them
    schedule: list[float]  # the retry schedule the sender promises (seconds)
    schedule_tolerance: float
    wait_from: str  # start | end: where the sender counts each wait from
    forward_to: str | None
    forward_mode: str  # mirror | proxy
    replay_to: str | None
    ca_file: str | None  # a CA (PEM) trusted as well when forwarding or replaying to https://
    insecure: bool  # forwards and replays do not verify certificates
    retired_secrets: list[str]  # removed from ``secret``, newest first (for the doctor)


class _Changes(TypedDict, total=False):
    """The fields of ``EndpointSettings`` a merge replaces, validated."""

    secrets: tuple[str, ...]
    scheme: str
    tolerance: int
    enforce: bool
    hmac: Mapping[str, str]
    response: FaultRules
    schedule: tuple[float, ...]
    schedule_tolerance: float
    wait_from: str
    forward_to: str | None
    forward_mode: str
    replay_to: str | None
    ca_file: str | None
    insecure: bool
    retired_secrets: tuple[str, ...]


@dataclass(frozen=True)
class EndpointSettings:
    secrets: tuple[str, ...] = ()
    scheme: str = "auto"
    tolerance: int = 300
    enforce: bool = False
    hmac: Mapping[str, str] = field(default_factory=dict)
    response: FaultRules = field(default_factory=FaultRules)
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    schedule_tolerance: float = 0.1
    wait_from: str = DEFAULT_WAIT_FROM
    forward_to: str | None = None
    forward_mode: str = "mirror"
    replay_to: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    retired_secrets: tuple[str, ...] = ()

    @property
    def tls(self) -> TlsOptions:
        """How forwards and replays of this endpoint check certificates."""
        return TlsOptions(self.ca_file, self.insecure)

    @classmethod
    def from_dict(cls, data: object, *, max_delay: float = 600.0) -> EndpointSettings:
        """Validate stored or submitted settings; ``BadRequest`` names the bad key."""
        return cls().merged(data, max_delay=max_delay)

    def merged(self, data: object, *, max_delay: float = 600.0) -> EndpointSettings:
        """These settings with ``data``'s keys replaced (``None`` resets a key to default)."""
        if not isinstance(data, Mapping):
            raise BadRequest("Endpoint settings must be a JSON object.")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise BadRequest(
                f"Unknown endpoint setting(s): {', '.join(unknown)}. Known: {', '.join(_KEYS)}.",
                error="unknown_setting",
            )
        changes = _Changes()
        resets: list[str] = []  # None resets a key to its default
        for key, value in data.items():
            if value is None:
                resets.append("secrets" if key == "secret" else key)
            elif key == "secret":
                changes["secrets"] = _secrets(value)
            elif key in ("scheme", "tolerance", "hmac"):
                changes.update(_signature_fields(key, value))
            elif key == "enforce":
                if not isinstance(value, bool):
                    raise BadRequest("enforce: must be true or false.")
                changes["enforce"] = value
            elif key == "response":
                if not isinstance(value, Mapping):
                    raise BadRequest("response: must be an object of failure-mode rules.")
                changes["response"] = faults.parse_rules(value, max_delay=max_delay)
            elif key == "schedule":
                changes["schedule"] = _schedule(value)
            elif key == "schedule_tolerance":
                changes["schedule_tolerance"] = _fraction("schedule_tolerance", value)
            elif key == "wait_from":
                if not isinstance(value, str) or value not in WAIT_FROM:
                    raise BadRequest("wait_from: must be start or end.")
                changes["wait_from"] = value
            elif key == "forward_to":
                changes["forward_to"] = _url(key, value)
            elif key == "replay_to":
                changes["replay_to"] = _url(key, value)
            elif key == "ca_file":
                changes["ca_file"] = _path("ca_file", value)
            elif key == "insecure":
                changes["insecure"] = check_insecure(value)
            elif key == "forward_mode":
                if not isinstance(value, str) or value not in FORWARD_MODES:
                    raise BadRequest(f"forward_mode: must be one of {', '.join(FORWARD_MODES)}.")
                changes["forward_mode"] = value
            elif key == "retired_secrets":
                changes["retired_secrets"] = _secrets(value)[:MAX_RETIRED]
        if ("secrets" in changes or "secrets" in resets) and "retired_secrets" not in data:
            changes["retired_secrets"] = self._retire(changes.get("secrets", ()))
        defaults = EndpointSettings()
        reset = replace(self, **{name: getattr(defaults, name) for name in resets})
        return replace(reset, **changes)

    def reset(self) -> EndpointSettings:
        """Default settings that still remember this endpoint's secrets as retired."""
        return replace(EndpointSettings(), retired_secrets=self._retire(()))

    def _retire(self, kept: tuple[str, ...]) -> tuple[str, ...]:
        """The retired secrets once the current ones not in ``kept`` are removed."""
        removed = [s for s in reversed(self.secrets) if s not in kept]
        retired = dict.fromkeys(s for s in (*removed, *self.retired_secrets) if s not in kept)
        return tuple(retired)[:MAX_RETIRED]

    def to_dict(self) -> SettingsDict:
        return {
            "secret": list(self.secrets),
            "scheme": self.scheme,
            "tolerance": self.tolerance,
            "enforce": self.enforce,
            "hmac": dict(self.hmac),
            "response": FaultRules(**self.response),
            "schedule": list(self.schedule),
            "schedule_tolerance": self.schedule_tolerance,
            "wait_from": self.wait_from,
            "forward_to": self.forward_to,
            "forward_mode": self.forward_mode,
            "replay_to": self.replay_to,
            "ca_file": self.ca_file,
            "insecure": self.insecure,
            "retired_secrets": list(self.retired_secrets),
        }

    def signature_config(self, default_secret: str | None = None) -> SignatureConfig:
        secrets = self.secrets or ((default_secret,) if default_secret else ())
        hmac = {f"hmac_{k}": v for k, v in self.hmac.items()}
        return SignatureConfig(
            secrets=secrets, scheme=self.scheme, tolerance=self.tolerance, **hmac
        )


def _secrets(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise BadRequest("secret: must be a non-empty string or a list of them (for rotation).")
    # The rules verification applies (count, length, valid Unicode): refuse now what would
    # otherwise be stored and then fail every capture at this endpoint.
    SignatureConfig(secrets=tuple(items))
    return tuple(items)


def _signature_fields(key: str, value: object) -> _Changes:
    # SignatureConfig owns the rules for these; validate through it and keep what it accepted.
    if key == "hmac":
        if not isinstance(value, Mapping):
            raise BadRequest("hmac: must be an object (header, algorithm, encoding, prefix).")
        unknown = sorted(set(value) - {"header", "algorithm", "encoding", "prefix"})
        if unknown:
            raise BadRequest(f"hmac: unknown key(s) {', '.join(unknown)}.")
        config = SignatureConfig.from_dict({f"hmac_{k}": v for k, v in value.items()})
        return {"hmac": {k: getattr(config, f"hmac_{k}") for k in value}}
    config = SignatureConfig.from_dict({key: value})
    if key == "scheme":
        return {"scheme": config.scheme}
    return {"tolerance": config.tolerance}


def _schedule(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or len(value) > 20:
        raise BadRequest("schedule: must be a list of 1 to 20 retry intervals in seconds.")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1e7:
            raise BadRequest("schedule: each interval must be a positive number of seconds.")
        out.append(float(v))
    return tuple(out)


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BadRequest(f"{name}: must be a number between 0 and 1.")
    return float(value)


def _url(name: str, value: object) -> str:
    """A target URL, checked when it is configured — not only when something is sent: a
    link-local or cloud-metadata literal is refused here (403) as every send refuses it."""
    if not isinstance(value, str):
        raise BadRequest(f"{name}: must be an http:// or https:// URL.")
    parse_target(value, name)
    return value


def _path(name: str, value: object) -> str:
    # Only the shape here: stored settings are loaded with this too, and a file that has
    # gone since must not cost the endpoint its settings (using it says what is wrong).
    if not isinstance(value, str) or "\0" in value or not Path(value).is_absolute():
        raise BadRequest(f"{name}: must be the absolute path of a PEM file of CA certificates.")
    return value


def _signing(settings: EndpointSettings | None) -> tuple[object, ...]:
    """The settings a verdict depends on."""
    s = settings or EndpointSettings()
    return (s.secrets, s.scheme, s.tolerance, tuple(sorted(s.hmac.items())))


@dataclass(frozen=True)
class Endpoint:
    """An endpoint's settings compiled for the capture path."""

    name: str
    settings: EndpointSettings
    signature: SignatureConfig
    rules: FaultRules
    has_rules: bool
    # Other endpoints' secrets: the doctor checks whether a failing signature was made with one.
    other_secrets: Mapping[str, tuple[str, ...]]
    # Secrets this endpoint used before: a sender that has not switched yet.
    retired_secrets: tuple[str, ...] = ()


# Told which endpoints' signature settings changed (from the API or the CLI), with each one
# compiled anew, so their stored verdicts can be re-computed (``reverify.Reverifier.schedule``).
SignatureChange = Callable[[Mapping[str, "Endpoint"]], None]


# Endpoints kept compiled. Any name under /h/ is an endpoint, settings or not: a sender that
# puts an id in the name (/h/<uuid>) must not grow the cache with every capture.
MAX_COMPILED = 1024


class EndpointCache:
    """Endpoint settings in memory, refreshed from the store when their version changes."""

    def __init__(
        self,
        store: Store,
        *,
        default_secret: str | None,
        forward_to: str | None = None,
        forward_mode: str = "mirror",
        max_delay: float = 600.0,
        on_signature_change: SignatureChange | None = None,
    ) -> None:
        self.store = store
        self.default_secret = default_secret
        self.forward_to = forward_to
        self.forward_mode = forward_mode
        self.max_delay = max_delay
        self._version = -1
        self._settings: dict[str, EndpointSettings] = {}
        self._compiled: dict[str, Endpoint] = {}
        self._task: asyncio.Task[None] | None = None
        self._on_signature_change = on_signature_change

    @property
    def version(self) -> int:
        """The settings version loaded (the store's ``max(version)`` when last read)."""
        return self._version

    def get(self, name: str) -> Endpoint:
        endpoint = self._compiled.get(name)
        if endpoint is None:
            endpoint = self._compile(name, self._settings.get(name, EndpointSettings()))
            if len(self._compiled) >= MAX_COMPILED:
                # Endpoints are whatever names senders use: the oldest compiled goes.
                del self._compiled[next(iter(self._compiled))]
            self._compiled[name] = endpoint
        return endpoint

    def settings(self, name: str) -> EndpointSettings:
        return self._settings.get(name, EndpointSettings())

    def _compile(self, name: str, settings: EndpointSettings) -> Endpoint:
        if self.forward_to and settings.forward_to is None:
            # The global mode applies unless the endpoint chose proxy itself.
            mode = "proxy" if settings.forward_mode == "proxy" else self.forward_mode
            settings = replace(settings, forward_to=self.forward_to, forward_mode=mode)
        return Endpoint(
            name=name,
            settings=settings,
            signature=self._signature(name, settings),
            rules=settings.response,
            has_rules=bool(settings.response),
            other_secrets={
                other: s.secrets
                for other, s in self._settings.items()
                if s.secrets and other != name
            },
            retired_secrets=settings.retired_secrets,
        )

    def _signature(self, name: str, settings: EndpointSettings) -> SignatureConfig:
        try:
            return settings.signature_config(self.default_secret)
        except BadRequest as exc:
            # Settings written before today's validation must not stop capture: verify nothing.
            log.error("endpoint %s: unusable signature settings (%s); not verifying", name, exc)
            return SignatureConfig()

    def load(self, version: int, rows: Mapping[str, Mapping[str, object]]) -> None:
        if version < self._version:
            return  # a slower concurrent refresh read older settings: keep the newer
        settings: dict[str, EndpointSettings] = {}
        for name, data in rows.items():
            try:
                settings[name] = EndpointSettings.from_dict(data, max_delay=math.inf)
            except InspectorError:
                settings[name] = EndpointSettings()  # never let a bad row stop capture
        changed = {
            name
            for name in set(self._settings) | set(settings)
            if _signing(self._settings.get(name)) != _signing(settings.get(name))
        }
        first_load = self._version == -1
        self._settings = settings
        self._compiled = {}
        self._version = version
        if changed and not first_load and self._on_signature_change is not None:
            self._on_signature_change({name: self.get(name) for name in sorted(changed)})

    async def refresh(self) -> None:
        version = await self.store.read(settings_version)
        if version != self._version:
            self.load(*await self.store.read(all_endpoint_settings))

    def start(self, interval: float = 1.0) -> None:
        async def poll() -> None:
            while True:
                await asyncio.sleep(interval)
                with contextlib.suppress(Exception):
                    await self.refresh()

        self._task = asyncio.get_running_loop().create_task(poll())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
