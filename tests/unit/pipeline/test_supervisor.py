"""The supervisor's policy, on attempts that fail as they are told to (the real faults run
against real processes in tests/integration/test_recovery.py)."""

from __future__ import annotations

import threading

import psycopg
import psycopg2
import pytest

from epipe.bus import BusError
from epipe.errors import ConfigError, DatabaseError, MigrationError
from epipe.index.engine import EngineError
from epipe.pipeline.supervisor import Backoff, Supervisor, describe, retryable
from epipe.sink import Unavailable
from epipe.source import SourceError


def test_backoff_doubles_up_to_its_longest_and_starts_over_after_a_healthy_run() -> None:
    backoff = Backoff(first=0.5, longest=4.0, healthy=60.0)
    assert [backoff.delay(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(60.0) == 0.5
    assert backoff.delay(0.0) == 1.0


def _wrapped(error: Exception, wrapper: Exception) -> Exception:
    """`wrapper` raised while handling `error` (`from None`, as the adapters do)."""
    try:
        try:
            raise error
        except Exception:
            raise wrapper from None
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    "error",
    [
        BusError("the bus did not accept events within 120 s"),
        EngineError("cannot commit the tantivy index: No space left on device"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.InterfaceError("the connection is closed"),
        _wrapped(psycopg.OperationalError("refused"), DatabaseError("cannot connect")),
        _wrapped(psycopg2.OperationalError("terminating"), SourceError("stream broke")),
        _wrapped(psycopg2.DatabaseError("no COPY in progress"), SourceError("stream broke")),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.TooManyConnections("sorry, too many clients already"),
        Unavailable("Hive metastore at thrift://127.0.0.1:9083 unreachable: refused"),
    ],
    ids=repr,
)
def test_failures_that_waiting_may_cure_are_retried(error: Exception) -> None:
    assert retryable(error)


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("EPIPE_BUS=kafka needs EPIPE_KAFKA_BOOTSTRAP"),
        MigrationError("migration 0003 was edited after it was applied"),
        SourceError("replication slot 'epipe' is in use by process 42"),
        SourceError("replication slot 'epipe' exists for test_decoding"),
        psycopg.errors.UndefinedTable("relation epipe_consumers does not exist"),
        KeyError("a bug"),
    ],
    ids=repr,
)
def test_failures_that_waiting_cannot_cure_are_not(error: Exception) -> None:
    assert not retryable(error)


def test_a_description_is_one_line_naming_the_database_for_a_lost_connection() -> None:
    lost = psycopg.OperationalError("server closed the connection\nunexpectedly")
    assert describe(lost) == "lost the metadata database: server closed the connection"
    assert describe(EngineError("cannot commit\ndetail")) == "cannot commit"
    assert describe(KeyError()) == "KeyError: KeyError"


class Attempts:
    """Attempts that raise the given errors in turn, then run until stopped."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.firsts: list[bool] = []
        self.running = threading.Event()

    def __call__(self, first: bool) -> Attempts:
        self.firsts.append(first)
        return self

    def run(self, stop: threading.Event) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.running.set()
        stop.wait()


def supervised(attempts: Attempts, lines: list[str]) -> Supervisor:
    return Supervisor(attempts, report=lines.append, backoff=Backoff(first=0.01, longest=0.02))


def test_each_retried_failure_is_one_line_and_a_new_attempt_until_stopped() -> None:
    attempts = Attempts(EngineError("cannot commit: EFBIG"), BusError("bus down\nmore"))
    lines: list[str] = []
    supervisor = supervised(attempts, lines)
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    assert attempts.running.wait(30)
    supervisor.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert lines == [
        "cannot commit: EFBIG; retrying in 0.01 s",
        "bus down; retrying in 0.02 s",
    ]
    assert attempts.firsts == [True, False, False]


def test_a_failure_waiting_cannot_cure_ends_the_supervisor() -> None:
    lines: list[str] = []
    with pytest.raises(ConfigError):
        supervised(Attempts(BusError("down"), ConfigError("wrong")), lines).run()
    assert lines == ["down; retrying in 0.01 s"]


def test_a_database_error_of_the_driver_ends_it_as_a_database_error() -> None:
    broken = psycopg.errors.UndefinedTable("relation epipe_consumers does not exist")
    with pytest.raises(DatabaseError, match="UndefinedTable: relation epipe_consumers"):
        supervised(Attempts(broken), []).run()


def test_stopped_while_waiting_it_returns_at_once() -> None:
    attempts = Attempts(BusError("down"))
    supervisor = Supervisor(attempts, report=lambda line: supervisor.stop())
    supervisor.run()  # the backoff would be 0.5 s; the stop ends the wait (and the loop)
    assert attempts.firsts == [True]
