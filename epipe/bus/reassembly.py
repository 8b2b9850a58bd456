"""Commit order back from Kafka Connect's topics: pure, no I/O.

Debezium under Kafka Connect writes each captured table to a topic of its own
(`<prefix>.public.inodes`, `…xattrs`, `…prov_ops`); with `provide.transaction.metadata` and
`topic.transaction=message` (compose/debezium/epipe-connector.json) every transaction's BEGIN
and END and every logical message go to one control topic, `<prefix>.message`, of one
partition: in log order. Kafka keeps order within a partition only, so a reader of all of
them may see an inode's row after its xattr's, or a transaction's rows after the next one's
END. Each row names its transaction (`transaction.id`, `total_order`); each END says how many
rows it had. So the control topic is followed in order:

- an END is handed on once all its transaction's rows were read, rows in `total_order`;
- a message is handed on when it is at the head (every commit before it was);
- snapshot rows (no transaction) are handed on as read, and the control topic waits while a
  snapshot is open (its last row not yet read).

Kafka Connect delivers at least once: after its restart a transaction may come again, whole
or in part. A row or END of a transaction already handed on goes on alone (consumers re-read
the current state of what it touches); a head whose rows stay short once everything on the
broker has been read is given up (`give_up_head`; the reader decides when).

`cut()` gives, when nothing is held, the offset of the next record of every partition read:
committing exactly those offsets loses nothing and repeats nothing.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import orjson

Part = tuple[str, int]  # (topic, partition)
Envelope = tuple[bytes, dict[str, Any]]  # (the record's value, parsed)
Invalid = tuple[str, bytes, str]  # (topic[partition]@offset, the value, why)
_NOT_SNAPSHOT = (None, False, "false")
_REMEMBERED = 100_000  # transactions handed on whose copies are recognised


@dataclass
class _End:
    id: str
    count: int
    envelope: Envelope


class Reassembler:
    def __init__(self, control: str) -> None:
        self._control_topic = control
        self._open: dict[str, dict[int, Envelope]] = {}  # txId -> total_order -> row
        self._control: deque[_End | Envelope] = deque()  # ENDs and messages, in log order
        self._snapshot: int | None = None  # the snapshot whose rows come (its last not read)
        self._snapshots_over: set[int] = set()
        self._handed: OrderedDict[str, None] = OrderedDict()  # transactions handed on
        self._next: dict[Part, int] = {}  # the offset after the last record read
        self._out: list[Envelope] = []
        self.invalid: list[Invalid] = []

    # -- in -------------------------------------------------------------------------------

    def add(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        """One record as read from `topic`[`partition`] at `offset`."""
        self._next[(topic, partition)] = offset + 1
        if value is None:
            return  # a tombstone: the delete before it said it all
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            self.invalid.append((f"{topic}[{partition}]@{offset}", value, f"not JSON: {exc}"))
            return
        if not isinstance(parsed, dict):
            self.invalid.append((f"{topic}[{partition}]@{offset}", value, "not a JSON object"))
            return
        if isinstance(parsed.get("payload"), dict) and "schema" in parsed:
            parsed = parsed["payload"]  # JsonConverter with schemas.enable=true
        envelope = (value, parsed)
        if topic == self._control_topic:
            if "status" in parsed:
                self._marker(envelope)
            else:
                self._control.append(envelope)  # a message
        else:
            self._row(envelope)
        self._release()

    def _marker(self, envelope: Envelope) -> None:
        marker = envelope[1]
        if marker.get("status") != "END":
            return  # BEGIN: the rows and the END say everything
        id_ = _transaction_id(marker.get("id"))
        if id_ in self._handed:
            return  # a copy of one handed on
        self._control.append(_End(id_, _int(marker.get("event_count")), envelope))

    def _row(self, envelope: Envelope) -> None:
        row = envelope[1]
        source = row.get("source")
        snapshot = source.get("snapshot") if isinstance(source, dict) else None
        if snapshot not in _NOT_SNAPSHOT:
            assert isinstance(source, dict)
            # a snapshot's rows share its LSN; its last may be read before rows of others
            at = _int(source.get("lsn"))
            if snapshot == "last":
                self._snapshots_over.add(at)
                self._snapshot = None
            elif at not in self._snapshots_over:
                self._snapshot = at
            self._out.append(envelope)
            return
        transaction = row.get("transaction")
        if not isinstance(transaction, dict) or transaction.get("id") is None:
            self._out.append(envelope)  # no transaction metadata: alone
            return
        id_ = _transaction_id(transaction.get("id"))
        if id_ in self._handed:
            self._out.append(envelope)  # a copy of a transaction handed on: alone
            return
        open_ = self._open.setdefault(id_, {})
        open_[_int(transaction.get("total_order"))] = envelope  # a copy replaces

    # -- out ------------------------------------------------------------------------------

    def take(self) -> list[Envelope]:
        """What may be handed on now, in order."""
        out, self._out = self._out, []
        return out

    @property
    def stalled(self) -> str | None:
        """The transaction whose END was read but not all of its rows, if it holds others up."""
        head = self._control[0] if self._control else None
        if self._snapshot is not None or not isinstance(head, _End):
            return None
        return None if self._complete(head) else head.id

    def give_up_head(self) -> tuple[str, int, int]:
        """Hand on the stalled head with the rows it has; (id, rows had, rows named)."""
        head = self._control[0]
        assert isinstance(head, _End)
        had = len(self._open.get(head.id, {}))
        self._hand_on(head)
        self._release()
        return head.id, had, head.count

    def cut(self) -> dict[Part, int] | None:
        """Where every partition read may be committed, if nothing read is held."""
        if self._open or self._control:
            return None
        return dict(self._next)

    @property
    def held(self) -> int:
        return sum(len(rows) for rows in self._open.values()) + len(self._control)

    def _release(self) -> None:
        control = self._control
        while control and self._snapshot is None:
            head = control[0]
            if not isinstance(head, _End):
                control.popleft()
                self._out.append(head)  # a message: every commit before it went
            elif self._complete(head):
                self._hand_on(head)
            else:
                return

    def _complete(self, end: _End) -> bool:
        return len(self._open.get(end.id, {})) >= end.count

    def _hand_on(self, end: _End) -> None:
        self._control.popleft()
        rows = self._open.pop(end.id, {})
        self._out.extend(rows[order] for order in sorted(rows))
        self._out.append(end.envelope)
        self._handed[end.id] = None
        if len(self._handed) > _REMEMBERED:
            self._handed.popitem(last=False)


def _transaction_id(value: object) -> str:
    """The transaction's id (txId) in a row's `transaction.id` or a marker's `id`: they
    differ after the colon (a row's or BEGIN's LSN, the END's commit LSN)."""
    return str(value).partition(":")[0]


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0
