"""Convergence of the lineage graph: whatever apps read and write, whatever is moved or
removed, and wherever the pipeline is killed (SIGKILL), once it catches up the graph equals
the one a rebuild from the log implies: every operation counted once, every node where the
namespace has it, every deleted one marked.

One real `epipe run` process serves every history, each under a root of its own. `make
test` runs 30 histories; EPIPE_PROV_CONVERGENCE_EXAMPLES sets the number.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.db.embedded import EmbeddedPostgres
from epipe.db.server import connect
from epipe.errors import FsError
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.prov import verify
from tests.conftest import _dsn_for, drop_database, fresh_database
from tests.integration.pipeline_helpers import KillablePipeline, epipe_command

EXAMPLES = int(os.environ.get("EPIPE_PROV_CONVERGENCE_EXAMPLES", "30"))
_roots = itertools.count()
pick = st.integers(0, 1000)
app = st.sampled_from(("train", "prep", "eval"))
steps = st.one_of(
    st.tuples(st.just("read"), app, pick),
    st.tuples(st.just("write"), app, pick, st.sampled_from(("m.pb", "d.csv", "n.ipynb"))),
    st.tuples(st.just("annotate"), app, pick),
    st.tuples(st.just("mv"), pick, pick),
    st.tuples(st.just("rm"), pick),
    st.tuples(st.just("kill")),
    st.tuples(st.just("settle")),
)


class World(KillablePipeline):
    def __init__(self, dsn: str, home: Path) -> None:
        conn = connect(dsn)
        super().__init__(dsn, home, conn)
        self.ns = Namespace(conn)

    def as_app(self, name: str) -> Namespace:
        return Namespace(self.conn, Actor("root", name))


@pytest.fixture(scope="module")
def world(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = "prov_convergence"
    fresh_database(pg_server, name)
    shared = World(_dsn_for(pg_server, name), tmp_path_factory.mktemp("prov"))
    shared.start()
    yield shared
    if shared.running:
        shared.process.stop()
    print(f"\nprovenance convergence: {shared.kills} kills of the pipeline")
    shared.conn.close()
    drop_database(pg_server, name)


def entries(world: World, root: str, kind: str) -> list[str]:
    """The entries of `kind` ('f' or 'd') strictly below `root`, sorted by path."""
    rows = world.conn.execute(
        """WITH RECURSIVE t (id, path, kind) AS (
               SELECT id, %s::text, kind::text FROM inodes WHERE id = %s
               UNION ALL
               SELECT i.id, t.path || '/' || i.name, i.kind::text
               FROM inodes i JOIN t ON i.parent_id = t.id)
           SELECT path FROM t WHERE kind = %s AND path <> %s ORDER BY path""",
        [root, world.ns.stat(root).id, kind, root],
    ).fetchall()
    return [p for (p,) in rows]


def apply(world: World, root: str, step: tuple[Any, ...]) -> str:
    kind = step[0]
    if kind == "kill":
        world.kill()
        return "kill -9"
    if kind == "settle":
        world.settle()
        return "settle"
    files, dirs = entries(world, root, "f"), [root, *entries(world, root, "d")]
    try:
        if kind == "read" and files:
            target = files[step[2] % len(files)]
            world.as_app(step[1]).cat(target)
        elif kind == "write":
            target = f"{dirs[step[2] % len(dirs)]}/{step[3]}"
            try:
                world.as_app(step[1]).put(target, size=1)
            except FsError:
                world.as_app(step[1]).write(target, size=2)
        elif kind == "annotate" and files:
            target = files[step[2] % len(files)]
            world.as_app(step[1]).setxattr(target, "note", {"by": step[1]})
        elif kind == "mv" and len(dirs) > 1:
            target = dirs[1:][step[1] % (len(dirs) - 1)]
            into = dirs[step[2] % len(dirs)]
            world.ns.mv(target, f"{into}/moved")
        elif kind == "rm" and len(dirs) > 1:
            target = dirs[1:][step[1] % (len(dirs) - 1)]
            world.ns.rm(target, recursive=True)
        else:
            return f"{kind}: nothing to pick"
    except FsError as exc:
        return f"{kind}: {exc.code}"
    return f"{kind} {target}"


@pytest.mark.timeout(120 + EXAMPLES * 20)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(steps, min_size=1, max_size=10))
def test_the_lineage_graph_converges_to_the_log(
    world: World, history: list[tuple[Any, ...]]
) -> None:
    if not world.running:
        world.start()
    root = f"/p{next(_roots)}"
    for d in ("raw/a", "raw/b", "out"):
        world.ns.mkdir(f"{root}/{d}", parents=True)
    for i in range(3):
        world.ns.put(f"{root}/raw/a/{i}.jpg", size=i)
    world.ns.put(f"{root}/raw/b/t.tfrecord", size=1)
    done = [apply(world, root, step) for step in history]
    # A read's log row commits without waiting for the WAL flush (migration 0012): the next
    # change's commit flushes it, and that change's token covers it.
    world.settle(world.ns.mkdir(f"{root}/end").token)
    drift = verify.compare(world.conn)
    assert not drift, (done, drift.as_json())


def test_verify_agrees_after_the_histories(world: World) -> None:
    world.settle()
    checked = epipe_command(world.process.env, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the graph equals a rebuild from the log" in checked.stdout
