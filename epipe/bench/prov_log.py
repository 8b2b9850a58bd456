"""A provenance log shaped like a company's data pipelines, written in bulk for `epipe bench
prov`: the inodes and the operation log (`prov_ops`) with COPY, as `load images` does.

Every project runs one pipeline of `GENERATIONS` generations of apps. Generation 0 ingests
raw data: two apps write `RAW` files (`raw/part-NNN.csv`). Each app of a later generation
reads `INPUTS` files written by the generation before it, one raw file of its project and,
for every other app, one dataset of `/Projects/shared` (written by the app `shared-ingest`),
and writes `OUTPUTS` files (`gG/aAA-O.parquet`; the last generation writes models, `.pt`).
The whole pipeline runs `RUNS` times: the first run creates the outputs, later runs write
them again, so the log holds every read and write of every run, in time order. Directories
are made by root without an app id (they are in the log, not in the lineage graph).

Depth 3 from a last-generation file walks three generations of apps: about a hundred nodes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

GENERATIONS = 6  # 0 ingests, 1 .. 5 process
APPS = 24  # apps of each generation >= 1
INPUTS = 3  # files of the generation before that each app reads
OUTPUTS = 4  # files each app writes
RAW = 60  # raw files of a project
INGEST_APPS = 2
SHARED = 200  # datasets under /Projects/shared
RUNS = 4
ROOT = 0  # user id of root
DIR_MODE, FILE_MODE = 0o755, 0o644
START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class App:
    name: str
    reads: list[int]  # inode ids
    writes: list[int]


@dataclass
class Project:
    name: str
    apps: list[App] = field(default_factory=list)  # in pipeline order
    files: list[list[str]] = field(default_factory=list)  # paths, by generation (0: raw)


@dataclass
class Layout:
    """What was written: the projects, and where each file is."""

    projects: list[Project]
    ops: int = 0
    inodes: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # id: parent, name, kind

    def roots(self, generations: range) -> list[tuple[str, str]]:
        """(project, path) of every file of these generations."""
        return [(p.name, path) for p in self.projects for g in generations for path in p.files[g]]


def ops_per_project() -> int:
    """The log rows one project's pipeline writes (directories included)."""
    shared_reads = APPS // 2
    per_run = RAW + (GENERATIONS - 1) * (APPS * (INPUTS + 1 + OUTPUTS) + shared_reads)
    return GENERATIONS + 1 + RUNS * per_run  # its directory, raw/ and gG/ made once


def write(conn: psycopg.Connection, *, ops: int, seed: int) -> Layout:
    """Write projects until the log holds at least `ops` rows; one transaction."""
    rng = random.Random(seed)
    shared_ops = 2 + SHARED * RUNS
    count = max(1, -(-(ops - shared_ops) // ops_per_project()))
    with conn.transaction():
        row = conn.execute("SELECT id FROM inodes WHERE parent_id = 1 AND name = 'Projects'")
        found = row.fetchone()
        layout = Layout([])
        ids = _Ids(conn)
        top = int(found[0]) if found else ids.dir(layout, 1, "Projects")
        shared = ids.dir(layout, ids.dir(layout, top, "shared"), "datasets")
        shared_files = [ids.file(layout, shared, f"d{i:03d}.csv") for i in range(SHARED)]
        shared_app = App("shared-ingest", [], shared_files)
        for k in range(count):
            layout.projects.append(_project(layout, ids, rng, top, f"p{k:04d}", shared_files))
        ids.reserve()
        _copy_inodes(conn, layout)
        layout.ops = _copy_ops(conn, layout, shared_app)
    return layout


class _Ids:
    """Inode ids taken from the namespace's sequence in one block."""

    def __init__(self, conn: psycopg.Connection) -> None:
        row = conn.execute("SELECT nextval('inode_ids')").fetchone()
        assert row is not None
        self._conn = conn
        self._next = int(row[0])

    def dir(self, layout: Layout, parent: int, name: str) -> int:
        return self._take(layout, parent, name, "d")

    def file(self, layout: Layout, parent: int, name: str) -> int:
        return self._take(layout, parent, name, "f")

    def _take(self, layout: Layout, parent: int, name: str, kind: str) -> int:
        inode = self._next
        self._next += 1
        layout.inodes[inode] = (parent, name, kind)
        return inode

    def reserve(self) -> None:
        self._conn.execute("SELECT setval('inode_ids', %s)", [self._next])


def _project(
    layout: Layout, ids: _Ids, rng: random.Random, top: int, name: str, shared: list[int]
) -> Project:
    project = Project(name)
    home = ids.dir(layout, top, name)
    raw_dir = ids.dir(layout, home, "raw")
    raw = [ids.file(layout, raw_dir, f"part-{i:03d}.csv") for i in range(RAW)]
    project.files.append([f"/Projects/{name}/raw/part-{i:03d}.csv" for i in range(RAW)])
    per_app = RAW // INGEST_APPS
    for j in range(INGEST_APPS):
        project.apps.append(App(f"{name}-ingest-{j}", [], raw[j * per_app : (j + 1) * per_app]))
    previous = raw
    for g in range(1, GENERATIONS):
        directory = ids.dir(layout, home, f"g{g}")
        suffix = "pt" if g == GENERATIONS - 1 else "parquet"
        outputs: list[int] = []
        paths: list[str] = []
        for a in range(APPS):
            reads = [*rng.sample(previous, INPUTS), rng.choice(raw)]
            if a % 2 == 0:
                reads.append(rng.choice(shared))
            names = [f"a{a:02d}-{o}.{suffix}" for o in range(OUTPUTS)]
            writes = [ids.file(layout, directory, n) for n in names]
            project.apps.append(App(f"{name}-g{g}-a{a:02d}", reads, writes))
            outputs += writes
            paths += [f"/Projects/{name}/g{g}/{n}" for n in names]
        project.files.append(paths)
        previous = outputs
    return project


def _copy_inodes(conn: psycopg.Connection, layout: Layout) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY inodes (id, parent_id, size, owner_id, group_id, mode, kind, name) FROM STDIN"
        ) as copy,
    ):
        for inode, (parent, name, kind) in layout.inodes.items():
            mode = DIR_MODE if kind == "d" else FILE_MODE
            copy.write_row((inode, parent, 0 if kind == "d" else 1 << 20, 0, 0, mode, kind, name))


def _copy_ops(conn: psycopg.Connection, layout: Layout, shared_app: App) -> int:
    rows = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY prov_ops (at, inode_id, parent_id, user_id, op, app_id, name, detail) FROM STDIN"
        ) as copy,
    ):
        for row in _log(layout, shared_app):
            copy.write_row(row)
            rows += 1
    return rows


Row = tuple[datetime, int, int, int, str, str | None, str, str | None]


def _log(layout: Layout, shared_app: App) -> Iterator[Row]:
    """The operations in time order, 10 ms apart: directories, then each run of every
    pipeline (the shared datasets first)."""
    clock = (START + timedelta(milliseconds=10 * i) for i in range(1 << 62))
    for inode, (parent, name, kind) in layout.inodes.items():
        if kind == "d":
            yield next(clock), inode, parent, ROOT, "mkdir", None, name, None
    size = '{"size": 1048576}'
    for run in range(RUNS):
        made = "create" if run == 0 else "write"
        apps = [shared_app, *(a for p in layout.projects for a in p.apps)]
        for app in apps:
            for inode in app.reads:
                parent, name, _ = layout.inodes[inode]
                yield next(clock), inode, parent, ROOT, "read", app.name, name, None
            for inode in app.writes:
                parent, name, _ = layout.inodes[inode]
                yield next(clock), inode, parent, ROOT, made, app.name, name, size
