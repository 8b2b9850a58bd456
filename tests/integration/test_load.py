"""Workloads: the image loader (bulk and single paths agree) and the operation mix."""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg
import pytest

from epipe.errors import FsError
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.load.bulk import load_images
from epipe.load.images import generate
from epipe.load.mix import SPOTIFY_MIX, run_mix
from tests.integration.helpers import ReadMessages, tree_problems


def subtree(conn: psycopg.Connection, root_id: int) -> dict[str, Any]:
    """Everything below `root_id`, keyed by relative path (ids and times left out)."""
    rows = conn.execute(
        """WITH RECURSIVE t (id, rel) AS (
               SELECT id, '' FROM inodes WHERE id = %s
               UNION ALL
               SELECT i.id, t.rel || '/' || i.name FROM inodes i JOIN t ON i.parent_id = t.id)
           SELECT t.rel, i.kind, i.size, i.mode, i.owner_id, i.group_id,
                  (SELECT jsonb_object_agg(x.namespace || '.' || x.name, x.value)
                   FROM xattrs x WHERE x.inode_id = i.id),
                  (SELECT array_agg(p.op || ' ' || p.user_id || ' ' || coalesce(p.app_id, '-')
                                    || ' ' || p.name || ' ' || coalesce(p.detail::text, '')
                                    ORDER BY p.op)
                   FROM prov_ops p WHERE p.inode_id = i.id)
           FROM t JOIN inodes i ON i.id = t.id WHERE t.rel <> ''""",
        [root_id],
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_bulk_and_single_paths_write_the_same_rows(ns: Namespace, conn: psycopg.Connection) -> None:
    actor = Actor("root", "loader")
    bulk = load_images(conn, actor, under="/bulk", count=1100, seed=5)
    single = load_images(conn, actor, under="/single", count=1100, seed=5, single=True)
    assert (bulk.files, bulk.directories) == (single.files, single.directories) == (1100, 3)
    left = subtree(conn, ns.stat("/bulk").id)
    right = subtree(conn, ns.stat("/single").id)
    assert len(left) == 1100 + 3 + len({image.dir[0] for image in generate(1100, 5)})
    assert left == right
    # two provenance rows per image ('create', 'setxattr'), one per directory ('mkdir')
    directories = 1 + sum(1 for row in left.values() if row[0] == "d")  # and /bulk itself
    counts = conn.execute("SELECT count(*) FROM prov_ops WHERE app_id = 'loader'").fetchone()
    assert counts == (2 * (2 * 1100 + directories),)


def test_the_same_seed_gives_the_same_tree(ns: Namespace, conn: psycopg.Connection) -> None:
    load_images(conn, Actor(), under="/one", count=300, seed=11)
    load_images(conn, Actor(), under="/two", count=300, seed=11)
    assert subtree(conn, ns.stat("/one").id) == subtree(conn, ns.stat("/two").id)


def test_loading_over_existing_images_fails_cleanly(
    ns: Namespace, conn: psycopg.Connection
) -> None:
    load_images(conn, Actor(), under="/imgs", count=100, seed=1)
    before = conn.execute("SELECT count(*) FROM inodes").fetchone()
    with pytest.raises(FsError) as caught:
        load_images(conn, Actor(), under="/imgs", count=100, seed=1)
    assert caught.value.code == "EEXIST"
    assert conn.execute("SELECT count(*) FROM inodes").fetchone() == before


def test_the_bulk_path_checks_access_like_single_operations(
    ns: Namespace, conn: psycopg.Connection
) -> None:
    from epipe import accounts

    accounts.add_user(conn, "eve")
    accounts.create_project(conn, "theirs", "root")
    with pytest.raises(FsError) as caught:
        load_images(conn, Actor("eve"), under="/Projects/theirs/img", count=10, seed=1)
    assert caught.value.code == "EACCES"


def test_the_mix_runs_every_kind_of_operation_without_errors(
    dsn: str, conn: psycopg.Connection
) -> None:
    with ReadMessages(conn) as recorded:
        report = run_mix(dsn, Actor("root", "mix"), under="/mix", ops=3000, clients=2, seed=3)
        reads = len(recorded.reads())
    assert report.ops == 3000
    assert report.errors == {}
    assert sum(int(f["count"]) for f in report.per_op.values()) == 3000
    assert set(report.per_op) >= {"cat", "stat", "ls", "write", "mv", "put"}
    assert abs(reads / 3000 - SPOTIFY_MIX["cat"] / 100) < 0.05
    assert tree_problems(conn) == []


def test_the_mix_paces_itself_at_the_requested_rate(dsn: str) -> None:
    report = run_mix(dsn, Actor(), under="/paced", ops=100, clients=1, rate=200, seed=1)
    assert report.seconds >= 100 / 200 * 0.95
    counts: Counter[str] = Counter({op: int(f["count"]) for op, f in report.per_op.items()})
    assert counts.total() == 100
