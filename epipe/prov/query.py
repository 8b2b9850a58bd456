"""Provenance queries over the lineage graph (never the raw log, except a file's history).

Every query takes the caller's `Scope`: a file node outside it is absent — not shown, not
counted, not walked through, filtered in SQL before any limit — so the answer is the one
the caller would get if that file did not exist. The graph a lineage query returns:

    {"root": id, "nodes": [{"id", "type": "file"|"app", "path"|"app_id", "artifact",
     "deleted"}], "edges": [{"from", "to", "op"}], "truncated": bool}

Edges follow the data: a file an app read -> the app ("read"), the app -> a file it wrote
("wrote"). `depth` counts app generations: upstream depth 1 is the apps that wrote the root
and the files they read; depth 2 adds the apps that wrote those files, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import psycopg

from epipe.errors import FsError
from epipe.fs.paths import normalise, split_path

Direction = Literal["upstream", "downstream"]
UPSTREAM: Final = "upstream"
DOWNSTREAM: Final = "downstream"
MAX_DEPTH = 10
MAX_NODES = 1000


class Scope(NamedTuple):
    """The projects whose files a caller sees (None: every file, the superuser's)."""

    projects: frozenset[str] | None

    def allows(self, path: str) -> bool:
        if self.projects is None:
            return True
        parts = split_path(path)
        return len(parts) >= 2 and parts[0] == "Projects" and parts[1] in self.projects

    def params(self) -> dict[str, Any]:
        return {"everything": self.projects is None, "projects": sorted(self.projects or ())}


# a node's path within the scope (with params()); a path known by name only is in none
_IN_SCOPE = """(%(everything)s OR (split_part(n.path, '/', 2) = 'Projects'
                AND split_part(n.path, '/', 1) = ''
                AND split_part(n.path, '/', 3) = ANY(%(projects)s)))"""


@dataclass
class Lineage:
    root: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)
    truncated: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "nodes": list(self.nodes.values()),
            "edges": self.edges,
            "truncated": self.truncated,
        }


def file_id(inode: int) -> str:
    return f"file:{inode}"


def app_id(app: str) -> str:
    return f"app:{app}"


def node_of(conn: psycopg.Connection, path: str, scope: Scope) -> int:
    """The inode a lineage query starts from: the file at `path` now, else the last one
    deleted there. ENOENT (and nothing looked up) when `path` is outside the scope."""
    path = normalise(path)
    if not scope.allows(path):
        raise FsError("ENOENT", path)
    row = conn.execute(
        """SELECT inode_id FROM epipe_prov_nodes WHERE path = %s
           ORDER BY deleted_at IS NOT NULL, deleted_at DESC LIMIT 1""",
        [path],
    ).fetchone()
    if row is None:
        raise FsError("ENOENT", path)
    return int(row[0])


def lineage(
    conn: psycopg.Connection,
    path: str,
    scope: Scope,
    *,
    direction: Direction = UPSTREAM,
    depth: int = 3,
    max_nodes: int = MAX_NODES,
) -> Lineage:
    if direction not in (UPSTREAM, DOWNSTREAM):
        raise ValueError(f"direction must be {UPSTREAM} or {DOWNSTREAM}, not {direction!r}")
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be 1-{MAX_DEPTH}, not {depth}")
    root = node_of(conn, path, scope)
    out = Lineage(file_id(root))
    out.nodes.update(_files(conn, {root}))
    # upstream: file <-output- app <-input- file; downstream: file -input-> app -output-> file
    toward_app, from_app = ("output", "input") if direction == UPSTREAM else ("input", "output")
    frontier = {root}
    seen_apps: set[str] = set()
    for _ in range(depth):
        if not frontier:
            break
        apps = conn.execute(
            "SELECT app_id, inode_id FROM epipe_prov_edges WHERE role = %s AND inode_id = ANY(%s)",
            [toward_app, sorted(frontier)],
        ).fetchall()
        new_apps = {a for a, _ in apps} - seen_apps
        for a, inode in apps:
            out.edges.append(_edge(a, inode, toward_app))
        for a in sorted(new_apps):
            out.nodes[app_id(a)] = {"id": app_id(a), "type": "app", "app_id": a}
        seen_apps |= new_apps
        if not new_apps:
            break
        rows = conn.execute(
            f"""SELECT e.app_id, e.inode_id, n.path, n.artifact, n.deleted_at IS NOT NULL
                FROM epipe_prov_edges e JOIN epipe_prov_nodes n USING (inode_id)
                WHERE e.role = %(role)s AND e.app_id = ANY(%(apps)s) AND {_IN_SCOPE}
                ORDER BY e.app_id, e.inode_id LIMIT %(limit)s""",
            {"role": from_app, "apps": sorted(new_apps), "limit": max_nodes + 1, **scope.params()},
        ).fetchall()
        if len(rows) > max_nodes:
            out.truncated = True
            rows = rows[:max_nodes]
        known = {k for k in out.nodes if k.startswith("file:")}
        frontier = set()
        for a, inode, node_path, artifact, deleted in rows:
            out.edges.append(_edge(a, inode, from_app))
            key = file_id(inode)
            if key not in known:
                out.nodes[key] = _file(inode, node_path, artifact, deleted)
                frontier.add(inode)
        if len(out.nodes) > max_nodes:
            out.truncated = True
            break
    out.edges = _unique(out.edges)
    return out


def _edge(app: str, inode: int, role: str) -> dict[str, str]:
    if role == "input":
        return {"from": file_id(inode), "to": app_id(app), "op": "read"}
    return {"from": app_id(app), "to": file_id(inode), "op": "wrote"}


def _unique(edges: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for e in edges:
        key = (e["from"], e["to"], e["op"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _files(conn: psycopg.Connection, inodes: set[int]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT inode_id, path, artifact, deleted_at IS NOT NULL FROM epipe_prov_nodes "
        "WHERE inode_id = ANY(%s)",
        [sorted(inodes)],
    ).fetchall()
    return {file_id(i): _file(i, path, artifact, deleted) for i, path, artifact, deleted in rows}


def _file(inode: int, path: str, artifact: str | None, deleted: bool) -> dict[str, Any]:
    return {
        "id": file_id(inode),
        "type": "file",
        "path": path,
        "artifact": artifact,
        "deleted": deleted,
    }


def history(
    conn: psycopg.Connection, path: str, scope: Scope, *, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    """One page of the file's operations in time order, from the `offset`-th: who (user,
    app) did what, when. The file at `path` now, else the last one deleted there; a file no
    app touched is looked up in the namespace. A page is counted within the file's own
    history (not by the log's operation ids, which would tell how busy everyone else was).
    Time, not id: a read is logged by the provenance consumer, after it happened."""
    path = normalise(path)
    if not scope.allows(path):
        raise FsError("ENOENT", path)
    try:
        inode = node_of(conn, path, scope)
    except FsError:
        row = conn.execute("SELECT (fs_lookup(%s::text[])).id", [split_path(path)]).fetchone()
        assert row is not None
        inode = int(row[0])
    rows = conn.execute(
        """SELECT o.at, u.name, o.app_id, o.op, o.name, o.detail
           FROM prov_ops o LEFT JOIN users u ON u.id = o.user_id
           WHERE o.inode_id = %s ORDER BY o.at, o.id OFFSET %s LIMIT %s""",
        [inode, offset, limit + 1],
    ).fetchall()
    ops = [
        {
            "at": at.isoformat(),
            "user": user,
            "app_id": app,
            "op": op,
            "name": name,
            "detail": _detail(detail),
        }
        for at, user, app, op, name, detail in rows[:limit]
    ]
    more = len(rows) > limit
    return {"path": path, "ops": ops, "next_offset": offset + limit if more else None}


def _detail(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """What an operation's detail says about the file itself: a move's old name, a size, an
    annotation's name; not the id of the directory it left, which may be anyone's."""
    if detail is None:
        return None
    return {k: v for k, v in detail.items() if k != "from_parent_id"} or None


def app(conn: psycopg.Connection, app_id_: str, scope: Scope) -> dict[str, Any]:
    """The app's footprint: the files it read (inputs) and wrote (outputs) that the scope
    shows, with counts and times. ENOENT when the scope shows none of them."""
    rows = conn.execute(
        f"""SELECT e.role, e.inode_id, n.path, n.artifact, n.deleted_at IS NOT NULL,
                   e.count, e.first_at, e.last_at, e.ops
            FROM epipe_prov_edges e JOIN epipe_prov_nodes n USING (inode_id)
            WHERE e.app_id = %(app)s AND {_IN_SCOPE}
            ORDER BY e.role, n.path""",
        {"app": app_id_, **scope.params()},
    ).fetchall()
    if not rows:
        raise FsError("ENOENT", app_id_, "no such app")
    out: dict[str, Any] = {"app_id": app_id_, "inputs": [], "outputs": []}
    for role, inode, path, artifact, deleted, count, first, last, ops in rows:
        out["inputs" if role == "input" else "outputs"].append(
            {
                **_file(inode, path, artifact, deleted),
                "count": count,
                "first_at": first.isoformat(),
                "last_at": last.isoformat(),
                "ops": ops,
            }
        )
    return out
