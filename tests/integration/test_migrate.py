"""`epipe init`: versioned, idempotent, refuses edited migrations, all or nothing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from epipe.db.embedded import EmbeddedPostgres
from epipe.db.migrate import Migration, current_version, discover, migrate
from epipe.db.server import connect
from epipe.errors import MigrationError

_serial = itertools.count()


@pytest.fixture
def empty(pg_server: EmbeddedPostgres) -> Iterator[psycopg.Connection]:
    name = f"empty{next(_serial)}"
    with connect(pg_server.dsn) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with connect(pg_server.dsn.replace("dbname=epipe", f"dbname={name}")) as conn:
        yield conn
    with connect(pg_server.dsn) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_init_applies_everything_once_and_records_versions(empty: psycopg.Connection) -> None:
    assert current_version(empty) == 0
    applied = migrate(empty)
    assert [m.version for m in applied] == [m.version for m in discover()]
    assert current_version(empty) == len(discover())
    assert migrate(empty) == []  # idempotent
    rows = empty.execute("SELECT version, name FROM epipe_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in discover()]
    assert empty.execute("SELECT id, kind FROM inodes").fetchall() == [(1, "d")]
    assert empty.execute("SELECT name, is_superuser FROM users").fetchall() == [("root", True)]


def test_an_edited_migration_is_refused(empty: psycopg.Connection) -> None:
    migrations = discover()
    migrate(empty, migrations)
    edited = [replace(migrations[0], sql=migrations[0].sql + "\n-- edited\n"), *migrations[1:]]
    with pytest.raises(MigrationError, match="0001_metadata was edited"):
        migrate(empty, edited)


def test_a_failing_migration_leaves_the_schema_as_it_was(empty: psycopg.Connection) -> None:
    migrations = discover()
    broken = [
        *migrations,
        Migration(
            len(migrations) + 1, "broken", "CREATE TABLE half (x int); SELECT no_such_function();"
        ),
    ]
    with pytest.raises(MigrationError, match="broken failed"):
        migrate(empty, broken)
    assert current_version(empty) == 0
    assert empty.execute("SELECT to_regclass('inodes'), to_regclass('half')").fetchone() == (
        None,
        None,
    )
    assert [m.version for m in migrate(empty, migrations)] == [m.version for m in migrations]


def test_the_inode_id_sequence_never_cycles(empty: psycopg.Connection) -> None:
    migrate(empty)
    row = empty.execute(
        "SELECT cycle, data_type FROM pg_sequences WHERE sequencename = 'inode_ids'"
    ).fetchone()
    assert row == (False, "bigint")
