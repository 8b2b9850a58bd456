"""CPU time spent while a stage of a benchmark runs, by where it was spent: this process's
named threads (the tailer, each consumer), the rest of this process (tantivy's own threads,
the bench), and the database server's processes by kind (decoding the WAL for the tailer,
answering queries, the rest) when the server runs on this machine.

What it is for: a rate is bound by the CPU each document costs. Per document, the sum over
all places against the machine's cores tells what the cores allow at best; the share of the
interpreter's threads tells what one GIL allows (docs/performance.md, "The CPU a document
costs"). Processes and threads that start and end within the block are not seen (counted:
those alive at its end)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil
import psycopg

# pg_stat_activity's backend_type -> where its time is reported
_SERVER_KINDS = {"walsender": "database: decoding the WAL", "client backend": "database: queries"}
_SERVER_OTHER = "database: other"
_PROCESS_OTHER = "this process: engine threads and the rest"


@dataclass
class CpuUse:
    """CPU seconds by place while the block ran, and its wall-clock seconds."""

    seconds: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    def per_item_us(self, items: int) -> dict[str, float]:
        """µs of CPU per item by place, and the total."""
        per = {place: round(1e6 * s / items, 1) for place, s in self.seconds.items()}
        per["total"] = round(1e6 * sum(self.seconds.values()) / items, 1)
        return per

    def cores_busy(self) -> float:
        return round(sum(self.seconds.values()) / self.wall, 2) if self.wall else 0.0

    def ceiling(self, items: int) -> int:
        """Items a second this machine's cores allow at best at the CPU an item cost."""
        spent = sum(self.seconds.values())
        return round(cores() * items / spent) if spent else 0

    def floor_seconds(self) -> float:
        """The wall-clock seconds this machine's cores allow at best for the CPU spent (all
        of them busy all the time)."""
        return round(sum(self.seconds.values()) / cores(), 2)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


@contextmanager
def measured(conn: psycopg.Connection, threads: dict[str, str]) -> Iterator[CpuUse]:
    """Meter the block: `threads` maps thread names (as `threading` knows them) to places.
    The figures are in the yielded CpuUse once the block ends."""
    use = CpuUse()
    me = psutil.Process()
    process_before = _total(me)
    threads_before = {t.id: t.user_time + t.system_time for t in me.threads()}
    server_before = {pid: _cpu(pid) for pid, _ in _server_processes(conn)}
    started = time.perf_counter()
    yield use
    use.wall = time.perf_counter() - started
    process = _total(me) - process_before
    by_id = {t.native_id: t.name for t in threading.enumerate()}
    named = 0.0
    for thread in me.threads():
        place = threads.get(by_id.get(thread.id, ""))
        if place is not None:
            spent = thread.user_time + thread.system_time - threads_before.get(thread.id, 0.0)
            use.seconds[place] = use.seconds.get(place, 0.0) + spent
            named += spent
    use.seconds[_PROCESS_OTHER] = max(process - named, 0.0)
    for pid, kind in _server_processes(conn):
        now = _cpu(pid)
        if now is not None:
            place = _SERVER_KINDS.get(kind, _SERVER_OTHER)
            spent = now - (server_before.get(pid) or 0.0)
            use.seconds[place] = use.seconds.get(place, 0.0) + spent


def _server_processes(conn: psycopg.Connection) -> list[tuple[int, str]]:
    rows = conn.execute("SELECT pid, backend_type FROM pg_stat_activity").fetchall()
    return [(int(pid), str(kind)) for pid, kind in rows]


def _cpu(pid: int) -> float | None:
    """CPU seconds of a database server process, if it runs on this machine (a pid of a
    server elsewhere may name another program here: only a postgres process counts)."""
    try:
        process = psutil.Process(pid)
        if "postgres" not in process.name():
            return None
        return _total(process)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _total(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
