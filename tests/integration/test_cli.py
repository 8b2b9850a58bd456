"""The `epipe` command line: output, errors as one line, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from epipe.cli import cli
from epipe.db.embedded import EmbeddedPostgres
from epipe.db.server import connect
from tests.integration.helpers import snapshot


@pytest.fixture
def run(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, **env: str) -> Result:
        return runner.invoke(cli, list(args), env={"EPIPE_DSN": dsn, **env}, catch_exceptions=False)

    return invoke


def test_fs_commands_print_tokens_and_data(run) -> None:  # type: ignore[no-untyped-def]
    made = run("fs", "mkdir", "-p", "/data/images")
    assert made.exit_code == 0
    assert made.stdout.strip().count("/") == 1  # an LSN token like 0/1A2B3C
    assert run("fs", "put", "/data/images/a.jpg", "--size", "2048").exit_code == 0
    assert (
        run(
            "fs", "setxattr", "/data/images/a.jpg", "labels", '{"objects": {"bicycle": 4}}'
        ).exit_code
        == 0
    )
    listing = run("fs", "ls", "/data/images")
    assert "a.jpg" in listing.stdout and "2048" in listing.stdout
    assert listing.stdout.startswith("-rw-r--r-- root")
    stat = json.loads(run("fs", "stat", "/data/images/a.jpg", "--json").stdout)
    assert (stat["name"], stat["kind"], stat["size"]) == ("a.jpg", "file", 2048)
    assert (
        run("fs", "getxattr", "/data/images/a.jpg").stdout == 'labels={"objects": {"bicycle": 4}}\n'
    )
    change = json.loads(run("fs", "cat", "/data/images/a.jpg", "--app", "job1", "--json").stdout)
    assert change["inode_id"] == stat["id"]
    assert run("fs", "mv", "/data/images", "/data/pictures").exit_code == 0
    assert run("fs", "rmxattr", "/data/pictures/a.jpg", "labels").exit_code == 0
    assert run("fs", "rm", "-r", "/data").exit_code == 0
    assert run("fs", "ls", "/").stdout == ""


def test_errors_are_one_line_on_stderr_with_a_posix_name(run, conn: psycopg.Connection) -> None:  # type: ignore[no-untyped-def]
    run("fs", "mkdir", "/d")
    before = snapshot(conn)
    cases = [
        (("fs", "stat", "/nope"), "epipe: ENOENT: /nope\n"),
        (("fs", "mkdir", "/d"), "epipe: EEXIST: /d\n"),
        (
            ("fs", "setxattr", "/d", "labels", "{bad"),
            "epipe: EINVAL: /d (xattr value is not valid JSON",
        ),
        (("fs", "mkdir", "relative"), "epipe: EINVAL: relative (path must be absolute"),
        (("fs", "mv", "/d", "/d/e"), "epipe: EINVAL: /d/e (cannot move /d into its own subtree)"),
        (("fs", "ls", "/d", "--user", "ghost"), "epipe: unknown user 'ghost'"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith(message), result.stderr
        assert result.stderr.count("\n") == 1
        assert result.stdout == ""
    assert snapshot(conn) == before


def test_accounts_and_project_checks(run) -> None:  # type: ignore[no-untyped-def]
    assert run("user", "add", "alice").exit_code == 0
    assert run("user", "add", "bob").exit_code == 0
    assert run("project", "create", "cars", "--owner", "alice").exit_code == 0
    assert run("project", "add-member", "cars", "bob", "--role", "reader").exit_code == 0
    members = json.loads(run("project", "members", "cars", "--json").stdout)
    assert members == [
        {"project": "cars", "user": "alice", "role": "owner"},
        {"project": "cars", "user": "bob", "role": "reader"},
    ]
    assert run("fs", "put", "/Projects/cars/x", "--user", "alice").exit_code == 0
    denied = run("fs", "put", "/Projects/cars/y", "--user", "bob")
    assert (denied.exit_code, denied.stderr) == (1, "epipe: EACCES: /Projects/cars/y\n")
    assert run("fs", "ls", "/Projects/cars", "--user", "bob").exit_code == 0
    again = run("project", "create", "cars", "--owner", "bob")
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_load_commands_report_their_figures(run) -> None:  # type: ignore[no-untyped-def]
    images = run("load", "images", "--count", "120", "--under", "/imgs", "--json")
    figures = json.loads(images.stdout)
    assert (figures["files"], figures["mode"]) == (120, "bulk")
    assert figures["rows_per_s"] > 0
    mix = json.loads(run("load", "mix", "--ops", "200", "--json").stdout)
    assert mix["ops"] == 200 and mix["errors"] == {}


def test_a_bad_setting_fails_fast_naming_it(run) -> None:  # type: ignore[no-untyped-def]
    result = run("fs", "ls", "/", EPIPE_BUS="rabbit")
    assert result.exit_code == 1
    assert result.stderr.startswith("epipe: EPIPE_BUS: ")


def test_fs_commands_ask_for_init_on_an_empty_database(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    with connect(pg_server.dsn) as admin:
        admin.execute("DROP DATABASE IF EXISTS blank")
        admin.execute("CREATE DATABASE blank")
    dsn = pg_server.dsn.replace("dbname=epipe", "dbname=blank")
    runner = CliRunner()
    result = runner.invoke(cli, ["fs", "ls", "/"], env={"EPIPE_DSN": dsn})
    assert result.exit_code == 1
    assert "run `epipe init`" in result.stderr
    init = runner.invoke(cli, ["init"], env={"EPIPE_DSN": dsn})
    assert init.exit_code == 0 and "applied 0001_metadata" in init.stdout
    assert runner.invoke(cli, ["init"], env={"EPIPE_DSN": dsn}).stdout.startswith("schema at")
    assert runner.invoke(cli, ["fs", "ls", "/"], env={"EPIPE_DSN": dsn}).exit_code == 0


def test_db_lifecycle_as_separate_processes(tmp_path: Path) -> None:
    env = {**os.environ, "EPIPE_HOME": str(tmp_path / "home")}
    env.pop("EPIPE_DSN", None)
    epipe = [sys.executable, "-m", "epipe"]

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*epipe, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    try:
        assert call("db", "start").stdout.startswith("started: postgresql://epipe@/epipe?host=")
        assert call("db", "start").stdout.startswith("already running")
        assert call("db", "status").stdout.startswith("running (pid ")
        url = call("db", "url").stdout.strip()
        assert url.startswith("postgresql://")
        assert call("init").returncode == 0
        assert call("fs", "mkdir", "/x").returncode == 0
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM inodes").fetchone() == (2,)
        assert call("db", "stop").stdout.strip() == "stopped"
        stopped = call("db", "status")
        assert stopped.returncode == 1 and stopped.stdout.startswith("stopped")
        # any command that needs the database starts it again on demand
        assert call("fs", "stat", "/x").returncode == 0
        external = subprocess.run(
            [*epipe, "db", "status"],
            env={**env, "EPIPE_DSN": url},
            capture_output=True,
            text=True,
            check=False,
        )
        assert external.returncode == 1 and "EPIPE_DSN is set" in external.stderr
    finally:
        call("db", "stop")
