"""Convergence: whatever the history and wherever the pipeline is killed, once writes stop
and it catches up, the index equals a fresh rebuild from the database, document by document.

One real `epipe run` process serves every history (each under its own root directory);
histories kill it with SIGKILL and change files while it is down. Each history starts on a
seed tree the pipeline has already indexed, and may let the pipeline catch up at any step
("settle"): otherwise a history and its seed would reach the index in one batch, and moves
and deletes of subtrees indexed earlier would never be exercised. EPIPE_CONVERGENCE_EXAMPLES
sets the number of histories.

`make test` runs 60 histories (the examples below always: moves of an indexed tree with
the pipeline up and down); `make soak` runs 2,000.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from epipe.db.embedded import EmbeddedPostgres
from epipe.db.server import connect
from epipe.errors import FsError
from epipe.fs.namespace import Namespace
from epipe.index.document import Document
from epipe.index.rebuild import rebuild
from epipe.index.tantivy import TantivyStore
from epipe.index.verify import same
from tests.conftest import _dsn_for, drop_database, fresh_database
from tests.integration.pipeline_helpers import KillablePipeline

EXAMPLES = int(os.environ.get("EPIPE_CONVERGENCE_EXAMPLES", "60"))
NAMES = ("a", "b", "c")
_roots = itertools.count()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["n", "camera", "tags", "x y", "objects"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)
index = st.integers(0, 1000)  # picks among the entries that exist when the step runs
name = st.sampled_from(NAMES)
steps = st.one_of(
    st.tuples(st.just("mkdir"), index, name),
    st.tuples(st.just("put"), index, name, st.integers(0, 10**9)),
    st.tuples(st.just("write"), index, st.integers(0, 10**9)),
    st.tuples(st.just("mv"), index, index, name),
    st.tuples(st.just("rm"), index),
    st.tuples(st.just("setxattr"), index, st.sampled_from(["labels", "meta"]), json_values),
    st.tuples(st.just("rmxattr"), index, st.sampled_from(["labels", "meta"])),
    st.tuples(st.just("kill")),
    st.tuples(st.just("settle")),
)
SEED_TREE = ("a/b/c/f1", "a/f2", "b/f3", "b/d/f4")


class World(KillablePipeline):
    """The database, the pipeline process and its index, shared by every history."""

    def __init__(self, dsn: str, home: Path) -> None:
        conn = connect(dsn)
        super().__init__(dsn, home, conn)
        self.dsn = dsn
        self.home = home
        self.ns = Namespace(conn)
        self.store = TantivyStore(home / "index")
        # Each history rebuilds a new generation here; activating it removes the older ones
        # (a tantivy reader thread may still touch them: the store's removal tolerates it).
        self.scratch = TantivyStore(home / "rebuild")
        self.histories = 0


@pytest.fixture(scope="module")
def world(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = "convergence"
    fresh_database(pg_server, name)
    shared = World(_dsn_for(pg_server, name), tmp_path_factory.mktemp("convergence"))
    shared.start()
    yield shared
    if shared.running:
        shared.process.stop()
    print(f"\nconvergence: {shared.histories} histories, {shared.kills} kills of the pipeline")
    shared.conn.close()
    drop_database(pg_server, name)


def entries(world: World, root: str) -> tuple[list[str], list[str]]:
    """(every path below `root`, the directories among them and `root` itself), sorted."""
    rows = world.conn.execute(
        """WITH RECURSIVE t (id, path, kind) AS (
               SELECT id, %s::text, kind FROM inodes WHERE id = %s
               UNION ALL
               SELECT i.id, t.path || '/' || i.name, i.kind
               FROM inodes i JOIN t ON i.parent_id = t.id)
           SELECT path, kind FROM t ORDER BY path""",
        [root, world.ns.stat(root).id],
    ).fetchall()
    return [p for p, _ in rows[1:]], [p for p, k in rows if k == "d"]


def apply(world: World, root: str, step: tuple[Any, ...]) -> str:
    """Run one step; returns what it did (for the failure report)."""
    kind = step[0]
    if kind == "kill":
        world.kill()
        return "kill -9 the pipeline"
    if kind == "settle":
        world.settle()
        return "settle"
    ns = world.ns
    paths, dirs = entries(world, root)

    def pick(items: list[str], i: int) -> str | None:
        return items[i % len(items)] if items else None

    files = [p for p in paths if p not in dirs]
    target = {
        "mkdir": pick(dirs, step[1]),
        "put": pick(dirs, step[1]),
        "write": pick(files, step[1]),
        "mv": pick(paths, step[1]),
        "rm": pick(paths, step[1]),
        "setxattr": pick(paths, step[1]),
        "rmxattr": pick(paths, step[1]),
    }[kind]
    if target is None:
        return f"{kind}: nothing to pick"
    try:
        if kind == "mkdir":
            ns.mkdir(f"{target}/{step[2]}")
        elif kind == "put":
            ns.put(f"{target}/{step[2]}", size=step[3])
        elif kind == "write":
            ns.write(target, size=step[2])
        elif kind == "mv":
            destination = f"{pick(dirs, step[2])}/{step[3]}"
            ns.mv(target, destination)
            return f"mv {target} {destination}"
        elif kind == "rm":
            ns.rm(target, recursive=True)
        elif kind == "setxattr":
            ns.setxattr(target, step[2], step[3])
        elif kind == "rmxattr":
            ns.rmxattr(target, step[2])
    except FsError as exc:  # a step a random history may take: refused, as it should be
        return f"{kind} {target}: {exc.code}"
    return f"{kind} {target}"


def index_docs(store: TantivyStore) -> dict[int, Document]:
    return {doc["id"]: doc for batch in store.current(writable=False).scan() for doc in batch}


def below(docs: dict[int, Document], root: str, ids: set[int]) -> dict[int, Document]:
    """The documents of `root` and below, and those of `ids` wherever they are. Histories
    touch only their own root, so one that went wrong does not fail the histories after it
    (and hypothesis can shrink it)."""
    return {
        i: doc
        for i, doc in docs.items()
        if i in ids or doc["path"] == root or doc["path"].startswith(f"{root}/")
    }


# Its length grows with the examples and the machine's load (a kill costs a process start);
# every wait inside has a deadline of its own, so a hang still fails it.
@pytest.mark.timeout(120 + EXAMPLES * 10)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=st.lists(steps, min_size=1, max_size=25))
# /a (with a/b/c/f1 and a/f2 below) moved into /b, with the pipeline up or down meanwhile
@example(history=[("mv", 0, 4, "c")])
@example(history=[("kill",), ("mv", 0, 4, "c")])
def test_the_index_converges_when_histories_change_an_indexed_tree(
    world: World, history: list[tuple[Any, ...]]
) -> None:
    root = f"/h{next(_roots)}"
    for path in SEED_TREE:
        world.ns.mkdir(f"{root}/{path.rsplit('/', 1)[0]}", parents=True)
        world.ns.put(f"{root}/{path}", size=1)
    world.settle()  # the history changes an indexed tree
    done = [apply(world, root, step) for step in history]
    world.settle()
    world.histories += 1
    _, fresh = rebuild(world.conn, world.scratch)
    fresh.close()
    expected = below(index_docs(world.scratch), root, set())
    actual = below(index_docs(world.store), root, set(expected))
    assert actual.keys() == expected.keys(), (
        f"missing {sorted(expected.keys() - actual.keys())[:10]}, "
        f"extra {sorted(actual.keys() - expected.keys())[:10]} after {done}"
    )
    stale = [i for i in expected if not same(expected[i], actual[i])]
    assert stale == [], ([(expected[i], actual[i]) for i in stale[:3]], done)
