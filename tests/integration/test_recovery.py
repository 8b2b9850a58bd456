"""Faults of the real `epipe run` process: each ends in one line on stderr, never a
traceback, and the pipeline recovers by itself once the fault is gone.

The database restarted or crashed under the pipeline (a server of the test's own: the shared
one serves every other test of the worker), the index unable to write (the process's file
size limit lowered to 0 from outside: writes fail with EFBIG; and a disk of the test's own,
a small tmpfs, filled up or made read-only), and `epipe verify` on a corrupted index
segment.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from tests.integration.helpers import older_row
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


class Writer:
    """Files written one transaction each, as fast as the database takes them, until it goes
    away: what was committed is the load the pipeline must not lose."""

    def __init__(self, dsn: str) -> None:
        self.written = 0
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._write, args=(dsn,))
        self._thread.start()

    def _write(self, dsn: str) -> None:
        try:
            with connect(dsn) as conn:
                ns = Namespace(conn)
                ns.mkdir("/load")
                while True:
                    ns.put(f"/load/f{self.written}", size=self.written)
                    self.written += 1
        except Exception as exc:  # the database died under it: the end of the load
            self.failure = exc

    def join(self) -> None:
        self._thread.join(timeout=120)
        assert not self._thread.is_alive()


@pytest.mark.slow
def test_run_goes_on_after_the_database_crashes_under_load(tmp_path: Path) -> None:
    """An immediate shutdown (no checkpoint, recovery at the next start), as a crash, while
    files are being written and indexed."""
    server = EmbeddedPostgres(tmp_path / "db")
    server.start()
    epipe: Epipe | None = None
    writer: Writer | None = None
    try:
        with connect(server.dsn) as conn:
            migrate(conn)
        epipe = Epipe(server.dsn, tmp_path / "home")
        epipe.start()
        slot = epipe.slot
        with connect(server.dsn) as conn:
            wait_until(lambda: streaming(conn, slot), "the pipeline to stream")
            writer = Writer(server.dsn)
            store = PipelineStore.on(conn)
            wait_until(
                lambda: writer.written >= 200 and store.positions()[0].applied_lsn > 0,
                "files written and indexed under load",
            )
        server.stop(immediate=True)
        writer.join()
        assert writer.failure is not None, "the load ended without the crash"
        server.start()

        with connect(server.dsn) as conn:
            token = Namespace(conn).put("/after-the-crash", size=1).token
        waited = epipe.command("wait", "--token", token, "--timeout", "120")
        assert waited.returncode == 0, (waited.stderr, epipe.stderr)
        verified = epipe.command("verify")
        assert verified.returncode == 0, (verified.stdout + verified.stderr, epipe.stderr)
        with connect(server.dsn) as conn:
            row = conn.execute("SELECT count(*) FROM inodes WHERE name LIKE 'f%'").fetchone()
        assert row is not None and row[0] >= writer.written  # every committed file is there
        assert epipe.stop() == 0
        assert epipe.retries(), "the crash went unnoticed"
        one_line_per_fault(epipe.stderr)
    finally:
        if epipe is not None:
            epipe.kill()
        server.stop(immediate=True)
        if writer is not None:
            writer.join()


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
    # the write that fails first is the commit or the generation's position record
    failed_writes = ("cannot commit", "cannot record the position")
    assert all(any(what in line for what in failed_writes) for line in epipe_run.retries()), (
        epipe_run.stderr
    )


def test_poison_values_as_a_user_gives_them_leave_the_pipeline_running(
    epipe_run: Epipe, conn: psycopg.Connection, ns: Namespace
) -> None:
    """The issue's acceptance: `fs setxattr` of a number past a double and of a value nested
    300 deep (refused, one line naming the limit), and the same values as rows written before
    the limits existed (dead-lettered): `run` goes on, `status` shows the reasons, the files
    stay searchable, `verify` exits 0."""
    huge = '{"n": 1' + "0" * 309 + "}"
    deep = '{"a":' * 300 + "1" + "}" * 300
    epipe_run.start()
    wait_until(lambda: streaming(conn, epipe_run.slot), "the pipeline to stream")
    ns.mkdir("/p")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        ns.put(f"/p/{name}", size=1)
    for value, limit in (
        (huge, "is outside -2^63 .. 2^64-1"),
        (deep, "nest 300 levels deep; the limit is 64"),
    ):
        refused = epipe_run.command("fs", "setxattr", "/p/a.jpg", "labels", value)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stderr.startswith("epipe: EINVAL: /p/a.jpg") and limit in refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
    b, c = ns.stat("/p/b.jpg").id, ns.stat("/p/c.jpg").id
    older_row(conn, b, "huge", huge)
    older_row(conn, c, "deep", deep)
    applied(conn, epipe_run.slot, ns.put("/p/d.jpg", size=1).token)
    assert epipe_run.running(), "\n".join(epipe_run.stderr)

    status = epipe_run.command("status")
    assert status.returncode == 0, status.stderr
    letters = [line for line in status.stdout.splitlines() if line.startswith("  index at ")]
    letters = [line for line in status.stdout.splitlines() if line.startswith("  index at ")]
    assert len(letters) == 2, status.stdout
    assert f"inode {b}: annotation huge holds a number beyond the range of a double" in letters[1]
    assert f"inode {c}: annotation deep is nested deeper than 64 levels" in letters[0]
    found = epipe_run.command("search", "--under", "/p", "--json")
    assert found.returncode == 0, found.stderr
    assert sorted(h["name"] for h in json.loads(found.stdout)["hits"]) == [
        "a.jpg", "b.jpg", "c.jpg", "d.jpg",
    ]  # fmt: skip
    verified = epipe_run.command("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert epipe_run.stop() == 0
    one_line_per_fault(epipe_run.stderr)


@contextmanager
def disk_of_its_own(where: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs mounted at `where` (a disk that can really fill up or turn read-only)."""
    where.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "epipe-test", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a disk of the test's own needs mount(8) permission: {mounted.stderr}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full (ENOSPC); the file."""
    filler = disk / "filler"
    with open(filler, "wb") as out:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        out.write(b"\0" * free)
        out.flush()
    left = os.statvfs(disk)
    assert left.f_bavail == 0, f"{left.f_bavail} blocks still free"
    return filler


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_an_index_disk_full_or_read_only_stops_indexing_keeps_the_position_and_resumes(
    fault: str, dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    """Full while running; read-only when `run` starts (a disk with files open for writing
    cannot be made read-only)."""
    home = tmp_path / "home"
    with disk_of_its_own(home / "index") as disk:
        epipe = Epipe(dsn, home)
        try:
            epipe.start()
            wait_until(lambda: streaming(conn, epipe.slot), "the pipeline to stream")
            ns.mkdir("/d")
            applied(conn, epipe.slot, ns.put("/d/before", size=1).token)
            store = PipelineStore.on(conn)
            kept = store.positions()[0].applied_lsn

            if fault == "full":
                filler = fill(disk)
            else:  # a disk with files open for writing cannot turn read-only: start on it
                assert epipe.stop() == 0
                remount(disk, "ro")
                epipe.start()
            token = ns.put("/d/while-unwritable", size=2).token
            wait_until(
                lambda: len(epipe.retries()) >= 2 or not epipe.running(),
                "the failed commit, twice",
            )
            assert epipe.running(), "\n".join(epipe.stderr)
            assert kept <= store.positions()[0].applied_lsn < lsn_from_str(token)
            reason = os.strerror(errno.ENOSPC if fault == "full" else errno.EROFS)
            assert any(reason in line for line in epipe.retries()), epipe.stderr

            if fault == "full":
                filler.unlink()  # space again
            else:
                remount(disk, "rw")
            applied(conn, epipe.slot, token)
            verified = epipe.command("verify")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert epipe.stop() == 0
            one_line_per_fault(epipe.stderr)
        finally:
            epipe.kill()  # reaped before its disk goes


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
    assert result.returncode == 2, result.stdout + result.stderr  # cannot check, not drift
    assert "Traceback" not in result.stderr and "panicked at" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("epipe: "), result.stderr
