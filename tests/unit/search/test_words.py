"""What a word of free text is (epipe.search.words), and that tantivy's analyzer makes the
same words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epipe.index.tantivy import tokens
from epipe.search.query import QueryError, SearchQuery
from epipe.search.words import MAX_WORD_BYTES, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rain.txt", ["rain", "txt"]),
        ("rain-day.jpg", ["rain", "day", "jpg"]),
        ("RainyDay.png", ["RainyDay", "png"]),  # a case change does not split
        ("frame_0001.jpg", ["frame", "0001", "jpg"]),
        ("frame0001", ["frame0001"]),  # nor a change from letters to digits
        ("/Projects/cars/img", ["Projects", "cars", "img"]),
        ("john.smith@example.org", ["john", "smith", "example", "org"]),
        ("été à Zürich", ["été", "à", "Zürich"]),
        ("x" * (MAX_WORD_BYTES - 1), ["x" * (MAX_WORD_BYTES - 1)]),
        ("x" * MAX_WORD_BYTES, []),
        ("é" * (MAX_WORD_BYTES // 2), []),  # bytes, not characters
        ("", []),
        (" \t\n", []),
        ("-_./", []),
    ],
)
def test_a_word_is_a_run_of_letters_or_digits(text: str, expected: list[str]) -> None:
    assert words(text) == expected
    assert tokens(text) == [w.lower() for w in expected]  # tantivy's, lowercased


# Letters, digits, punctuation, spaces and symbols but the marks and other symbols, some of
# which Unicode counts as letters (Alphabetic) where Python does not (words' docstring).
agreeing = st.text(
    st.characters(
        codec="utf-8",
        max_codepoint=0xFFFF,
        categories=["Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "P", "Zs", "Sm", "Sc", "Sk"],
    ),
    max_size=60,
)


@given(agreeing)
def test_tantivy_makes_the_same_words(text: str) -> None:
    found = words(text)
    assert len(tokens(text)) == len(found)
    assert tokens(text) == tokens(" ".join(found))  # the same words, as tantivy lowercases


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "...", "-_/.", "x" * MAX_WORD_BYTES])
def test_a_q_without_a_word_is_a_query_error_naming_q(text: str) -> None:
    with pytest.raises(QueryError, match="has no searchable words") as caught:
        SearchQuery(text=text)
    assert caught.value.part == "q"


@pytest.mark.parametrize("text", ["a", " rain ", "rain.txt", "x" * MAX_WORD_BYTES + " y"])
def test_a_q_with_a_word_is_a_query(text: str) -> None:
    assert SearchQuery(text=text).text == text
