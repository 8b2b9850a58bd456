"""The local metastore's JVM command line (no Java needed: the command is only built)."""

from __future__ import annotations

from pathlib import Path

from epipe.hms.server import LocalMetastore


def test_derby_looks_for_deadlocks_after_a_second_not_twenty(tmp_path: Path) -> None:
    argv = LocalMetastore(tmp_path)._argv(Path("java"), Path("jars"), None, "Main", "-p", "1")
    assert "-Dderby.locks.deadlockTimeout=1" in argv
    # a system property only counts before the main class
    assert argv.index("-Dderby.locks.deadlockTimeout=1") < argv.index("Main")
