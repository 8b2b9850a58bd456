"""A PostgreSQL snapshot as text (`xmin:xmax:xip,...`): which transactions it saw."""

from __future__ import annotations

from typing import NamedTuple


class Snapshot(NamedTuple):
    """A PostgreSQL snapshot (`xmin:xmax:xip,...`, 64-bit transaction ids)."""

    xmin: int
    xmax: int
    running: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(str(x) for x in sorted(self.running))}"

    def saw(self, xid: int) -> bool:
        """Whether a transaction (its 32-bit id, as events carry it) had committed when this
        snapshot was taken, so that what was read in it holds its effects."""
        full = (self.xmax >> 32 << 32) | xid  # widened to the id nearest xmax
        if full > self.xmax + (1 << 31):
            full -= 1 << 32
        elif full < self.xmax - (1 << 31):
            full += 1 << 32
        if full >= self.xmax:
            return False
        return full < self.xmin or full not in self.running
