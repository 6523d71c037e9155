"""The endpoint cache: settings in memory, compiled per endpoint name."""

from __future__ import annotations

from inspector.endpoints import MAX_COMPILED, EndpointCache
from inspector.store import Store


def test_the_compiled_endpoints_stay_bounded_whatever_names_senders_use(store: Store) -> None:
    # Any name under /h/ is an endpoint: a sender putting an id in it (/h/<uuid>) must not
    # grow the cache with every capture; an endpoint with settings keeps them when recompiled.
    cache = EndpointCache(store, default_secret=None)
    cache.load(1, {"configured": {"response": {"status": 202}}})
    assert cache.get("configured").rules == {"status": 202}
    for n in range(3 * MAX_COMPILED):
        assert cache.get(f"sender-{n}").name == f"sender-{n}"
    assert len(cache._compiled) == MAX_COMPILED
    assert cache.get("configured").rules == {"status": 202}
    assert cache.get("sender-0").has_rules is False
