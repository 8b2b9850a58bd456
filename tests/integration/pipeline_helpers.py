"""Running the pipeline in tests: in a thread (Runner) or as a real `epipe run` process."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from epipe import wiring
from epipe.lsn import lsn_from_str
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.runner import ConsumerSpec, Runner
from epipe.pipeline.store import PipelineStore
from epipe.settings import Settings

_slots = itertools.count()


def new_slot() -> str:
    return f"s{os.getpid()}_{next(_slots)}"


def index_consumer(dsn: str, root: Path, settings: Settings | None = None) -> ConsumerSpec:
    """The index consumer over a tantivy index under `root` (or the store of `settings`)."""
    if settings is not None:
        return wiring.index_consumer(dsn, wiring.open_index_store(settings))
    return wiring.index_consumer(dsn, wiring.open_tantivy_store(root))


@dataclass
class Running:
    runner: Runner
    slot: str
    events_file: Path
    errors: list[BaseException] = field(default_factory=list)

    def wait(
        self, conn: psycopg.Connection, token: str | None = None, timeout: float = 60.0
    ) -> None:
        target = None if token is None else lsn_from_str(token)
        _, lagging = pipeline_status.wait(conn, self.slot, target, timeout)
        assert not self.errors, self.errors
        assert not lagging, f"still behind after {timeout} s: {lagging}"

    def backfilled(self, conn: psycopg.Connection, timeout: float = 60.0) -> None:
        """Wait until the backfill of the slot has been read and confirmed."""
        store = PipelineStore.on(conn)
        deadline = time.monotonic() + timeout
        while not all(state.done for state in store.backfill(self.slot)):
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, store.backfill(self.slot)
            time.sleep(0.05)


@contextmanager
def running(
    dsn: str,
    tmp_path: Path,
    *,
    slot: str | None = None,
    consumers: list[ConsumerSpec] | None = None,
    backfill_chunk: int | None = None,
    backfill: bool = False,
    expect_failure: bool = False,
) -> Iterator[Running]:
    """The embedded pipeline in a background thread, stopped (and checked) on exit."""
    slot = slot or new_slot()
    events_file = tmp_path / f"{slot}.jsonl"
    settings = Settings(dsn=dsn, slot=slot, home=tmp_path, heartbeat_interval=0.2)  # type: ignore[arg-type]
    if consumers is None:
        consumers = [wiring.events_file_consumer(events_file)]
    source = wiring.open_source(settings, dsn, backfill=backfill, backfill_chunk=backfill_chunk)
    runner = wiring.runner(settings, dsn, consumers, source=source)
    handle = Running(runner, slot, events_file)
    stop = threading.Event()

    def target() -> None:
        try:
            runner.run(stop)
        except BaseException as exc:
            handle.errors.append(exc)

    thread = threading.Thread(target=target, name="pipeline")
    thread.start()
    while not runner.ready.wait(0.05):
        assert thread.is_alive(), handle.errors
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=60)
    if not expect_failure:
        assert not handle.errors, handle.errors


def epipe_env(dsn: str, home: Path, slot: str, source: str = "postgres") -> dict[str, str]:
    """The environment of `epipe` processes on database `dsn`, home `home` and slot `slot`,
    reading the change log with `source` (EPIPE_SOURCE)."""
    return {
        **os.environ,
        "EPIPE_DSN": dsn,
        "EPIPE_HOME": str(home),
        "EPIPE_SLOT": slot,
        "EPIPE_SOURCE": source,
        "EPIPE_HEARTBEAT_INTERVAL": "0.2",
    }


def epipe_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`epipe ARGS` run to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "epipe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


_started: list[EpipeProcess] = []


def reap_pipeline_processes() -> None:
    """Kill what a failed test left running, before its files are deleted."""
    while _started:
        _started.pop().reap()


class EpipeProcess:
    """`epipe ARGS` as a real process (`epipe tail`, `epipe consume NAME`), to kill -9; its
    output goes to `log`."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.env = env
        self.argv = [sys.executable, "-m", "epipe", *args]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log)
        _started.append(self)

    def reap(self) -> None:
        """Kill and reap the process if it still runs (a test that failed midway); a stopped
        one is continued first."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """Stop the process where it is (SIGSTOP): it holds its connections and does nothing."""
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process go on (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


class PipelineProcess(EpipeProcess):
    """`epipe run` as a real process, to kill -9."""

    def __init__(
        self,
        dsn: str,
        home: Path,
        slot: str,
        events_file: Path,
        *args: str,
        source: str = "postgres",
    ) -> None:
        super().__init__(
            epipe_env(dsn, home, slot, source),
            home / f"{slot}.log",
            "run",
            "--events-file",
            str(events_file),
            *args,
        )
        self.slot = slot

    def backfilled(self, conn: psycopg.Connection, timeout: float = 60.0) -> None:
        """Wait until the slot's backfill has been read and confirmed (later writes arrive
        through the stream, so waiting for a position covers them); fails once it stops."""
        store, deadline = PipelineStore.on(conn), time.monotonic() + timeout
        while not (states := store.backfill(self.slot)) or not all(s.done for s in states):
            assert self.process is not None
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, states
            time.sleep(0.05)


class KillablePipeline:
    """One `epipe run` process that a series of histories kills with SIGKILL and starts
    again; `settle` waits until it has applied all that was written."""

    def __init__(self, dsn: str, home: Path, conn: psycopg.Connection, **env: str) -> None:
        self.slot = new_slot()
        self.process = PipelineProcess(dsn, home, self.slot, home / "events.jsonl")
        self.process.env.update(env)
        self.conn = conn
        self.running = False
        self.kills = 0

    def start(self) -> None:
        self.process.start()
        self.running = True

    def kill(self) -> None:
        if self.running:
            self.process.kill()
            self.running = False
            self.kills += 1

    def settle(self, token: str | None = None) -> None:
        """Until every consumer has applied `token` (default: the WAL written so far)."""
        if not self.running:
            self.start()
        target = None if token is None else lsn_from_str(token)
        _, lagging = pipeline_status.wait(self.conn, self.slot, target, timeout=120)
        assert not lagging, (lagging, self.process.log.read_text()[-2000:])

    def stop(self) -> None:
        if self.running:
            self.process.stop()
            self.running = False


def wait_caught_up(conn: psycopg.Connection, slot: str, timeout: float = 120.0) -> None:
    """Until every consumer has applied the WAL end of now (a fixed target, as `epipe
    wait`: consumers' own position writes keep moving the end)."""
    _, lagging = pipeline_status.wait(conn, slot, None, timeout)
    assert not lagging, lagging


def streaming(conn: psycopg.Connection, slot: str) -> bool:
    """A process streams from the slot."""
    row = conn.execute(
        "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [slot]
    ).fetchone()
    return bool(row and row[0])
