"""Namespace: the file-system operations of SPEC, on the metadata database.

Each operation validates its input here (pure functions in paths.py / xattrs.py), then runs
one server-side function (schemas/migrations/0002_namespace.sql) as one transaction, and
returns the commit position as a token. Deadlocks between concurrent subtree operations
are retried; POSIX errors come back as FsError.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from epipe import accounts
from epipe.errors import DatabaseError, FsError
from epipe.fs import paths, xattrs
from epipe.fs.model import KINDS, Actor, Change, Entry

_RETRIES = 8
_LIST_PAGE = 1000
_ENTRY_COLUMNS = "id, parent_id, name, kind, size, mode, mtime, ctime, owner, grp"


class Namespace:
    """File-system operations performed by one actor over one connection (not thread-safe)."""

    def __init__(self, conn: psycopg.Connection, actor: Actor | None = None) -> None:
        if not conn.autocommit:
            raise ValueError("Namespace needs an autocommit connection: one op, one transaction")
        self._conn = conn
        self.actor = actor or Actor()
        if self.actor.app_id is not None and not 1 <= len(self.actor.app_id.encode()) <= 255:
            raise FsError("EINVAL", "", "app id must be 1-255 bytes")
        self.user_id: int = accounts.user_id(conn, self.actor.user)

    # -- writes ------------------------------------------------------------------------------

    def mkdir(self, path: str, *, parents: bool = False) -> Change:
        parts = paths.split_path(path)
        return self._change("fs_mkdir(%s, %s, %s::text[], %s)", path, parts, parents)

    def put(self, path: str, *, size: int = 0, overwrite: bool = False) -> Change:
        """Create a file of `size` bytes; with `overwrite`, rewrite an existing one."""
        parts = paths.split_path(path)
        _check_size(size, path)
        return self._change("fs_create(%s, %s, %s::text[], %s, %s)", path, parts, size, overwrite)

    def write(self, path: str, *, size: int) -> Change:
        """A write to an existing file: its size becomes `size`, its mtime now."""
        parts = paths.split_path(path)
        _check_size(size, path)
        return self._change("fs_write(%s, %s, %s::text[], %s)", path, parts, size)

    def rm(self, path: str, *, recursive: bool = False) -> Change:
        parts = paths.split_path(path)
        return self._change("fs_remove(%s, %s, %s::text[], %s)", path, parts, recursive)

    def mv(self, src: str, dst: str) -> Change:
        src_parts = paths.split_path(src)
        dst_parts = paths.split_path(dst)
        return self._change("fs_move(%s, %s, %s::text[], %s::text[])", src, src_parts, dst_parts)

    def cat(self, path: str) -> Change:
        """A read of the file's content: recorded in the provenance log."""
        parts = paths.split_path(path)
        return self._change("fs_read(%s, %s, %s::text[])", path, parts)

    def setxattr(self, path: str, name: str, value: Any) -> Change:
        parts = paths.split_path(path)
        namespace, bare = xattrs.parse_name(name, path=path)
        text = xattrs.encode_value(value, path=path)
        return self._change(
            "fs_setxattr(%s, %s, %s::text[], %s, %s, %s::jsonb)", path, parts, namespace, bare, text
        )

    def rmxattr(self, path: str, name: str) -> Change:
        parts = paths.split_path(path)
        namespace, bare = xattrs.parse_name(name, path=path)
        return self._change("fs_rmxattr(%s, %s, %s::text[], %s, %s)", path, parts, namespace, bare)

    # -- reads (not recorded) ----------------------------------------------------------------

    def stat(self, path: str) -> Entry:
        parts = paths.split_path(path)
        rows = self._query(
            f"SELECT {_ENTRY_COLUMNS} FROM fs_stat(%s, %s::text[])", path, [self.user_id, parts]
        )
        return _entry(rows[0])

    def ls(self, path: str, *, after: str | None = None, limit: int = _LIST_PAGE) -> list[Entry]:
        """One page of a directory's entries in name order, starting after `after`."""
        parts = paths.split_path(path)
        rows = self._query(
            f"SELECT {_ENTRY_COLUMNS} FROM fs_list(%s, %s::text[], %s, %s)",
            path,
            [self.user_id, parts, after, limit],
        )
        return [_entry(row) for row in rows]

    def iter_ls(self, path: str) -> Iterator[Entry]:
        """Every entry of a directory, page by page (bounded memory for huge directories)."""
        after = None
        while True:
            page = self.ls(path, after=after)
            yield from page
            if len(page) < _LIST_PAGE:
                return
            after = page[-1].name

    def getxattr(self, path: str, name: str | None = None) -> dict[str, Any]:
        """All xattrs of `path` (display name -> value), or just `name` (ENODATA if absent)."""
        parts = paths.split_path(path)
        namespace, bare = xattrs.parse_name(name, path=path) if name else (None, None)
        rows = self._query(
            "SELECT namespace, name, value FROM fs_getxattrs(%s, %s::text[], %s, %s)",
            path,
            [self.user_id, parts, namespace, bare],
        )
        return {xattrs.display_name(ns, n): v for ns, n, v in rows}

    # -- plumbing ----------------------------------------------------------------------------

    def _change(self, call: str, path: str, *args: Any) -> Change:
        params = [self.user_id, self.actor.app_id, *args]
        for attempt in range(_RETRIES):
            try:
                row = self._conn.execute(f"SELECT {call}", params).fetchone()
                lsn = self._conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # lost a lock race: retry
                continue
            except psycopg.Error as exc:
                raise translate_error(exc, path) from None
            assert row is not None and lsn is not None
            return Change(inode_id=row[0], token=lsn[0])
        raise DatabaseError(
            f"gave up on {path} after {_RETRIES} deadlocks with concurrent operations"
        )

    def _query(self, sql: str, path: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise translate_error(exc, path) from None


def _check_size(size: int, path: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**63:
        raise FsError("EINVAL", path, f"size must be an integer in [0, 2^63), got {size!r}")


def _entry(row: tuple[Any, ...]) -> Entry:
    id_, parent_id, name, kind, size, mode, mtime, ctime, owner, group = row
    return Entry(
        id_,
        parent_id,
        name if parent_id is not None else "/",
        KINDS[kind],
        size,
        mode,
        mtime,
        ctime,
        owner,
        group,
    )


def translate_error(exc: psycopg.Error, path: str) -> Exception:
    """A database error of an operation on `path` as the error the caller should see."""
    diag = exc.diag
    state = diag.sqlstate or ""
    if state.startswith("EF"):
        return FsError(
            diag.message_primary or "EIO", diag.message_detail or path, diag.message_hint or ""
        )
    if isinstance(exc, pg_errors.ForeignKeyViolation):  # parent removed concurrently
        return FsError("ENOENT", path, "a parent directory was removed meanwhile")
    if isinstance(exc, pg_errors.UniqueViolation):
        return FsError("EEXIST", path)
    if isinstance(exc, pg_errors.DataException):
        return FsError("EINVAL", path, diag.message_primary or str(exc))
    return DatabaseError(f"{path}: {diag.message_primary or exc}")
