"""Metastore: the adapter over a Hive Metastore's Thrift API (HMS 2.3 and later).

It lists what the metastore holds (`scan`), drops objects without touching their data
(`deleteData=false`) and rewrites locations. A metastore that cannot be reached raises
`MetastoreUnavailable` (waiting may cure it); a refusal of one object raises `Refused`
naming the object and HMS's reason. Dropping what is already gone is not an error, so
every call can be replayed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pymetastore.hive_metastore import ThriftHiveMetastore
from pymetastore.hive_metastore import ttypes as hive
from thrift.protocol import TBinaryProtocol
from thrift.Thrift import TException
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


class Metastore:
    def __init__(self, uri: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(uri)
        if parts.scheme != "thrift" or not parts.hostname or not parts.port:
            raise ConfigError(f"EPIPE_HMS_URI {uri!r} is not thrift://HOST:PORT")
        self.uri = uri
        self._address = (parts.hostname, parts.port)
        self._timeout_ms = timeout * 1000
        self._transport: TTransport.TTransportBase | None = None
        self._client: Any = None

    # -- connection ---------------------------------------------------------------------

    def _call(self, method: str, *args: Any) -> Any:
        """One Thrift call; a broken connection is dropped (the next call reconnects)."""
        try:
            if self._client is None:
                sock = TSocket.TSocket(*self._address)
                sock.setTimeout(self._timeout_ms)
                transport = TTransport.TBufferedTransport(sock)
                transport.open()
                self._transport = transport
                # decoded in C where thrift's extension is built (a scan: ~10 % faster)
                protocol = TBinaryProtocol.TBinaryProtocolAccelerated(transport)
                self._client = ThriftHiveMetastore.Client(protocol)
            return getattr(self._client, method)(*args)
        except (TimeoutError, TTransport.TTransportException, OSError, EOFError) as exc:
            self.close()
            raise MetastoreUnavailable(f"Hive metastore at {self.uri} unreachable: {exc}") from None

    def close(self) -> None:
        if self._transport is not None:
            with contextlib.suppress(OSError):
                self._transport.close()
        self._transport = None
        self._client = None

    def ping(self) -> None:
        self._call("get_all_databases")

    # -- reading ------------------------------------------------------------------------

    def scan(self) -> list[HiveObject]:
        """Every database, table and partition with its location. A metastore failing to
        list them is unavailable: without the whole list nothing can be reconciled."""
        try:
            for _ in range(3):
                objects = list(self._scan())
                if len({o.key for o in objects}) == len(objects):
                    return objects
                # seen once while the metastore rewrote locations: a table listed twice, at
                # its old and its new place. Such a listing cannot be reconciled: read again.
            raise MetastoreUnavailable("the metastore listed an object twice in three scans")
        except TException as exc:
            reason = getattr(exc, "message", None) or type(exc).__name__
            raise MetastoreUnavailable(
                f"the metastore failed to list its objects: {reason}"
            ) from None

    def _scan(self) -> Iterator[HiveObject]:
        for name in self._call("get_all_databases"):
            try:
                db = self._call("get_database", name)
                tables = self._call("get_all_tables", name)
                yield HiveObject(DATABASE, name, location=db.locationUri or "")
                for chunk in _chunks(tables, _BATCH):
                    for table in self._call("get_table_objects_by_name", name, chunk):
                        yield from self._table(name, table)
            except hive.NoSuchObjectException:
                continue  # dropped while we read

    def _table(self, database: str, table: Any) -> Iterator[HiveObject]:
        location = (table.sd.location if table.sd else None) or ""
        yield HiveObject(TABLE, database, table.tableName, location=location)
        if not table.partitionKeys:
            return
        keys = [k.name for k in table.partitionKeys]
        try:
            partitions = self._call("get_partitions", database, table.tableName, -1)
        except hive.NoSuchObjectException:
            return
        for p in partitions:
            name = "/".join(f"{k}={v}" for k, v in zip(keys, p.values, strict=True))
            yield HiveObject(
                PARTITION,
                database,
                table.tableName,
                name,
                (p.sd.location if p.sd else None) or "",
                tuple(p.values),
            )

    def tables(self, database: str) -> list[str]:
        try:
            return list(self._call("get_all_tables", database))
        except hive.NoSuchObjectException:
            return []

    # -- changing -------------------------------------------------------------------------

    def drop(self, objects: Iterable[HiveObject]) -> list[tuple[HiveObject, str]]:
        """Drop `objects` (children first) without deleting data; what HMS refused, with its
        reason. A database that still holds tables is kept (it is returned, with why)."""
        refused: list[tuple[HiveObject, str]] = []
        ordered = children_first(objects)
        tables = {(o.database, o.table) for o in ordered if o.kind == TABLE}
        partitions: dict[tuple[str, str], list[HiveObject]] = {}
        for o in ordered:  # a dropped table takes its partitions with it
            if o.kind == PARTITION and (o.database, o.table) not in tables:
                partitions.setdefault((o.database, o.table), []).append(o)
        for (database, table), parts in partitions.items():
            for chunk in _chunks(parts, _BATCH):
                refused += self._refusals(chunk, self._drop_partitions, database, table, chunk)
        for o in ordered:
            if o.kind == TABLE:
                refused += self._refusals([o], self._call, "drop_table", o.database, o.table, False)
            elif o.kind == DATABASE:
                refused += self._refusals([o], self._drop_database, o.database)
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
        partitions: dict[tuple[str, str], dict[str, str]] = {}
        for o, location in moves:
            if o.kind == PARTITION:
                partitions.setdefault((o.database, o.table), {})[o.partition] = location
            elif o.kind == TABLE:
                refused += self._refusals([o], self._relocate_table, o, location)
            else:
                refused += self._refusals([o], self._relocate_database, o, location)
        for (database, table), wanted in partitions.items():
            names = sorted(wanted)
            for chunk in _chunks(names, _BATCH):
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
            reason = getattr(exc, "message", None) or type(exc).__name__
            return [(o, f"the metastore refused it: {reason}") for o in objects]
        return []


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
