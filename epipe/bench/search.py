"""`epipe bench search`: HTTP latency of searches over 1,000,000 indexed files.

The dataset (images under /Projects/bench, annotated) lives in a scratch database and its
own index, built once and kept for later runs (`--fresh` rebuilds). `epipe serve` runs in
its own process; this one sends the queries one at a time, as a member of the project (so
every query carries the project scoping), and times each request end to end.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from epipe import accounts
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.index.engine import EngineError
from epipe.index.rebuild import rebuild
from epipe.load.bulk import load_images
from epipe.load.images import CAMERAS, SCENES, WEATHER
from epipe.wiring import open_tantivy_store

DATABASE = "epipe_bench_search"
ROOT = "/Projects/bench/images"
GOAL_P99_MS = 50.0


def run(
    admin_dsn: str,
    home: Path,
    *,
    files: int = 1_000_000,
    per_kind: int = 250,
    fresh: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    dsn, index_home = _dataset(admin_dsn, home, files, fresh, progress)
    with connect(dsn) as conn:
        token = accounts.create_token(conn, "bench")
        train = Namespace(conn, Actor("bench", "bench")).iter_ls(f"{ROOT}/train")
        sessions = [entry.name for entry in train]
    rng = random.Random(7)
    words = list({*SCENES, *WEATHER, "frame", "jpg", "night", "dawn"})
    kinds: dict[str, Callable[[], dict[str, Any]]] = {
        "text": lambda: {"q": rng.choice(words), "limit": 20},
        "under": lambda: {
            "under": f"{ROOT}/train/{rng.choice(sessions)}",
            "type": "file",
            "limit": 20,
        },
        "range": lambda: {"xattr": f"labels.objects.bicycle>{rng.randint(1, 5)}", "limit": 20},
        "combined": lambda: {
            "q": rng.choice(list(WEATHER)),
            "under": f"{ROOT}/train",
            "xattr": [
                f"labels.objects.car>={rng.randint(1, 8)}",
                f"labels.camera={rng.choice(CAMERAS)}",
            ],
            "type": "file",
            "sort": "-size",
            "limit": 20,
        },
    }
    with (
        Served(dsn, index_home) as url,
        httpx.Client(
            base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as client,
    ):
        for _ in range(20):  # warm up caches and connections
            client.get("/v1/search", params=kinds["text"]())
        samples: dict[str, list[float]] = {kind: [] for kind in kinds}
        totals: dict[str, int] = {}
        progress(f"{per_kind} requests of each kind: {', '.join(kinds)}")
        for _ in range(per_kind):
            for kind, make in kinds.items():
                started = time.perf_counter()
                response = client.get("/v1/search", params=make())
                samples[kind].append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{kind}: {response.status_code} {response.text}")
                totals[kind] = max(totals.get(kind, 0), response.json()["total"])
    everything = sorted(v for values in samples.values() for v in values)
    result: dict[str, Any] = {
        "docs": files,  # the dataset holds exactly this many (else it was rebuilt)
        "requests": len(everything),
        **_percentiles(everything),
        "goal_p99_ms": GOAL_P99_MS,
    }
    result["ratio_p99"] = round(result["p99_ms"] / GOAL_P99_MS, 3)
    for kind, values in samples.items():
        result[kind] = {**_percentiles(sorted(values)), "max_total": totals[kind]}
    return result


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(values[min(len(values) - 1, int(0.99 * len(values)))], 2),
    }


def _dataset(
    admin_dsn: str, home: Path, files: int, fresh: bool, progress: Callable[[str], None]
) -> tuple[str, Path]:
    """The scratch database and index with `files` images, built unless already there."""
    index_home = home / "bench-search"
    with connect(admin_dsn) as admin:
        dbname = admin.info.dbname
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
        ).fetchone()
        if exists and fresh:
            admin.execute(f"DROP DATABASE {DATABASE} WITH (FORCE)")
            exists = None
        if not exists:
            admin.execute(f"CREATE DATABASE {DATABASE}")
    dsn = admin_dsn.replace(f"dbname={dbname}", f"dbname={DATABASE}")
    with connect(dsn) as conn:
        migrate(conn)
        row = conn.execute("SELECT count(*) FROM inodes WHERE kind = 'f'").fetchone()
        have = row[0] if row else 0
        loaded = have == files
        if loaded and not _opens(index_home / "index"):
            progress("indexing them again (the index has the fields of another version)")
            _reindex(conn, index_home)
        elif not loaded:
            if have:
                conn.execute("TRUNCATE inodes, xattrs, prov_ops CASCADE")
                conn.execute(
                    "INSERT INTO inodes (id, parent_id, owner_id, group_id, mode, kind,"
                    " name) VALUES (1, NULL, 0, 0, 493, 'd', '')"
                )
                conn.execute(
                    "DELETE FROM projects; DELETE FROM memberships; "
                    "DELETE FROM groups WHERE id > 0; DELETE FROM users WHERE id > 0"
                )
            accounts.add_user(conn, "bench")
            accounts.create_project(conn, "bench", "bench")
            progress(f"loading {files:,} annotated images (once; kept for later runs)")
            load_images(conn, Actor("bench", "bench"), under=ROOT, count=files, seed=11)
            conn.execute("VACUUM ANALYZE")
            progress("indexing them")
            _reindex(conn, index_home)
    return dsn, index_home


def _opens(path: Path) -> bool:
    if not (path / "current").exists():
        return False
    try:
        open_tantivy_store(path).current(writable=False)
    except EngineError:
        return False
    return True


def _reindex(conn: psycopg.Connection, index_home: Path) -> None:
    shutil.rmtree(index_home, ignore_errors=True)
    _, index = rebuild(conn, open_tantivy_store(index_home / "index"))
    index.close()


class Served:
    """`epipe serve` in its own process, on a free port; its output goes to serve.log."""

    def __init__(self, dsn: str, home: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.env = {**os.environ, "EPIPE_DSN": dsn, "EPIPE_HOME": str(home)}
        self.log = home / "serve.log"

    def __enter__(self) -> str:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "epipe", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"epipe serve did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(30)
