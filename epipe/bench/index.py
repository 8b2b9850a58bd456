"""`epipe bench index`: the embedded stack's search index, measured.

In a scratch database, with the whole pipeline (tailer, in-process bus, index consumer on a
scratch tantivy index) running in this process:

- docs_per_s: documents made searchable per second by the pipeline draining a committed
  backlog of images loaded in bulk while it was stopped (so the loader does not share its
  interpreter);
- raw_engine_docs_per_s: the baseline, the same documents (read back from the index)
  added to a fresh generation through the engine adapter with no pipeline: the ceiling the
  pipeline approaches;
- rebuild_docs_per_s: `reindex` throughput, for comparison;
- cpu_us_per_doc (and rebuild_cpu_us_per_doc, raw_engine_cpu_us_per_doc): the CPU each
  document cost while draining, by place (the tailer, the index consumer, the rest of this
  process — tantivy's threads —, the database's WAL decoding, its queries; epipe.bench.cpu),
  with cpu_ceiling_docs_per_s (and rebuild_…): the rate this machine's `cores` allow at
  best at that cost, and cpu_cores_busy;
- lag_p50_ms / lag_p99_ms: commit -> searchable, for probe annotations written every 100 ms
  while `load mix` runs at a fixed rate;
- rm_r_100k_s: `rm -r` of a directory of 100,000 annotated files until the index holds none,
  from the commit of the removal (before it nothing is removed anywhere); rm_r_100k_db_s is
  the database's own delete (its cascade), which no consumer can shorten;
- mv_100k_s: `mv` of such a directory until every moved document has its new path (the
  subtree is rewritten and committed at once, so its first and last files tell), with the
  CPU each of the mv_docs rewritten cost (mv_cpu_us_per_doc, by place), mv_cpu_floor_s
  (the time this machine's cores allow at best at that cost), mv_docs_per_s and
  mv_100k_s_vs_raw_engine (that rate as a share of the engine's own);
- rm_r_1m_s: `rm -r` of a directory of 1,000,000 files (`huge`) until the index holds none,
  from the commit as above (rm_r_1m_db_s the database's delete), with the process's peak
  resident memory meanwhile (rm_peak_rss_mb; the whole embedded pipeline runs in this
  process); rm_r_1m_caught_up_s until the pipeline has also applied every event of the
  cascade (one per file and per annotation: what later changes wait behind).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from epipe import wiring
from epipe.bench import cpu
from epipe.bench.capture import _drop_database, _fresh_database
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.index.engine import IndexStore
from epipe.index.rebuild import rebuild
from epipe.index.tantivy import document as tantivy_document
from epipe.load.bulk import load_images
from epipe.load.mix import run_mix
from epipe.lsn import lsn_from_str
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.runner import ConsumerSpec
from epipe.search.query import SearchQuery, parse_predicate
from epipe.settings import Settings
from epipe.source import translate

GOALS = {
    "lag_p50_ms": 100.0,
    "lag_p99_ms": 500.0,
    "rm_r_100k_s": 5.0,
    "mv_100k_s": 3.0,
    "rm_r_1m_s": 10.0,
}
RATE_GOALS = {"docs_per_s": 25_000, "rebuild_docs_per_s": 50_000}  # ratio >= 1 meets these
SLOT = "epipe_bench_index"
RAW_BATCH = 2_000
# where the drain's CPU goes: the thread running the pipeline runs its tailer
_PLACES = {"tailer": "tailer", "consumer-index": "index consumer", "MainThread": "bench (waiting)"}


def run(
    admin_dsn: str,
    settings: Settings,
    *,
    images: int = 50_000,
    big: int = 100_000,
    huge: int = 1_000_000,
    mix_rate: float = 300.0,
    mix_seconds: float = 30.0,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    dsn = _fresh_database(admin_dsn)
    scratch = Path(tempfile.mkdtemp(prefix="epipe-bench-index-"))
    embedded = settings.model_copy(update={"slot": SLOT, "dsn": None})
    store = wiring.open_tantivy_store(scratch / "index")
    result: dict[str, Any] = {  # without them the figures are the slower ones: say so
        "compiled_parse": translate.COMPILED,  # the tailer's tuple parse (_tuples.c)
        "compiled_checks": tantivy_document.COMPILED,  # a document's text checks (_plain.c)
    }
    try:
        with connect(dsn) as conn:
            migrate(conn)
            ns = Namespace(conn, Actor("root", "bench"))
            ns.mkdir("/bench")
            pipeline = Pipeline(dsn, embedded, [wiring.index_consumer(dsn, store)])
            try:
                pipeline.start()
                _caught_up(conn)
                pipeline.stop()
                progress(f"indexing throughput: a backlog of {images:,} images")
                load_images(conn, Actor("root", "bench"), under="/bench/load", count=images, seed=1)
                result.update(_throughput(conn, store, pipeline))
                result.update(_raw_engine(conn, store, scratch / "raw"))
                result.update(_lag(dsn, conn, ns, store, mix_rate, mix_seconds, progress))
                result.update(_subtrees(conn, ns, store, big, progress))
                result.update(_rm_huge(conn, ns, store, pipeline, huge, progress))
            finally:
                pipeline.stop()
            progress("rebuild")
            with cpu.measured(conn, {"MainThread": "rebuild"}) as use:
                started = time.perf_counter()
                report, index = rebuild(conn, wiring.open_tantivy_store(scratch / "rebuild"))
                index.close()
                seconds = time.perf_counter() - started
            result["rebuild_docs_per_s"] = round(report.documents / seconds)
            result["rebuild_cpu_us_per_doc"] = use.per_item_us(report.documents)
            result["rebuild_cpu_ceiling_docs_per_s"] = use.ceiling(report.documents)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _drop_database(admin_dsn)
    for key, goal in GOALS.items():
        result[f"{key}_goal"] = goal
        result[f"{key}_ratio"] = round(result[key] / goal, 3)  # <= 1 meets the goal
    for key, rate in RATE_GOALS.items():
        result[f"{key}_goal"] = rate
        result[f"{key}_ratio"] = round(result[key] / rate, 3)
        result[f"{key}_vs_raw_engine"] = round(result[key] / result["raw_engine_docs_per_s"], 3)
    # a move's rate (documents rewritten a second) as a share of the engine's own
    result["mv_100k_s_vs_raw_engine"] = round(
        result["mv_docs_per_s"] / result["raw_engine_docs_per_s"], 3
    )
    return result


def _caught_up(
    conn: psycopg.Connection, token: str | None = None, timeout: float = 600, poll: float = 0.005
) -> None:
    target = None if token is None else lsn_from_str(token)
    _, lagging = pipeline_status.wait(conn, SLOT, target, timeout, poll=poll)
    if lagging:
        raise RuntimeError(f"the bench pipeline fell behind: {lagging}")


def _removed(conn: psycopg.Connection, ns: Namespace, store: IndexStore, path: str) -> Removal:
    """`rm -r path` (the index caught up), timed from its commit until the index holds as
    many fewer documents as the database has fewer inodes (a cheap count, polled: searching
    would compete with the pipeline for the interpreter)."""
    reader = store.reader()
    indexed = reader.count()
    count = "SELECT count(*) FROM inodes"
    (inodes,) = conn.execute(count).fetchone()  # type: ignore[misc]
    started = time.perf_counter()
    ns.rm(path, recursive=True)
    committed = time.perf_counter()
    (left,) = conn.execute(count).fetchone()  # type: ignore[misc]
    while reader.count() > indexed - (inodes - left):
        time.sleep(0.01)
    clean = time.perf_counter()
    reader.close()
    return Removal(committed - started, clean - committed, committed)


@dataclass(frozen=True)
class Removal:
    db_seconds: float  # the database's own delete, to its commit
    seconds: float  # from the commit until the index holds none of the subtree
    committed: float  # perf_counter at the commit


class Pipeline:
    """The embedded pipeline (tailer and `consumers`) in a thread of this process, to stop
    and start again."""

    def __init__(self, dsn: str, settings: Settings, consumers: Sequence[ConsumerSpec]) -> None:
        self._settings = settings
        self._dsn = dsn
        self._consumers = consumers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        dsn, settings = self._dsn, self._settings
        runner = wiring.runner(
            settings,
            dsn,
            self._consumers,
            source=wiring.open_source(settings, dsn),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=runner.run, args=(self._stop,), daemon=True, name="tailer"
        )
        self._thread.start()
        if not runner.ready.wait(60):
            raise RuntimeError("the bench pipeline did not start")

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(120)
            self._thread = None


def _throughput(conn: psycopg.Connection, store: IndexStore, pipeline: Pipeline) -> dict[str, Any]:
    token = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
    before = store.current(writable=False).count()
    with cpu.measured(conn, _PLACES) as use:
        started = time.perf_counter()
        pipeline.start()
        # polled less often than the timings below: its queries share the interpreter
        # and the cores with what is measured; 1 % of a drain of seconds
        _caught_up(conn, token, poll=0.05)
        seconds = time.perf_counter() - started
    docs = store.current(writable=False).count() - before
    return {
        "docs": docs,
        "docs_per_s": round(docs / seconds),
        "cpu_us_per_doc": use.per_item_us(docs),
        "cpu_ceiling_docs_per_s": use.ceiling(docs),
        "cpu_cores_busy": use.cores_busy(),
        "cores": cpu.cores(),
    }


def _raw_engine(conn: psycopg.Connection, store: IndexStore, path: Path) -> dict[str, Any]:
    """The documents the pipeline made, added again by the engine alone, commits included
    (in batches as large as the index consumer's)."""
    docs = [doc for chunk in store.current(writable=False).scan() for doc in chunk]
    raw = wiring.open_tantivy_store(path)
    _, index = raw.new_generation()
    try:
        with cpu.measured(conn, {}) as use:
            started = time.perf_counter()
            for at in range(0, len(docs), RAW_BATCH):
                index.upsert(docs[at : at + RAW_BATCH])
                index.commit()
            seconds = time.perf_counter() - started
    finally:
        index.close()
    return {
        "raw_engine_docs_per_s": round(len(docs) / seconds),
        "raw_engine_cpu_us_per_doc": use.per_item_us(len(docs))["total"],
    }


def _lag(
    dsn: str,
    conn: psycopg.Connection,
    ns: Namespace,
    store: IndexStore,
    rate: float,
    seconds: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    progress(f"lag: probes every 100 ms during `load mix` at {rate:.0f} ops/s for {seconds:.0f} s")
    ns.put("/bench/probe")
    _caught_up(conn)
    samples: list[float] = []
    done = threading.Event()

    def mix() -> None:
        try:
            run_mix(
                dsn,
                Actor("root", "bench-mix"),
                under="/bench/mix",
                ops=int(rate * seconds),
                clients=2,
                rate=rate,
                seed=5,
            )
        finally:
            done.set()

    mixer = threading.Thread(target=mix, daemon=True)
    mixer.start()
    index = store.current(writable=False)
    n = 0
    while not done.is_set():
        n += 1
        ns.setxattr("/bench/probe", "probe", {"n": n})
        committed = time.perf_counter()
        query = SearchQuery(xattr=(parse_predicate(f"probe.n={n}"),), limit=1)
        while index.search(query).total == 0:
            if time.perf_counter() - committed > 30:
                raise RuntimeError("a probe did not become searchable within 30 s")
            time.sleep(0.001)
        samples.append((time.perf_counter() - committed) * 1000)
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - committed)))
    mixer.join()
    samples.sort()
    return {
        "lag_p50_ms": round(statistics.median(samples), 1),
        "lag_p99_ms": round(samples[min(len(samples) - 1, int(0.99 * len(samples)))], 1),
        "lag_samples": len(samples),
        "lag_mix_rate_ops_s": rate,
    }


# the inodes of a directory and below it (the documents a move rewrites)
_BELOW = """WITH RECURSIVE down (id) AS (
                SELECT %s::bigint
                UNION ALL
                SELECT c.id FROM inodes c JOIN down ON c.parent_id = down.id)
            SELECT count(*) FROM down"""


def _subtrees(
    conn: psycopg.Connection,
    ns: Namespace,
    store: IndexStore,
    count: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    progress(f"rm -r and mv of {count:,} annotated files")
    load_images(conn, Actor("root", "bench"), under="/bench/big", count=count, seed=2)
    _caught_up(conn)
    root = ns.stat("/bench/big").id
    first, last = conn.execute(
        "SELECT min(id), max(id) FROM inodes WHERE kind = 'f' AND id > %s", [root]
    ).fetchone()  # type: ignore[misc]
    (moved,) = conn.execute(_BELOW, [root]).fetchone()  # type: ignore[misc]
    index = store.current(writable=False)
    with cpu.measured(conn, _PLACES) as use:
        started = time.perf_counter()
        ns.mv("/bench/big", "/bench/moved")
        while not all(
            doc["path"].startswith("/bench/moved/") for doc in index.get([first, last]).values()
        ):
            time.sleep(0.005)
        mv_seconds = time.perf_counter() - started
    _caught_up(conn)
    removal = _removed(conn, ns, store, "/bench/moved")
    return {
        "mv_100k_s": round(mv_seconds, 2),
        "mv_docs": moved,
        "mv_docs_per_s": round(moved / mv_seconds),
        "mv_cpu_us_per_doc": use.per_item_us(moved),
        "mv_cpu_floor_s": use.floor_seconds(),
        "rm_r_100k_s": round(removal.seconds, 2),
        "rm_r_100k_db_s": round(removal.db_seconds, 2),
        "subtree_files": count,
    }


def _rm_huge(
    conn: psycopg.Connection,
    ns: Namespace,
    store: IndexStore,
    pipeline: Pipeline,
    count: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    progress(f"rm -r of {count:,} files (loaded while the pipeline is stopped, then indexed)")
    pipeline.stop()
    load_images(conn, Actor("root", "bench"), under="/bench/huge", count=count, seed=3)
    loaded = _throughput(conn, store, pipeline)
    me = psutil.Process()
    before = _rss_mb(me)
    peak = _Peak(me)
    with peak:
        removal = _removed(conn, ns, store, "/bench/huge")
        _caught_up(conn)
        caught_up = time.perf_counter() - removal.committed
    return {
        "rm_r_1m_s": round(removal.seconds, 2),
        "rm_r_1m_db_s": round(removal.db_seconds, 2),
        "rm_r_1m_caught_up_s": round(caught_up, 2),
        "rm_files": count,
        "rm_rss_before_mb": before,
        "rm_peak_rss_mb": peak.mb,
        "rm_load_docs_per_s": loaded["docs_per_s"],
    }


def _rss_mb(me: psutil.Process) -> int:
    """The process's resident memory."""
    return int(me.memory_info().rss) // 2**20


class _Peak:
    """The highest resident memory seen while the block runs (sampled every 20 ms)."""

    def __init__(self, me: psutil.Process) -> None:
        self.mb = 0
        self._me = me  # one handle: a new one reads /proc again at every sample
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.mb = max(self.mb, _rss_mb(self._me))
            if self._done.wait(0.02):
                return

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.mb = max(self.mb, _rss_mb(self._me))
