"""What recording provenance costs the file system: `load mix` with provenance and without,
interleaved, for `epipe bench prov`.

Each client process of a round holds two connections to the same database, one recording
provenance and one not (the session setting `epipe.provenance`, as EPIPE_PROVENANCE sets
it), and runs the mix's operations (epipe/load/mix.py: Spotify's proportions, a client
model of its own subtree) in batches of `BATCH`, alternating the connection from batch to
batch and timing each. So both modes run in the same processes, on the same tree, at
moments a fraction of a second apart: the load of other processes on this machine and the
database's own drift (table growth, autovacuum, checkpoints) fall on both alike. Clients
start with opposite modes. A round's figure for a mode is its operations over the time its
batches took, summed over the clients.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from epipe.db.server import connect, with_provenance
from epipe.errors import FsError
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.load.mix import SPOTIFY_MIX, _perform, _setup

MODES = ("on", "off")
BATCH = 50  # operations in a row on one connection
APPS = {"on": "bench-mix-on", "off": "bench-mix-off"}  # log rows tell the modes apart


def capture_cost(
    conn: psycopg.Connection,
    dsn: str,
    mix_ops: int,
    rounds: int,
    clients: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """`rounds` rounds of `mix_ops` operations in each mode; the median round and the spread."""
    per_round: list[dict[str, float]] = []
    errors = 0
    # reads are messages, not rows (migration 0015): a slot of its own counts them after
    conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", [_SLOT])
    try:
        for r in range(rounds):
            speed, round_errors = _round(dsn, mix_ops, clients, seed=r)
            errors += round_errors
            overhead = 1 - speed["on"] / speed["off"]
            per_round.append({"overhead": overhead, **speed})
            progress(
                f"round {r + 1}/{rounds}: {speed['on']:,.0f} ops/s with provenance, "
                f"{speed['off']:,.0f} without: overhead {overhead:.3f}"
            )
        reads = _read_messages(conn)
    finally:
        conn.execute("SELECT pg_drop_replication_slot(%s)", [_SLOT])
    rows: dict[str, int] = dict(
        conn.execute(
            "SELECT app_id, count(*) FROM prov_ops WHERE app_id = ANY(%s) GROUP BY app_id",
            [list(APPS.values())],
        ).fetchall()
    )
    overheads = [x["overhead"] for x in per_round]
    return {
        **_cpu_figures(per_round),
        "ops_per_s_on": round(statistics.median(x["on"] for x in per_round)),
        "ops_per_s_off": round(statistics.median(x["off"] for x in per_round)),
        "overhead": round(statistics.median(overheads), 4),
        "overhead_min": round(min(overheads), 4),
        "overhead_max": round(max(overheads), 4),
        "rounds": [
            {"on": round(x["on"]), "off": round(x["off"]), "overhead": round(x["overhead"], 4)}
            for x in per_round
        ],
        "mix_ops": mix_ops,
        "mix_clients": clients,
        "mix_batch": BATCH,
        "mix_errors": errors,
        # per operation with provenance: log rows (changes) and read messages (stat and ls
        # record nothing); without it, neither
        "log_rows_per_op_on": round(rows.get(APPS["on"], 0) / (rounds * mix_ops), 3),
        "read_messages_per_op_on": round(reads.get(APPS["on"], 0) / (rounds * mix_ops), 3),
        "log_rows_off": rows.get(APPS["off"], 0),
        "read_messages_off": reads.get(APPS["off"], 0),
    }


def _cpu_figures(per_round: list[dict[str, float]]) -> dict[str, Any]:
    """CPU an operation takes (the client and its server process) in each mode, and
    `cpu_overhead` = 1 - cpu_off/cpu_on: what recording costs a CPU-bound machine, which
    other processes' load does not move (it leaves out the WAL writer and waits for the
    disk). None when the server is not on this machine."""
    if not all("cpu_on" in x for x in per_round):
        return {"cpu_us_per_op_on": None, "cpu_us_per_op_off": None, "cpu_overhead": None}
    return {
        "cpu_us_per_op_on": round(statistics.median(x["cpu_on"] for x in per_round), 1),
        "cpu_us_per_op_off": round(statistics.median(x["cpu_off"] for x in per_round), 1),
        "cpu_overhead": round(
            statistics.median(1 - x["cpu_off"] / x["cpu_on"] for x in per_round), 4
        ),
    }


_SLOT = "epipe_bench_prov_reads"


def _read_messages(conn: psycopg.Connection) -> dict[str, int]:
    """Read messages per bench app id, decoded from the slot (after the timed rounds)."""
    rows = conn.execute(
        """SELECT substring(data from '"app_id" : "([^"]*)"'), count(*)
           FROM pg_logical_slot_peek_changes(%s, NULL, NULL)
           WHERE data LIKE 'message: transactional: 0 prefix: epipe.prov.read%%'
           GROUP BY 1""",
        [_SLOT],
    ).fetchall()
    return {app: n for app, n in rows if app is not None}


@dataclass(frozen=True)
class _Times:
    """One client's share of a round."""

    ops: dict[str, int]
    seconds: dict[str, float]
    errors: int
    cpu: dict[str, float] | None  # client + its backend's CPU seconds; None: server remote


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds a server process has used (user + system), if it runs on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(dsn: str, mix_ops: int, clients: int, seed: int) -> tuple[dict[str, float], int]:
    shares = [mix_ops // clients + (1 if i < mix_ops % clients else 0) for i in range(clients)]
    context = multiprocessing.get_context("spawn")
    dsns = {mode: with_provenance(dsn, mode) for mode in MODES}
    with ProcessPoolExecutor(max_workers=clients, mp_context=context) as pool:
        futures = [
            pool.submit(_client, dsns, f"/bench/r{seed}/c{i}", 2 * share, seed * 1000 + i, i % 2)
            for i, share in enumerate(shares)
        ]
        times = [f.result() for f in futures]
    speed = {mode: sum(t.ops[mode] / t.seconds[mode] for t in times) for mode in MODES}
    if all(t.cpu is not None for t in times):  # CPU microseconds an operation takes
        for mode in MODES:
            used = sum(t.cpu[mode] for t in times if t.cpu is not None)
            speed[f"cpu_{mode}"] = used / sum(t.ops[mode] for t in times) * 1e6
    return speed, sum(t.errors for t in times)


def _client(dsns: dict[str, str], base: str, ops: int, seed: int, first: int) -> _Times:
    rng = random.Random(seed)
    names, weights = zip(*SPOTIFY_MIX.items(), strict=True)
    done = dict.fromkeys(MODES, 0)
    seconds = dict.fromkeys(MODES, 0.0)
    errors = 0
    with connect(dsns["on"]) as on, connect(dsns["off"]) as off:
        spaces = {
            "on": Namespace(on, Actor("root", APPS["on"])),
            "off": Namespace(off, Actor("root", APPS["off"])),
        }
        tree = _setup(Namespace(off, Actor("root", "bench-setup")), base)
        sequence = rng.choices(names, weights, k=ops)
        # each backend works only for its own mode's batches: its CPU from here to the end
        # is that mode's; the client's own is taken batch by batch
        pids = {"on": _pid(on), "off": _pid(off)}
        server = {m: _backend_cpu(pid) for m, pid in pids.items()}
        client = dict.fromkeys(MODES, 0.0)
        for b, start in enumerate(range(0, ops, BATCH)):
            mode = MODES[(b + first) % 2]
            batch = sequence[start : start + BATCH]
            began, began_cpu = time.perf_counter(), time.process_time()
            for op in batch:
                try:
                    _perform(spaces[mode], tree, op, rng)
                except FsError:
                    errors += 1
            seconds[mode] += time.perf_counter() - began
            client[mode] += time.process_time() - began_cpu
            done[mode] += len(batch)
        cpu: dict[str, float] | None = {}
        for m, pid in pids.items():
            before, after = server[m], _backend_cpu(pid)
            if cpu is None or before is None or after is None:
                cpu = None
            else:
                cpu[m] = client[m] + after - before
    return _Times(done, seconds, errors, cpu)


def _pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])
