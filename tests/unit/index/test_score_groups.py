"""A relevance score's group as a tantivy query (compile.score_group): for any documents and
any words, the documents of the query the group finds are exactly those the search scores
that score."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import tantivy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.index.document import Document, build
from epipe.index.tantivy import TantivyStore
from epipe.index.tantivy.compile import GROUP_WORDS, compile_query, score_group
from epipe.index.tantivy.document import ids
from epipe.search.query import SearchQuery

WORDS = ["kiwi", "lime", "fig", "plum", "pear", "sloe"]
places = st.lists(st.sampled_from(WORDS), max_size=3)


def document(inode_id: int, name: list[str], dirs: list[str], note: list[str]) -> Document:
    names = ["", *dirs, "-".join(name) + f"-{inode_id}.jpg"]
    row = {
        "id": inode_id,
        "parent_id": 1,
        "name": names[-1],
        "kind": "file",
        "size": 0,
        "mode": 0o644,
        "owner": "alice",
        "group": "g",
        "mtime": datetime(2024, 1, 1, tzinfo=UTC),
        "ctime": datetime(2024, 1, 1, tzinfo=UTC),
    }
    xattrs = {"note": " ".join(note)} if note else None
    doc, _ = build(row, names, [1], xattrs, 1)
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(places, places, places), min_size=1, max_size=12),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=GROUP_WORDS + 2),
)
def test_a_score_group_holds_exactly_the_matches_scoring_that_score(
    files: list[tuple[list[str], list[str], list[str]]], words: list[str]
) -> None:
    docs = [document(i + 2, *places) for i, places in enumerate(files)]
    query = SearchQuery(text=" ".join(words), limit=100)
    with tempfile.TemporaryDirectory() as root:
        index = TantivyStore(Path(root)).current(writable=True)
        try:
            assert index.upsert(docs) == []
            index.commit()
            searcher = index._searcher()
            compiled = compile_query(query, index.schema, index._index, searcher)
            assert compiled is not None
            scored: dict[float, set[int]] = {}
            for hit in index.search(query).hits:
                assert hit.score is not None
                scored.setdefault(hit.score, set()).add(hit.doc["id"])
            for score in {*scored, 0.5, 100.0}:  # and scores no document has
                group = score_group(query, index.schema, score)
                if len(set(words)) > GROUP_WORDS:
                    assert group is None
                    continue
                assert group is not None
                both = tantivy.Query.boolean_query(
                    [(tantivy.Occur.Must, compiled), (tantivy.Occur.Must, group)]
                )
                found = searcher.search(both, 100, count=False).hits
                assert set(ids(searcher, [a for _, a in found])) == scored.get(score, set())
        finally:
            index.close()
