"""TantivyStore: the generations of the embedded index under one directory.

Generations live in `g<N>/` directories; the symlink `current` names the live one and is
replaced atomically when a rebuild finishes. One process writes (the index consumer, or an
offline `epipe reindex`: whoever holds `writer.lock`); any number read, each reopening when
`current` moves. Each generation records the position it holds in `position.json` (written
by rename after each batch: tantivy-py's commit takes no payload).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from epipe.index.engine import EngineError
from epipe.index.position import IndexPosition
from epipe.index.tantivy.errors import map_exceptions
from epipe.index.tantivy.index import TantivyIndex
from epipe.index.tantivy.lock import WriterLock
from epipe.index.tantivy.schema import build_schema

POSITION = "position.json"
FIRST = ".first-generation.lock"  # not `g*`: only generations match that
OPEN_ATTEMPTS = 5  # a reader's opens when files vanish under it (a commit meanwhile)


class TantivyStore:
    """The generations under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.schema = build_schema()

    @property
    def _link(self) -> Path:
        return self.root / "current"

    def current_generation(self) -> str | None:
        try:
            return os.readlink(self._link)
        except OSError:
            return None

    def hold_writer(self, role: str) -> WriterLock:
        lock = WriterLock(self.root, role)
        self._remove_abandoned()
        return lock

    def _remove_abandoned(self) -> None:
        """Generations that are neither current nor the one it replaced (which readers may
        still search) were left by a rebuild that never finished."""
        current = self.current_generation()
        numbers = sorted(_number(p.name) for p in self.root.glob("g*") if _number(p.name))
        if current is None or not _number(current):
            return
        below = [n for n in numbers if n < _number(current)]
        keep = {current, *(f"g{n}" for n in below[-1:])}
        for n in numbers:
            if f"g{n}" not in keep:
                shutil.rmtree(self.root / f"g{n}", ignore_errors=True)

    def position(self, generation: str) -> IndexPosition | None:
        try:
            return IndexPosition.from_json(
                orjson.loads((self.root / generation / POSITION).read_bytes())
            )
        except (OSError, orjson.JSONDecodeError):
            return None

    def record_position(self, generation: str, position: IndexPosition) -> None:
        path = self.root / generation / POSITION
        with map_exceptions(f"record the position of {path}"):
            temporary = path.with_name(f".{POSITION}-{os.getpid()}")
            temporary.write_bytes(orjson.dumps(position.to_json()))
            os.replace(temporary, path)

    def reader(self) -> TantivyIndex:
        index = self.current(writable=False)
        index.follow = self
        return index

    def current(self, *, writable: bool) -> TantivyIndex:
        return self._open_current(writable, OPEN_ATTEMPTS)

    def _open_current(self, writable: bool, attempts: int) -> TantivyIndex:
        generation = self.current_generation()
        if generation is None:
            # The index consumer and the API start together on an empty store: one makes
            # the first generation, the others find it (each making its own, one's
            # activation removed the other's generation under it).
            with _exclusive(self.root / FIRST):
                generation = self.current_generation()
                if generation is None:
                    generation, index = self.new_generation()
                    index.close()
                    self.activate(generation)
        try:
            return TantivyIndex(
                self.root / generation, self.schema, writable=writable, generation=generation
            )
        except EngineError as exc:
            if self.current_generation() != generation:
                return self.current(writable=writable)  # swapped meanwhile: open the new one
            # A writer's commit renamed a file away while this reader opened the directory
            # (its atomic writes go through a temporary file): open again, as Lucene's
            # readers do when a commit lands during their open.
            if writable or attempts <= 1 or not _vanished(exc):
                raise
            return self._open_current(False, attempts - 1)

    def new_generation(self) -> tuple[str, TantivyIndex]:
        with map_exceptions(f"make a new generation under {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)
            existing = [_number(p.name) for p in self.root.glob("g*")]
            generation = f"g{max(existing, default=0) + 1}"
            path = self.root / generation
            path.mkdir()
        return generation, TantivyIndex(path, self.schema, writable=True, generation=generation)

    def activate(self, generation: str) -> None:
        """Point `current` at `generation` (atomic rename). The generation it replaces stays
        until the next swap, for readers that resolved the link just before; older ones go
        (a reader holding one open keeps its files)."""
        previous = self.current_generation()
        with map_exceptions(f"make {generation} current under {self.root}"):
            temporary = self.root / f".current-{os.getpid()}"
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(generation)
            os.replace(temporary, self._link)
            for old in self.root.glob("g*"):
                if old.name not in (generation, previous) and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)

    def discard(self, generation: str) -> None:
        if generation != self.current_generation():
            shutil.rmtree(self.root / generation, ignore_errors=True)


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An flock on `path` while the block runs (waiting for it; the kernel releases it if
    the process dies)."""
    with map_exceptions(f"lock {path}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with map_exceptions(f"lock {path}"):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file releases the flock


def _vanished(exc: EngineError) -> bool:
    return "No such file or directory" in str(exc)


def _number(name: str) -> int:
    """N of a generation `gN` (0 for any other name)."""
    return int(name[1:]) if name.startswith("g") and name[1:].isdigit() else 0
