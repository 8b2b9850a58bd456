"""Scale-out in tests: a site (one database, one EPIPE_HOME, one slot, topics and groups of
its own on the session's broker) whose `epipe tail` and `epipe consume NAME` run as processes,
and apps at work on it (Loader)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import psycopg

from epipe.db.server import connect
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.lsn import lsn_from_str
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.store import PipelineStore
from tests.conftest import KAFKA_GROUP_TIMEOUTS, kafka_prefix
from tests.integration.pipeline_helpers import EpipeProcess, epipe_command, epipe_env, new_slot

DEADLINE = 60.0  # seconds for any one condition; each test takes ~30 s on Tansu


class Loader(threading.Thread):
    """Apps at work until stopped, one batch after another: `ingest` writes and annotates
    images, `train` reads them and writes a model; a directory is moved now and then and an
    older one removed, so the stream has every kind of event and provenance operation."""

    def __init__(self, dsn: str) -> None:
        super().__init__(name="loader", daemon=True)
        self.dsn = dsn
        self.batches = 0
        self.last_token: str | None = None
        self.errors: list[BaseException] = []
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.dsn) as conn:
                while not self._halt.is_set():
                    self.last_token = write_batch(conn, self.batches)
                    self.batches += 1
        except BaseException as exc:
            self.errors.append(exc)

    def wait_for(self, batches: int) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.batches < batches:
            assert not self.errors, self.errors
            assert self.is_alive(), "the loader stopped"
            assert time.monotonic() < deadline, f"{self.batches} batches, not {batches}"
            time.sleep(0.02)

    def finish(self) -> None:
        self._halt.set()
        self.join(timeout=DEADLINE)
        assert not self.is_alive() and not self.errors, self.errors


def write_batch(conn: psycopg.Connection, i: int) -> str:
    """Batch `i` of the apps' work (see Loader); the token of its last change."""
    ingest = Namespace(conn, Actor("root", "ingest"))
    train = Namespace(conn, Actor("root", "train"))
    root = Namespace(conn)
    here = f"/data/b{i}"
    root.mkdir(here, parents=True)
    for j in range(8):
        ingest.put(f"{here}/img{j}.jpg", size=100 + j)
        ingest.setxattr(f"{here}/img{j}.jpg", "labels", {"batch": i, "n": j})
    for j in range(0, 8, 2):
        train.cat(f"{here}/img{j}.jpg")
    change = train.put(f"{here}/model.pb", size=1)
    if i % 4 == 1:  # b(i-1) moves below b(i)
        change = root.mv(f"/data/b{i - 1}", f"{here}/moved")
    elif i % 4 == 3:  # b(i-2) goes, with what was moved into it
        change = root.rm(f"/data/b{i - 2}", recursive=True)
    return change.token


class Site:
    """One database, one EPIPE_HOME, one slot, topics of their own on the session's broker."""

    def __init__(self, dsn: str, home: Path, bootstrap: str) -> None:
        self.dsn, self.home = dsn, home
        self.slot = new_slot()
        self.env = {
            **epipe_env(dsn, home, self.slot),
            "EPIPE_BUS": "kafka",
            "EPIPE_KAFKA_BOOTSTRAP": bootstrap,
            "EPIPE_KAFKA_PREFIX": kafka_prefix(),
            "EPIPE_KAFKA_PARTITIONS": "3",
            "EPIPE_KAFKA_SESSION_TIMEOUT_MS": str(KAFKA_GROUP_TIMEOUTS["session_timeout_ms"]),
            "EPIPE_KAFKA_HEARTBEAT_INTERVAL_MS": str(KAFKA_GROUP_TIMEOUTS["heartbeat_interval_ms"]),
        }
        self.processes: list[EpipeProcess] = []

    def start(self, *args: str, name: str | None = None, **env: str) -> EpipeProcess:
        """`epipe ARGS` as a process, its output in `name`.log (default: after its arguments),
        with `env` added to the site's environment."""
        log = self.home / f"{name or '-'.join(args)}.log"
        process = EpipeProcess({**self.env, **env}, log, *args)
        process.start()
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log.name}\n{p.log.read_text(errors='replace')[-2000:]}"
            for p in {p.log: p for p in self.processes}.values()
        )

    def applied(self, conn: psycopg.Connection, consumer: str, token: str) -> None:
        """Until `consumer` has applied `token`; fails once one of the processes exited."""
        target, deadline = lsn_from_str(token), time.monotonic() + DEADLINE
        store = PipelineStore.on(conn)
        while True:
            position = next((p for p in store.positions() if p.name == consumer), None)
            if position is not None and position.applied_lsn >= target:
                return
            assert all(p.alive() for p in self.processes), self.logs()
            assert time.monotonic() < deadline, (position, self.logs())
            time.sleep(0.05)

    def converged(self, conn: psycopg.Connection) -> str:
        """Until every consumer has caught up; then `epipe verify` exits 0 (its output is
        returned) and every process stops cleanly."""
        _, lagging = pipeline_status.wait(conn, self.slot, None, timeout=DEADLINE)
        assert not lagging, (lagging, self.logs())
        verify = epipe_command(self.env, "verify", "--timeout", "30")
        assert verify.returncode == 0, (verify.stdout, verify.stderr, self.logs())
        assert "index equals the database" in verify.stdout
        for process in self.processes:
            assert process.stop() == 0, self.logs()
        return verify.stdout

    def names_on_the_broker(self) -> tuple[set[str], set[str]]:
        """The topics and the consumer groups the broker has."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.env["EPIPE_KAFKA_BOOTSTRAP"])
        try:
            topics = set(admin.list_topics())
            groups = {str(group["group_id"]) for group in admin.list_groups()}
        finally:
            admin.close()
        return topics, groups

    def reap(self) -> None:
        for process in self.processes:
            process.reap()


class ConnectWorker(EpipeProcess):
    """Kafka Connect's part (tests/connect_worker.py) for `site`: Debezium's connector on the
    site's database and slot, writing topics `topic_prefix`.*."""

    def __init__(self, site: Site, topic_prefix: str) -> None:
        super().__init__(site.env, site.home / "connect.log")
        self.argv = [
            sys.executable,
            "-m",
            "tests.connect_worker",
            site.env["EPIPE_KAFKA_BOOTSTRAP"],
            site.dsn,
            site.slot,
            site.env.get("EPIPE_PUBLICATION", "epipe"),
            topic_prefix,
            str(site.home / "connect.offsets"),
        ]
