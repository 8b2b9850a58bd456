"""Convergence of the Hive metastore: whatever the history of mkdir / mv / rm -r and wherever
the pipeline is killed, once it catches up every object is where its directory is, or gone
with it.

One real `epipe run` process (with the hive consumer) serves every history, each under a
root of its own: a database located at the root (never moved: histories act below it), a
partitioned table with two partitions, an unpartitioned table and an empty database in the
tree below. Objects are made with the raw Thrift client and bound before the history runs.
`make test` runs 50 histories; EPIPE_HIVE_CONVERGENCE_EXAMPLES sets the number.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymetastore.hive_metastore import ttypes as hive

from epipe.bench.hms_objects import thrift_client
from epipe.db.embedded import EmbeddedPostgres
from epipe.db.server import connect
from epipe.errors import FsError
from epipe.fs.namespace import Namespace
from epipe.fs.reader import NamespaceReader
from epipe.hms.locations import LocationMap
from tests.conftest import _dsn_for, drop_database, fresh_database
from tests.integration.hive_helpers import (
    add_partitions,
    create_database,
    create_table,
    snapshot,
    unique_prefix,
)
from tests.integration.pipeline_helpers import KillablePipeline, epipe_command

pytestmark = pytest.mark.xdist_group("hms")
EXAMPLES = int(os.environ.get("EPIPE_HIVE_CONVERGENCE_EXAMPLES", "50"))
TREE = ("a/t/p=1", "a/t/p=2", "a/e", "b/u")
_roots = itertools.count()
index = st.integers(0, 1000)
name = st.sampled_from(("a", "b", "c"))
steps = st.one_of(
    st.tuples(st.just("mkdir"), index, name),
    st.tuples(st.just("mv"), index, index, name),
    st.tuples(st.just("rm"), index),
    st.tuples(st.just("kill")),
    st.tuples(st.just("settle")),
)


class World(KillablePipeline):
    def __init__(self, dsn: str, home: Path, url: str) -> None:
        conn = connect(dsn)
        self.fs = LocationMap.of(unique_prefix())
        super().__init__(
            dsn,
            home,
            conn,
            EPIPE_HMS_URI=url,
            EPIPE_HMS_LOCATION_PREFIX=self.fs.prefix,
            EPIPE_HMS_SCAN_INTERVAL="0.5",
        )
        self.url = url
        self.ns = Namespace(conn)
        self.reader = NamespaceReader(conn)


@pytest.fixture(scope="module")
def world(
    pg_server: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
    hms_server: tuple[str, str],
) -> Iterator[World]:
    name = "hive_convergence"
    fresh_database(pg_server, name)
    shared = World(_dsn_for(pg_server, name), tmp_path_factory.mktemp("hive"), hms_server[0])
    shared.start()
    yield shared
    if shared.running:
        shared.process.stop()
    print(f"\nhive convergence: {shared.kills} kills of the pipeline")
    shared.conn.close()
    drop_database(pg_server, name)


def directories(world: World, root: str) -> list[str]:
    """The directories strictly below `root`, sorted."""
    rows = world.conn.execute(
        """WITH RECURSIVE t (id, path) AS (
               SELECT id, %s::text FROM inodes WHERE id = %s
               UNION ALL
               SELECT i.id, t.path || '/' || i.name FROM inodes i JOIN t ON i.parent_id = t.id
               WHERE i.kind = 'd')
           SELECT path FROM t ORDER BY path""",
        [root, world.ns.stat(root).id],
    ).fetchall()
    return [p for (p,) in rows[1:]]


def apply(world: World, root: str, step: tuple[Any, ...]) -> str:
    kind = step[0]
    if kind == "kill":
        world.kill()
        return "kill -9"
    if kind == "settle":
        world.settle()
        return "settle"
    dirs = directories(world, root)
    if not dirs:
        return f"{kind}: nothing to pick"
    target = dirs[step[1] % len(dirs)]
    try:
        if kind == "mkdir":
            world.ns.mkdir(f"{target}/{step[2]}")
        elif kind == "rm":
            world.ns.rm(target, recursive=True)
        else:
            into = ([root, *dirs])[step[2] % (len(dirs) + 1)]
            world.ns.mv(target, f"{into}/{step[3]}")
            return f"mv {target} {into}/{step[3]}"
    except FsError as exc:
        return f"{kind} {target}: {exc.code}"
    return f"{kind} {target}"


def bound(world: World, keys: set[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = world.conn.execute(
            "SELECT key FROM epipe_hive_objects WHERE key = ANY(%s)", [sorted(keys)]
        ).fetchall()
        if len(rows) == len(keys):
            return
        assert time.monotonic() < deadline, (
            sorted(keys),
            rows,
            world.process.log.read_text()[-2000:],
        )
        time.sleep(0.05)


@pytest.mark.timeout(120 + EXAMPLES * 20)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(steps, min_size=1, max_size=8))
def test_the_metastore_converges_to_the_namespace(
    world: World, history: list[tuple[Any, ...]]
) -> None:
    if not world.running:
        world.start()
    n = next(_roots)
    root, db, empty = f"/h{n}", f"h{n}_{os.getpid()}", f"h{n}_{os.getpid()}_e"
    for path in TREE:
        world.ns.mkdir(f"{root}/{path}", parents=True)
    ids = {
        path: world.ns.stat(f"{root}/{path}").id
        for path in ("a/t", "a/t/p=1", "a/t/p=2", "a/e", "b/u")
    }
    fs = world.fs
    with thrift_client(world.url) as client:
        create_database(client, db, fs.location(root))
        create_table(client, db, "t", fs.location(f"{root}/a/t"), partitioned=True)
        add_partitions(client, db, "t", {v: fs.location(f"{root}/a/t/p={v}") for v in "12"})
        create_table(client, db, "u", fs.location(f"{root}/b/u"))
        create_database(client, empty, fs.location(f"{root}/a/e"))
    keys = {db, f"{db}.t", f"{db}.t/p=1", f"{db}.t/p=2", f"{db}.u", empty}
    bound(world, keys)
    done = [apply(world, root, step) for step in history]
    world.settle()

    now = world.reader.paths(set(ids.values()))
    where = {path: now.get(i) for path, i in ids.items()}
    expected = {db: fs.location(root)}
    if where["a/t"] is not None:
        expected[f"{db}.t"] = fs.location(where["a/t"])
        for v in "12":
            if (p := where[f"a/t/p={v}"]) is not None:
                expected[f"{db}.t/p={v}"] = fs.location(p)
    if where["b/u"] is not None:
        expected[f"{db}.u"] = fs.location(where["b/u"])
    if where["a/e"] is not None:
        expected[empty] = fs.location(where["a/e"])
    with thrift_client(world.url) as client:
        actual = snapshot(client, [db, empty])
        for name in (db, empty):  # keep the metastore small for the next histories
            with contextlib.suppress(hive.NoSuchObjectException, hive.MetaException):
                client.drop_database(name, False, True)
    assert actual == expected, done


def test_verify_agrees_after_the_histories(world: World) -> None:
    world.settle()
    checked = epipe_command(world.process.env, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
