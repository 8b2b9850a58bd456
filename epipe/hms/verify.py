"""Hive drift: objects of the file system the metastore should not hold as they are.

- orphan: its location names a path that does not exist (its directory went and the object
  stayed, or it was made after its directory went);
- stale: it is bound to an inode that is now elsewhere (its location was not rewritten);
- kept: a database whose directory went but which still holds tables located elsewhere
  (dropping it would drop them): reported, not drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from epipe.fs.reader import NamespaceReader
from epipe.hms.catalog import KEPT, Binding, Seen, seen
from epipe.hms.locations import LocationMap
from epipe.hms.metastore import HiveObject, Metastore
from epipe.sink.hive import load_bindings, reconcile, resolve


@dataclass(frozen=True)
class Listed:
    """One object as `epipe hive ls` shows it."""

    object: HiveObject
    path: str | None  # its epipe path (None: located outside the file system)
    exists: bool
    state: str  # ok | orphan | stale | kept | outside
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        o = self.object
        return {
            "kind": o.kind,
            "key": o.key,
            "database": o.database,
            "table": o.table or None,
            "partition": o.partition or None,
            "location": o.location,
            "path": self.path,
            "exists": self.exists,
            "state": self.state,
            "detail": self.detail or None,
        }


@dataclass
class HiveDrift:
    listed: list[Listed] = field(default_factory=list)

    def of(self, state: str) -> list[Listed]:
        return [item for item in self.listed if item.state == state]

    def __bool__(self) -> bool:
        return any(item.state in ("orphan", "stale") for item in self.listed)

    def summary(self) -> dict[str, int]:
        counts = {"checked": len(self.listed)}
        for state in ("ok", "orphan", "stale", "kept", "outside"):
            counts[state] = len(self.of(state))
        return counts


def inspect(conn: psycopg.Connection, metastore: Metastore, locations: LocationMap) -> HiveDrift:
    """Every object of the metastore, with its state (one scan, one snapshot)."""
    objects = metastore.scan()
    scan = seen(objects, locations)
    reader = NamespaceReader(conn)

    def read() -> tuple[dict[str, Binding], dict[str, int], dict[str, str]]:
        bindings = load_bindings(conn)
        existing = resolve(conn, {path for _, path in scan.objects.values()})
        bound = {key: b.inode_id for key, b in bindings.items() if key in scan.objects}
        current = reader.paths(set(bound.values()))
        return bindings, existing, {k: current.get(i, "") for k, i in bound.items()}

    bindings, existing, bound_paths = reader.read_after(set(), read)
    return HiveDrift([_state(o, scan, existing, bound_paths, bindings) for o in objects])


def _state(
    o: HiveObject,
    scan: Seen,
    existing: dict[str, int],
    bound_paths: dict[str, str],
    bindings: dict[str, Binding],
) -> Listed:
    entry = scan.objects.get(o.key)
    if entry is None:
        return Listed(o, None, False, "outside")
    path = entry[1]
    exists = path in existing
    binding = bindings.get(o.key)
    target = bound_paths.get(o.key)
    if binding is not None and binding.path == path and target and target != path:
        return Listed(o, path, exists, "stale", f"its directory is now {target}")
    if exists:
        return Listed(o, path, True, "ok")
    if binding is not None and binding.problem == KEPT:
        return Listed(o, path, False, "kept", KEPT)
    return Listed(o, path, False, "orphan", "its location does not exist")


def repair(conn: psycopg.Connection, metastore: Metastore, locations: LocationMap) -> list[str]:
    """Fix what `inspect` finds: reconcile again (asking again what HMS refused before),
    then drop the orphans. One line per change or refusal."""
    reader = NamespaceReader(conn)
    lines = [
        reason for _, reason in reconcile(conn, reader, metastore, locations, retry_refused=True)
    ]
    orphans = inspect(conn, metastore, locations).of("orphan")
    refused = dict(metastore.drop([item.object for item in orphans]))
    for item in orphans:
        reason = refused.get(item.object)
        lines.append(
            f"dropped orphan {item.object.describe()} ({item.path})"
            if reason is None
            else f"kept orphan {item.object.describe()}: {reason}"
        )
    return lines
