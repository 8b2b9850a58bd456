"""The writer lock of a tantivy store: one process writes to the index at a time.

The index consumer holds it while it runs, an offline `epipe reindex` while it rebuilds.
It is an flock on `writer.lock` (released by the kernel when the process dies, so a killed
holder never leaves it behind); the file says who holds it, for the message of whoever
finds it held.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from epipe.index.engine import IndexBusy
from epipe.index.tantivy.errors import map_exceptions


class WriterLock:
    exclusive = True  # holding it proves that no other process writes to this store

    def __init__(self, root: Path, role: str) -> None:
        path = root / "writer.lock"
        with map_exceptions(f"open the writer lock {path}"):
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            role_held, _, pid = holder.rpartition(" pid ")
            raise IndexBusy(role_held or "another process", pid or "?", path) from None
        try:  # who holds it is only a note for the message: a full disk does not stop us
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{role} pid {os.getpid()}".encode(), 0)
        except OSError:
            pass
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
