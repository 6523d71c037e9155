"""The doctor's search: which mistake, or pair of mistakes, reproduces the sender's digest.

The space has six dimensions, each a list of variants by tier (tier 0 is what the scheme
expects, higher tiers are less likely or costlier mistakes):

    base       the body as it arrived | gunzipped
    rewrite    as is | re-serialized JSON or form, by library      (depends on the base)
    change     none | one byte change | two of different kinds     (applied to the rewrite)
    algorithm  expected | another whose digest length was sent
    key        configured secrets | their mistaken forms | foreign secrets
    signing    expected prefix | parts left out, ms | URL/method | ms sweep

``PASSES`` lists which dimensions leave tier 0, fewest mistakes and likeliest first: the
expected candidate (finds encoding mistakes alone), each single mistake, then pairs. Every
candidate costs one HMAC over prefix + body, paid from a ``Budget`` of bytes and wall time;
the search stops at the first candidate whose digest any reading of the sent signature
equals (``observations``), so how the digest is *written* never costs a try.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from inspector.signatures.base import DIGEST_SIZES, mac
from inspector.signatures.bodies import Signed
from inspector.signatures.mistake import Variant
from inspector.signatures.observations import Observation

Pass = tuple[tuple[str, int], ...]

PASSES: tuple[Pass, ...] = (  # the expected candidate first: encoding mistakes alone
    (),
    # Single mistakes. Different dimensions never give the same HMAC input, so this order
    # only decides cost: a byte change before re-serializing (when a newline explains it,
    # JSON is no better reason), and re-serializing, the costliest to prepare, last.
    (("change", 1),),
    (("key", 1),),
    (("signing", 1),),
    (("algorithm", 1),),
    (("base", 1),),
    (("key", 2),),
    (("signing", 2),),
    (("rewrite", 1),),
    # Pairs.
    (("change", 2),),  # two byte changes keep the sender's own bytes: the closer guess
    (("rewrite", 1), ("change", 1)),
    (("rewrite", 1), ("key", 1)),
    (("change", 1), ("key", 1)),
    (("rewrite", 1), ("signing", 1)),
    (("change", 1), ("signing", 1)),
    (("key", 1), ("signing", 1)),
    (("algorithm", 1), ("rewrite", 1)),
    (("algorithm", 1), ("change", 1)),
    (("algorithm", 1), ("key", 1)),
    (("algorithm", 1), ("signing", 1)),
    (("base", 1), ("rewrite", 1)),
    (("base", 1), ("change", 1)),
    (("key", 2), ("rewrite", 1)),
    (("key", 2), ("change", 1)),
    (("key", 2), ("signing", 1)),
    (("signing", 3),),
)
# Passes tried only when they fit the remaining budget whole (1,000 candidates each).
ALL_OR_NOTHING = frozenset({(("signing", 3),)})
T = TypeVar("T")


class Budget:
    """Bytes to hash and wall time; once either runs out the search stops (``stopped``)."""

    def __init__(self, max_bytes: int, seconds: float) -> None:
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.deadline = time.perf_counter() + seconds
        self.spent = 0
        self.tries = 0
        self.stopped = False

    def spend(self, cost: int) -> bool:
        if self.stopped:
            return False
        if self.spent + cost > self.max_bytes or time.perf_counter() > self.deadline:
            self.stopped = True
            return False
        self.spent += cost
        self.tries += 1
        return True

    def in_time(self) -> bool:
        if time.perf_counter() > self.deadline:
            self.stopped = True
        return not self.stopped


@dataclass
class Space:
    """The dimensions, each a tuple of tiers (tier 0 expected). ``rewrites`` makes the
    rewrite dimension of a base lazily: re-serializing is the costliest step to prepare."""

    base: tuple[Sequence[Variant[bytes]], ...]
    rewrites: Callable[[bytes], Iterable[Variant[bytes]]]
    change: tuple[Sequence[Variant[Signed | None]], ...]
    algorithm: tuple[Sequence[Variant[str]], ...]
    key: tuple[Sequence[Variant[bytes]], ...]
    signing: tuple[Sequence[Variant[bytes]], ...]


@dataclass
class Hit:
    """The candidate that reproduced a sent digest: its non-expected choices, in dimension
    order, and the reading of the signature it matched."""

    choices: list[Variant[object]]
    observation: Observation


@dataclass
class Search:
    """One failed request's search. ``tried`` collects, per (dimension, tier), the variants
    that were part of a tried candidate, for the "nothing found" sentence."""

    space: Space
    seen: Sequence[Observation]
    budget: Budget
    want: Callable[[Observation], bool]  # the reading the scheme expects (encoding, prefix)
    tried: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    paired: int = 0  # candidates tried with two mistakes
    _lazy: dict[int, _Lazy] = field(default_factory=dict)

    def run(self) -> Hit | None:
        """The first candidate, in PASSES order, whose digest was sent; None if none was
        (``budget.stopped`` says whether the search was cut short)."""
        for chosen in PASSES:
            if chosen in ALL_OR_NOTHING and not self._affordable(chosen):
                continue
            hit = self._pass(dict(chosen))
            if hit is not None:
                return hit
            if self.budget.stopped:
                return None
        self.budget.in_time()  # a re-serialization cut short by the clock stops it too
        return None

    def _pass(self, chosen: dict[str, int]) -> Hit | None:
        space = self.space
        sizes = {len(o.digest) for o in self.seen}
        for base in self._pick(space.base, "base", chosen):
            rewrites: Iterable[Variant[bytes] | None] = (
                self._rewrites(base.value) if "rewrite" in chosen else (None,)
            )
            for rewrite in rewrites:
                content = base.value if rewrite is None else rewrite.value
                for change in self._pick(space.change, "change", chosen):
                    signed = change.value
                    body = content if signed is None else signed(content)
                    if body is None:
                        continue
                    for algorithm in self._pick(space.algorithm, "algorithm", chosen):
                        if DIGEST_SIZES[algorithm.value] not in sizes:
                            continue
                        for key in self._pick(space.key, "key", chosen):
                            for prefix in self._pick(space.signing, "signing", chosen):
                                if not self.budget.spend(len(prefix.value) + len(body)):
                                    return None
                                choices: list[Variant[object] | None] = [
                                    base,
                                    rewrite,
                                    change,
                                    algorithm,
                                    key,
                                    prefix,
                                ]
                                self._note(chosen, choices)
                                if sum(c.count for c in choices if c is not None) > 1:
                                    self.paired += 1
                                digest = mac(key.value, algorithm.value, prefix.value, body)
                                found = self._match(digest)
                                if found is not None:
                                    if rewrite is not None:
                                        # Name every library that gives these bytes.
                                        self._rewrites(base.value).finish()
                                    picked = [c for c in choices if c is not None and c.count]
                                    return Hit(picked, found)
                if not self.budget.in_time():
                    return None
        return None

    def _pick(
        self, tiers: tuple[Sequence[Variant[T]], ...], name: str, chosen: dict[str, int]
    ) -> Sequence[Variant[T]]:
        tier = chosen.get(name, 0)
        return tiers[tier] if tier < len(tiers) else ()

    def _match(self, digest: bytes) -> Observation | None:
        """The sent reading equal to ``digest``, preferring the one the scheme expects.
        Compared in constant time, like the verifier (the count of readings is public)."""
        found = [o for o in self.seen if hmac.compare_digest(digest, o.digest)]
        if not found:
            return None
        return next((o for o in found if self.want(o)), found[0])

    def _note(self, chosen: dict[str, int], choices: list[Variant[object] | None]) -> None:
        names = ("base", "rewrite", "change", "algorithm", "key", "signing")
        for name, choice in zip(names, choices, strict=True):
            if choice is not None and choice.count:
                self.tried.setdefault((name, chosen[name]), set()).add(id(choice))

    def _rewrites(self, body: bytes) -> _Lazy:
        key = id(body)
        if key not in self._lazy:
            self._lazy[key] = _Lazy(iter(self.space.rewrites(body)), self.budget)
        return self._lazy[key]

    def _affordable(self, chosen: Pass) -> bool:
        space, budget = self.space, self.budget
        count = 1
        for name, tier in chosen:
            tiers = getattr(space, name)
            count *= len(tiers[tier]) if tier < len(tiers) else 0
        body = max((len(b.value) for b in space.base[0]), default=0)
        count *= max(1, len(space.key[0])) * max(1, len(space.algorithm[0]))
        return count * (body + 64) <= budget.max_bytes - budget.spent and budget.in_time()


class _Lazy:
    """A generator's items, kept as they come so later passes replay them without redoing
    the work; pulling stops when the budget's time is up."""

    def __init__(self, items: Iterator[Variant[bytes]], budget: Budget) -> None:
        self._items: Iterator[Variant[bytes]] | None = items
        self._budget = budget
        self.cached: list[Variant[bytes]] = []

    def __iter__(self) -> Iterator[Variant[bytes]]:
        index = 0
        while True:
            if index < len(self.cached):
                yield self.cached[index]
                index += 1
                continue
            if self._items is None or time.perf_counter() > self._budget.deadline:
                return
            item = next(self._items, None)
            if item is None:
                self._items = None
                return
            self.cached.append(item)

    def finish(self) -> None:
        """Run the generator to its end (a few dozen libraries, within the budget's time),
        so that bytes shared by several libraries name them all."""
        for _ in self:
            pass
