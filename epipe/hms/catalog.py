"""Reconciliation of the metastore with the namespace: pure, no I/O.

The Hive consumer binds each object whose location is in the file system to the inode that
location named when it first saw the object (`Binding`). Then, whatever events said, the
object must follow its inode: gone -> drop the object; elsewhere -> rewrite its location.
`plan` computes that from a scan of the metastore, the bindings, and the namespace's
answers; the consumer and `epipe hive repair` carry the plan out. Level-triggered, so a
replay, a restart or a missed event all end in the same state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from epipe.hms.locations import LocationMap
from epipe.hms.metastore import DATABASE, TABLE, HiveObject

KEPT = "kept: the database still holds tables located elsewhere"


@dataclass(frozen=True)
class Binding:
    key: str
    kind: str
    path: str  # the epipe path the object's location names
    inode_id: int  # the inode `path` named when bound
    problem: str | None = None  # why the object differs from what the namespace implies
    refused: str | None = None  # a location HMS refused for it: not asked again


@dataclass(frozen=True)
class Seen:
    """What a scan saw, in file-system terms."""

    objects: dict[str, tuple[HiveObject, str]]  # key -> (object, its epipe path)
    tables_of: dict[str, set[str]]  # database -> the keys of all its tables, anywhere


def seen(objects: list[HiveObject], locations: LocationMap) -> Seen:
    in_fs: dict[str, tuple[HiveObject, str]] = {}
    tables_of: dict[str, set[str]] = {}
    for o in objects:
        if o.kind == TABLE:
            tables_of.setdefault(o.database, set()).add(o.key)
        path = locations.path(o.location)
        if path is not None:
            in_fs[o.key] = (o, path)
    return Seen(in_fs, tables_of)


def to_bind(scan: Seen, bindings: Mapping[str, Binding]) -> set[str]:
    """Paths to resolve: objects not bound yet, or whose location someone else changed."""
    return {
        path
        for key, (_, path) in scan.objects.items()
        if key not in bindings or bindings[key].path != path
    }


@dataclass
class Plan:
    drop: list[HiveObject] = field(default_factory=list)
    relocate: list[tuple[HiveObject, str]] = field(default_factory=list)  # (object, location)
    moved_from: dict[str, str] = field(default_factory=dict)  # key -> path before the move
    bindings: dict[str, Binding] = field(default_factory=dict)  # the bindings afterwards
    orphans: list[tuple[HiveObject, str]] = field(default_factory=list)  # unbound, path gone
    kept: list[HiveObject] = field(default_factory=list)  # databases kept for their tables


def plan(
    scan: Seen,
    bindings: Mapping[str, Binding],
    resolved: Mapping[str, int],
    current: Mapping[int, str],
    locations: LocationMap,
) -> Plan:
    """What to change so that every bound object follows its inode.

    `resolved`: path -> inode id for the paths of `to_bind` that exist now; `current`:
    inode id -> its path now, for every inode of the bindings and of `resolved` that exists.
    """
    out = Plan()
    dropped: set[str] = set()
    databases: list[tuple[HiveObject, Binding]] = []
    for key, (o, path) in sorted(scan.objects.items()):
        binding = bindings.get(key)
        if binding is None or binding.path != path:
            inode = resolved.get(path)
            if inode is None:
                out.orphans.append((o, path))
                continue
            binding = Binding(key, o.kind, path, inode)
        target = current.get(binding.inode_id)
        if target is None:
            if binding.problem and binding.problem.startswith("drop refused"):
                out.bindings[key] = binding  # reported, not asked again (repair does)
            elif o.kind == DATABASE:
                databases.append((o, binding))
            else:
                out.drop.append(o)
                dropped.add(key)
            continue
        if target != path:
            location = locations.location(target)
            if binding.refused == location:
                out.bindings[key] = binding
                continue
            out.relocate.append((o, location))
            out.moved_from[key] = path
            binding = Binding(key, o.kind, target, binding.inode_id)
        elif binding.problem == KEPT:
            binding = Binding(key, o.kind, path, binding.inode_id)
        out.bindings[key] = binding
    for o, binding in databases:
        if scan.tables_of.get(o.database, set()) - dropped:
            out.kept.append(o)
            out.bindings[o.key] = Binding(
                o.key, o.kind, binding.path, binding.inode_id, KEPT, binding.refused
            )
        else:
            out.drop.append(o)
    return out
