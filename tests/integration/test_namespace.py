"""Every namespace operation: its success and each of its error paths, on real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from epipe.errors import FsError
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from tests.integration.helpers import ReadMessages, prov_ops, snapshot, tree_problems


def fails(code: str, call: object, *args: object, **kwargs: object) -> FsError:
    """Call and assert it fails with POSIX error `code`."""
    with pytest.raises(FsError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.code == code, str(caught.value)
    return caught.value


def fails_cleanly(
    conn: psycopg.Connection, code: str, call: object, *args: object, **kwargs: object
) -> FsError:
    """Like `fails`, and nothing was written."""
    before = snapshot(conn)
    error = fails(code, call, *args, **kwargs)
    assert snapshot(conn) == before
    return error


# -- mkdir ------------------------------------------------------------------------------------


def test_mkdir_creates_a_directory_owned_by_the_actor(ns: Namespace) -> None:
    change = ns.mkdir("/data")
    entry = ns.stat("/data")
    assert entry.id == change.inode_id
    assert (entry.kind, entry.owner, entry.group, entry.mode, entry.size) == (
        "dir",
        "root",
        "root",
        0o755,
        0,
    )


def test_mkdir_parents_creates_the_chain_and_tolerates_existing(
    ns: Namespace, conn: psycopg.Connection
) -> None:
    ns.mkdir("/a/b/c", parents=True)
    assert [e.name for e in ns.ls("/a/b")] == ["c"]
    before = snapshot(conn)
    again = ns.mkdir("/a/b/c", parents=True)
    assert again.inode_id == ns.stat("/a/b/c").id
    assert snapshot(conn) == before  # an existing directory is not touched
    assert [op for op, *_ in prov_ops(conn)] == ["mkdir"] * 3


def test_mkdir_errors(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/d")
    ns.put("/d/f")
    fails_cleanly(conn, "EEXIST", ns.mkdir, "/d")
    fails_cleanly(conn, "EEXIST", ns.mkdir, "/d/f")
    fails_cleanly(conn, "EEXIST", ns.mkdir, "/d/f", parents=True)
    fails_cleanly(conn, "ENOENT", ns.mkdir, "/missing/x")
    fails_cleanly(conn, "ENOTDIR", ns.mkdir, "/d/f/x")
    fails_cleanly(conn, "ENOTDIR", ns.mkdir, "/d/f/x", parents=True)
    fails_cleanly(conn, "EEXIST", ns.mkdir, "/")
    assert ns.mkdir("/", parents=True).inode_id == 1


# -- put / write ------------------------------------------------------------------------------


def test_put_creates_a_file(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/d")
    change = ns.put("/d/f.bin", size=1234)
    entry = ns.stat("/d/f.bin")
    assert (entry.id, entry.kind, entry.size, entry.mode) == (change.inode_id, "file", 1234, 0o644)
    assert prov_ops(conn)[-1] == ("create", "f.bin", None)


def test_put_overwrite_rewrites_the_same_inode(ns: Namespace, conn: psycopg.Connection) -> None:
    first = ns.put("/f", size=1)
    second = ns.put("/f", size=99, overwrite=True)
    assert second.inode_id == first.inode_id
    assert ns.stat("/f").size == 99
    assert [op for op, *_ in prov_ops(conn)] == ["create", "write"]


def test_put_errors(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/d")
    ns.put("/d/f")
    fails_cleanly(conn, "EEXIST", ns.put, "/d/f")
    fails_cleanly(conn, "EISDIR", ns.put, "/d")
    fails_cleanly(conn, "EISDIR", ns.put, "/d", overwrite=True)
    fails_cleanly(conn, "EISDIR", ns.put, "/")
    fails_cleanly(conn, "ENOENT", ns.put, "/nope/f")
    fails_cleanly(conn, "ENOTDIR", ns.put, "/d/f/g")
    fails_cleanly(conn, "EINVAL", ns.put, "/d/g", size=-1)
    fails_cleanly(conn, "EINVAL", ns.put, "/d/g", size=2**63)


def test_write_updates_size_and_mtime(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.put("/f", size=1)
    before = ns.stat("/f")
    ns.write("/f", size=500)
    after = ns.stat("/f")
    assert after.size == 500
    assert after.mtime > before.mtime
    assert prov_ops(conn)[-1] == ("write", "f", None)


def test_write_errors(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/d")
    fails_cleanly(conn, "ENOENT", ns.write, "/f", size=1)
    fails_cleanly(conn, "EISDIR", ns.write, "/d", size=1)


# -- rm ---------------------------------------------------------------------------------------


def test_rm_removes_a_file_and_an_empty_directory(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/d")
    ns.put("/d/f")
    ns.rm("/d/f")
    ns.rm("/d")
    assert ns.ls("/") == []
    assert [op for op, *_ in prov_ops(conn)][-2:] == ["delete", "delete"]


def test_rm_recursive_removes_the_whole_subtree_with_xattrs(
    ns: Namespace, conn: psycopg.Connection
) -> None:
    for i in range(3):
        ns.mkdir(f"/top/d{i}/e", parents=True)
        for j in range(4):
            ns.put(f"/top/d{i}/e/f{j}")
            ns.setxattr(f"/top/d{i}/e/f{j}", "labels", {"n": j})
    ns.put("/keep")
    ns.setxattr("/keep", "labels", {"keep": True})
    ops_before = len(prov_ops(conn))
    ns.rm("/top", recursive=True)
    fails("ENOENT", ns.stat, "/top")
    assert conn.execute("SELECT count(*) FROM inodes").fetchone() == (2,)  # / and /keep
    assert conn.execute("SELECT count(*) FROM xattrs").fetchone() == (1,)
    assert len(prov_ops(conn)) == ops_before + 1  # one 'delete', like an audit log
    assert tree_problems(conn) == []


def test_rm_errors(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/d/e", parents=True)
    fails_cleanly(conn, "ENOTEMPTY", ns.rm, "/d")
    fails_cleanly(conn, "ENOENT", ns.rm, "/nope")
    fails_cleanly(conn, "ENOENT", ns.rm, "/nope", recursive=True)
    fails_cleanly(conn, "EINVAL", ns.rm, "/", recursive=True)
    fails_cleanly(conn, "EINVAL", ns.rm, "/")


# -- mv ---------------------------------------------------------------------------------------


def test_mv_renames_a_file_keeping_its_inode(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/a")
    ns.mkdir("/b")
    created = ns.put("/a/f", size=7)
    ns.setxattr("/a/f", "labels", {"x": 1})
    moved = ns.mv("/a/f", "/b/g")
    assert moved.inode_id == created.inode_id
    assert ns.stat("/b/g").id == created.inode_id
    assert ns.getxattr("/b/g") == {"labels": {"x": 1}}
    fails("ENOENT", ns.stat, "/a/f")
    detail = conn.execute("SELECT detail FROM prov_ops WHERE op = 'move'").fetchone()
    assert detail == ({"from_name": "f", "from_parent_id": ns.stat("/a").id},)


def test_mv_of_a_directory_moves_every_descendant(ns: Namespace) -> None:
    ns.mkdir("/src/x/y", parents=True)
    ns.put("/src/x/y/f")
    ids = {p: ns.stat(p).id for p in ("/src/x", "/src/x/y", "/src/x/y/f")}
    ns.mkdir("/dst")
    ns.mv("/src/x", "/dst/z")
    assert ns.stat("/dst/z").id == ids["/src/x"]
    assert ns.stat("/dst/z/y").id == ids["/src/x/y"]
    assert ns.stat("/dst/z/y/f").id == ids["/src/x/y/f"]
    assert ns.ls("/src") == []


def test_mv_errors(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/a/b", parents=True)
    ns.put("/a/f")
    ns.put("/g")
    fails_cleanly(conn, "EEXIST", ns.mv, "/a/f", "/g")  # no silent overwrite of a file
    fails_cleanly(conn, "EEXIST", ns.mv, "/g", "/a/b")  # nor of a directory
    fails_cleanly(conn, "EEXIST", ns.mv, "/g", "/g")
    fails_cleanly(conn, "EEXIST", ns.mv, "/g", "/")
    fails_cleanly(conn, "EINVAL", ns.mv, "/a", "/a/b/c")  # into its own subtree
    fails_cleanly(conn, "EINVAL", ns.mv, "/a", "/a/new")
    fails_cleanly(conn, "EINVAL", ns.mv, "/", "/x")
    fails_cleanly(conn, "ENOENT", ns.mv, "/nope", "/x")
    fails_cleanly(conn, "ENOENT", ns.mv, "/g", "/nope/x")
    fails_cleanly(conn, "ENOTDIR", ns.mv, "/g", "/a/f/x")


def test_mv_into_own_subtree_is_refused_even_through_another_name(
    ns: Namespace, conn: psycopg.Connection
) -> None:
    # /a/b reached through its own path: a prefix check alone cannot be fooled here, the
    # ancestry check on rows is what refuses it.
    ns.mkdir("/a/b/c", parents=True)
    fails_cleanly(conn, "EINVAL", ns.mv, "/a/b", "/a/b/c/d")


# -- cat, stat, ls ----------------------------------------------------------------------------


def test_cat_records_the_read(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.put("/f", size=3)
    reader = Namespace(conn, Actor("root", "app_42"))
    with ReadMessages(conn) as recorded:
        logged = prov_ops(conn)
        reader.cat("/f")
        assert recorded.reads() == [("read", "f", "app_42")]
    assert prov_ops(conn) == logged  # a message, not a row: the provenance consumer logs it


def test_cat_errors(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/d")
    fails_cleanly(conn, "EISDIR", ns.cat, "/d")
    fails_cleanly(conn, "ENOENT", ns.cat, "/nope")


def test_stat_of_root_and_missing(ns: Namespace) -> None:
    root = ns.stat("/")
    assert (root.id, root.name, root.kind, root.parent_id) == (1, "/", "dir", None)
    fails("ENOENT", ns.stat, "/nope")
    ns.put("/f")
    fails("ENOTDIR", ns.stat, "/f/x")


def test_ls_lists_in_byte_order_and_a_file_as_itself(ns: Namespace) -> None:
    for name in ("b", "B", "a", "é", "Z1"):
        ns.put(f"/{name}")
    assert [e.name for e in ns.ls("/")] == sorted(["b", "B", "a", "é", "Z1"], key=str.encode)
    assert [e.name for e in ns.ls("/a")] == ["a"]
    fails("ENOENT", ns.ls, "/nope")


def test_iter_ls_pages_through_a_large_directory(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/big")
    big = ns.stat("/big").id
    conn.execute(
        "INSERT INTO inodes (parent_id, owner_id, group_id, mode, kind, name) "
        "SELECT %s, 0, 0, 420, 'f', 'f' || lpad(g::text, 5, '0') FROM generate_series(1, 2500) g",
        [big],
    )
    names = [e.name for e in ns.iter_ls("/big")]
    assert len(names) == 2500
    assert names == sorted(names)
    assert len(ns.ls("/big", after="f01000", limit=10)) == 10


# -- xattrs -----------------------------------------------------------------------------------


def test_setxattr_getxattr_rmxattr(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.put("/img.jpg")
    labels = {"objects": {"bicycle": 4, "car": 2}, "camera": "front", "tags": ["a", "b"]}
    ns.setxattr("/img.jpg", "labels", labels)
    ns.setxattr("/img.jpg", "user.score", 0.5)
    ns.setxattr("/img.jpg", "system.checksum", "abc")
    assert ns.getxattr("/img.jpg") == {"labels": labels, "score": 0.5, "system.checksum": "abc"}
    assert ns.getxattr("/img.jpg", "user.labels") == {"labels": labels}
    ns.setxattr("/img.jpg", "labels", [1, 2, 3])  # replace with any JSON value
    assert ns.getxattr("/img.jpg", "labels") == {"labels": [1, 2, 3]}
    ns.rmxattr("/img.jpg", "score")
    assert set(ns.getxattr("/img.jpg")) == {"labels", "system.checksum"}
    assert [op for op, *_ in prov_ops(conn)][-5:] == ["setxattr"] * 4 + ["rmxattr"]


def test_xattr_errors(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.put("/f")
    fails_cleanly(conn, "ENODATA", ns.getxattr, "/f", "missing")
    fails_cleanly(conn, "ENODATA", ns.rmxattr, "/f", "missing")
    fails_cleanly(conn, "ENOENT", ns.setxattr, "/nope", "a", 1)
    fails_cleanly(conn, "ENOENT", ns.getxattr, "/nope")
    fails_cleanly(conn, "ENOENT", ns.rmxattr, "/nope", "a")


def test_directories_carry_xattrs_too(ns: Namespace) -> None:
    ns.mkdir("/d")
    ns.setxattr("/d", "dataset", {"name": "cars"})
    assert ns.getxattr("/d") == {"dataset": {"name": "cars"}}


# -- tokens -----------------------------------------------------------------------------------


def lsn(token: str) -> int:
    high, low = token.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def test_tokens_increase_and_cover_the_commit(ns: Namespace, conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_create_logical_replication_slot('t_tokens', 'test_decoding')")
    try:
        first = ns.mkdir("/d")
        second = ns.put("/d/f")
        assert lsn(second.token) > lsn(first.token)
        # Decoding up to the token yields the operation's transaction: the token is at or
        # after its commit, so waiting for it is waiting for the operation.
        changes = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_changes('t_tokens', %s::pg_lsn, NULL)",
            [second.token],
        ).fetchall()
        text = "\n".join(row[0] for row in changes)
        assert "name[text]:'d'" in text
        assert "name[text]:'f'" in text
        assert text.count("COMMIT") >= 2
    finally:
        conn.execute("SELECT pg_drop_replication_slot('t_tokens')")


def test_inode_ids_are_never_reused(ns: Namespace) -> None:
    first = ns.put("/f")
    ns.rm("/f")
    second = ns.put("/f")
    assert second.inode_id > first.inode_id
    ns.mkdir("/d")
    ns.rm("/d")
    assert ns.mkdir("/d").inode_id > second.inode_id
