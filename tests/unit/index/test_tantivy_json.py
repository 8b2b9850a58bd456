"""Documents handed to tantivy as JSON text (`as_json`, what `upsert` uses) index exactly as
those built field by field (`to_tantivy`); the text is used for the plain documents and left
for the others. Their free text of the annotations (`annotation_words`: the annotations'
JSON text with its quotes as spaces) holds exactly the words of the JSON text (what
Elasticsearch's `annotation_text` holds, and what every index built before held)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import tantivy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.index.document import Document, annotation_text, build
from epipe.index.tantivy import TantivyStore
from epipe.index.tantivy.document import annotation_words, as_json, to_tantivy
from epipe.index.tantivy.schema import build_schema, tokens
from epipe.load.images import generate

offsets = st.builds(
    timezone, st.integers(-23 * 60 + 1, 23 * 60 - 1).map(lambda m: timedelta(minutes=m))
)
# tantivy's whole range of dates: before 1970 a fraction of a second is cut towards zero
times = st.datetimes(datetime(1678, 1, 2), datetime(2261, 12, 30), timezones=offsets)
names = st.text(st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]), min_size=1)
floats = st.floats(allow_nan=False, allow_infinity=False)
annotation_values = st.dictionaries(
    st.sampled_from(["a", "b.c", "confidence"]),
    st.integers(-(2**63), 2**64 - 1) | floats | st.floats(0, 1) | st.text(max_size=5),
    max_size=3,
)


def document(
    inode_id: int, name: str, size: int, mtime: datetime, xattrs: dict[str, Any] | None
) -> Document:
    row = {
        "id": inode_id,
        "parent_id": 1,
        "name": name,
        "kind": "file",
        "size": size,
        "mode": 0o644,
        "owner": "ålice",
        "group": "g",
        "mtime": mtime,
        "ctime": mtime,
    }
    doc, _ = build(row, ["", "Projects", "p", name], [1, 2, 3], {"user.x": xattrs}, 7)
    return doc


@st.composite
def documents(draw: st.DrawFn) -> list[Document]:
    count = draw(st.integers(1, 4))
    return [
        document(
            inode_id=10 + i,
            name=draw(names),
            size=draw(st.integers(0, 2**63 - 1)),
            mtime=draw(times),
            xattrs=draw(annotation_values),
        )
        for i in range(count)
    ]


@contextmanager
def _index() -> Iterator[Any]:
    """A writable index in a directory of its own, closed before the directory goes."""
    with tempfile.TemporaryDirectory() as root:
        index = TantivyStore(Path(root)).current(writable=True)
        try:
            yield index
        finally:
            index.close()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_documents_written_as_json_read_back_and_index_as_they_are(docs: list[Document]) -> None:
    with _index() as index:
        assert index.upsert(docs) == []
        index.commit()
        assert index.get(doc["id"] for doc in docs) == {doc["id"]: doc for doc in docs}
        assert index.check_fields(docs) == {}, [d["xattrs"] for d in docs]


def test_plain_documents_go_as_json_and_the_others_field_by_field() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    images = [
        document(10 + n, i.name, i.size, when, i.labels) for n, i in enumerate(generate(50, 1))
    ]
    assert all(as_json(doc) is not None for doc in images)  # the fast path is the usual one
    odd = [
        document(1, "a", 1, when, {"sum": 0.1 + 0.2}),  # 17 digits
        document(2, "a", 1, when, {"tiny": 5e-324}),  # beyond 10^22
        document(3, "a", 1, when, {"big": 1.2345678901234567e200}),
        document(4, "a", 1, datetime(2024, 1, 1, tzinfo=timezone(timedelta(seconds=90))), {}),
        document(5, "a", 1, datetime(2262, 4, 10, tzinfo=UTC), {}),  # tantivy's last days
    ]
    beyond = document(6, "a", 1, datetime(2262, 4, 12, tzinfo=UTC), {})
    assert [as_json(doc) for doc in odd] == [None] * len(odd)
    plain = [document(7, "a", 1, when, {"f": 0.5, "g": 1e22, "h": 123456789.25, "i": 2**64 - 1})]
    assert as_json(plain[0]) is not None
    with _index() as index:
        assert index.upsert(images + odd + plain) == []
        rejected = index.upsert([beyond])
        assert [i for i, _ in rejected] == [6]
        assert "dates must be between" in rejected[0][1]
        index.commit()
        assert index.check_fields(images + odd + plain) == {}


def test_both_ways_index_the_same_terms_and_columns() -> None:
    when = datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)  # cut towards zero, alike
    docs = [document(10 + n, i.name, i.size, when, i.labels) for n, i in enumerate(generate(30, 1))]
    schema = build_schema()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        by_text, by_fields = tantivy.Index(schema, a), tantivy.Index(schema, b)
        for index, add in (
            (by_text, _add_json),
            (by_fields, _add_document),
        ):
            writer = index.writer(50_000_000, 1)
            for doc in docs:
                add(writer, doc)
            writer.commit()
            writer.wait_merging_threads()
            index.reload()
        words = [("name_words", "frame"), ("name_words", "png"), ("path_words", "projects")]
        words += [("path_words", "frame"), ("name_words", "projects")]  # found in neither
        words += [("annotation_words", w) for w in ("car", "day", "snow", "rear", "objects")]
        queries = [
            *(by_text.parse_query(word, [field]) for field, word in words),
            by_text.parse_query("annotations.user.x.objects.car:[2 TO 10]"),
            by_text.parse_query("annotations.user.x.detector.confidence:[0.5 TO 0.9]"),
            by_text.parse_query("annotations.user.x.reviewed:false"),
            tantivy.Query.term_query(schema, "project", "p"),
            tantivy.Query.term_query(schema, "ancestors", 3),
        ]
        for order in (None, "mtime", "ctime", "size", "path", "name_sort", "version"):
            for query in queries:
                found = [_hits(index, query, order) for index in (by_text, by_fields)]
                assert found[0] == found[1]
            # nearly every query finds something: the comparisons say something
            assert (
                sum(bool(_hits(by_fields, query, order)) for query in queries) == len(queries) - 2
            )


# any text orjson writes: quotes, backslashes, control characters, every plane
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_values = st.recursive(
    st.one_of(texts, st.integers(-(2**63), 2**64 - 1), st.floats(), st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(texts, json_values, max_size=4))
def test_the_annotation_words_are_those_of_the_json_text_in_order(xattrs: dict[str, Any]) -> None:
    assert tokens(annotation_words(xattrs)) == tokens(annotation_text(xattrs))


ODD_ANNOTATIONS: list[dict[str, Any]] = [
    {"say": 'he said "hi" to \\"them\\"', "q\"uo'te": ['a"b', "c\\d"]},
    {"lines": "one\ntwo\tthree\r\x00four\x1f", "path": "C:\\data\\set"},
    {"ünïcødé": "Größe ŞEHİR", "emoji": "🚲🚲🚲 bikes", "cjk": "自転車 の 画像"},
    {"long": "x" * 39 + " " + "y" * 41, "n": [1.5, -2, 10**19], "ok": [True, False, None]},
    {"nested": {"deep": {"deeper": [{"k": "v w"}]}}, "": ""},
]


def test_the_index_finds_each_word_of_the_annotations_json_text_and_no_other() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    docs = [document(10 + n, f"f{n}", 1, when, x) for n, x in enumerate(ODD_ANNOTATIONS)]
    assert all("skipped" not in doc for doc in docs)
    words = {doc["id"]: set(tokens(annotation_text(doc["xattrs"]))) for doc in docs}
    every = set().union(*words.values())
    assert {"hi", "them", "größe", "自転車", "deeper", "x" * 39} <= every
    assert "y" * 41 not in every  # longer than the tokenizer keeps
    schema = build_schema()
    with tempfile.TemporaryDirectory() as path:
        index = tantivy.Index(schema, path)
        writer = index.writer(50_000_000, 1)
        for doc in docs:
            _add_json(writer, doc)  # the text path, the one whose words changed
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        for word in sorted(every | {"bicycle"}):  # and a word no document holds
            query = tantivy.Query.term_query(schema, "annotation_words", word)
            found = {inode_id for _, inode_id in _hits(index, query, None)}
            assert found == {i for i, held in words.items() if word in held}, word


def _add_json(writer: tantivy.IndexWriter, doc: Document) -> None:
    text = as_json(doc)
    assert text is not None
    writer.add_json(text)


def _add_document(writer: tantivy.IndexWriter, doc: Document) -> None:
    writer.add_document(to_tantivy(doc))


def _hits(index: tantivy.Index, query: tantivy.Query, order: str | None) -> list[tuple[Any, int]]:
    searcher = index.searcher()
    result = searcher.search(query, 100, order_by_field=order)
    ids = cast(list[int], searcher.fast_field_values("id", [a for _, a in result.hits]))
    return sorted((key if order else 0, i) for (key, _), i in zip(result.hits, ids, strict=True))
