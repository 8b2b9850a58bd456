"""The bus: where the source publishes events and consumers subscribe to them.

Three adapters: `InProcessBus` (embedded mode: consumers are threads of the same process),
`KafkaBus` (scale-out: topics epipe.fs and epipe.prov, key = inode id), both passing
tests/contract/test_bus_contract.py, and `ConnectBus` (scale-out with Kafka Connect as the
tailer: consumers read the topics of Debezium's connector; it publishes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from epipe.errors import EpipeError
from epipe.events import Event

FS_TOPIC = "epipe.fs"
PROV_TOPIC = "epipe.prov"


class BusError(EpipeError):
    """The bus cannot accept or deliver events (a broker is down, a consumer failed)."""


OnInvalid = Callable[[bytes, str], None]  # a record that is not an event, and why


class Bus(Protocol):
    """Where the tailer publishes and consumers subscribe."""

    def publish(self, events: Sequence[Event]) -> None:
        """Hand events on, in order; they are durable only after `flush`."""

    def flush(self, timeout: float) -> bool:
        """True once every published event is durably accepted (Kafka: acknowledged by the
        brokers; in-process: applied by every consumer); False if not yet after `timeout`
        seconds; BusError if it never will be."""

    def subscribe(self, name: str, on_invalid: OnInvalid) -> Subscription:
        """Consumer `name`'s subscription (Kafka: a member of consumer group `name`).
        Records that are not events go to `on_invalid`, never stop the consumer."""

    def close(self) -> None: ...


class Subscription(Protocol):
    """A consumer's side of the bus: poll, apply, then commit."""

    def poll(self, max_events: int, timeout: float) -> list[Event]:
        """The next events (possibly none), in order per inode."""

    def commit(self) -> None:
        """Mark every event returned by `poll` so far as applied."""

    def position(self) -> tuple[int, str] | None:
        """(lsn, committed_at) up to which every event polled so far reaches: once they are
        applied, every change before that position is applied. None until known."""

    def parts(self) -> tuple[dict[str, tuple[int, str]], frozenset[str]]:
        """Where this member of its group is on each part of the stream it holds (the
        position of the last event polled there), and every part the group reads: the group
        has applied a position once every part has reached it."""

    def fail(self, error: BaseException) -> None:
        """Give up: the consumer cannot apply what it polled."""

    def close(self) -> None: ...


def topic_of(event: Event) -> str:
    return PROV_TOPIC if event.type == "prov.op" else FS_TOPIC
