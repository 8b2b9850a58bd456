"""What a word of free text (`q`) is, the same in every engine (pure).

A word is a longest run of letters and digits; any other character separates words (`.`,
`_`, `-`, `/`, spaces, …), so `rain.txt` holds `rain` and `txt`, `frame_0001.jpg` holds
`frame`, `0001` and `jpg`. Case changes and letter-digit changes do not split (`RainyDay`
is the one word `rainyday`, `frame0001` one word). Words are compared lowercased; a word of
MAX_WORD_BYTES UTF-8 bytes or more is not indexed, nor searched.

Each engine implements this rule with its own analyzer, at index and at query time: tantivy
with its default tokenizer (epipe.index.tantivy.schema: split on what is not alphanumeric,
drop words from 40 bytes, lowercase), Elasticsearch with the analyzer `epipe_words` of
schemas/index/elasticsearch-template.json (the same split by a pattern tokenizer, a length
filter, lowercase). `words` is the rule in Python, which the query model uses to refuse a
`q` without a word in it before any engine sees it.
"""

from __future__ import annotations

import re

MAX_WORD_BYTES = 40  # tantivy's default tokenizer drops a word of this many bytes or more
_WORD = re.compile(r"[^\W_]+")  # a run of characters str.isalnum() accepts


def words(text: str) -> list[str]:
    """The words of `text` an engine searches for, as typed (the engines lowercase them).

    Python's letters and digits (str.isalnum: letters, and characters with a numeric value)
    are those of tantivy and Java (the Unicode properties Alphabetic and Number) but for the
    marks and symbols Unicode counts as Alphabetic (vowel signs of Indic scripts, circled
    letters): these separate words here and not there. Elsewhere the two agree
    (tests/unit/search/test_words.py)."""
    return [w for w in _WORD.findall(text) if len(w.encode()) < MAX_WORD_BYTES]
