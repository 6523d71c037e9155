"""The doctor's vocabulary: a named mistake, and a variant (a value a sender making it uses).

The doctor's search space has one dimension per thing a sender can get wrong (the body, the
key, the signed string, the algorithm); each dimension lists the expected value(s) and
variants, each variant carrying the mistake(s) that produce it. A candidate is one choice per
dimension; its mistakes are the union of its choices'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

# Covariant: a Variant[str] is a Variant[object], so a candidate lists its mixed choices.
T = TypeVar("T", covariant=True)

# Families, in the order the "nothing found" sentence lists what was tried.
REWRITE = "re-serializations"
BYTES = "changes to the body's bytes"
SECRET = "variants of the secret"
OTHER_SECRET = "other secrets (other endpoints', rotated out)"
SIGNING = "signed-string variants"
SWEEP = "millisecond timestamps within the header's second"
ALGORITHM = "other algorithms"
FAMILIES = (REWRITE, BYTES, SECRET, OTHER_SECRET, SIGNING, SWEEP, ALGORITHM)


@dataclass(frozen=True)
class Mistake:
    """One named way a sender's signature can differ from the expected one.

    ``says`` is a clause that completes "The doctor found that ..." (lower-case start, no
    full stop); ``fix`` says what to change. The doctor joins them into one sentence.
    """

    family: str
    says: str
    fix: str


class Variant(Generic[T]):
    """A value of one dimension of the search, with the mistakes that lead to it (none for
    the expected value). ``count`` is known before the mistakes are phrased, which for a
    re-serialization waits until it matched (see ``reserialize.Rewrite``)."""

    __slots__ = ("_mistakes", "count", "value")

    def __init__(self, value: T, *mistakes: Mistake) -> None:
        self.value = value
        self._mistakes = mistakes
        self.count = len(mistakes)

    def mistakes(self) -> tuple[Mistake, ...]:
        return self._mistakes

    def __repr__(self) -> str:
        names = ", ".join(m.says for m in self._mistakes) or "expected"
        return f"Variant({names})"
