"""The embedded PostgreSQL server and the checks of an external one."""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

import psycopg
import pytest

from epipe.db.embedded import SERVICE_USER, EmbeddedPostgres
from epipe.db.server import check_server, connect, database_dsn
from epipe.errors import DatabaseError
from epipe.settings import Settings


def test_lifecycle_start_status_stop_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "home")
    assert not server.status().running
    assert server.start() is True
    try:
        assert server.start() is False  # already running
        state = server.status()
        assert state.running and state.pid
        with connect(server.dsn) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        assert server.stop() is True
        assert server.stop() is False
        assert not server.status().running
        assert server.start() is True  # data survives a restart
        with connect(server.dsn) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
    finally:
        server.stop()


def test_the_server_is_configured_for_logical_decoding(pg_server: EmbeddedPostgres) -> None:
    with connect(pg_server.dsn) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('wal_level', 'synchronous_commit', 'max_replication_slots', 'listen_addresses')"
            ).fetchall()
        )
        assert settings == {
            "wal_level": "logical",
            "synchronous_commit": "on",
            "max_replication_slots": "16",
            "listen_addresses": "",
        }
        assert conn.info.server_version >= 150000
        conn.execute("SELECT pg_create_logical_replication_slot('t_pgoutput', 'pgoutput')")
        conn.execute("SELECT pg_drop_replication_slot('t_pgoutput')")
    assert check_server(pg_server.dsn) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="root-only path: the server runs as a service user")
def test_under_root_the_server_runs_as_an_unprivileged_user(pg_server: EmbeddedPostgres) -> None:
    pid = pg_server.status().pid
    assert pid is not None
    assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(SERVICE_USER).pw_uid


def test_a_normal_user_runs_the_server_as_themself(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        server = EmbeddedPostgres(tmp_path / "home")
        server.start()
        server.stop()
        return
    # As root: drop to an unprivileged user in a forked child (the interpreter is already
    # loaded, so no part of it has to be readable by that user) and run the same code.
    user = pwd.getpwnam(SERVICE_USER)
    home = tmp_path / "user-home"
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(tmp_path, 0o755)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            server = EmbeddedPostgres(home)
            server.start()
            with psycopg.connect(server.dsn) as conn:
                conn.execute("SELECT 1")
            server.stop()
            code = 0
        except BaseException as exc:
            print(f"child failed: {exc!r}", file=sys.stderr)
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (home / "pg" / "data" / "PG_VERSION").exists()


def test_an_external_server_is_checked_with_one_line_per_problem(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    with connect(pg_server.dsn) as conn:
        conn.execute("DROP ROLE IF EXISTS plain")
        conn.execute("CREATE ROLE plain LOGIN")
    plain = pg_server.dsn.replace("user=epipe", "user=plain")
    problems = check_server(plain)
    assert problems == ["EPIPE_DSN: role plain may not replicate; run ALTER ROLE plain REPLICATION"]

    unreachable = check_server("host=/nonexistent port=5432 user=x dbname=y")
    assert len(unreachable) == 1
    assert unreachable[0].startswith("EPIPE_DSN: cannot connect")

    with pytest.raises(DatabaseError, match="may not replicate"):
        database_dsn(Settings(dsn=plain, home=tmp_path))  # type: ignore[arg-type]


def test_a_server_without_logical_wal_is_refused(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "home", settings={"wal_level": "replica"})
    server.start()
    try:
        problems = check_server(server.dsn)
        assert len(problems) == 1
        assert "wal_level is 'replica'; set wal_level = logical" in problems[0]
    finally:
        server.stop()


def test_database_dsn_starts_the_embedded_server_on_demand(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    try:
        dsn = database_dsn(settings)
        with connect(dsn) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("epipe",)
    finally:
        EmbeddedPostgres(tmp_path / "home").stop()


def test_long_home_paths_get_a_short_socket_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    server = EmbeddedPostgres(deep)
    assert len(str(server.run_dir)) < 100
    assert str(server.run_dir).startswith("/tmp/epipe-") or server.run_dir.is_relative_to(deep)


def test_tcp_for_debezium_asks_a_password_and_stays_on(tmp_path: Path) -> None:
    home = tmp_path / "home"
    plain = EmbeddedPostgres(home)
    assert plain.start() is True
    try:
        assert not plain.tcp
        with pytest.raises(DatabaseError, match="does not listen on TCP"):
            EmbeddedPostgres(home, tcp=True).start()  # running without: not changed under it
    finally:
        plain.stop()
    server = EmbeddedPostgres(home, tcp=True)
    assert server.start() is True
    try:
        assert server.tcp and server.port != 5432
        assert (home / "pg" / "password").stat().st_mode & 0o077 == 0
        with connect(server.tcp_dsn) as conn:  # over TCP, with the password
            assert conn.execute("SELECT inet_server_addr()::text").fetchone() == ("127.0.0.1/32",)
        with connect(server.dsn) as conn:  # the socket, named after the port
            assert conn.execute("SELECT current_setting('port')").fetchone() == (str(server.port),)
        wrong = server.tcp_dsn.replace("password=", "password=x")
        with pytest.raises(DatabaseError, match="password authentication failed"):
            connect(wrong)
        unset = " ".join(w for w in server.tcp_dsn.split() if not w.startswith("password="))
        with pytest.raises(DatabaseError):
            connect(unset)
        port = server.port
        server.stop()
        assert EmbeddedPostgres(home).start() is True  # a later start without asking: still on
        assert server.port == port
        with connect(server.tcp_dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
