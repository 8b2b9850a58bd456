"""LocalMetastore: a Hive Metastore (HMS 2.3) on an embedded Derby database, under EPIPE_HOME.

Layout of `<home>/hms/`:
    conf/hive-site.xml  written at every start
    derby/metastore/    the Derby database: every database, table and partition of the HMS
    derby/derby.log     Derby's own log
    warehouse/          hive.metastore.warehouse.dir (default location of managed tables)
    fs/                 where epipe's tables live (`local_location_prefix`)
    classes/            our store (LocationObjectStore.java), compiled at the first start
    hms.log             the server's output
    hms.pid, hms.port   process id and Thrift port of the server (the port is reused)

The server is the `HiveMetaStore` class of the jars that the `pyspark` package ships
(`pip install 'epipe[hms]'`), run by Java >= 17 as the current user, in a session of its
own: it outlives the command that started it. HMS 2.3 listens on every interface (it has
no bind address setting) and does not authenticate: it is a server for one machine.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

from epipe.errors import MetastoreError
from epipe.hms.java import STORE_CLASS, compile_store, find_java, jars_dir
from epipe.settings import Settings

MAIN_CLASS = "org.apache.hadoop.hive.metastore.HiveMetaStore"
DEADLOCK_TIMEOUT_S = 1  # whole seconds (Derby's unit); below derby.locks.waitTimeout (60)
START_TIMEOUT = 120.0  # the first start creates the Derby schema: ~30 s on a busy machine
STOP_TIMEOUT = 60.0
_POLL = 0.1  # seconds between two looks at a condition waited for
_LOG_LINES = 6


# Warnings and errors to stderr, i.e. hms.log; at INFO the server logs every call it serves.
_LOG4J2 = """\
# written by epipe at every start
status = error
name = epipe-hms
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %-5p [%t] %c{2}: %m%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
"""


@dataclass(frozen=True)
class MetastoreStatus:
    running: bool
    pid: int | None
    port: int | None  # the port it listens on, or will first try (None: never started)
    url: str | None
    data_dir: Path


class LocalMetastore:
    """Lifecycle of the local metastore: `start`, `stop`, `status`, `url`.

    `port` fixes the Thrift port (EPIPE_HMS_PORT); without it a start takes the port of the
    previous run if it is free, else any free port."""

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.root = home.resolve() / "hms"
        self.conf_dir = self.root / "conf"
        self.derby_dir = self.root / "derby"
        self.warehouse_dir = self.root / "warehouse"
        self.fs_dir = self.root / "fs"
        self.log_file = self.root / "hms.log"
        self._pid_file = self.root / "hms.pid"
        self._port_file = self.root / "hms.port"
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        """`thrift://127.0.0.1:PORT`; an error if no port was chosen yet."""
        port = self._known_port()
        if port is None:
            raise MetastoreError(
                "the local Hive Metastore was never started: run `epipe hms start`"
            )
        return _url(port)

    def status(self) -> MetastoreStatus:
        pid = self._running_pid()
        port = self._known_port()
        return MetastoreStatus(pid is not None, pid, port, _url(port) if port else None, self.root)

    def start(self, timeout: float = START_TIMEOUT) -> bool:
        """Start the server and wait until it answers; False if it was already running."""
        with self._lock():
            if self._running_pid() is not None:
                return False
            java = find_java()
            jars = jars_dir()
            for path in (self.conf_dir, self.derby_dir, self.warehouse_dir, self.fs_dir):
                path.mkdir(parents=True, exist_ok=True)
            classes = compile_store(java, jars, self.root / "classes")
            self._write_config(store=classes is not None)
            port = self._choose_port()
            self._port_file.write_text(f"{port}\n")
            process, log_start = self._launch(java, jars, port, classes)
            try:
                _wait_answering(process, port, timeout, lambda: self._failure(log_start))
            except BaseException:
                self._kill(process)
                raise
            self._process = process
            return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the server (SIGTERM, SIGKILL after `timeout`); False if it was not running.

        Derby writes its transaction log at every commit, so what the server acknowledged
        is found again at the next start either way."""
        with self._lock():
            pid = self._running_pid()
            if pid is None:
                self._pid_file.unlink(missing_ok=True)
                return False
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                self._signal(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 30.0):
                    raise MetastoreError(f"the Hive Metastore (pid {pid}) does not exit")
            self._pid_file.unlink(missing_ok=True)
            return True

    # -- internals -------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root.parent / "hms.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _known_port(self) -> int | None:
        if self._port is not None:
            return self._port
        try:
            return int(self._port_file.read_text())
        except (OSError, ValueError):
            return None

    def _running_pid(self) -> int | None:
        """The server's pid, or None: no pid file, or it names a process that is gone (or
        reused by another program)."""
        try:
            pid = int(self._pid_file.read_text())
        except (OSError, ValueError):
            return None
        if self._process is not None:
            self._process.poll()  # a server this object started and that died: reap it
        if not _alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        classpath = f"{self.conf_dir}{os.pathsep}".encode()
        ours = MAIN_CLASS.encode() in cmdline and any(arg.startswith(classpath) for arg in cmdline)
        return pid if ours else None

    def _write_config(self, *, store: bool) -> None:
        properties = {
            "javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={self.derby_dir / 'metastore'};create=true"
            ),
            "datanucleus.schema.autoCreateAll": "true",
            "datanucleus.connectionPoolingType": "dbcp",  # BoneCP, the default, is not shipped
            "hive.metastore.schema.verification": "false",
            "hive.metastore.schema.verification.record.version": "true",
            "hive.metastore.warehouse.dir": self.warehouse_dir.as_uri(),
            "hive.async.log.enabled": "false",  # asynchronous logging needs the LMAX disruptor
        }
        if store:  # alter_database changes a database's location too (epipe/hms/java.py)
            properties["hive.metastore.rawstore.impl"] = STORE_CLASS
        body = "".join(
            f"  <property><name>{escape(name)}</name><value>{escape(value)}</value></property>\n"
            for name, value in properties.items()
        )
        (self.conf_dir / "hive-site.xml").write_text(
            '<?xml version="1.0"?>\n<!-- written by epipe at every start -->\n'
            f"<configuration>\n{body}</configuration>\n"
        )
        # Found before the jars' own, which logs to ${java.io.tmpdir}/${user.name}/hive.log.
        (self.conf_dir / "hive-log4j2.properties").write_text(_LOG4J2)

    def _choose_port(self) -> int:
        if self._port is not None:
            if not _port_free(self._port):
                raise MetastoreError(
                    f"port {self._port} is taken: set EPIPE_HMS_PORT to a free port or unset it"
                )
            return self._port
        previous = self._known_port()
        if previous is not None and _port_free(previous):
            return previous
        return _free_port()

    def java_command(self, main_class: str, *args: str) -> list[str]:
        """The command that runs `main_class` of the metastore's jars on its configuration
        and Derby database, as the server runs (HMS's `HiveMetaTool`, say). Derby lets one
        JVM at a time open the database: run it while the server is stopped, after one
        start wrote the configuration."""
        java = find_java()
        jars = jars_dir()
        return self._argv(
            java, jars, compile_store(java, jars, self.root / "classes"), main_class, *args
        )

    def _argv(
        self, java: Path, jars: Path, classes: Path | None, main_class: str, *args: str
    ) -> list[str]:
        extra = f"{os.pathsep}{classes}" if classes is not None else ""
        return [
            str(java),
            "--add-opens=java.base/java.lang=ALL-UNNAMED",
            "-XX:TieredStopAtLevel=1",  # the quick compiler only: starts in ~60 % of the time
            f"-Dderby.stream.error.file={self.derby_dir / 'derby.log'}",
            # HMS readers and writers lock Derby's rows in opposite orders; a deadlock is
            # looked for after a wait this long (Derby's default: 20 s of a stalled call)
            f"-Dderby.locks.deadlockTimeout={DEADLOCK_TIMEOUT_S}",
            "-cp",
            f"{self.conf_dir}{os.pathsep}{jars}/*{extra}",
            main_class,
            *args,
        ]

    def _launch(
        self, java: Path, jars: Path, port: int, classes: Path | None
    ) -> tuple[subprocess.Popen[bytes], int]:
        argv = self._argv(java, jars, classes, MAIN_CLASS, "-p", str(port))
        with open(self.log_file, "ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(
                f"--- epipe: starting the Hive Metastore on port {port} at {stamp}\n".encode()
            )
            log.flush()
            log_start = log.tell()
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,  # the server outlives the command that started it
            )
        self._pid_file.write_text(f"{process.pid}\n")
        return process, log_start

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        """End a server that failed to start, and reap it."""
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self._pid_file.unlink(missing_ok=True)

    def _signal(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise MetastoreError(
                f"the Hive Metastore (pid {pid}) belongs to another user: stop it as that user"
            ) from None

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._reap(pid)
            if not _alive(pid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL)

    def _reap(self, pid: int) -> None:
        """Collect the exit status of a server that is this process's child (a zombie
        otherwise looks alive to kill(pid, 0))."""
        if self._process is not None and self._process.pid == pid:
            self._process.poll()
            return
        with suppress(ChildProcessError):  # not our child: its parent (or init) reaps it
            os.waitpid(pid, os.WNOHANG)

    def _failure(self, start: int) -> str:
        """The last lines this run wrote to the log, without Java's stack frames."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(start)
                text = log.read().decode(errors="replace")
        except OSError:
            text = ""
        lines = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not re.match(r"\s+(at |\.\.\. \d+ more)", line)
        ]
        return "\n".join([f"its last log lines ({self.log_file}):", *lines[-_LOG_LINES:]])


def local_location_prefix(home: Path) -> str:
    """Where the tables of the local metastore live: `file:` + EPIPE_HOME/hms/fs."""
    return "file:" + str((home / "hms" / "fs").resolve())


def metastore_uri(settings: Settings) -> str | None:
    """EPIPE_HMS_URI if set, else the local metastore's URL if it runs, else None."""
    if settings.hms_uri is not None:
        return settings.hms_uri
    state = LocalMetastore(settings.home, settings.hms_port).status()
    return state.url if state.running else None


def _url(port: int) -> str:
    return f"thrift://127.0.0.1:{port}"


def _alive(pid: int) -> bool:
    """True if `pid` runs (a zombie does not: it only waits for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Java's server does
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_answering(
    process: subprocess.Popen[bytes], port: int, timeout: float, log: Callable[[], str]
) -> None:
    """Wait until the server answers `get_all_databases` on `port`, or fail: it exited, or
    `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            reason = f"it exited with code {code}"
            break
        problem = _ask(port, timeout=min(30.0, max(1.0, deadline - time.monotonic())))
        if problem is None:
            return
        if time.monotonic() > deadline:
            reason = f"no answer on port {port} within {timeout:.0f} s ({problem})"
            break
        time.sleep(_POLL)
    raise MetastoreError(f"the Hive Metastore did not start: {reason}; {log()}")


def _ask(port: int, timeout: float) -> str | None:
    """None if a metastore answers on `port`, else what went wrong."""
    from pymetastore.hive_metastore import ThriftHiveMetastore
    from thrift.protocol import TBinaryProtocol
    from thrift.Thrift import TException
    from thrift.transport import TSocket, TTransport

    try:  # a plain connect first: thrift logs every refused connection as an error
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
    except OSError as exc:
        return str(exc)
    sock = TSocket.TSocket("127.0.0.1", port)
    sock.setTimeout(timeout * 1000)
    transport = TTransport.TBufferedTransport(sock)
    try:
        transport.open()
        ThriftHiveMetastore.Client(TBinaryProtocol.TBinaryProtocol(transport)).get_all_databases()
    except (TException, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        transport.close()
    return None
