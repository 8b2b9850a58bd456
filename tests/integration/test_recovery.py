"""Faults of the real `epipe run` process: each ends in one line on stderr, never a
traceback, and the pipeline recovers by itself once the fault is gone.

The database restarted under the pipeline (a server of the test's own: the shared one
serves every other test of the worker), the index unable to write (the process's file size
limit lowered to 0 from outside, as a full disk: writes fail with EFBIG), and `epipe verify`
on a corrupted index segment.
"""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from epipe.db.embedded import EmbeddedPostgres
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.fs.namespace import Namespace
from epipe.lsn import lsn_from_str
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.store import PipelineStore
from tests.integration.pipeline_helpers import epipe_command, epipe_env, new_slot


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Epipe:
    """`epipe` commands against one database, slot and home; `run` as a background process
    whose stderr is collected line by line (a pipe: a file size limit does not apply)."""

    def __init__(self, dsn: str, home: Path) -> None:
        self.slot = new_slot()
        self.env = epipe_env(dsn, home, self.slot)
        self.process: subprocess.Popen[str] | None = None
        self.stderr: list[str] = []
        self._reader: threading.Thread | None = None

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return epipe_command(self.env, *args)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "epipe", "run"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,))
        self._reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.stderr.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM; the exit code (the process is reaped, its stderr read to the end)."""
        assert self.process is not None and self._reader is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self._reader.join()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self._reader is not None:
            self._reader.join()

    def retries(self) -> list[str]:
        return [line for line in self.stderr if "; retrying in " in line]


@pytest.fixture
def epipe_run(dsn: str, tmp_path: Path) -> Iterator[Epipe]:
    epipe = Epipe(dsn, tmp_path)
    try:
        yield epipe
    finally:
        epipe.kill()


def streaming(conn: psycopg.Connection, slot: str) -> bool:
    row = conn.execute(
        "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [slot]
    ).fetchone()
    return bool(row and row[0])


def connected(conn: psycopg.Connection, application: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", [application]
    ).fetchone()
    return found is not None


def applied(conn: psycopg.Connection, slot: str, token: str) -> None:
    _, lagging = pipeline_status.wait(conn, slot, lsn_from_str(token), 120)
    assert not lagging, lagging


_LOGGED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) epipe\.")  # a log line


def one_line_per_fault(stderr: list[str]) -> None:
    """Every line of stderr says what failed, in one line; none is part of a traceback."""
    assert not any("Traceback" in line for line in stderr), "\n".join(stderr)
    assert all(line.startswith("epipe: ") or _LOGGED.match(line) for line in stderr), "\n".join(
        stderr
    )


@pytest.mark.slow
def test_run_reconnects_to_a_restarted_database_and_loses_nothing(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "db")
    server.start()
    epipe: Epipe | None = None
    waiting: subprocess.Popen[str] | None = None
    try:
        with connect(server.dsn) as conn:
            migrate(conn)
        epipe = Epipe(server.dsn, tmp_path / "home")
        epipe.start()
        slot = epipe.slot
        with connect(server.dsn) as conn:
            wait_until(lambda: streaming(conn, slot), "the pipeline to stream")
            ns = Namespace(conn)
            ns.mkdir("/before", parents=True)
            applied(conn, slot, ns.put("/before/a", size=1).token)
            # a command the database goes away under: `wait` for a position never reached
            waiting = subprocess.Popen(
                [sys.executable, "-m", "epipe", "wait", "--token", "FF/0", "--timeout", "600"],
                env={**epipe.env, "PGAPPNAME": "waiting"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_until(lambda: connected(conn, "waiting"), "`epipe wait` to connect")

        server.stop()
        _, wait_errors = waiting.communicate(timeout=120)
        assert waiting.returncode == 1, wait_errors
        assert wait_errors.startswith("epipe: ") and wait_errors.count("\n") == 1, wait_errors
        server.start()  # the pipeline lost every connection: it starts again by itself

        with connect(server.dsn) as conn:
            ns = Namespace(conn)
            ns.mkdir("/after")
            for i in range(20):
                token = ns.put(f"/after/f{i}", size=i).token
            ns.setxattr("/before/a", "labels", {"seen": "after the restart"})
        waited = epipe.command("wait", "--timeout", "120")
        assert waited.returncode == 0, (waited.stderr, epipe.stderr)
        verified = epipe.command("verify")
        assert verified.returncode == 0, (verified.stdout + verified.stderr, epipe.stderr)
        with connect(server.dsn) as conn:
            assert PipelineStore.on(conn).positions()[0].applied_lsn >= lsn_from_str(token)
        assert epipe.stop() == 0
        assert epipe.retries(), "the restart went unnoticed"
        one_line_per_fault(epipe.stderr)
    finally:
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
        if epipe is not None:
            epipe.kill()
        server.stop()


@pytest.mark.slow
def test_index_that_cannot_write_stops_indexing_keeps_the_position_and_resumes(
    epipe_run: Epipe, conn: psycopg.Connection, ns: Namespace
) -> None:
    epipe_run.start()
    wait_until(lambda: streaming(conn, epipe_run.slot), "the pipeline to stream")
    ns.mkdir("/d")
    applied(conn, epipe_run.slot, ns.put("/d/before", size=1).token)
    store = PipelineStore.on(conn)
    kept = store.positions()[0].applied_lsn

    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.prlimit(epipe_run.pid, resource.RLIMIT_FSIZE, (0, limits[1]))  # a full disk
    token = ns.put("/d/while-full", size=2).token
    wait_until(
        lambda: len(epipe_run.retries()) >= 2 or not epipe_run.running(),
        "the failed commit, twice",
    )
    assert epipe_run.running(), "\n".join(epipe_run.stderr)
    assert store.positions()[0].applied_lsn < lsn_from_str(token)
    assert store.positions()[0].applied_lsn >= kept

    resource.prlimit(epipe_run.pid, resource.RLIMIT_FSIZE, limits)  # space again
    applied(conn, epipe_run.slot, token)
    verified = epipe_run.command("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert epipe_run.stop() == 0
    one_line_per_fault(epipe_run.stderr)
    assert all("cannot commit" in line for line in epipe_run.retries()), epipe_run.stderr


def test_verify_of_a_corrupted_segment_says_so_in_one_line(
    dsn: str, ns: Namespace, tmp_path: Path
) -> None:
    ns.mkdir("/d")
    for i in range(50):
        ns.put(f"/d/f{i}", size=i)
        ns.setxattr(f"/d/f{i}", "labels", {"i": i, "text": "some words to index " * 5})
    epipe = Epipe(dsn, tmp_path)
    built = epipe.command("reindex")
    assert built.returncode == 0, built.stderr
    segments = [p for p in (tmp_path / "index" / "current").iterdir() if p.suffix == ".idx"]
    assert segments
    for segment in segments:  # the postings, not the footer: tantivy panics reading them
        data = segment.read_bytes()
        half = len(data) // 2
        segment.write_bytes(b"\xff" * half + data[half:])

    result = epipe.command("verify")
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "panicked at" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("epipe: "), result.stderr
