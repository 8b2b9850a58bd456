"""`epipe fs` with several operands, and names that hold control characters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from epipe.cli import cli
from epipe.fs.namespace import Namespace
from tests.integration.helpers import ReadMessages

Run = Callable[..., Result]


@pytest.fixture
def run(dsn: str) -> Run:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env={"EPIPE_DSN": dsn}, catch_exceptions=False)

    return invoke


def _names(ns: Namespace, path: str) -> list[str]:
    return [entry.name for entry in ns.iter_ls(path)]


def _shown(stdout: str) -> list[str]:
    """ls output with each entry line cut to its name (the last column)."""
    lines = stdout.split("\n")
    return [line.rsplit(" ", 1)[-1] if line[:1] in ("-", "d") else line for line in lines]


def test_several_operands_each_run_as_one_transaction_in_order(
    run: Run, ns: Namespace, conn: psycopg.Connection
) -> None:
    made = run("fs", "mkdir", "-p", "/a/x", "/b")
    assert made.exit_code == 0 and made.stderr == ""
    first, second = made.stdout.split()
    assert first.count("/") == second.count("/") == 1  # two tokens, one per directory
    assert run("fs", "put", "/a/f", "/b/g", "--size", "5").stdout.count("\n") == 2
    xids = conn.execute("SELECT count(DISTINCT xmin::text) FROM inodes WHERE id > 1").fetchone()
    assert xids == (4,)  # /a and /a/x in one transaction, then /b, /a/f and /b/g in theirs
    with ReadMessages(conn) as recorded:
        assert run("fs", "cat", "/a/f", "/b/g", "--app", "job").exit_code == 0
        assert recorded.reads() == [("read", "f", "job"), ("read", "g", "job")]
    stat = run("fs", "stat", "/a/f", "/b")
    assert stat.stdout.startswith("path: /a/f\nid: ")
    assert "\npath: /b\nid: " in stat.stdout and "\nkind: dir\n" in stat.stdout
    removed = run("fs", "rm", "-r", "/a", "/b")
    assert removed.exit_code == 0 and removed.stdout.count("\n") == 2
    assert _names(ns, "/") == []


def test_a_failed_operand_is_reported_and_the_others_go_on(run: Run, ns: Namespace) -> None:
    made = run("fs", "mkdir", "/a", "/a", "/no/such", "/b")
    assert made.exit_code == 1
    assert made.stderr == "epipe: EEXIST: /a\nepipe: ENOENT: /no/such\n"
    assert len(made.stdout.split()) == 2
    assert _names(ns, "/") == ["a", "b"]
    stat = run("fs", "stat", "/nope", "/a", "relative")
    assert stat.exit_code == 1
    assert stat.stderr.splitlines() == [
        "epipe: ENOENT: /nope",
        "epipe: EINVAL: relative (path must be absolute (start with '/'))",
    ]
    assert stat.stdout.startswith("path: /a\n")
    removed = run("fs", "rm", "/nope", "/a", "/b")
    assert (removed.exit_code, removed.stderr) == (1, "epipe: ENOENT: /nope\n")
    assert _names(ns, "/") == []
    assert run("fs", "rm", "/a").stdout == ""  # one operand failing: nothing on stdout


def test_ls_of_several_operands_heads_each_directory(run: Run) -> None:
    assert run("fs", "mkdir", "-p", "/d/sub", "/e", "/empty").exit_code == 0
    assert run("fs", "put", "/d/x", "/e/y", "/f", "--size", "1").exit_code == 0
    listing = run("fs", "ls", "/f", "/d", "/nope", "/empty", "/f", "/e/")
    assert listing.exit_code == 1 and listing.stderr == "epipe: ENOENT: /nope\n"
    assert _shown(listing.stdout) == [
        "f",
        "",
        "/d:",
        "sub",
        "x",
        "",
        "/empty:",
        "",
        "f",
        "",
        "/e:",
        "y",
        "",
    ]
    single = run("fs", "ls", "/d")
    assert _shown(single.stdout) == ["sub", "x", ""]


def test_json_of_several_operands_is_a_list_tagged_with_paths(run: Run) -> None:
    one = json.loads(run("fs", "mkdir", "/a", "--json").stdout)
    assert set(one) == {"inode_id", "token"}  # one operand: the object as before
    made = run("fs", "mkdir", "/b/", "/a", "/c", "--json")
    assert made.exit_code == 1
    assert [set(item) for item in json.loads(made.stdout)] == [{"path", "inode_id", "token"}] * 2
    assert [item["path"] for item in json.loads(made.stdout)] == ["/b", "/c"]
    assert run("fs", "put", "/a/f", "--size", "3").exit_code == 0
    listed = json.loads(run("fs", "ls", "/a", "/c", "/a/f", "--json").stdout)
    assert [(item["path"], [e["name"] for e in item["entries"]]) for item in listed] == [
        ("/a", ["f"]),
        ("/c", []),
        ("/a/f", ["f"]),
    ]
    assert isinstance(json.loads(run("fs", "ls", "/a", "--json").stdout), list)
    stats = json.loads(run("fs", "stat", "/a", "/a/f", "--json").stdout)
    assert [(s["path"], s["name"], s["size"]) for s in stats] == [("/a", "a", 0), ("/a/f", "f", 3)]
    assert json.loads(run("fs", "stat", "/a/f", "--json").stdout)["name"] == "f"
    assert json.loads(run("fs", "rm", "/x", "/y", "--json").stdout) == []


def test_mv_of_several_sources_moves_each_into_the_directory(run: Run, ns: Namespace) -> None:
    assert run("fs", "mkdir", "/a", "/b", "/dir").exit_code == 0
    assert run("fs", "put", "/f").exit_code == 0
    moved = run("fs", "mv", "/a", "/nope", "/b", "/dir")
    assert moved.exit_code == 1 and moved.stderr == "epipe: ENOENT: /nope\n"
    assert len(moved.stdout.split()) == 2
    assert _names(ns, "/dir") == ["a", "b"]
    for target, code in (("/f", "ENOTDIR"), ("/missing", "ENOENT")):
        refused = run("fs", "mv", "/dir/a", "/dir/b", target)
        assert refused.exit_code == 1 and refused.stderr.startswith(f"epipe: {code}: {target}")
        assert refused.stderr.count("\n") == 1 and refused.stdout == ""
    assert _names(ns, "/dir") == ["a", "b"]
    # two operands keep their meaning: DST is the new path, never a directory to move into
    exists = run("fs", "mv", "/f", "/dir")
    assert (exists.exit_code, exists.stderr) == (1, "epipe: EEXIST: /dir\n")
    into_root = run("fs", "mv", "/", "/dir/a", "/f", "/")
    assert into_root.exit_code == 1
    assert [line.split(" (")[0] for line in into_root.stderr.splitlines()] == [
        "epipe: EINVAL: /",
        "epipe: EEXIST: /f",  # already in /
    ]
    assert _names(ns, "/") == ["a", "dir", "f"]


NAMES = {
    "new\nline": "new\\nline",
    "tab\there": "tab\\there",
    "esc\x1b[31mred": "esc\\033[31mred",
    "bell\a\b\v\f\r": "bell\\a\\b\\v\\f\\r",
    "del\x7f": "del\\177",
    "csi\x9bx": "csi\\302\\233x",
    "line\u2028sep": "line\\342\\200\\250sep",
    "back\\slash": "back\\\\slash",
    "plain é 日本 👩‍👩‍👧": "plain é 日本 👩‍👩‍👧",
}


def test_names_are_escaped_in_human_output_and_exact_in_json(run: Run, ns: Namespace) -> None:
    ns.mkdir("/d")
    for name in NAMES:
        ns.put(f"/d/{name}")
    listing = run("fs", "ls", "/d").stdout
    assert listing.count("\n") == len(NAMES)
    assert sorted(line.split("Z ", 1)[1] for line in listing.splitlines()) == sorted(NAMES.values())
    assert not set(listing) & {"\x1b", "\x9b", "\r", "\u2028", "\x7f"}
    exact = json.loads(run("fs", "ls", "/d", "--json").stdout)
    assert sorted(entry["name"] for entry in exact) == sorted(NAMES)
    raw = run("fs", "ls", "/d", "--json").stdout
    assert not set(raw) & {"\x1b", "\x9b", "\u2028", "\x7f", "\t"}
    stat = run("fs", "stat", "/d/esc\x1b[31mred", "/d/new\nline")
    assert "name: esc\\033[31mred\n" in stat.stdout and "path: /d/new\\nline\n" in stat.stdout
    both = run("fs", "ls", "/d/tab\there", "/d")
    assert "\n/d:\n" in both.stdout and both.stdout.startswith("-rw-r--r--")
    missing = run("fs", "stat", "/d/new\nline\x1b", "/gone\\x")
    assert missing.stderr == "epipe: ENOENT: /d/new\\nline\\033\nepipe: ENOENT: /gone\\\\x\n"
    assert run("fs", "setxattr", "/d/new\nline", "a\nb", '"v\\u009b\\n"').exit_code == 0
    assert run("fs", "getxattr", "/d/new\nline").stdout == 'a\\nb="v\\u009b\\n"\n'
    assert json.loads(run("fs", "getxattr", "/d/new\nline", "--json").stdout) == {"a\nb": "v\x9b\n"}


def test_undecodable_bytes_on_the_command_line_are_one_escaped_line(
    dsn: str, tmp_path: Path, ns: Namespace
) -> None:
    env = {**os.environ, "EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "epipe", "fs", "mkdir", b"/bad\xff\n", "/good"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == b"epipe: EINVAL: /bad?\\n (path is not valid UTF-8)\n"
    assert result.stdout.count(b"\n") == 1
    assert _names(ns, "/") == ["good"]
