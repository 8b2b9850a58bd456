"""`epipe verify` of the lineage graph: the graph kept from the stream against the one a
rebuild from the log (and the pruned aggregates) implies, with every live node where the
namespace has it now. Read only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from epipe.prov import rebuild, store

SAMPLE = 20


@dataclass
class GraphDrift:
    """What differs, by kind: app ids, edges `app role inode`, and node inode ids."""

    checked: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)  # in the rebuild, not kept
    extra: dict[str, list[str]] = field(default_factory=dict)  # kept, not in the rebuild
    stale: dict[str, list[str]] = field(default_factory=dict)  # kept, but different

    def __bool__(self) -> bool:
        return any(self.missing.values()) or any(self.extra.values()) or any(self.stale.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "drift": bool(self),
            **{
                name: {kind: len(keys) for kind, keys in found.items()}
                for name, found in (
                    ("missing", self.missing),
                    ("extra", self.extra),
                    ("stale", self.stale),
                )
            },
            "sample": {
                name: {kind: sorted(keys)[:SAMPLE] for kind, keys in found.items() if keys}
                for name, found in (
                    ("missing", self.missing),
                    ("extra", self.extra),
                    ("stale", self.stale),
                )
            },
        }


def held(conn: psycopg.Connection) -> bool:
    """Whether a provenance consumer has made a graph to compare."""
    position, _ = store.state(conn)
    return position is not None


def compare(conn: psycopg.Connection) -> GraphDrift:
    delta, _ = rebuild.from_log(conn)
    found, gone = store.locate(conn, delta, set())
    expected: dict[str, dict[str, tuple[Any, ...]]] = {
        "apps": {
            app: (s.first, s.last, s.count, tuple(sorted(delta.users.get(app, ()))))
            for app, s in delta.apps.items()
        },
        "edges": {
            f"{app} {role} {inode}": (s.first, s.last, s.count, tuple(sorted(s.kinds)))
            for (app, role, inode), s in delta.edges.items()
        },
        "nodes": {
            # a gone node is only known deleted: where it was, the graph remembers best
            str(inode): (True,)
            if inode in gone
            else (False, found[inode].path, found[inode].kind, found[inode].artifact)
            for inode in delta.nodes
        },
    }
    kept: dict[str, dict[str, tuple[Any, ...]]] = {
        "apps": {
            app: (first, last, ops, tuple(users))
            for app, first, last, ops, users in conn.execute(
                "SELECT app_id, first_at, last_at, ops, users FROM epipe_prov_apps"
            )
        },
        "edges": {
            f"{app} {role} {inode}": (first, last, count, tuple(ops))
            for app, role, inode, first, last, count, ops in conn.execute(
                "SELECT app_id, role, inode_id, first_at, last_at, count, ops FROM epipe_prov_edges"
            )
        },
        "nodes": {
            str(inode): (True,) if deleted else (False, path, kind, artifact)
            for inode, path, kind, artifact, deleted in conn.execute(
                "SELECT inode_id, path, kind, artifact, deleted_at IS NOT NULL "
                "FROM epipe_prov_nodes"
            )
        },
    }
    drift = GraphDrift()
    for kind, want in expected.items():
        have = kept[kind]
        drift.checked[kind] = len(want)
        drift.missing[kind] = [k for k in want if k not in have]
        drift.extra[kind] = [k for k in have if k not in want]
        drift.stale[kind] = [k for k, v in want.items() if k in have and have[k] != v]
    return drift
