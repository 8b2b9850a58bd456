"""TantivyStore: the generations of the embedded index under one directory.

Generations live in `g<N>/` directories; the symlink `current` names the live one and is
replaced atomically when a rebuild finishes. One process writes (the index consumer); any
number read, each reopening when `current` moves.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from epipe.index.engine import EngineError
from epipe.index.tantivy.errors import map_exceptions
from epipe.index.tantivy.index import TantivyIndex
from epipe.index.tantivy.schema import build_schema


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

    def reader(self) -> TantivyIndex:
        index = self.current(writable=False)
        index.follow = self
        return index

    def current(self, *, writable: bool) -> TantivyIndex:
        generation = self.current_generation()
        if generation is None:
            generation, index = self.new_generation()
            index.close()
            self.activate(generation)
        try:
            return TantivyIndex(
                self.root / generation, self.schema, writable=writable, generation=generation
            )
        except EngineError:
            if self.current_generation() == generation:
                raise
            return self.current(writable=writable)  # swapped meanwhile: open the new one

    def new_generation(self) -> tuple[str, TantivyIndex]:
        with map_exceptions(f"make a new generation under {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)
            existing = [int(p.name[1:]) for p in self.root.glob("g*") if p.name[1:].isdigit()]
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
