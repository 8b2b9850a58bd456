"""A mixed namespace workload in the proportions of a production Hadoop cluster.

Proportions: Spotify's HDFS operation mix as published with HopsFS (Niazi et al., "HopsFS:
Scaling Hierarchical File System Metadata Using NewSQL Databases", FAST'17, Table 1), mapped
to epipe's operations in docs/workloads.md. Each client works in its own subtree and keeps
a model of it, so every operation it issues is valid; clients run as separate processes.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from epipe.db.server import connect
from epipe.errors import FsError
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace

# Share of all operations, in percent (HopsFS FAST'17, Table 1, Spotify workload).
SPOTIFY_MIX: dict[str, float] = {
    "cat": 68.73,  # read (getBlockLocations)
    "stat": 17.0,  # stat (getFileInfo)
    "ls": 9.0,  # list (listStatus)
    "write": 1.5,  # add blocks: a file grows
    "mv": 1.3,  # move / rename
    "put": 1.2,  # create file
    "rm": 0.75,  # delete
    "setxattr": 0.37,  # set owner / replication / permissions -> attribute changes
    "rmxattr": 0.12,
    "mkdir": 0.02,  # mkdirs
}
# Share of an operation that targets a directory (same table).
DIRECTORY_SHARE: dict[str, float] = {"stat": 0.233, "ls": 0.945, "rm": 0.035, "mv": 0.0003}
SETUP_DIRS = 10
SETUP_FILES_PER_DIR = 10


@dataclass
class Tree:
    """A client's model of its own subtree: which files and directories exist."""

    base: str
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    tagged: set[str] = field(default_factory=set)  # files that carry the `labels` xattr
    serial: int = 0

    def new_name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial:07d}"

    def forget_dir(self, path: str) -> None:
        prefix = path + "/"
        self.dirs = [d for d in self.dirs if d != path and not d.startswith(prefix)]
        self.files = [f for f in self.files if not f.startswith(prefix)]
        self.tagged = {f for f in self.tagged if not f.startswith(prefix)}

    def rename_dir(self, src: str, dst: str) -> None:
        prefix = src + "/"

        def moved(p: str) -> str:
            return dst + p[len(src) :] if p == src or p.startswith(prefix) else p

        self.dirs = [moved(d) for d in self.dirs]
        self.files = [moved(f) for f in self.files]
        self.tagged = {moved(f) for f in self.tagged}


@dataclass
class ClientReport:
    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class MixReport:
    clients: int
    ops: int
    seconds: float
    per_op: dict[str, dict[str, float]]
    errors: dict[str, int]

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


def run_mix(
    dsn: str,
    actor: Actor,
    *,
    under: str,
    ops: int,
    clients: int = 1,
    rate: float | None = None,
    seed: int = 0,
) -> MixReport:
    """Run `ops` operations spread over `clients` processes; `rate` caps total ops/s."""
    run_dir = f"{under.rstrip('/')}/run-{seed}-{time.time_ns() // 1_000_000}"
    shares = [ops // clients + (1 if i < ops % clients else 0) for i in range(clients)]
    interval = clients / rate if rate else 0.0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=clients, mp_context=context) as pool:
        futures = [
            pool.submit(_client, dsn, actor, f"{run_dir}/c{i}", share, seed * 1000 + i, interval)
            for i, share in enumerate(shares)
        ]
        reports = [f.result() for f in futures]
    return _merge(reports, clients)


def _client(
    dsn: str, actor: Actor, base: str, ops: int, seed: int, interval: float
) -> ClientReport:
    rng = random.Random(seed)
    names, weights = zip(*SPOTIFY_MIX.items(), strict=True)
    report = ClientReport()
    with connect(dsn) as conn:
        ns = Namespace(conn, actor)
        tree = _setup(ns, base)
        started = next_at = time.perf_counter()
        for op in rng.choices(names, weights, k=ops):
            if interval:
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            t0 = time.perf_counter()
            try:
                _perform(ns, tree, op, rng)
            except FsError as exc:
                report.errors[f"{op}:{exc.code}"] += 1
            report.latencies_ms.setdefault(op, []).append((time.perf_counter() - t0) * 1000)
            report.ops[op] += 1
        report.seconds = time.perf_counter() - started
    return report


def _setup(ns: Namespace, base: str) -> Tree:
    tree = Tree(base)
    ns.mkdir(base, parents=True)
    tree.dirs.append(base)
    for d in range(SETUP_DIRS):
        directory = f"{base}/d{d:03d}"
        ns.mkdir(directory)
        tree.dirs.append(directory)
        for f in range(SETUP_FILES_PER_DIR):
            ns.put(f"{directory}/f{f:04d}", size=1024 * (f + 1))
            tree.files.append(f"{directory}/f{f:04d}")
    return tree


def _perform(ns: Namespace, tree: Tree, op: str, rng: random.Random) -> None:
    on_dir = rng.random() < DIRECTORY_SHARE.get(op, 0.0)
    if op in ("cat", "write", "setxattr", "rmxattr") and not tree.files:
        op = "put"
    if op == "cat":
        ns.cat(rng.choice(tree.files))
    elif op == "stat":
        ns.stat(rng.choice(tree.dirs if on_dir or not tree.files else tree.files))
    elif op == "ls":
        ns.ls(rng.choice(tree.dirs if on_dir or not tree.files else tree.files), limit=100)
    elif op == "write":
        ns.write(rng.choice(tree.files), size=rng.randrange(1, 1 << 30))
    elif op == "put":
        path = f"{rng.choice(tree.dirs)}/{tree.new_name('f')}"
        ns.put(path, size=rng.randrange(0, 1 << 27))
        tree.files.append(path)
    elif op == "mkdir":
        path = f"{rng.choice(tree.dirs)}/{tree.new_name('d')}"
        ns.mkdir(path)
        tree.dirs.append(path)
    elif op == "setxattr" or (op == "rmxattr" and not tree.tagged):
        path = rng.choice(tree.files)
        ns.setxattr(path, "labels", {"score": round(rng.random(), 4), "tag": "mix"})
        tree.tagged.add(path)
    elif op == "rmxattr":
        path = rng.choice(list(tree.tagged))
        ns.rmxattr(path, "labels")
        tree.tagged.discard(path)
    elif op == "mv":
        _move(ns, tree, rng, on_dir)
    elif op == "rm":
        _remove(ns, tree, rng, on_dir)


def _move(ns: Namespace, tree: Tree, rng: random.Random, on_dir: bool) -> None:
    movable = tree.dirs[1:]
    if on_dir and movable:
        src = rng.choice(movable)
        target = rng.choice([d for d in tree.dirs if d != src and not d.startswith(src + "/")])
        dst = f"{target}/{tree.new_name('d')}"
        ns.mv(src, dst)
        tree.rename_dir(src, dst)
    elif tree.files:
        i = rng.randrange(len(tree.files))
        dst = f"{rng.choice(tree.dirs)}/{tree.new_name('f')}"
        ns.mv(tree.files[i], dst)
        if tree.files[i] in tree.tagged:
            tree.tagged.discard(tree.files[i])
            tree.tagged.add(dst)
        tree.files[i] = dst


def _remove(ns: Namespace, tree: Tree, rng: random.Random, on_dir: bool) -> None:
    removable = tree.dirs[1:]
    if on_dir and len(removable) > 1:
        path = rng.choice(removable)
        ns.rm(path, recursive=True)
        tree.forget_dir(path)
    elif tree.files:
        i = rng.randrange(len(tree.files))
        ns.rm(tree.files[i])
        tree.tagged.discard(tree.files[i])
        tree.files[i] = tree.files[-1]
        tree.files.pop()


def _merge(reports: list[ClientReport], clients: int) -> MixReport:
    ops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {}
    for report in reports:
        ops.update(report.ops)
        errors.update(report.errors)
        for op, values in report.latencies_ms.items():
            latencies.setdefault(op, []).extend(values)
    per_op = {}
    for op in SPOTIFY_MIX:
        values = sorted(latencies.get(op, []))
        if values:
            per_op[op] = {
                "count": float(len(values)),
                "p50_ms": _quantile(values, 0.5),
                "p99_ms": _quantile(values, 0.99),
            }
    seconds = max(r.seconds for r in reports) if reports else 0.0
    return MixReport(clients, sum(ops.values()), seconds, per_op, dict(errors))


def _quantile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return round(sorted_values[index], 3)
