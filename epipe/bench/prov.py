"""`epipe bench prov`: what recording provenance costs the file system, and how fast lineage
answers over a log of a million operations.

- ops_per_s_on / ops_per_s_off / overhead: namespace operations per second of `load mix`
  (`clients` processes, as fast as they go, each operation one transaction) with provenance
  recorded and without it (EPIPE_PROVENANCE, the session setting `epipe.provenance`), in a
  scratch database, interleaved batch by batch (epipe/bench/prov_mix.py). The file system's
  own throughput, as HopsFS reports its overhead: no pipeline runs (the tailer and the
  consumers are other processes, which on 2 cores would measure their share of the CPU, not
  the cost of recording). `overhead` is the median of the rounds' 1 - on/off.
- lineage_p50_ms / lineage_p99_ms: `epipe.prov.query.lineage` at depth 3, upstream and
  downstream, as the operator and as a member of the root's project, from random roots,
  over the graph `rebuild` folds from a log of `ops` operations shaped like data pipelines
  (epipe/bench/prov_log.py).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg

from epipe.bench import prov_log
from epipe.bench.capture import _drop_database, _fresh_database
from epipe.bench.prov_mix import capture_cost
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.prov.query import DOWNSTREAM, UPSTREAM, Direction, Scope, lineage
from epipe.prov.rebuild import rebuild

GOALS = {"overhead": 0.04, "lineage_p99_ms": 50.0}
DEPTH = 3
WARM_UP = 20  # lineage queries run before the timed ones (plans prepared, caches warm)
SCOPES = ("operator", "project")


def run(
    admin_dsn: str,
    *,
    mix_ops: int = 10_000,
    rounds: int = 9,
    clients: int = 2,
    ops: int = 1_000_000,
    queries: int = 200,
    seed: int = 1,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Both parts, each in a scratch database of its own."""
    result: dict[str, Any] = {}
    try:
        dsn = _fresh_database(admin_dsn)
        with connect(dsn) as conn:
            migrate(conn)
            result.update(capture_cost(conn, dsn, mix_ops, rounds, clients, progress))
        dsn = _fresh_database(admin_dsn)
        with connect(dsn) as conn:
            migrate(conn)
            result.update(lineage_latency(conn, ops, queries, seed, progress))
    finally:
        _drop_database(admin_dsn)
    for key, goal in GOALS.items():
        result[f"{key}_goal"] = goal
        result[f"{key}_ratio"] = round(result[key] / goal, 3)  # <= 1 meets the goal
    return result


def lineage_latency(
    conn: psycopg.Connection, ops: int, queries: int, seed: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    progress(f"lineage: writing a log of {ops:,} operations")
    started = time.perf_counter()
    layout = prov_log.write(conn, ops=ops, seed=seed)
    written = time.perf_counter() - started
    progress(f"lineage: {layout.ops:,} operations written in {written:.1f} s; rebuilding the graph")
    started = time.perf_counter()
    rebuild(conn, (0, 0))
    rebuilt = time.perf_counter() - started
    conn.execute("ANALYZE epipe_prov_apps, epipe_prov_edges, epipe_prov_nodes")
    sizes = conn.execute(
        "SELECT (SELECT count(*) FROM epipe_prov_apps), (SELECT count(*) FROM epipe_prov_edges),"
        " (SELECT count(*) FROM epipe_prov_nodes)"
    ).fetchone()
    assert sizes is not None
    # roots with three generations to walk: upstream from the later ones, downstream from
    # the raw data and the earlier ones
    last = prov_log.GENERATIONS
    roots = {
        UPSTREAM: layout.roots(range(DEPTH, last)),
        DOWNSTREAM: layout.roots(range(0, last - DEPTH)),
    }
    rng = random.Random(seed)
    directions: tuple[Direction, ...] = (UPSTREAM, DOWNSTREAM)
    plan = [(d, s) for d in directions for s in SCOPES for _ in range(queries)]
    rng.shuffle(plan)
    progress(f"lineage: {len(plan):,} queries at depth {DEPTH}")
    times: dict[tuple[str, str], list[float]] = {(d, s): [] for d, s in plan}
    nodes: dict[tuple[str, str], list[int]] = {(d, s): [] for d, s in plan}
    truncated = 0
    for i, (direction, scope_name) in enumerate(plan[:WARM_UP] + plan):
        project, path = rng.choice(roots[direction])
        scope = Scope(None if scope_name == "operator" else frozenset({project}))
        t0 = time.perf_counter()
        answer = lineage(conn, path, scope, direction=direction, depth=DEPTH)
        ms = (time.perf_counter() - t0) * 1000
        if i >= WARM_UP:
            times[(direction, scope_name)].append(ms)
            nodes[(direction, scope_name)].append(len(answer.nodes))
            truncated += answer.truncated
    every = sorted(t for ts in times.values() for t in ts)
    counts = [n for ns in nodes.values() for n in ns]
    return {
        "prov_ops": layout.ops,
        "projects": len(layout.projects),
        "graph_apps": sizes[0],
        "graph_edges": sizes[1],
        "graph_nodes": sizes[2],
        "log_write_s": round(written, 1),
        "rebuild_s": round(rebuilt, 1),
        "lineage_depth": DEPTH,
        "lineage_queries": len(every),
        "lineage_p50_ms": _quantile(every, 0.5),
        "lineage_p99_ms": _quantile(every, 0.99),
        "lineage_avg_nodes": round(statistics.mean(counts), 1),
        "lineage_max_nodes": max(counts),
        "lineage_truncated": truncated,
        "lineage_kinds": {
            f"{d} {s}": {
                "p50_ms": _quantile(sorted(times[(d, s)]), 0.5),
                "p99_ms": _quantile(sorted(times[(d, s)]), 0.99),
                "avg_nodes": round(statistics.mean(nodes[(d, s)]), 1),
            }
            for d, s in sorted(times)
        },
    }


def _quantile(sorted_values: list[float], q: float) -> float:
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 2)
