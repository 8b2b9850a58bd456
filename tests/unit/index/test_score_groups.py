"""Relevance scores' groups as tantivy queries (compile.score_groups): for any documents and
any words, each group finds exactly the matches the search scores its score, and every
match is in a group."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import tantivy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.index.document import Document, build
from epipe.index.tantivy import TantivyStore
from epipe.index.tantivy.compile import GROUP_WORDS, compile_query, score_groups
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
            scored: dict[float, set[int]] = {}  # as tantivy scores the query
            hits = searcher.search(compiled, 100, count=False).hits
            for score, inode_id in zip(
                (score for score, _ in hits), ids(searcher, [a for _, a in hits]), strict=True
            ):
                scored.setdefault(score, set()).add(inode_id)
            # the search answers in (score, id) order, with the scores tantivy gives
            assert [(h.score, h.doc["id"]) for h in index.search(query).hits] == sorted(
                ((s, i) for s, found in scored.items() for i in found),
                key=lambda hit: (-hit[0], hit[1]),
            )
            groups = score_groups(query, index.schema)
            if len(set(words)) > GROUP_WORDS:
                assert groups is None
                return
            assert groups is not None
            assert [score for score, _ in groups] == sorted({s for s, _ in groups}, reverse=True)
            assert set(scored) <= {score for score, _ in groups}
            for score, group in groups:
                both = tantivy.Query.boolean_query(
                    [(tantivy.Occur.Must, compiled), (tantivy.Occur.Must, group)]
                )
                found = searcher.search(both, 100, count=False).hits
                assert set(ids(searcher, [a for _, a in found])) == scored.get(score, set())
        finally:
            index.close()
