"""What commands share: settings, the database connection, output helpers."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

import click
import psycopg

from epipe.db.migrate import current_version, discover
from epipe.db.server import connect, database_dsn
from epipe.errors import DatabaseError
from epipe.settings import Settings, load_settings


class Context:
    """Lazily built resources of one CLI invocation, closed when it ends."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._settings: Settings | None = None
        self._conn: psycopg.Connection | None = None

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def dsn(self) -> str:
        """The metadata database's DSN; starts the embedded server if it is not running."""
        return database_dsn(self.settings)

    def connection(self, *, migrated: bool = True) -> psycopg.Connection:
        """An autocommit connection; with `migrated`, refuse a schema that is behind."""
        if self._conn is None:
            self._conn = self._stack.enter_context(connect(self.dsn()))
            if migrated:
                have, want = current_version(self._conn), len(discover())
                if have < want:
                    raise DatabaseError(
                        f"the metadata schema is at version {have}, epipe needs {want}: "
                        "run `epipe init`"
                    )
        return self._conn


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, default=str, ensure_ascii=False, indent=2))
