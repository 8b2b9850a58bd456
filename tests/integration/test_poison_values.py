"""Any JSON value, through the namespace layer and the real `epipe run` process: the value is
refused with EINVAL, or searchable, or dead-lettered with its reason; the process keeps
running, every file stays searchable, and `epipe verify` exits 0.

Each value goes two ways: `fs setxattr` (the namespace layer: refused or accepted), and an
older row (written as before migration 0008, which jsonb takes or refuses). One pipeline
process serves every example. EPIPE_POISON_EXAMPLES sets their number (40 in CI)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.db.embedded import EmbeddedPostgres
from epipe.db.server import connect
from epipe.errors import FsError
from epipe.fs.namespace import Namespace
from epipe.fs.xattrs import display_name, parse_name, parse_value
from epipe.index.tantivy import TantivyStore
from epipe.index.verify import verify
from epipe.pipeline import status as pipeline_status
from epipe.search.query import SearchQuery
from tests.conftest import _dsn_for, drop_database, fresh_database
from tests.integration.helpers import older_row
from tests.integration.pipeline_helpers import PipelineProcess, new_slot
from tests.json_texts import json_texts, xattr_names

EXAMPLES = int(os.environ.get("EPIPE_POISON_EXAMPLES", "40"))
_roots = itertools.count()


class World:
    def __init__(self, dsn: str, home: Path) -> None:
        self.dsn, self.home, self.slot = dsn, home, new_slot()
        self.process = PipelineProcess(dsn, home, self.slot, home / "events.jsonl")
        self.conn = connect(dsn)
        self.ns = Namespace(self.conn)
        self.store = TantivyStore(home / "index")
        self.outcomes: Counter[str] = Counter()  # how the writes went, for the report

    def settle(self) -> None:
        """Until the pipeline applied everything written so far; fails as soon as it stops."""
        target, deadline = None, time.monotonic() + 60
        while True:
            target, lagging = pipeline_status.wait(self.conn, self.slot, target, timeout=0.5)
            assert self.process.process is not None
            assert self.process.process.poll() is None, self.log()
            if not lagging:
                return
            assert time.monotonic() < deadline, (lagging, self.log())

    def log(self) -> str:
        return self.process.log.read_text()[-3000:]

    def epipe(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "epipe", *args],
            env=self.process.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def world(pg_server: EmbeddedPostgres, tmp_path: Path) -> Iterator[World]:
    name = "poison"
    fresh_database(pg_server, name)
    shared = World(_dsn_for(pg_server, name), tmp_path)
    shared.ns.put("/sentinel.jpg")
    shared.ns.setxattr("/sentinel.jpg", "labels", {"camera": "front"})
    shared.process.start()
    shared.process.backfilled(shared.conn)
    try:
        yield shared
    finally:
        shared.process.stop()
        shared.conn.close()
        drop_database(pg_server, name)


def write(world: World, root: str, i: int, name: str, text: str) -> list[tuple[int, str, str]]:
    """Write `text` both ways; (inode, display name, how it went) of each write."""
    ns = world.ns
    path = f"{root}/ns{i}"
    by_ns = ns.put(path).inode_id
    try:
        display = display_name(*parse_name(name, path=path))
        ns.setxattr(path, name, parse_value(text, path=path))
        outcomes = [(by_ns, display, "accepted")]
    except FsError as exc:
        if exc.code != "EINVAL":
            raise
        outcomes = [(by_ns, name, "refused")]
    older = ns.put(f"{root}/older{i}").inode_id
    try:
        older_row(world.conn, older, "x", text)
        outcomes.append((older, "x", "stored"))
    except psycopg.Error:  # jsonb refuses it too (a lone surrogate, \u0000, ~990 levels)
        outcomes.append((older, "x", "refused"))
    return outcomes


def check(world: World, root: str, outcomes: list[tuple[int, str, str]]) -> None:
    index = world.store.current(writable=False)
    docs = index.get(inode for inode, _, _ in outcomes)
    assert index.search(SearchQuery(under=root, limit=100)).total == len(outcomes)
    for inode, name, how in outcomes:
        doc = docs[inode]  # every file stays searchable
        world.outcomes[how] += 1
        if how == "refused":
            assert name not in doc["xattrs"]
            continue
        stored = world.conn.execute(
            "SELECT jsonb_object_agg(CASE WHEN namespace = 'user' THEN name "
            "ELSE namespace || '.' || name END, value) FROM xattrs WHERE inode_id = %s",
            [inode],
        ).fetchone()[0]  # type: ignore[index]
        if name in doc["xattrs"]:
            assert doc["xattrs"][name] == stored[name]
            world.outcomes["searchable"] += 1
            continue
        # what the namespace layer accepted, the index holds
        assert how == "stored", (name, doc)
        assert name in doc["skipped"]
        reasons = world.conn.execute(
            "SELECT reason FROM epipe_dead_letters WHERE (event->>'inode_id')::bigint = %s",
            [inode],
        ).fetchall()
        assert any(f"annotation {name} " in reason for (reason,) in reasons), reasons
        world.outcomes["dead-lettered"] += 1
    assert not verify(world.conn, index, only=[inode for inode, _, _ in outcomes])


def test_no_value_stops_the_pipeline_or_loses_a_file(world: World) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(st.tuples(xattr_names, json_texts), min_size=1, max_size=3))
    def example(values: list[tuple[str, str]]) -> None:
        root = f"/p{next(_roots)}"
        world.ns.mkdir(root)
        outcomes = [o for i, (n, t) in enumerate(values) for o in write(world, root, i, n, t)]
        world.settle()
        check(world, root, outcomes)

    example()
    sentinel = world.store.current(writable=False).search(SearchQuery(text="sentinel"))
    assert [hit.doc["xattrs"] for hit in sentinel.hits] == [{"labels": {"camera": "front"}}]
    verified = world.epipe("verify")
    assert verified.returncode == 0, (verified.stdout, verified.stderr, world.log())
    status = world.epipe("status")
    assert status.returncode == 0, status.stderr
    print(f"\nwrites: {dict(world.outcomes)}\n{verified.stdout}{status.stdout}")
