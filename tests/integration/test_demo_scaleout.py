"""`make demo-scaleout` end to end: scripts/demo_scaleout.sh starts the embedded PostgreSQL,
Tansu, `epipe tail`, each consumer (two members of the provenance group; hive where Java runs)
and `epipe serve` as processes, kills a provenance member with SIGKILL and starts it again,
and ends with `epipe verify` converged, leaving nothing running.

A smaller run than the demo's (SCALEOUT_IMAGES): its time goes to starting processes and
rebalancing groups (50-70 s on two busy cores, with the metastore), not to the images."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from epipe.hms.server import LocalMetastore

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "demo_scaleout.sh"

# The metastore, where Java runs, is one more Java process: one at a time (test_hms_server.py).
pytestmark = [pytest.mark.xdist_group("hms"), pytest.mark.timeout(400)]


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def run_script(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The script with the venv's `epipe` and `python` first on PATH, none of the caller's
    EPIPE_* settings; if it outlasts the test, its process group gets SIGTERM (as from a
    terminal: the script's cleanup runs once the command in the foreground ends)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EPIPE_")}
    environment |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")])),
        "SCALEOUT_HOME": str(home),
        **env,
    }
    process = subprocess.Popen(
        ["bash", str(SCRIPT)],
        env=environment,
        cwd=home.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_the_scale_out_demo_converges_after_a_kill_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    home = tmp_path / "scaleout"
    done = run_script(home, SCALEOUT_IMAGES="300")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]

    assert "index equals the database" in done.stdout
    assert "the graph equals a rebuild from the log" in done.stdout
    assert "Converged" in done.stdout
    assert re.search(r"^\$ kill -KILL \d+$", done.stdout, re.M), done.stdout
    holds = re.findall(r"^provenance-[ab] \(pid \d+\) holds (.+)$", done.stdout, re.M)
    assert len(holds) == 5, done.stdout  # two members, one alone, two again
    assert len(holds[2].split()) == 12 and len(holds[3].split()) == 6, holds
    assert '"hits":[{"path":"/Projects/demo/images/more/' in done.stdout
    assert "/Projects/demo/models/detector.pb" in done.stdout  # lineage over REST

    started = {int(pid) for pid in re.findall(r"^\S+ +pid (\d+) ", done.stdout, re.M)}
    assert len(started) == 8 or "No Hive consumer" in done.stdout, done.stdout
    assert all(gone(pid) for pid in started), [p for p in started if not gone(p)]
    broker = re.search(r"--listener-url tcp://127\.0\.0\.1:(\d+)", done.stdout)
    assert broker is not None and not accepts(int(broker[1]))
    assert not (home / "pg" / "data" / "postmaster.pid").exists()
    assert not LocalMetastore(home).status().running
    assert (home / "provenance-b.log").exists()  # the logs stay


def test_the_scale_out_demo_empties_only_a_home_of_its_own(tmp_path: Path) -> None:
    home = tmp_path / "someone-elses"
    home.mkdir()
    (home / "keep.txt").write_text("mine")
    done = run_script(home)
    assert done.returncode == 1
    assert "is not empty and not a home of this script" in done.stderr
    assert (home / "keep.txt").read_text() == "mine"
