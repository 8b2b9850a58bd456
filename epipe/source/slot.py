"""ReplicationSlot: the replication stream of one slot and the publication it reads; and
`slot_state`, the one reader of `pg_replication_slots`.

psycopg 3 has no replication protocol, so this module alone uses psycopg2's
LogicalReplicationConnection; everything else speaks psycopg 3. psycopg2's errors become
SourceError here (`map_exceptions`), never beyond.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import psycopg2
import psycopg2.extras

from epipe.db.server import connect
from epipe.lsn import lsn_from_str, lsn_to_str
from epipe.source import SourceError

STATUS_INTERVAL = 1  # seconds between position reports psycopg2 sends on its own


@dataclass(frozen=True)
class SlotState:
    """A row of pg_replication_slots, positions as integers (None where the server has none)."""

    name: str
    plugin: str
    database: str
    active: bool
    active_pid: int | None
    restart_lsn: int | None
    confirmed_lsn: int | None
    wal_status: str | None


@dataclass(frozen=True)
class Setup:
    """What `ReplicationSlot.inspect` found missing."""

    new_slot: bool  # no slot: the rows already there need a backfill
    publication_gap: bool  # publication missing or incomplete: changes were skipped


def slot_state(conn: psycopg.Connection, name: str) -> SlotState | None:
    row = conn.execute(
        "SELECT plugin, database, active, active_pid, restart_lsn::text, "
        "confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = %s",
        [name],
    ).fetchone()
    if row is None:
        return None
    plugin, database, active, pid, restart, confirmed, wal_status = row
    return SlotState(
        name,
        plugin,
        database,
        active,
        pid,
        lsn_from_str(restart) if restart else None,
        lsn_from_str(confirmed) if confirmed else None,
        wal_status,
    )


@contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """psycopg2's errors as SourceError naming what failed."""
    try:
        yield
    except psycopg2.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SourceError(f"{what}: {reason}") from None


class ReplicationSlot:
    def __init__(self, dsn: str, *, slot: str, publication: str, tables: tuple[str, ...]) -> None:
        self.dsn = dsn
        self.slot = slot
        self.publication = publication
        self.tables = tables
        self._conn: psycopg.Connection | None = None
        self._repl: psycopg2.extensions.connection | None = None
        self._cursor: psycopg2.extras.ReplicationCursor | None = None
        self._confirmed = 0
        self._publication_oid: int | None = None  # the publication streamed, once known

    # -- setup -------------------------------------------------------------------------------

    @property
    def control(self) -> psycopg.Connection:
        """The ordinary (psycopg 3) connection beside the stream."""
        if self._conn is None:
            self._conn = connect(self.dsn)
        return self._conn

    def inspect(self) -> Setup:
        """Check the replica identity and a slot already there; say what `repair` will create.
        Nothing is written: a caller that must record a backfill does so before the repair,
        so that a crash in between finds the same gap again."""
        conn = self.control
        self._check_identity(conn)
        state = slot_state(conn, self.slot)
        if state is not None:
            self._check_slot(conn, state)
            self._confirmed = state.confirmed_lsn or 0
        return Setup(new_slot=state is None, publication_gap=not self.publication_intact())

    def repair(self) -> None:
        """Create or complete the publication, then create the slot if it is missing (in that
        order: a slot without its publication would skip what is written in between)."""
        conn = self.control
        self._ensure_publication(conn)
        if slot_state(conn, self.slot) is None:
            created = conn.execute(
                "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                [self.slot],
            ).fetchone()
            assert created is not None
            self._confirmed = lsn_from_str(created[0])

    def repair_publication(self) -> None:
        """Create or complete the publication only (for a reader that makes its slot itself)."""
        self._ensure_publication(self.control)

    def drop(self) -> None:
        """Drop the slot (it must not be streamed): what it held is to be read again another
        way (a snapshot taken with a new slot)."""
        self.control.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            [self.slot],
        )
        self._confirmed = 0

    def publication_intact(self) -> bool:
        """The publication is the one last seen (not dropped and created again) and covers
        every captured table. Otherwise pgoutput has skipped, without a word, what was
        written to the missing tables meanwhile."""
        row = self.control.execute(
            "SELECT p.oid::int8, array_agg(t.tablename::text) FILTER (WHERE t.schemaname = "
            "'public') FROM pg_publication p LEFT JOIN pg_publication_tables t "
            "ON t.pubname = p.pubname WHERE p.pubname = %s GROUP BY p.oid",
            [self.publication],
        ).fetchone()
        if row is None:
            return False
        oid, published = row
        seen, self._publication_oid = self._publication_oid, oid
        return (seen is None or seen == oid) and set(self.tables) <= set(published or ())

    def _check_identity(self, conn: psycopg.Connection) -> None:
        row = conn.execute(
            "SELECT relreplident FROM pg_class WHERE oid = 'public.inodes'::regclass"
        ).fetchone()
        if row is None or row[0] != "f":
            raise SourceError(
                "table inodes must have REPLICA IDENTITY FULL (moves and deletes "
                "need the old row): run `epipe init`, or ALTER TABLE inodes "
                "REPLICA IDENTITY FULL"
            )

    def _ensure_publication(self, conn: psycopg.Connection) -> None:
        tables = ", ".join(f"public.{t}" for t in self.tables)
        found = conn.execute(
            "SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_publication_tables "
            "WHERE pubname = %s",
            [self.publication],
        ).fetchone()
        exists = conn.execute(
            "SELECT 1 FROM pg_publication WHERE pubname = %s", [self.publication]
        ).fetchone()
        if exists is None:
            conn.execute(f'CREATE PUBLICATION "{self.publication}" FOR TABLE {tables}')
        elif (found[0] if found else None) != sorted(self.tables):
            conn.execute(f'ALTER PUBLICATION "{self.publication}" SET TABLE {tables}')
        self._publication_oid = None
        self.publication_intact()  # remember the publication now in place

    def _check_slot(self, conn: psycopg.Connection, state: SlotState) -> None:
        if state.plugin != "pgoutput" or state.database != conn.info.dbname:
            raise SourceError(
                f"replication slot {self.slot!r} exists for {state.plugin} on database "
                f"{state.database}; choose another EPIPE_SLOT or drop it"
            )
        if state.active_pid is not None:
            raise SourceError(
                f"replication slot {self.slot!r} is in use by process "
                f"{state.active_pid}: another tailer runs (stop it, or use another "
                "EPIPE_SLOT)"
            )

    # -- streaming ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the replication stream at the slot's confirmed position."""
        with map_exceptions(f"cannot stream slot {self.slot!r}"):
            self._repl = psycopg2.connect(
                self.dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection
            )
            self._cursor = self._repl.cursor()
            # pgoutput writes times as text in this session's zone, which PGTZ would set
            self._cursor.execute("SET TimeZone TO 'UTC'")
            self._cursor.start_replication(
                slot_name=self.slot,
                decode=False,
                status_interval=STATUS_INTERVAL,
                options={
                    "proto_version": "1",
                    "publication_names": self.publication,
                    "messages": "true",
                },
            )

    def read(self) -> bytes | None:
        """The next pgoutput message, or None when none is waiting."""
        assert self._cursor is not None, "start() first"
        try:  # not map_exceptions: a context manager per message costs a tenth of the tailer
            message = self._cursor.read_message()
        except psycopg2.Error as exc:
            with map_exceptions(f"replication stream of {self.slot!r} broke"):
                raise exc from None
        return None if message is None else bytes(message.payload)

    def wait(self, timeout: float) -> None:
        """Block until the stream has data or `timeout` seconds passed."""
        assert self._repl is not None
        select.select([self._repl], [], [], timeout)

    @property
    def wal_end(self) -> int:
        """The server's position as of the last message or keepalive read."""
        assert self._cursor is not None
        return int(self._cursor.wal_end)

    @property
    def confirmed(self) -> int:
        return self._confirmed

    def confirm(self, lsn: int) -> None:
        """Every change before `lsn` is durably handed on: the slot may move past it."""
        if lsn <= self._confirmed:
            return
        assert self._cursor is not None
        with map_exceptions(f"cannot confirm {lsn_to_str(lsn)}"):
            # forced: the server learns it now, not at psycopg2's next status interval
            self._cursor.send_feedback(  # type: ignore[no-untyped-call]
                write_lsn=lsn, flush_lsn=lsn, apply_lsn=lsn, force=True
            )
        self._confirmed = lsn

    def keepalive(self, *, reply: bool = False) -> None:
        """Tell the server we are alive (and, with `reply`, ask for its position)."""
        assert self._cursor is not None
        with map_exceptions(f"replication stream of {self.slot!r} broke"):
            self._cursor.send_feedback(force=True, reply=reply)  # type: ignore[no-untyped-call]

    def emit_message(self, prefix: str, content: str) -> None:
        """Write a transactional logical message into the change log."""
        self.control.execute("SELECT pg_logical_emit_message(true, %s, %s)", [prefix, content])

    def close(self) -> None:
        if self._repl is not None:
            self._repl.close()
            self._repl = None
            self._cursor = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
