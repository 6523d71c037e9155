"""The running parts of a server, and the one place that builds and stops them.

``running(settings)`` builds each part after what it depends on and hands every part what it
needs at construction — nothing is wired by changing an object after it is built:

    store -> hub -> diagnoser -> reverifier -> endpoint cache -> replayer -> receiver -> dispatcher

The ``Reverifier`` comes before the ``EndpointCache``: the cache tells it which endpoints'
signature settings changed and hands it those endpoints compiled anew, so the reverifier
never needs the cache. On the way out the parts stop in the reverse order (the dispatcher
first, the store last), also when building failed halfway.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.to_thread

from inspector.broadcast import Broadcaster
from inspector.capture import BodyBudget
from inspector.diagnosis import Diagnoser
from inspector.endpoints import EndpointCache
from inspector.outbound import TlsOptions
from inspector.receiver import Receiver
from inspector.replay import Replayer
from inspector.reverify import Reverifier
from inspector.sender import Dispatcher
from inspector.settings import Settings, local_ca_file
from inspector.store import Store, requests
from inspector.waiters import Waiters

log = logging.getLogger("inspector")


@dataclass(frozen=True)
class Runtime:
    """The running parts, built by ``running`` and shared by every route."""

    settings: Settings
    store: Store
    hub: Broadcaster
    endpoints: EndpointCache
    receiver: Receiver
    sender: Dispatcher
    replay: Replayer
    waiters: Waiters
    diagnoser: Diagnoser


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Runtime]:
    """Open the store and start every part; stop them all (in reverse) on exit."""
    async with contextlib.AsyncExitStack() as stack:
        store = Store(
            settings.db_path,
            retention=settings.retention,
            busy_timeout=settings.busy_timeout,
            synchronous=settings.synchronous,
            search_index=not settings.no_search_index,
        )
        await anyio.to_thread.run_sync(store.open)
        stack.push_async_callback(anyio.to_thread.run_sync, store.close)
        interrupted = await anyio.to_thread.run_sync(store.write_sync, requests.end_interrupted)
        if interrupted.count:
            log.warning("%d stalled request(s) were interrupted by a restart", interrupted.count)
        store.start()

        hub = Broadcaster()
        stack.callback(hub.close)
        # The doctor runs after the answer, one failing request at a time.
        diagnoser = Diagnoser(store, hub)
        stack.push_async_callback(diagnoser.stop)
        # Stored verdicts follow an endpoint's signature settings when they change.
        reverifier = Reverifier(store, hub, diagnoser)
        stack.callback(reverifier.cancel)
        endpoints = EndpointCache(
            store,
            default_secret=settings.secret,
            forward_to=settings.forward_to,
            forward_mode=settings.forward_mode,
            max_delay=settings.max_delay,
            on_signature_change=reverifier.schedule,
        )
        await endpoints.refresh()
        endpoints.start()
        stack.callback(endpoints.stop)

        # Replays, and the receiver's mirror (after the commit) and proxy (the answer). The
        # local CA (serve --https) is trusted for targets on this machine.
        own_ca = local_ca_file(settings.data_dir)
        trust = TlsOptions(str(settings.ca_file) if settings.ca_file else None, settings.insecure)
        replay = Replayer(
            store,
            timeout=settings.replay_timeout,
            hub=hub,
            max_relay=settings.max_body,
            trust=trust,
            own_ca=own_ca,
        )
        stack.push_async_callback(replay.aclose)
        receiver = Receiver(
            store,
            endpoints,
            hub,
            max_body=settings.max_body,
            max_delay=settings.max_delay,
            budget=BodyBudget(max(settings.max_body_memory, settings.max_body)),
            after_capture=[replay.after_capture],
            proxy=replay.proxy,
            diagnoser=diagnoser,
        )
        # Resumes pending deliveries: those due (or in flight when we stopped) go at once.
        sender = Dispatcher(store, hub=hub, own_ca=own_ca)
        sender.start()
        stack.push_async_callback(sender.stop)

        # Long-polls (GET /api/requests/wait), woken by the broadcaster.
        waiters = Waiters(store, hub)

        yield Runtime(settings, store, hub, endpoints, receiver, sender, replay, waiters, diagnoser)
