"""Comparing the index with the database: documents missing, extra or stale, by kind.

Both sides are walked in id order (bounded memory); the database side is built by the same
code as the sink's, so a converged index compares equal. `version` is not compared (a
rebuilt document carries the snapshot's position, a live one the change's). A document is
also stale when what the engine filters and sorts on (its terms, its fast columns or doc
values) differs from the document, though the stored document is right: a damaged index
file answers searches wrongly while every stored document reads back equal
(`SearchIndex.check_fields`; the field is counted in `fields`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from epipe.fs.reader import NamespaceReader, chunked
from epipe.index.document import Document
from epipe.index.engine import SearchIndex
from epipe.index.state import DocumentSource

IGNORED = frozenset({"version"})
CHUNK = 2_000


@dataclass
class Drift:
    missing: dict[int, str] = field(default_factory=dict)  # id -> kind
    extra: dict[int, str] = field(default_factory=dict)
    stale: dict[int, str] = field(default_factory=dict)
    fields: dict[int, str] = field(default_factory=dict)  # id -> an indexed field that differs
    checked: int = 0
    left_out: int = 0  # documents built without annotations the index cannot hold

    @property
    def ids(self) -> set[int]:
        return set(self.missing) | set(self.extra) | set(self.stale)

    def summary(self) -> dict[str, Any]:
        return {
            name: dict(Counter(getattr(self, name).values()))
            for name in ("missing", "extra", "stale")
        } | {
            "fields": dict(Counter(self.fields.values())),
            "checked": self.checked,
            "left_out": self.left_out,
        }

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.stale)


def same(expected: Document, actual: Document) -> bool:
    return {k: v for k, v in expected.items() if k not in IGNORED} == {
        k: v for k, v in actual.items() if k not in IGNORED
    }


def verify(
    conn: psycopg.Connection, index: SearchIndex, only: Iterable[int] | None = None
) -> Drift:
    """Drift between the index and the database (for `only` these ids, if given)."""
    state = DocumentSource(NamespaceReader(conn))
    drift = Drift()
    if only is not None:
        ids = sorted(set(only))
        for chunk in chunked(ids, CHUNK):
            _compare(state, index, chunk, drift, index.get(chunk))
        return drift
    db_ids = _database_ids(conn)
    indexed = _distinct(_index_ids(index), drift)
    pending: list[int] = []
    left, right = next(db_ids, None), next(indexed, None)
    while left is not None or right is not None:
        if right is None or (left is not None and left < right):
            pending.append(left)  # type: ignore[arg-type]
            left = next(db_ids, None)
        elif left is None or right < left:
            pending.append(right)
            right = next(indexed, None)
        else:
            pending.append(left)
            left, right = next(db_ids, None), next(indexed, None)
        if len(pending) >= CHUNK:
            _compare(state, index, pending, drift, index.get(pending))
            pending = []
    if pending:
        _compare(state, index, pending, drift, index.get(pending))
    return drift


def _compare(
    state: DocumentSource,
    index: SearchIndex,
    ids: list[int],
    drift: Drift,
    actual: dict[int, Document],
) -> None:
    expected, _, skipped = state.documents(dict.fromkeys(ids, 0))
    drift.left_out += len(skipped)
    by_id = {doc["id"]: doc for doc in expected}
    stored_equal: list[Document] = []
    for inode_id in ids:
        mine, theirs = by_id.get(inode_id), actual.get(inode_id)
        drift.checked += 1
        if mine is None and theirs is not None:
            drift.extra[inode_id] = theirs.get("kind", "?")
        elif mine is not None and theirs is None:
            drift.missing[inode_id] = mine["kind"]
        elif mine is not None and theirs is not None:
            if same(mine, theirs):
                stored_equal.append(mine)
            else:
                drift.stale[inode_id] = mine["kind"]
    for inode_id, name in index.check_fields(stored_equal).items():
        drift.stale[inode_id] = by_id[inode_id]["kind"]
        drift.fields[inode_id] = name


def _database_ids(conn: psycopg.Connection) -> Iterator[int]:
    after = 0
    while True:
        rows = conn.execute(
            "SELECT id FROM inodes WHERE id > %s ORDER BY id LIMIT 10000", [after]
        ).fetchall()
        if not rows:
            return
        yield from (row[0] for row in rows)
        after = rows[-1][0]


def _index_ids(index: SearchIndex) -> Iterator[int]:
    for docs in index.scan():
        yield from (doc["id"] for doc in docs)


def _distinct(ids: Iterator[int], drift: Drift) -> Iterator[int]:
    """Ids in order, once each; a document indexed twice is extra."""
    previous = None
    for inode_id in ids:
        if inode_id == previous:
            drift.extra[inode_id] = "duplicate"
            continue
        previous = inode_id
        yield inode_id
