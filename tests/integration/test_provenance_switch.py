"""Provenance capture on and off (EPIPE_PROVENANCE, migration 0012), and what a read records:
a message, no row (migration 0015)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from epipe.cli import cli
from epipe.db.server import connect, with_provenance
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from tests.integration.helpers import ReadMessages


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


@pytest.fixture
def decoding(conn: psycopg.Connection) -> Iterator[ReadMessages]:
    with ReadMessages(conn) as recorded:
        yield recorded


@pytest.mark.parametrize(("provenance", "recorded"), [("on", True), ("off", False)])
def test_namespace_operations_are_recorded_only_with_provenance_on(
    dsn: str, conn: psycopg.Connection, decoding: ReadMessages, provenance: str, recorded: bool
) -> None:
    with connect(with_provenance(dsn, provenance)) as other:
        ns = Namespace(other, Actor("root", "app-1"))
        done = every_operation(ns)
        ns.put("/kept", size=3)  # a synchronous commit: every message before it is flushed
        assert log_rows(conn) == (done if recorded else 0)  # a read's row comes later
        assert ns.stat("/kept").size == 3  # the operations themselves are the same
    (read,) = decoding.texts() if recorded else [None]
    assert read is None or ('"app_id" : "app-1"' in read and '"name" : "f"' in read)
    assert recorded or not decoding.texts()


def test_a_read_writes_nothing_and_is_recorded_even_if_its_transaction_rolls_back(
    ns: Namespace, conn: psycopg.Connection, decoding: ReadMessages
) -> None:
    ns.put("/f")
    before = log_rows(conn)
    with conn.transaction():
        ns.cat("/f")
        xid = conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()
        assert xid == (None,)  # no transaction id: nothing to commit, no flush to wait for
    conn.execute("BEGIN")
    ns.cat("/f")
    conn.execute("ROLLBACK")  # the caller gives up after the read
    ns.mkdir("/later")
    assert log_rows(conn) == before + 1  # the mkdir's row; the reads are messages
    assert len(decoding.texts()) == 2  # the read happened, whatever came after


def test_the_token_of_a_read_covers_its_message(
    ns: Namespace, conn: psycopg.Connection, decoding: ReadMessages
) -> None:
    ns.put("/f")
    token = Namespace(conn, Actor("root", "reader-1")).cat("/f").token
    ns.mkdir("/later")  # a synchronous commit: the WAL before it is flushed
    changes = conn.execute(
        "SELECT data FROM pg_logical_slot_peek_changes(%s, %s::pg_lsn, NULL)",
        [decoding.slot, token],
    ).fetchall()
    text = "\n".join(row[0] for row in changes)
    assert "prefix: epipe.prov.read" in text and '"app_id" : "reader-1"' in text
    assert "'later'" not in text


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
