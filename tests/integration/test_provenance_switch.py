"""Provenance capture on and off (EPIPE_PROVENANCE, migration 0012), and what a read commits."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from epipe.cli import cli
from epipe.db.server import connect, with_provenance
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace


def log_rows(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM prov_ops").fetchone()
    assert row is not None
    return int(row[0])


def every_operation(ns: Namespace) -> int:
    """One of each recorded namespace operation; how many there were."""
    ns.mkdir("/d")
    ns.put("/d/f", size=1)
    ns.write("/d/f", size=2)
    ns.cat("/d/f")
    ns.setxattr("/d/f", "labels", {"a": 1})
    ns.rmxattr("/d/f", "labels")
    ns.mv("/d/f", "/d/g")
    ns.rm("/d", recursive=True)
    return 8


@pytest.mark.parametrize(("provenance", "recorded"), [("on", True), ("off", False)])
def test_namespace_operations_write_log_rows_only_with_provenance_on(
    dsn: str, provenance: str, recorded: bool
) -> None:
    with connect(with_provenance(dsn, provenance)) as conn:
        ns = Namespace(conn, Actor("root", "app-1"))
        done = every_operation(ns)
        assert log_rows(conn) == (done if recorded else 0)
        ns.put("/kept", size=3)
        assert ns.stat("/kept").size == 3  # the operations themselves are the same


@pytest.mark.parametrize(("provenance", "rows"), [("on", 1), ("off", 0)])
def test_epipe_provenance_reaches_every_connection_of_the_command_line(
    dsn: str, conn: psycopg.Connection, provenance: str, rows: int
) -> None:
    result = CliRunner().invoke(
        cli,
        ["fs", "put", "/f"],
        env={"EPIPE_DSN": dsn, "EPIPE_PROVENANCE": provenance},
    )
    assert result.exit_code == 0, (result.output, result.stderr)
    assert log_rows(conn) == rows


def test_a_bad_epipe_provenance_is_one_line_naming_it(dsn: str) -> None:
    result = CliRunner().invoke(
        cli, ["fs", "put", "/f"], env={"EPIPE_DSN": dsn, "EPIPE_PROVENANCE": "maybe"}
    )
    assert result.exit_code != 0
    assert "EPIPE_PROVENANCE" in result.stderr and "'on' or 'off'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def synchronous_commit(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
    assert row is not None
    return str(row[0])


def test_a_read_alone_commits_without_waiting_for_the_flush_and_a_change_after_it_does(
    ns: Namespace, conn: psycopg.Connection
) -> None:
    ns.put("/f")
    with conn.transaction():
        ns.cat("/f")
        assert synchronous_commit(conn) == "off"  # its only change is the read's row
        ns.write("/f", size=5)
        assert synchronous_commit(conn) == "on"  # a change: the session's setting again
    with conn.transaction():
        ns.write("/f", size=6)
        ns.cat("/f")
        assert synchronous_commit(conn) == "on"  # a read after a change waits with it
    assert synchronous_commit(conn) == "on"
    assert [r[0] for r in conn.execute("SELECT op FROM prov_ops ORDER BY id")] == [
        "create", "read", "write", "write", "read",
    ]  # fmt: skip


def test_the_token_of_a_read_covers_its_log_row(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.put("/f")
    conn.execute("SELECT pg_create_logical_replication_slot('t_read_token', 'test_decoding')")
    try:
        token = Namespace(conn, Actor("root", "reader-1")).cat("/f").token
        ns.mkdir("/later")  # a synchronous commit: the WAL before it is flushed
        changes = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_changes('t_read_token', %s::pg_lsn, NULL)",
            [token],
        ).fetchall()
        text = "\n".join(row[0] for row in changes)
        assert "op[text]:'read'" in text and "app_id[text]:'reader-1'" in text
        assert "'later'" not in text
    finally:
        conn.execute("SELECT pg_drop_replication_slot('t_read_token')")
