"""Rebuilding the index from the database: a new generation filled from one consistent
snapshot, then swapped in atomically. Searches go on against the old generation meanwhile.
The caller holds the store's writer lock (the index consumer, or `epipe reindex` alone)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from epipe.db.visibility import settled_position
from epipe.fs.reader import NamespaceReader
from epipe.index.engine import IndexStore, SearchIndex, upsert_files
from epipe.index.position import IndexPosition, database_identity
from epipe.index.state import DocumentSource


@dataclass(frozen=True)
class RebuildReport:
    generation: str
    position: int  # the generation holds every change logged before it
    documents: int
    rejected: list[tuple[int, str]]
    skipped: list[tuple[int, list[str]]]
    seconds: float


def rebuild(
    conn: psycopg.Connection,
    store: IndexStore,
    *,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[RebuildReport, SearchIndex]:
    """Fill a new generation and activate it; returns the report and the (writable) index.
    The generation records the snapshot's position: it holds every change up to it."""
    started = time.perf_counter()
    identity = database_identity(conn)
    generation, index = store.new_generation()
    documents = 0
    rejected: list[tuple[int, str]] = []
    skipped: list[tuple[int, list[str]]] = []
    try:
        version = settled_position(conn)  # the snapshot below holds every change up to it
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT count(*) FROM inodes").fetchone()
            assert row is not None
            total = int(row[0])
            for docs, left_out in DocumentSource(NamespaceReader(conn)).everything(version):
                rejected.extend(upsert_files(index, docs))
                skipped.extend(left_out)
                documents += len(docs)
                progress(documents, total)
        index.commit()
        store.record_position(generation, IndexPosition(version, identity))
    except BaseException:
        index.close()
        store.discard(generation)
        raise
    store.activate(generation)
    return (
        RebuildReport(
            generation, version, documents, rejected, skipped, time.perf_counter() - started
        ),
        index,
    )
