"""Hive metastore objects made the way a user's own tool makes them: the raw Thrift client,
not epipe's adapter."""

from __future__ import annotations

import uuid
from typing import Any

from pymetastore.hive_metastore import ttypes as hive

from epipe.bench.hms_objects import storage


def unique_prefix() -> str:
    """A location prefix of one test's own (the session's metastore is shared)."""
    return f"file:/epipe-test-{uuid.uuid4().hex[:12]}"


def unique_name(stem: str) -> str:
    return f"{stem}_{uuid.uuid4().hex[:10]}"


def create_database(client: Any, name: str, location: str) -> None:
    client.create_database(hive.Database(name=name, locationUri=location, parameters={}))


def create_table(
    client: Any, database: str, name: str, location: str, *, partitioned: bool = False
) -> None:
    client.create_table(
        hive.Table(
            tableName=name,
            dbName=database,
            sd=storage(location),
            partitionKeys=[hive.FieldSchema("p", "string", "")] if partitioned else [],
            tableType="EXTERNAL_TABLE",
            parameters={"EXTERNAL": "TRUE"},
        )
    )


def add_partitions(client: Any, database: str, table: str, locations: dict[str, str]) -> None:
    """Partitions of key `p`: value -> location."""
    client.add_partitions(
        [
            hive.Partition(
                values=[value],
                dbName=database,
                tableName=table,
                sd=storage(location),
                parameters={},
            )
            for value, location in locations.items()
        ]
    )


def snapshot(client: Any, databases: list[str]) -> dict[str, str]:
    """key -> location of every database, table and partition of `databases` that exists."""
    out: dict[str, str] = {}
    for name in databases:
        try:
            out[name] = client.get_database(name).locationUri
        except hive.NoSuchObjectException:
            continue
        for table in client.get_all_tables(name):
            t = client.get_table(name, table)
            out[f"{name}.{table}"] = t.sd.location
            for p in client.get_partitions(name, table, -1):
                out[f"{name}.{table}/p={p.values[0]}"] = p.sd.location
    return out
