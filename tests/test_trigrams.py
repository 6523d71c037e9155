"""Which trigrams of a term a search asks its index for (``store/trigrams.py``: PostgreSQL's
pg_trgm indexes, SQLite's FTS5 shards):
pure logic, no database. What a search finds never depends on it (``test_search.py`` compares
the results with the scan's on both backends); these check the choice and the one rule it must
keep: any text holding the term matches the pattern asked for."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from inspector.store import trigrams


def matches(pieces: tuple[str, ...], text: str) -> bool:
    """``LIKE '%a%b%'`` (the pieces in order, apart)."""
    return re.search(".*".join(re.escape(p) for p in pieces), text, re.DOTALL) is not None


@given(
    st.text(alphabet="ab0_1-", min_size=3, max_size=14),
    st.data(),
)
def test_any_text_holding_the_term_matches_the_pieces_of_any_choice(
    term: str, data: st.DataObject
) -> None:
    found = sorted(trigrams.grams(term))
    if not found:
        return
    chosen = data.draw(st.lists(st.sampled_from(found), min_size=1, unique=True))
    pieces = trigrams.segments(term, chosen)
    assert matches(pieces, "x" + term + "y")
    for gram in chosen:  # every trigram chosen is asked for (in some piece)
        assert any(gram in piece for piece in pieces)


def sample(text: dict[str, int], rows: int = 1000) -> trigrams.Frequencies:
    return trigrams.Frequencies(rows, text, {})


def test_the_rare_trigrams_are_asked_for_and_the_common_left_out() -> None:
    # As in a million webhooks: "msg" and the channel id's digits in every row.
    common = {g: 1000 for g in ["msg", "123", "234", "345"]}
    frequencies = sample({**common, "012": 5, "457": 5})
    ask = trigrams.choose("msg_0123457", frequencies, frequencies.text)
    assert ask.pieces == ("012", "457")
    assert ask.share * 1_000_000 < 5000  # at a million rows
    # Neighbours in the term are one piece, with no trigram of their own.
    counts = {"msg": 1000, "000": 1000, "004": 20, "042": 12}
    ask = trigrams.choose("msg_0000042", sample(counts), counts)
    assert ask.pieces == ("0042",)


def test_a_common_term_is_expected_to_find_many() -> None:
    frequencies = sample({"mem": 330, "emb": 330, "mbe": 330, "ber": 340})
    ask = trigrams.choose("member", frequencies, frequencies.text)
    assert ask.pieces == ("member",)
    assert ask.share * 1_000_000 > 5000


def test_without_a_sample_or_a_trigram_the_whole_term_is_asked() -> None:
    assert trigrams.choose("msg_0123457", None, {}).pieces == ("msg_0123457",)
    assert trigrams.choose("a.b-c", sample({}), {}).pieces == ("a.b-c",)
    assert trigrams.choose("王小明", sample({}), {}).pieces == ("王小明",)


# -- SQLite: FTS5's shards ---------------------------------------------------------------


def test_sqlite_asks_for_the_rare_trigrams_of_an_id_and_leaves_out_those_in_every_row() -> None:
    common = {g: 1000 for g in ("msg", "sg_", "g_0", "_00", "000")}
    chosen = trigrams.fts_choose("msg_0000042", sample({**common, "004": 40, "042": 30}))
    assert chosen is not None and set(chosen) == {"004", "042"}


@given(
    st.text(min_size=3, max_size=16),
    st.dictionaries(st.text(min_size=3, max_size=3), st.integers(0, 1000)),
)
def test_sqlite_asks_for_trigrams_of_the_term_only(term: str, counts: dict[str, int]) -> None:
    # Any of the term's trigrams, every one a run of three of its characters: the candidates
    # are a superset of the rows that hold it, whatever the sample says.
    chosen = trigrams.fts_choose(term, sample(counts))
    assert chosen and all(gram in term and len(gram) == 3 for gram in chosen)
    assert trigrams.fts_choose(term, None) is None
