"""The scenario of a new user, through the command line only: annotate images, query by
annotation ranges, move a directory, kill -9 the pipeline in the middle of a burst, change
files while it is down, restart — then the answers are right and `epipe verify` exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from epipe.db.server import connect
from tests.integration.helpers import wait_until
from tests.integration.pipeline_helpers import EpipeProcess, epipe_command, epipe_env, new_slot


class User:
    def __init__(self, dsn: str, home: Path, source: str = "postgres") -> None:
        self.env = epipe_env(dsn, home, new_slot(), source)
        # a process the session reaps if the test fails before stopping it
        self.pipeline = EpipeProcess(self.env, home / "run.log", "run")

    def epipe(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = epipe_command(self.env, *args)
        if check:
            assert done.returncode == 0, (args, done.stderr)
        return done

    def start(self) -> None:
        self.pipeline.start()

    def search(self, *args: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            self.epipe("search", "--json", "--limit", "1000", *args).stdout
        )
        return found


def inodes(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM inodes").fetchone()[0])  # type: ignore[index]


def bicycles_over(conn: psycopg.Connection, n: int, under: str) -> set[str]:
    """The truth, from the database: paths of images with more than n bicycles."""
    rows = conn.execute(
        """WITH RECURSIVE t (id, path) AS (
               SELECT id, '' FROM inodes WHERE id = 1
               UNION ALL SELECT i.id, t.path || '/' || i.name FROM inodes i
               JOIN t ON i.parent_id = t.id)
           SELECT t.path FROM t JOIN xattrs x ON x.inode_id = t.id
           WHERE x.name = 'labels' AND (x.value #>> '{objects,bicycle}')::numeric > %s
             AND t.path LIKE %s""",
        [n, under + "/%"],
    ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.slow
def test_a_new_users_scenario_ends_with_right_answers_and_a_clean_verify(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    scenario(User(dsn, tmp_path), conn)


@pytest.mark.slow
def test_the_scenario_with_debezium_as_the_source(tcp_dsn: str, tmp_path: Path) -> None:
    """The same, with Debezium's embedded engine reading the change log (EPIPE_SOURCE)."""
    with connect(tcp_dsn) as conn:
        scenario(User(tcp_dsn, tmp_path, source="debezium"), conn)


def scenario(user: User, conn: psycopg.Connection) -> None:
    root = "/Projects/cars/images"
    user.epipe("user", "add", "alice")
    user.epipe("project", "create", "cars", "--owner", "alice")
    user.epipe("load", "images", "--count", "2000", "--under", root, "--user", "alice")
    user.start()
    user.epipe("wait", "--timeout", "120")

    # annotation range query: exactly the images with more than three bicycles
    found = user.search("--xattr", "labels.objects.bicycle>3", "--under", root)
    paths = {hit["path"] for hit in found["hits"]}
    assert paths == bicycles_over(conn, 3, root) and paths, user.epipe("verify", check=False)

    # annotate, then search with the token: found at once
    target = sorted(paths)[0]
    token = user.epipe(
        "fs", "setxattr", target, "review", '{"by": "alice", "score": 9}', "--user", "alice"
    ).stdout.strip()
    user.epipe("wait", "--token", token, "--timeout", "30")
    assert [h["path"] for h in user.search("--xattr", "review.score>=9")["hits"]] == [target]

    # move a directory: new paths found, old ones gone
    user.epipe("fs", "mv", f"{root}/train", "/Projects/cars/training", "--user", "alice")
    user.epipe("wait", "--timeout", "30")
    assert user.search("--under", f"{root}/train")["total"] == 0
    moved = user.search("--under", "/Projects/cars/training", "--type", "file")
    assert moved["total"] > 0
    assert all(h["path"].startswith("/Projects/cars/training/") for h in moved["hits"])

    # kill -9 in the middle of a burst, change files while the pipeline is down, restart
    before = inodes(conn)
    burst = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "epipe",
            "load",
            "images",
            "--count",
            "3000",
            "--seed",
            "9",
            "--under",
            "/Projects/cars/burst",
            "--user",
            "alice",
        ],
        env=user.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: inodes(conn) > before, timeout=120)  # a first session of it is in
    user.pipeline.kill()
    assert burst.wait(timeout=300) == 0
    user.epipe("fs", "rm", "-r", "/Projects/cars/training", "--user", "alice")
    user.epipe(
        "fs", "setxattr", f"{root}/val", "labels", '{"objects": {"bicycle": 99}}', "--user", "alice"
    )  # a directory annotated while the pipeline is down
    user.epipe("fs", "mv", "/Projects/cars/burst", "/Projects/cars/burst2", "--user", "alice")
    user.start()
    user.epipe("wait", "--timeout", "120")
    for under in (root, "/Projects/cars/burst2"):
        found = user.search("--xattr", "labels.objects.bicycle>3", "--under", under)
        assert {h["path"] for h in found["hits"]} == bicycles_over(conn, 3, under)
    assert user.search("--under", "/Projects/cars/training")["total"] == 0
    assert user.search("--under", "/Projects/cars/burst")["total"] == 0
    verify = user.epipe("verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert user.pipeline.stop() == 0
