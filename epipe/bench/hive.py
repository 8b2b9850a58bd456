"""`epipe bench hive`: `rm -r` and `mv` of a directory holding a Hive database, until the
metastore follows, beside what the metastore does by itself.

Everything is scratch: a PostgreSQL database, a local metastore (HMS 2.3 on Derby) under a
temporary directory, and the pipeline in this process with the hive consumer only. One
database of `tables` external tables x `partitions` partitions lives in /hive/bench.db
(tables in tNN/, partitions in tNN/p=NNN/); once the consumer has bound every object:

- mv_s: `mv /hive/bench.db /hive/moved.db` until every consumer applied it (the consumer
  changes the metastore before it records its position); then every location is checked;
- rm_r_s: `rm -r /hive/moved.db` until applied; then the database is checked gone.

The baselines run on identical copies located outside the location prefix (the consumer
ignores them), with the pipeline stopped:

- baseline_drop_s: `drop_database(copy, deleteData=False, cascade=True)`;
- baseline_mv_s: HMS's metatool, `HiveMetaTool -updateLocation NEW OLD`: a JVM of its own on
  the Derby database, run while the server is stopped (Derby admits one JVM at a time); the
  JVM's start and the opening of the store are included. baseline_mv_jvm_s is a
  `-listFSRoot` run (the same start and opening, then a read of the database locations),
  baseline_mv_net_s the difference: about the update alone. The metatool rewrites only
  locations with a host, so this copy is moved (with alter_* calls, before the clock
  starts) to hdfs://localhost:8020/...: the metastore makes an HDFS client for it when it
  reads such a location, but no data is listed and no NameNode is ever contacted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from thrift.Thrift import TException

from epipe import wiring
from epipe.bench import hms_objects
from epipe.bench.capture import _drop_database, _fresh_database
from epipe.bench.hms_objects import Layout, thrift_client
from epipe.bench.index import Pipeline
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.errors import EpipeError
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.hms.locations import LocationMap
from epipe.hms.server import LocalMetastore, local_location_prefix
from epipe.lsn import lsn_from_str
from epipe.pipeline import status as pipeline_status
from epipe.settings import Settings

GOALS = {"rm_r_ratio": 1.25, "mv_ratio": 2.0}
SLOT = "epipe_bench_hive"
DATABASE = "bench"
ROOT, MOVED = "/hive/bench.db", "/hive/moved.db"
COPY_HOST = "hdfs://localhost:8020"
METATOOL = "org.apache.hadoop.hive.metastore.tools.HiveMetaTool"
TIMEOUT = 600.0


def run(
    admin_dsn: str,
    settings: Settings,
    *,
    tables: int = 20,
    partitions: int = 100,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    layout = Layout(tables, partitions)
    dsn = _fresh_database(admin_dsn)
    scratch = Path(tempfile.mkdtemp(prefix="epipe-bench-hive-"))
    metastore = LocalMetastore(scratch / "home")
    result: dict[str, Any] = {
        "tables": tables,
        "partitions_per_table": partitions,
        "partitions": tables * partitions,
        "parallel": settings.hms_parallel,
    }
    try:
        progress("starting a scratch metastore")
        metastore.start()
        url = metastore.url()
        fs = LocationMap.of(local_location_prefix(scratch / "home"))
        update = {"slot": SLOT, "dsn": None, "hms_uri": url, "hms_location_prefix": fs.prefix}
        hive_settings = settings.model_copy(update=update)
        with connect(dsn) as conn:
            migrate(conn)
            pipeline = Pipeline(dsn, hive_settings, [wiring.consumer("hive", hive_settings, dsn)])
            try:
                pipeline.start()
                result.update(_epipe(conn, url, fs, layout, progress))
            finally:
                pipeline.stop()
        result.update(_baseline_drop(url, scratch, layout, progress))
        result.update(_baseline_mv(metastore, url, scratch, layout, progress))
    except TException as exc:  # raised by the raw client (epipe's adapter wraps its own)
        reason = getattr(exc, "message", None) or type(exc).__name__
        raise EpipeError(f"bench hive: the metastore failed a call: {reason}") from None
    finally:
        metastore.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        _drop_database(admin_dsn)
    result["rm_r_ratio"] = round(result["rm_r_s"] / result["baseline_drop_s"], 3)
    result["mv_ratio"] = round(result["mv_s"] / result["baseline_mv_s"], 3)
    net = result["baseline_mv_net_s"]
    result["mv_net_ratio"] = round(result["mv_s"] / net, 3) if net > 0 else None
    for key, goal in GOALS.items():
        result[f"{key}_goal"] = goal
    return result


def _epipe(
    conn: psycopg.Connection,
    url: str,
    fs: LocationMap,
    layout: Layout,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    progress(f"{layout.objects:,} directories in {ROOT}, a Hive object located in each")
    ns = Namespace(conn, Actor("root", "bench"))
    ns.mkdir("/hive")
    for path in layout.paths(ROOT):
        ns.mkdir(path)
    with thrift_client(url) as client:
        hms_objects.create(client, DATABASE, fs.location(ROOT), layout)
        _bound(conn, layout.objects)
        progress(f"mv {ROOT} {MOVED}")
        started = time.perf_counter()
        _applied(conn, ns.mv(ROOT, MOVED).token)
        mv_seconds = time.perf_counter() - started
        wanted = _locations(fs, MOVED, layout)
        found = hms_objects.locations(client, DATABASE)
        wrong = sorted(key for key in wanted if found.get(key) != wanted[key])
        if wrong:
            raise EpipeError(
                f"bench hive: after mv, {len(wrong)} of {len(wanted)} locations are not "
                f"rewritten, e.g. {wrong[0]}: {found.get(wrong[0])!r}"
            )
        progress(f"rm -r {MOVED}")
        started = time.perf_counter()
        _applied(conn, ns.rm(MOVED, recursive=True).token)
        rm_seconds = time.perf_counter() - started
        left = hms_objects.locations(client, DATABASE)
        if left:
            raise EpipeError(f"bench hive: after rm -r, {len(left)} objects are left in HMS")
    return {"mv_s": round(mv_seconds, 3), "rm_r_s": round(rm_seconds, 3)}


def _baseline_drop(
    url: str, scratch: Path, layout: Layout, progress: Callable[[str], None]
) -> dict[str, Any]:
    progress("baseline: drop_database(cascade=True) of a copy")
    name = f"{DATABASE}_drop"
    with thrift_client(url) as client:
        hms_objects.create(client, name, f"file:{scratch / 'copy' / 'drop.db'}", layout)
        started = time.perf_counter()
        client.drop_database(name, False, True)
        seconds = time.perf_counter() - started
        if hms_objects.locations(client, name):
            raise EpipeError(f"bench hive: drop_database left the database {name}")
    return {"baseline_drop_s": round(seconds, 3)}


def _baseline_mv(
    metastore: LocalMetastore,
    url: str,
    scratch: Path,
    layout: Layout,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    progress("baseline: HMS's metatool -updateLocation on a copy")
    name = f"{DATABASE}_mv"
    old, new = f"{COPY_HOST}/copy/mv.db", f"{COPY_HOST}/copy/moved.db"
    with thrift_client(url) as client:
        created = f"file:{scratch / 'copy' / 'mv.db'}"
        hms_objects.create(client, name, created, layout)
        hms_objects.relocate(client, name, created, old)
        found = hms_objects.locations(client, name)
    if len(found) != layout.objects or not all(v.startswith(old) for v in found.values()):
        raise EpipeError(
            f"bench hive: the metatool's copy is not at {old} (this metastore did not "
            "change a database's location?)"
        )
    metastore.stop()  # Derby admits one JVM
    seconds, output = _timed(metastore.java_command(METATOOL, "-updateLocation", new, old), scratch)
    updated = sum(int(n) for n in re.findall(r"Updated (\d+) records in (?:SDS|DBS) table", output))
    if updated != layout.objects:
        raise EpipeError(
            f"bench hive: the metatool updated {updated} of {layout.objects} locations: "
            f"{output.strip()[-500:]}"
        )
    jvm_seconds, _ = _timed(metastore.java_command(METATOOL, "-listFSRoot"), scratch)
    return {
        "baseline_mv_s": round(seconds, 3),
        "baseline_mv_jvm_s": round(jvm_seconds, 3),
        "baseline_mv_net_s": round(seconds - jvm_seconds, 3),
    }


def _timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    """Run a Java tool to its end: (seconds, its output); an error if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise EpipeError(f"bench hive: {argv[-3:]} exited with {done.returncode}: {output[-500:]}")
    return seconds, output


def _locations(fs: LocationMap, root: str, layout: Layout) -> dict[str, str]:
    """key -> location of every object of the layout in `root`, as HMS stores it."""
    out = {DATABASE: fs.location(root)}
    for table in layout.table_names():
        out[f"{DATABASE}.{table}"] = fs.location(f"{root}/{table}")
        for value in layout.values():
            out[f"{DATABASE}.{table}/p={value}"] = fs.location(f"{root}/{table}/p={value}")
    return out


def _bound(conn: psycopg.Connection, count: int) -> None:
    """Wait until the hive consumer has bound `count` objects."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        row = conn.execute("SELECT count(*) FROM epipe_hive_objects").fetchone()
        assert row is not None
        if row[0] >= count:
            return
        if time.monotonic() > deadline:
            raise EpipeError(f"bench hive: the consumer bound {row[0]} of {count} objects")
        time.sleep(0.05)


def _applied(conn: psycopg.Connection, token: str) -> None:
    _, lagging = pipeline_status.wait(conn, SLOT, lsn_from_str(token), TIMEOUT, poll=0.005)
    if lagging:
        raise EpipeError(f"bench hive: the pipeline fell behind: {lagging}")
