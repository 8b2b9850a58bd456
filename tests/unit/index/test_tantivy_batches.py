"""A large batch is written by two threads (TantivyIndex.upsert): the index, the refusals
and their order are what one thread gives, and a failure leaves nothing writing behind."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from epipe.index.document import Document
from epipe.index.tantivy import index as tantivy_index
from epipe.index.tantivy.index import CHUNK, IN_FLIGHT, OVERLAP_FROM
from epipe.load.images import generate
from tests.unit.index.test_tantivy_json import document, writable_index

WHEN = datetime(2024, 1, 1, tzinfo=UTC)
BEYOND = datetime(2262, 4, 12, tzinfo=UTC)  # past tantivy's dates: refused


def _batch() -> list[Document]:
    """Many chunks' worth of images; some go field by field, some are refused."""
    count = CHUNK * (IN_FLIGHT + 3) + 17
    docs = [
        document(10 + n, image.name, image.size, WHEN, image.labels)
        for n, image in enumerate(generate(count, 3))
    ]
    for at in (5, CHUNK + 1, 3 * CHUNK - 1, count - 1):
        docs[at] = document(docs[at]["id"], "odd", 1, WHEN, {"sum": 0.1 + 0.2})  # field by field
    for at in (0, CHUNK, 2 * CHUNK + 7, count - 2):
        docs[at] = document(docs[at]["id"], "late", 1, BEYOND, {})
    assert len(docs) >= OVERLAP_FROM
    return docs


def _written(docs: list[Document]) -> tuple[list[tuple[int, str]], dict[int, Document]]:
    with writable_index() as index:
        rejected = index.upsert(docs)
        index.commit()
        assert index.check_fields([d for d in docs if d["mtime"] != BEYOND.isoformat()]) == {}
        return rejected, index.get(doc["id"] for doc in docs)


def test_two_threads_write_what_one_does(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _batch()
    overlapped = _written(docs)
    monkeypatch.setattr(tantivy_index, "OVERLAP_FROM", len(docs) + 1)
    assert overlapped == _written(docs)  # one thread
    rejected, stored = overlapped
    late = [doc["id"] for doc in docs if doc["name"] == "late"]
    assert [inode_id for inode_id, _ in rejected] == late  # in the documents' order
    assert all("dates must be between" in reason for _, reason in rejected)
    assert stored == {doc["id"]: doc for doc in docs if doc["id"] not in late}


def test_an_update_in_a_large_batch_replaces_the_document() -> None:
    docs = _batch()
    with writable_index() as index:
        index.upsert(docs)
        index.commit()
        renamed: list[Document] = [{**doc, "name": f"v2-{doc['id']}"} for doc in docs]
        index.upsert(renamed)
        index.commit()
        stored = index.get(doc["id"] for doc in docs)
        assert index.count() == len(stored) == len(docs) - 4
        assert all(doc["name"] == f"v2-{doc['id']}" for doc in stored.values())


@pytest.mark.parametrize("where", ["preparing", "writing"])
def test_a_failure_raises_and_leaves_no_thread_writing(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    docs = _batch()
    failing = docs[2 * CHUNK + 3]["id"]
    calls: list[int] = []

    if where == "preparing":
        prepared = tantivy_index._prepared

        def prepare(doc: Document) -> Any:
            if doc["id"] == failing:
                raise RuntimeError("the disk is gone")
            return prepared(doc)

        monkeypatch.setattr(tantivy_index, "_prepared", prepare)
    else:
        added = tantivy_index._added

        def add(writer: Any, chunk: list[Any]) -> list[tuple[int, str]]:
            calls.append(chunk[0][0])
            if any(inode_id == failing for inode_id, _, _ in chunk):
                raise RuntimeError("the disk is gone")
            return added(writer, chunk)

        monkeypatch.setattr(tantivy_index, "_added", add)
    with writable_index() as index:
        with pytest.raises(Exception, match="the disk is gone"):
            index.upsert(docs)
        assert not [t for t in threading.enumerate() if t.name.startswith("tantivy-add")]
        if where == "writing":  # the chunks after the failing one never reach the writer
            assert calls[-1] <= failing + IN_FLIGHT * CHUNK
            assert len(calls) < -(-len(docs) // CHUNK)
