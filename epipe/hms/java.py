"""The Java runtime and the jars the local metastore runs on: both found, or one line on
what to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib.util import find_spec
from pathlib import Path

from epipe.errors import ConfigError

JAVA_MIN = 17


def find_java(what: str = "epipe hms") -> Path:
    """`$JAVA_HOME/bin/java` if JAVA_HOME is set, else `java` on PATH; it must be >= 17
    (`what` needs it: the error names it)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            raise ConfigError(
                f"{what} needs Java >= {JAVA_MIN} (JAVA_HOME={java_home} has no bin/java)"
            )
    else:
        found = shutil.which("java")
        if found is None:
            raise ConfigError(f"{what} needs Java >= {JAVA_MIN} (java not found on PATH)")
        java = Path(found)
    version = _java_version(java, what)
    if version < JAVA_MIN:
        raise ConfigError(
            f"{what} needs Java >= {JAVA_MIN} ({java} is Java {version}; set JAVA_HOME or PATH)"
        )
    return java


def _java_version(java: Path, what: str) -> int:
    try:
        done = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{what} needs Java >= {JAVA_MIN} ({java} does not run: {exc})") from None
    # `openjdk version "17.0.15" 2025-04-15`, or `java version "1.8.0_402"` before Java 9
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if found is None:
        raise ConfigError(
            f"{what} needs Java >= {JAVA_MIN} ({java} -version does not name a version)"
        )
    major = int(found[1])
    return int(found[2] or 0) if major == 1 else major


def jars_dir() -> Path:
    """The `jars` directory of the installed pyspark package (HMS 2.3, Derby, DataNucleus)."""
    hint = "pip install 'epipe[hms]' (or make install)"
    spec = find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"epipe hms runs the Hive Metastore jars of pyspark: {hint}")
    jars = Path(next(iter(spec.submodule_search_locations))) / "jars"
    if not any(jars.glob("hive-metastore-*.jar")):
        raise ConfigError(f"no hive-metastore jar in {jars}: {hint}")
    return jars


STORE_CLASS = "org.epipe.hms.LocationObjectStore"
_STORE_SOURCE = Path(__file__).with_name("LocationObjectStore.java")


def compile_store(java: Path, jars: Path, out: Path) -> Path | None:
    """The classes dir holding our metastore store (epipe/hms/LocationObjectStore.java),
    compiled with the `javac` beside `java` when missing or older than its source; None
    when there is no javac (a JRE only): the metastore then runs HMS's own store, whose
    alter_database keeps a database's location."""
    built = out / "org" / "epipe" / "hms" / "LocationObjectStore.class"
    if built.exists() and built.stat().st_mtime >= _STORE_SOURCE.stat().st_mtime:
        return out
    javac = java.with_name("javac")
    if not os.access(javac, os.X_OK):
        return None
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(javac), "-nowarn", "-cp", f"{jars}/*", "-d", str(out), str(_STORE_SOURCE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise ConfigError(f"cannot compile {_STORE_SOURCE.name}: {done.stderr.strip()[-500:]}")
    return out


def unavailable() -> str | None:
    """Why a local metastore cannot run here (no Java >= 17, no pyspark jars), or None."""
    try:
        find_java()
        jars_dir()
    except ConfigError as exc:
        return str(exc)
    return None
