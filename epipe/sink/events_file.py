"""EventsFileSink: every event as one JSON line appended to a file (an archive of the
change stream, handy to inspect or to feed other tools). `flush` fsyncs, so what the
consumer committed is on disk; a torn last line from a crash is cut off at the next open.
"""

from __future__ import annotations

import os
from pathlib import Path

from epipe.events import Event
from epipe.events.codec import encode
from epipe.sink import Rejection


class EventsFileSink:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_line(path)
        self._file = open(path, "ab")  # noqa: SIM115 - closed by close()
        self._buffer: list[bytes] = []

    def add(self, event: Event) -> None:
        self._buffer.append(encode(event))

    def flush(self) -> list[Rejection]:
        if self._buffer:
            self._file.write(b"\n".join(self._buffer) + b"\n")
            self._buffer.clear()
        self._file.flush()
        os.fsync(self._file.fileno())
        return []

    def close(self) -> None:
        self._file.close()


def _cut_torn_line(path: Path) -> None:
    """Drop a last line without its newline (a write interrupted by a crash)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        position = size
        while position > 0:
            step = min(65536, position)
            handle.seek(position - step)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = position - step + newline + 1
                if end != size:
                    handle.truncate(end)
                return
            position -= step
        handle.truncate(0)
