"""The local Hive Metastore: a real Java process, started, stopped and restarted."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from epipe.bench.hms_objects import thrift_client
from epipe.cli import cli
from epipe.errors import MetastoreError
from epipe.hms.java import unavailable
from epipe.hms.server import LocalMetastore, local_location_prefix, metastore_uri
from epipe.settings import Settings
from tests.conftest import HmsServer
from tests.integration.hive_helpers import create_database as create_in
from tests.integration.pipeline_helpers import epipe_command

# One Java process at a time from this file: they are slow to start on a busy machine.
pytestmark = [pytest.mark.xdist_group("hms"), pytest.mark.timeout(900)]

_UNAVAILABLE = unavailable()
needs_java = pytest.mark.skipif(
    _UNAVAILABLE is not None, reason=f"no local metastore here: {_UNAVAILABLE}"
)


def create_database(url: str, name: str, location: str) -> None:
    with thrift_client(url) as client:
        create_in(client, name, location)


def database_names(url: str) -> list[str]:
    with thrift_client(url) as client:
        names: list[str] = client.get_all_databases()
    return names


def gone(pid: int) -> bool:
    """True if `pid` no longer runs (reaped, or a zombie left to a parent that is not us)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """An EPIPE_HOME whose metastore, if a test started one, is stopped and reaped after it."""
    home = tmp_path / "home"
    try:
        yield home
    finally:
        LocalMetastore(home).stop()


@needs_java
def test_lifecycle_keeps_the_databases_across_a_restart(home: Path) -> None:
    server = LocalMetastore(home)
    assert not server.status().running
    began = time.monotonic()
    assert server.start() is True
    print(f"first start (creates the Derby schema): {time.monotonic() - began:.1f} s")
    assert server.start() is False  # already running

    state = server.status()
    assert state.running and state.pid and state.port
    assert state.url == server.url() == f"thrift://127.0.0.1:{state.port}"
    assert state.data_dir == home.resolve() / "hms"
    assert metastore_uri(Settings(home=home)) == server.url()
    assert metastore_uri(Settings(home=home, hms_uri="thrift://elsewhere:9083")) == (
        "thrift://elsewhere:9083"
    )
    prefix = local_location_prefix(home)
    assert prefix == f"file:{home.resolve()}/hms/fs"
    create_database(server.url(), "kept", f"{prefix}/kept.db")
    assert (home / "hms" / "fs" / "kept.db").is_dir()  # the metastore made its directory

    pid = state.pid
    assert server.stop() is True
    assert gone(pid)
    assert server.stop() is False
    stopped = server.status()
    assert not stopped.running and stopped.pid is None
    assert stopped.url == state.url  # the port is remembered for the next start
    assert metastore_uri(Settings(home=home)) is None

    again = LocalMetastore(home)  # as a new command would
    began = time.monotonic()
    assert again.start() is True
    print(f"second start: {time.monotonic() - began:.1f} s")
    assert again.url() == state.url
    assert sorted(database_names(again.url())) == ["default", "kept"]
    assert again.stop() is True
    assert not again.status().running


@needs_java
def test_the_cli_runs_the_metastore_beyond_its_own_exit(home: Path) -> None:
    env = {**os.environ, "EPIPE_HOME": str(home)}
    env.pop("EPIPE_HMS_URI", None)

    def epipe(*args: str) -> subprocess.CompletedProcess[str]:
        return epipe_command(env, *args)

    never = epipe("hms", "status")
    assert never.returncode == 1 and never.stdout.startswith("stopped")
    started = epipe("hms", "start")
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("started: thrift://127.0.0.1:")
    assert started.stderr == ""  # nothing from thrift's logging while it waited
    url = started.stdout.split(": ", 1)[1].strip()
    assert epipe("hms", "url").stdout.strip() == url
    assert epipe("hms", "start").stdout.strip() == f"already running: {url}"

    status = epipe("hms", "status", "--json")
    assert status.returncode == 0
    state = json.loads(status.stdout)
    assert state["running"] is True and state["url"] == url
    assert not gone(state["pid"])
    assert database_names(url) == ["default"]

    assert epipe("hms", "stop").stdout.strip() == "stopped"
    assert gone(state["pid"])
    stopped = epipe("hms", "status")
    assert stopped.returncode == 1 and stopped.stdout.startswith("stopped")
    assert epipe("hms", "stop").stdout.strip() == "not running"


def test_without_java_the_cli_says_so_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "EPIPE_HOME": str(tmp_path / "home"), "PATH": str(empty)}
    env.pop("JAVA_HOME", None)
    env.pop("EPIPE_HMS_URI", None)
    done = subprocess.run(
        [sys.executable, "-m", "epipe", "hms", "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "epipe: epipe hms needs Java >= 17 (java not found on PATH)"
    ]
    assert not (tmp_path / "home" / "hms" / "hms.pid").exists()


def fake_java(directory: Path, body: str) -> Path:
    """A `java` that reports version 17 and then runs `body` (a shell script)."""
    java = directory / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-version" ]; then echo \'openjdk version "17.0.1" 2021-10-19\' >&2; '
        "exit 0; fi\n" + body + "\n"
    )
    java.chmod(0o755)
    return directory


@pytest.mark.parametrize(
    ("java_home", "message"),
    [
        ("nowhere", "JAVA_HOME={} has no bin/java"),
        ("java8", "is Java 8; set JAVA_HOME or PATH"),
    ],
)
def test_a_missing_or_old_java_home_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, java_home: str, message: str
) -> None:
    directory = tmp_path / java_home
    if java_home == "java8":
        java = directory / "bin" / "java"
        java.parent.mkdir(parents=True)
        java.write_text("#!/bin/sh\necho 'java version \"1.8.0_402\"' >&2\n")
        java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(directory))
    result = CliRunner().invoke(
        cli, ["hms", "start"], env={"EPIPE_HOME": str(tmp_path / "home"), "EPIPE_HMS_URI": None}
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("epipe: epipe hms needs Java >= 17 (")
    assert message.format(directory) in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_server_that_exits_while_starting_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java_home = fake_java(tmp_path / "jdk", 'echo "Address already in use" >&2; exit 3')
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    server = LocalMetastore(tmp_path / "home")
    with pytest.raises(MetastoreError) as failed:
        server.start(timeout=60)
    message = str(failed.value)
    assert message.startswith("the Hive Metastore did not start: it exited with code 3")
    assert "Address already in use" in message
    assert str(server.log_file) in message
    assert not server.status().running
    assert not (server.root / "hms.pid").exists()


def test_a_server_that_never_answers_is_killed_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java_home = fake_java(tmp_path / "jdk", 'echo "still loading" >&2; exec sleep 600')
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    server = LocalMetastore(tmp_path / "home")
    began = time.monotonic()
    with pytest.raises(MetastoreError, match=r"no answer on port \d+ within 2 s") as failed:
        server.start(timeout=2)
    assert time.monotonic() - began < 60
    assert "still loading" in str(failed.value)
    assert not server.status().running
    assert not (server.root / "hms.pid").exists()


def test_a_stale_pid_file_is_not_a_running_server(tmp_path: Path) -> None:
    server = LocalMetastore(tmp_path / "home")
    server.root.mkdir(parents=True)
    for pid in (os.getpid(), 2**22 + 1):  # another program, and no process at all
        (server.root / "hms.pid").write_text(f"{pid}\n")
        assert not server.status().running
        assert server.stop() is False
        assert not (server.root / "hms.pid").exists()


@needs_java  # the port is checked once Java and the jars are found
def test_a_taken_fixed_port_is_refused_before_java_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = LocalMetastore(tmp_path / "home", port=port)
        with pytest.raises(MetastoreError, match=f"port {port} is taken"):
            server.start()
        assert not server.status().running


def test_an_external_metastore_is_not_managed(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["hms", "start"],
        env={"EPIPE_HOME": str(tmp_path), "EPIPE_HMS_URI": "thrift://elsewhere:9083"},
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("epipe: EPIPE_HMS_URI is set")


def test_the_session_metastore_answers(hms_server: HmsServer) -> None:
    assert hms_server.url.startswith("thrift://127.0.0.1:")
    assert hms_server.location_prefix.startswith("file:/")
    assert "default" in database_names(hms_server.url)
