"""Hive objects for `epipe bench hive`, made the way a user's own tool makes them: the raw
Thrift client, not epipe's adapter (epipe/hms/metastore.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pymetastore.hive_metastore import ThriftHiveMetastore
from pymetastore.hive_metastore import ttypes as hive
from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

from epipe.hms.locations import rebase

_BATCH = 250  # partitions per add_partitions / alter_partitions request
_COLUMNS = [hive.FieldSchema("line", "string", "")]


@dataclass(frozen=True)
class Layout:
    """One database holding `tables` external tables of `partitions` partitions each, at
    `<database location>/tNN/p=NNN`."""

    tables: int
    partitions: int  # per table

    @property
    def objects(self) -> int:
        return 1 + self.tables + self.tables * self.partitions

    def table_names(self) -> list[str]:
        return [f"t{i:02d}" for i in range(self.tables)]

    def values(self) -> list[str]:
        return [f"{i:03d}" for i in range(self.partitions)]

    def paths(self, root: str) -> Iterator[str]:
        """The database's directory and, under it, those of its tables and partitions."""
        yield root
        for table in self.table_names():
            yield f"{root}/{table}"
            for value in self.values():
                yield f"{root}/{table}/p={value}"


class thrift_client:  # used as `with thrift_client(url) as client`
    """A connected raw client. Not a @contextmanager: Thrift's exceptions are immutable,
    and contextlib sets `__traceback__` on what passes through it."""

    def __init__(self, url: str, timeout: float = 600.0) -> None:
        parts = urlsplit(url)
        sock = TSocket.TSocket(parts.hostname, parts.port)
        sock.setTimeout(timeout * 1000)
        self._transport = TTransport.TBufferedTransport(sock)

    def __enter__(self) -> Any:
        self._transport.open()
        return ThriftHiveMetastore.Client(TBinaryProtocol.TBinaryProtocol(self._transport))

    def __exit__(self, *exc: object) -> None:
        self._transport.close()


def create(client: Any, name: str, location: str, layout: Layout) -> None:
    """The database `name` at `location`, with its tables and partitions."""
    client.create_database(hive.Database(name=name, locationUri=location, parameters={}))
    for table in layout.table_names():
        client.create_table(
            hive.Table(
                tableName=table,
                dbName=name,
                sd=storage(f"{location}/{table}"),
                partitionKeys=[hive.FieldSchema("p", "string", "")],
                tableType="EXTERNAL_TABLE",
                parameters={"EXTERNAL": "TRUE"},
            )
        )
        values = layout.values()
        for start in range(0, len(values), _BATCH):
            client.add_partitions(
                [
                    hive.Partition(
                        values=[value],
                        dbName=name,
                        tableName=table,
                        sd=storage(f"{location}/{table}/p={value}"),
                        parameters={},
                    )
                    for value in values[start : start + _BATCH]
                ]
            )


def relocate(client: Any, name: str, old: str, new: str) -> None:
    """Rewrite the location prefix `old` to `new` in the database `name`, its tables and
    partitions (a copy's set-up). HMS is told to keep the partitions' statistics: it would
    list each new location otherwise."""
    keep_stats = hive.EnvironmentContext({"DO_NOT_UPDATE_STATS": "true"})
    for table in client.get_all_tables(name):
        parts = client.get_partitions(name, table, -1)
        for p in parts:
            p.sd.location = rebase(p.sd.location, old, new)
        for start in range(0, len(parts), _BATCH):
            client.alter_partitions_with_environment_context(
                name, table, parts[start : start + _BATCH], keep_stats
            )
        t = client.get_table(name, table)
        t.sd.location = rebase(t.sd.location, old, new)
        client.alter_table(name, table, t)
    db = client.get_database(name)
    db.locationUri = rebase(db.locationUri, old, new)
    client.alter_database(name, db)


def locations(client: Any, name: str) -> dict[str, str]:
    """key -> location of the database `name`, its tables and partitions ({}: no such
    database)."""
    try:
        out = {name: client.get_database(name).locationUri}
    except hive.NoSuchObjectException:
        return {}
    for table in client.get_all_tables(name):
        out[f"{name}.{table}"] = client.get_table(name, table).sd.location
        for p in client.get_partitions(name, table, -1):
            out[f"{name}.{table}/p={p.values[0]}"] = p.sd.location
    return out


def storage(location: str) -> Any:
    return hive.StorageDescriptor(
        cols=_COLUMNS,
        location=location,
        inputFormat="org.apache.hadoop.mapred.TextInputFormat",
        outputFormat="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        serdeInfo=hive.SerDeInfo(
            serializationLib="org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe", parameters={}
        ),
        parameters={},
    )
