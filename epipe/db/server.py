"""Reaching the metadata database: the embedded server or an external one (EPIPE_DSN).

An external server is checked before use; each problem is one line naming the fix.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import set_json_loads

from epipe import jsonvalue
from epipe.db.embedded import EmbeddedPostgres
from epipe.errors import DatabaseError
from epipe.settings import Settings

set_json_loads(jsonvalue.load)  # orjson (several times faster), and never an error

_PROVENANCE_OPTION = re.compile(r"(-c\s*|--)epipe\.provenance=\S*")
MIN_SERVER_VERSION = 140000  # pgoutput protocol v2 (streaming of large transactions)


def connect(dsn: str, *, autocommit: bool = True, **kwargs: object) -> psycopg.Connection:
    """A psycopg connection whose session time zone is UTC, failures translated to DatabaseError.

    Times leave the database as text in the session's zone (documents, CLI output), so it is
    pinned here: libpq sends PGTZ as a startup parameter that outranks `options=-c TimeZone=`,
    hence a SET after connecting rather than a connection option."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise DatabaseError(f"cannot connect to the metadata database: {reason}") from None
    try:
        utc_session(conn)
        if not autocommit:
            conn.commit()  # a session setting: it outlives this transaction
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseError(f"cannot set the session time zone to UTC: {exc}") from None
    return conn


def utc_session(conn: psycopg.Connection) -> None:
    """Pin the session's time zone to UTC (PGTZ in the environment may say otherwise)."""
    conn.execute("SET TimeZone TO 'UTC'")


def check_server(dsn: str) -> list[str]:
    """Problems that stop epipe from using the server at `dsn` (empty list: ready)."""
    try:
        conn = connect(dsn)
    except DatabaseError as exc:
        return [f"EPIPE_DSN: {exc}; check host, port, user and password"]
    problems = []
    with conn:
        version = conn.info.server_version
        if version < MIN_SERVER_VERSION:
            problems.append(f"EPIPE_DSN: PostgreSQL {version // 10000} is too old; use 14 or newer")
        row = conn.execute("SELECT current_setting('wal_level')").fetchone()
        if row is None or row[0] != "logical":
            problems.append(
                f"EPIPE_DSN: wal_level is '{row[0] if row else '?'}'; set wal_level = logical "
                "in postgresql.conf and restart the server"
            )
        row = conn.execute(
            "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
        if row is None or not row[1]:
            user = row[0] if row else "?"
            problems.append(
                f"EPIPE_DSN: role {user} may not replicate; run ALTER ROLE {user} REPLICATION"
            )
        row = conn.execute("SELECT current_setting('max_replication_slots')::int").fetchone()
        if row is None or row[0] < 1:
            problems.append("EPIPE_DSN: max_replication_slots is 0; set it to at least 4")
    return problems


def database_dsn(settings: Settings, *, start: bool = True) -> str:
    """The DSN of the metadata database: the embedded server (started on demand) or EPIPE_DSN."""
    if settings.dsn is not None:
        dsn = settings.dsn.get_secret_value()
        problems = check_server(dsn)
        if problems:
            raise DatabaseError("\n".join(problems))
        return with_provenance(dsn, settings.provenance)
    server = EmbeddedPostgres(settings.home, tcp=settings.source == "debezium")
    if start:
        server.start()
    return with_provenance(server.dsn, settings.provenance)


def tcp_dsn(settings: Settings, dsn: str) -> str:
    """`dsn` over TCP, for a client without unix sockets (Debezium's JDBC driver): as it is
    when it names a host, else through the embedded server's loopback port."""
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "")
    if host and not host.startswith("/") and "," not in host:
        return dsn
    if settings.dsn is not None:
        raise DatabaseError(
            "EPIPE_SOURCE=debezium needs EPIPE_DSN to name one TCP host (host=db.example "
            "port=5432 ...): Debezium's JDBC driver cannot use a unix socket"
        )
    tcp = conninfo_to_dict(EmbeddedPostgres(settings.home, tcp=True).tcp_dsn)
    return make_conninfo(dsn, host=tcp["host"], port=tcp["port"], password=tcp["password"])


def with_provenance(dsn: str, provenance: str) -> str:
    """`dsn` whose sessions record provenance (`on`) or not (`off`): the session setting
    `epipe.provenance` that `fs_record` reads (migration 0012), added to the DSN's options."""
    options = _PROVENANCE_OPTION.sub("", str(conninfo_to_dict(dsn).get("options") or ""))
    return make_conninfo(dsn, options=f"{options.strip()} -c epipe.provenance={provenance}".strip())
