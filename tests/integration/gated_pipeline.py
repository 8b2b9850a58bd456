"""The pipeline of `epipe run --events-file`, stopped at a chosen point, to kill -9 there.

Run as `python -m tests.integration.gated_pipeline DSN HOME SLOT EVENTS_FILE POINT`. Its
events-file consumer stops for good in the flush of the batch that creates an inode named
`gate`: before writing it (POINT=before: published, not durable) or after (POINT=after:
durable, not yet confirmed). The journal HOME/journal records, in order, every read
("read"), every position the tailer confirms to the source ("confirm N") and the stop
("stopped"), so a test knows what the source was told before it kills the process.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from epipe import events as ev
from epipe import wiring
from epipe.events import Event
from epipe.pipeline.runner import ConsumerSpec
from epipe.settings import Settings
from epipe.sink import Rejection, Sink
from epipe.sink.events_file import EventsFileSink
from epipe.source import Batch, Source

GATE = "gate"


class Journal:
    def __init__(self, path: Path) -> None:
        self._file = open(path, "a")  # noqa: SIM115 - open until the process is killed
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()  # in the kernel: a SIGKILL does not lose it


def is_gate(event: Event) -> bool:
    return event.type == ev.INODE_CREATED and event.data["inode"]["name"] == GATE


class JournaledSource:
    """The source, with every confirmation journaled before it is passed on. The batch with
    the gate's creation reaches past its commit, so the tailer holds a position past the gate
    while the gate is not flushed yet (else it might flush before it read the commit)."""

    def __init__(self, source: Source, journal: Journal) -> None:
        self._source = source
        self._journal = journal

    def open(self) -> int:
        return self._source.open()

    def read(self, max_events: int, timeout: float) -> Batch:
        self._journal.write("read")
        batch = self._source.read(max_events, timeout)
        gate = max((e.lsn for e in batch.events if is_gate(e)), default=None)
        events, records = list(batch.events), batch.records
        while gate is not None and batch.position <= gate:
            batch = self._source.read(max_events, timeout)
            events += batch.events
            records += batch.records
        return Batch(events, batch.position, records)

    def confirm(self, position: int) -> None:
        self._journal.write(f"confirm {position}")
        self._source.confirm(position)

    def keepalive(self) -> None:
        self._journal.write("keepalive")
        self._source.keepalive()

    def close(self) -> None:
        self._source.close()


class GatedSink:
    """An events-file sink that never returns from the flush of the gate's batch."""

    def __init__(self, sink: Sink, journal: Journal, point: str) -> None:
        self._sink = sink
        self._journal = journal
        self._point = point
        self._gate = False

    def add(self, event: Event) -> None:
        self._gate = self._gate or is_gate(event)
        self._sink.add(event)

    def flush(self) -> list[Rejection]:
        if self._gate and self._point == "before":
            self._stop()
        rejections = self._sink.flush()
        if self._gate:
            self._stop()
        return rejections

    def _stop(self) -> None:
        self._journal.write("stopped")
        threading.Event().wait()  # until the test kills the process

    def close(self) -> None:
        self._sink.close()


def main(dsn: str, home: str, slot: str, events_file: str, point: str) -> None:
    assert point in ("before", "after"), point
    settings = Settings(dsn=dsn, slot=slot, home=Path(home), heartbeat_interval=0.2)  # type: ignore[arg-type]
    journal = Journal(Path(home) / "journal")
    source = JournaledSource(wiring.open_source(settings, dsn), journal)
    sink = ConsumerSpec(
        "events-file", lambda: GatedSink(EventsFileSink(Path(events_file)), journal, point)
    )
    wiring.runner(settings, dsn, [sink], source=source).run(threading.Event())


if __name__ == "__main__":
    main(*sys.argv[1:])
