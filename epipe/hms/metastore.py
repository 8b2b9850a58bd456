"""Metastore: the adapter over a Hive Metastore's Thrift API (HMS 2.3 and later).

It lists what the metastore holds (`scan`), drops objects without touching their data
(`deleteData=false`) and rewrites locations. A metastore that cannot be reached raises
`MetastoreUnavailable` (waiting may cure it); a refusal of one object raises `Refused`
naming the object and HMS's reason. Dropping what is already gone is not an error, so
every call can be replayed.

Work on different tables is independent, and a metastore serves each connection on a
thread of its own: partitions are listed, tables dropped and locations rewritten table by
table over up to `parallel` connections at once (two halve a drop here, measured).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pymetastore.hive_metastore import ThriftHiveMetastore
from pymetastore.hive_metastore import ttypes as hive
from thrift.protocol import TBinaryProtocol
from thrift.Thrift import TApplicationException, TException
from thrift.transport import TSocket, TTransport

from epipe.errors import ConfigError, EpipeError

DATABASE, TABLE, PARTITION = "database", "table", "partition"
_BATCH = 500  # partitions per get/alter/drop request
_ORDER = {PARTITION: 0, TABLE: 1, DATABASE: 2}  # children first
# A move leaves the data as it was, so its statistics hold. Without this, HMS 2.3 lists the
# new location of every partition that has no statistics yet (one file-system listing each)
# and, where it does not see the data, records 0 files of 0 bytes (measured).
_KEEP_STATS = hive.EnvironmentContext({"DO_NOT_UPDATE_STATS": "true"})


class MetastoreUnavailable(EpipeError):
    """The metastore cannot be reached (down, restarting, or the connection broke)."""


class Refused(EpipeError):
    """The metastore refused a change to one object."""


class HiveObject(NamedTuple):
    """A database, table or partition and the location HMS holds for it."""

    kind: str
    database: str
    table: str = ""
    partition: str = ""  # "k1=v1/k2=v2"
    location: str = ""
    values: tuple[str, ...] = ()  # the partition's values, in key order
    keys: tuple[str, ...] = ()  # a table's partition keys

    @property
    def key(self) -> str:
        """Unique over a metastore: `db`, `db.table`, `db.table/k=v`."""
        if self.kind == DATABASE:
            return self.database
        if self.kind == TABLE:
            return f"{self.database}.{self.table}"
        return f"{self.database}.{self.table}/{self.partition}"

    def describe(self) -> str:
        return f"{self.kind} {self.key}"


def children_first(objects: Iterable[HiveObject]) -> list[HiveObject]:
    return sorted(objects, key=lambda o: (_ORDER[o.kind], o.key))


class _Connection(NamedTuple):
    transport: TTransport.TTransportBase
    client: Any


class Metastore:
    def __init__(self, uri: str, *, timeout: float = 60.0, parallel: int = 2) -> None:
        parts = urlsplit(uri)
        if parts.scheme != "thrift" or not parts.hostname or not parts.port:
            raise ConfigError(f"EPIPE_HMS_URI {uri!r} is not thrift://HOST:PORT")
        if parallel < 1:
            raise ConfigError(f"parallel must be at least 1, not {parallel}")
        self.uri = uri
        self._address = (parts.hostname, parts.port)
        self._timeout_ms = timeout * 1000
        self._parallel = parallel
        self._local = threading.local()  # each thread its own connection: a client is not shared
        self._open: set[_Connection] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # -- connection ---------------------------------------------------------------------

    def _call(self, method: str, *args: Any) -> Any:
        """One Thrift call; a broken connection is dropped (the next call reconnects)."""
        connection: _Connection | None = getattr(self._local, "connection", None)
        try:
            if connection is None:
                connection = self._connect()
            return getattr(connection.client, method)(*args)
        except (TimeoutError, TTransport.TTransportException, OSError, EOFError) as exc:
            if connection is not None:
                self._drop(connection)
            raise MetastoreUnavailable(f"Hive metastore at {self.uri} unreachable: {exc}") from None

    def _connect(self) -> _Connection:
        sock = TSocket.TSocket(*self._address)
        sock.setTimeout(self._timeout_ms)
        transport = TTransport.TBufferedTransport(sock)
        transport.open()
        # decoded in C where thrift's extension is built (a scan: ~10 % faster)
        protocol = TBinaryProtocol.TBinaryProtocolAccelerated(transport)
        connection = _Connection(transport, ThriftHiveMetastore.Client(protocol))
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection

    def _drop(self, connection: _Connection) -> None:
        with self._lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with contextlib.suppress(OSError):
            connection.transport.close()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.transport.close()
        self._local = threading.local()

    def _each(self, work: Callable[[Any], list[Any]], items: list[Any]) -> list[Any]:
        """`work` of every item, concatenated in the order of `items`; over up to `parallel`
        connections. Every item is finished before the first error is raised."""
        if self._parallel == 1 or len(items) < 2:
            return [out for item in items for out in work(item)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._parallel, thread_name_prefix="epipe-hms")
        futures = [self._pool.submit(work, item) for item in items]
        wait(futures)
        return [out for future in futures for out in future.result()]

    def ping(self) -> None:
        self._call("get_all_databases")

    # -- reading ------------------------------------------------------------------------

    def scan(self) -> list[HiveObject]:
        """Every database, table and partition with its location."""
        objects = self.scan_tables()
        return objects + self.scan_partitions([o for o in objects if o.kind == TABLE])

    def scan_tables(self) -> list[HiveObject]:
        """Every database and table (with its partition keys), without partitions."""
        for _ in range(3):
            objects = _listing(lambda: list(self._scan_tables()))
            if len({o.key for o in objects}) == len(objects):
                return objects
            # seen once while the metastore rewrote locations: a table listed twice, at its
            # old and its new place. Such a listing cannot be reconciled: read again.
        raise MetastoreUnavailable("the metastore listed an object twice in three scans")

    def scan_partitions(self, tables: list[HiveObject]) -> list[HiveObject]:
        """The partitions of `tables` (as `scan_tables` gave them), table by table."""
        return _listing(lambda: self._each(self._partitions, [t for t in tables if t.keys]))

    def _scan_tables(self) -> Iterator[HiveObject]:
        for name in self._call("get_all_databases"):
            try:
                db = self._call("get_database", name)
                tables = self._call("get_all_tables", name)
                yield HiveObject(DATABASE, name, location=db.locationUri or "")
                for chunk in _chunks(tables, _BATCH):
                    for table in self._call("get_table_objects_by_name", name, chunk):
                        yield HiveObject(
                            TABLE,
                            name,
                            table.tableName,
                            location=(table.sd.location if table.sd else None) or "",
                            keys=tuple(k.name for k in table.partitionKeys or ()),
                        )
            except hive.NoSuchObjectException:
                continue  # dropped while we read

    def _partitions(self, table: HiveObject) -> list[HiveObject]:
        try:
            partitions = self._call("get_partitions", table.database, table.table, -1)
        except hive.NoSuchObjectException:
            return []
        return [
            HiveObject(
                PARTITION,
                table.database,
                table.table,
                "/".join(f"{k}={v}" for k, v in zip(table.keys, p.values, strict=True)),
                (p.sd.location if p.sd else None) or "",
                tuple(p.values),
            )
            for p in partitions
        ]

    def tables(self, database: str) -> list[str]:
        try:
            return list(self._call("get_all_tables", database))
        except hive.NoSuchObjectException:
            return []

    # -- changing -------------------------------------------------------------------------

    def drop(self, objects: Iterable[HiveObject]) -> list[tuple[HiveObject, str]]:
        """Drop `objects` (children first) without deleting data; what HMS refused, with its
        reason. A database that still holds tables is kept (it is returned, with why)."""
        ordered = children_first(objects)
        whole = {(o.database, o.table) for o in ordered if o.kind == TABLE}
        per_table: dict[tuple[str, str], list[HiveObject]] = {}
        for o in ordered:  # a dropped table takes its partitions with it
            if o.kind == TABLE or (o.kind == PARTITION and (o.database, o.table) not in whole):
                per_table.setdefault((o.database, o.table), []).append(o)
        refused = self._each(self._drop_in_table, list(per_table.values()))
        for o in ordered:
            if o.kind == DATABASE:
                refused += self._refusals([o], self._drop_database, o.database)
        return refused

    def _drop_in_table(self, objects: list[HiveObject]) -> list[tuple[HiveObject, str]]:
        """A table, or partitions of one table."""
        first = objects[0]
        if first.kind == TABLE:
            return self._refusals(
                [first], self._call, "drop_table", first.database, first.table, False
            )
        refused = []
        for chunk in _chunks(objects, _BATCH):
            refused += self._refusals(
                chunk, self._drop_partitions, first.database, first.table, chunk
            )
        return refused

    def _drop_partitions(self, database: str, table: str, parts: list[HiveObject]) -> None:
        request = hive.DropPartitionsRequest(
            dbName=database,
            tblName=table,
            parts=hive.RequestPartsSpec(names=[p.partition for p in parts]),
            deleteData=False,
            ifExists=True,
            needResult=False,
        )
        with contextlib.suppress(hive.NoSuchObjectException):  # the table went, and they
            self._call("drop_partitions_req", request)

    def _drop_database(self, database: str) -> None:
        try:  # HMS 2.3 answers a missing database with a NullPointerException, so look first
            self._call("get_database", database)
        except hive.NoSuchObjectException:
            return
        if self.tables(database):
            raise Refused("kept: it still holds tables located elsewhere")
        self._call("drop_database", database, False, False)

    def relocate(self, moves: Iterable[tuple[HiveObject, str]]) -> list[tuple[HiveObject, str]]:
        """Give each object its new location; data is never moved. What HMS refused."""
        refused: list[tuple[HiveObject, str]] = []
        per_table: dict[tuple[str, str], list[tuple[HiveObject, str]]] = {}
        for o, location in moves:
            if o.kind == DATABASE:
                refused += self._refusals([o], self._relocate_database, o, location)
            else:
                per_table.setdefault((o.database, o.table), []).append((o, location))
        return refused + self._each(self._relocate_in_table, list(per_table.values()))

    def _relocate_in_table(
        self, moves: list[tuple[HiveObject, str]]
    ) -> list[tuple[HiveObject, str]]:
        """A table and partitions of it."""
        refused: list[tuple[HiveObject, str]] = []
        wanted: dict[str, str] = {}
        for o, location in moves:
            if o.kind == TABLE:
                refused += self._refusals([o], self._relocate_table, o, location)
            else:
                wanted[o.partition] = location
        if not wanted:
            return refused
        database, table = moves[0][0].database, moves[0][0].table
        for chunk in _chunks(sorted(wanted), _BATCH):
            objects = [HiveObject(PARTITION, database, table, n) for n in chunk]
            refused += self._refusals(
                objects, self._relocate_partitions, database, table, chunk, wanted
            )
        return refused

    def _relocate_partitions(
        self, database: str, table: str, names: list[str], wanted: dict[str, str]
    ) -> None:
        try:
            found = self._call("get_partitions_by_names", database, table, names)
        except hive.NoSuchObjectException:
            return
        keys = None
        changed = []
        for p in found:
            if keys is None:
                keys = [k.name for k in self._call("get_table", database, table).partitionKeys]
            name = "/".join(f"{k}={v}" for k, v in zip(keys, p.values, strict=True))
            if p.sd is not None and name in wanted and p.sd.location != wanted[name]:
                p.sd.location = wanted[name]
                changed.append(p)
        if changed:
            self._call(
                "alter_partitions_with_environment_context", database, table, changed, _KEEP_STATS
            )

    def _relocate_table(self, o: HiveObject, location: str) -> None:
        try:
            table = self._call("get_table", o.database, o.table)
        except hive.NoSuchObjectException:
            return
        if table.sd is None or table.sd.location == location:
            return
        table.sd.location = location
        self._call("alter_table_with_environment_context", o.database, o.table, table, _KEEP_STATS)

    def _relocate_database(self, o: HiveObject, location: str) -> None:
        try:
            db = self._call("get_database", o.database)
        except hive.NoSuchObjectException:
            return
        if db.locationUri == location:
            return
        db.locationUri = location
        self._call("alter_database", o.database, db)
        if self._call("get_database", o.database).locationUri == location:
            return
        # HMS 2.3 ignores a new location in alter_database; an empty database is created
        # again in its new place, with everything else it had.
        if self.tables(o.database) or self._call("get_functions", o.database, "*"):
            raise Refused(
                "this metastore does not change a database's location (HMS 2.3 ignores it in "
                "alter_database) and the database holds tables or functions; its tables were "
                "moved. Update it with HMS's metatool: hive --service metatool -updateLocation"
            )
        self._call("drop_database", o.database, False, False)
        self._call("create_database", db)

    def _refusals(
        self, objects: list[HiveObject], call: Any, *args: Any
    ) -> list[tuple[HiveObject, str]]:
        """Run `call`; a refusal of HMS becomes (object, reason) for each of `objects`."""
        try:
            call(*args)
        except Refused as exc:
            return [(o, str(exc)) for o in objects]
        except hive.NoSuchObjectException:
            return []
        except TException as exc:
            return [(o, f"the metastore refused it: {reason_of(exc)}") for o in objects]
        return []


def _listing(read: Callable[[], list[HiveObject]]) -> list[HiveObject]:
    """`read()`; a metastore failing to list its objects is unavailable (without the whole
    list nothing can be reconciled). Not a context manager: Thrift's exceptions are
    immutable, and contextlib sets `__traceback__` on what passes through it."""
    try:
        return read()
    except TException as exc:
        raise MetastoreUnavailable(
            f"the metastore failed to list its objects: {reason_of(exc)}"
        ) from None


def reason_of(exc: TException) -> str:
    """What a Thrift failure says. "unknown result" is Thrift's word for an exception the
    metastore threw that its interface does not declare (a lock timeout or a deadlock in
    its own database, among others): said so, since its log has the rest."""
    reason = getattr(exc, "message", None) or type(exc).__name__
    if isinstance(exc, TApplicationException) and exc.type == TApplicationException.MISSING_RESULT:
        reason += (
            " (an error the metastore's interface does not declare, such as a lock timeout "
            "or a deadlock in its database: its log names it)"
        )
    return str(reason)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
