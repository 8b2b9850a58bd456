"""tantivy's free text of the annotations (`annotation_words`): the annotations' JSON text
with its quotes as spaces. It must hold exactly the words of the JSON text (what
Elasticsearch's `annotation_text` holds, and what every index built before held), and the
index must find a document by each of them."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from typing import Any, cast

import tantivy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.index.document import annotation_text, build
from epipe.index.tantivy.document import annotation_words, as_json
from epipe.index.tantivy.schema import build_schema, tokens

# any text orjson writes: quotes, backslashes, control characters, every plane
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
scalars = st.one_of(texts, st.integers(-(2**63), 2**64 - 1), st.floats(), st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(texts, values, max_size=4))
def test_the_words_are_those_of_the_json_text_in_order(xattrs: dict[str, Any]) -> None:
    assert tokens(annotation_words(xattrs)) == tokens(annotation_text(xattrs))


ODD = [
    {"say": 'he said "hi" to \\"them\\"', "q\"uo'te": ['a"b', "c\\d"]},
    {"lines": "one\ntwo\tthree\r\x00four\x1f", "path": "C:\\data\\set"},
    {"ünïcødé": "Größe ŞEHİR", "emoji": "🚲🚲🚲 bikes", "cjk": "自転車 の 画像"},
    {"long": "x" * 39 + " " + "y" * 41, "n": [1.5, -2, 10**19], "ok": [True, False, None]},
    {"nested": {"deep": {"deeper": [{"k": "v w"}]}}, "": ""},
]


def test_the_index_finds_each_word_of_the_json_text_and_no_other() -> None:
    schema = build_schema()
    when = datetime(2024, 1, 1, tzinfo=UTC)
    docs = []
    for n, xattrs in enumerate(ODD):
        row = {"id": 10 + n, "parent_id": 1, "name": f"f{n}", "kind": "file", "size": 1}
        row |= {"mode": 0o644, "owner": "o", "group": "g", "mtime": when, "ctime": when}
        doc, left_out = build(row, ["", "p", f"f{n}"], [1], {"user.x": xattrs}, 7)
        assert left_out == []
        docs.append(doc)
    with tempfile.TemporaryDirectory() as path:
        index = tantivy.Index(schema, path)
        writer = index.writer(50_000_000, 1)
        for doc in docs:
            text = as_json(doc)
            assert text is not None  # the text path, the one whose words changed
            writer.add_json(text)
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        searcher = index.searcher()
        every = {word for doc in docs for word in tokens(annotation_text(doc["xattrs"]))}
        assert {"hi", "them", "größe", "自転車", "deeper", "x" * 39} <= every
        assert "y" * 41 not in every  # longer than the tokenizer keeps
        for word in sorted(every):
            query = tantivy.Query.term_query(schema, "annotation_words", word)
            found = {_id(searcher, address) for _, address in searcher.search(query, 10).hits}
            holding = {d["id"] for d in docs if word in tokens(annotation_text(d["xattrs"]))}
            assert found == holding, word
        absent = tantivy.Query.term_query(schema, "annotation_words", "bicycle")
        assert searcher.search(absent, 10).hits == []


def _id(searcher: tantivy.Searcher, address: tantivy.DocAddress) -> int:
    return cast(list[int], searcher.fast_field_values("id", [address]))[0]
