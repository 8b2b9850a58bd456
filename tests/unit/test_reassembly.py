"""Commit order back from Kafka Connect's topics (epipe/bus/reassembly.py): pure.

Records are shaped as Debezium 3.6's Postgres connector writes them with
`provide.transaction.metadata` (recorded on this machine): a row's `transaction.id` is
`txId:<an LSN of its own>`, a BEGIN's `txId:<begin LSN>`, an END's `txId:<commit LSN>`."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from epipe.bus.reassembly import Reassembler
from epipe.events import Event
from epipe.source.envelope import EnvelopeTranslator

TX = MSG = "p.message"  # topic.transaction=message: markers and messages, in order
INODES, XATTRS, PROV = "p.public.inodes", "p.public.xattrs", "p.public.prov_ops"
TABLE_TOPIC = {"inodes": INODES, "xattrs": XATTRS, "prov_ops": PROV}
Record = tuple[str, int, bytes]  # (topic, partition, value)


def value(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def row(
    table: str, inode: int, tx: int, lsn: int, order: int, previous: int, snapshot: str = "false"
) -> bytes:
    after: dict[str, Any] = {"id": inode, "parent_id": 1, "name": f"f{inode}", "kind": "f"}
    if table == "xattrs":
        after = {"inode_id": inode, "namespace": "user", "name": "n", "value": '{"a": 1}'}
    if table == "prov_ops":
        after = {"id": lsn, "inode_id": inode, "op": "create", "at": "2026-12-01T10:00:00Z"}
    streamed = snapshot == "false"
    return value(
        {
            "before": None,
            "after": after,
            "op": "c" if streamed else "r",
            "source": {
                "snapshot": snapshot,
                "schema": "public",
                "table": table,
                "txId": tx,
                "lsn": lsn,
                "ts_ms": 1796120394082,
                "sequence": orjson.dumps([str(previous), str(lsn)]).decode(),
            },
            "transaction": {"id": f"{tx}:{lsn}", "total_order": order, "data_collection_order": 1}
            if streamed
            else None,
        }
    )


def marker(status: str, tx: int, lsn: int, count: int | None = None) -> bytes:
    return value({"status": status, "id": f"{tx}:{lsn}", "event_count": count})


def message(lsn: int, prefix: str = "epipe.position") -> bytes:
    return value(
        {
            "op": "m",
            "source": {"txId": None, "lsn": lsn, "snapshot": "false", "sequence": "[]"},
            "message": {"prefix": prefix, "content": ""},
        }
    )


class History:
    """A change log as the connector writes it: transactions of rows on the table topics
    (partitioned by inode), BEGIN/END on the transaction topic, messages between them."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self.records: list[Record] = []
        self.lsn = 1000
        self.tx = 500
        self.commit = 900  # the end of the commit before

    def transaction(self, changes: list[tuple[str, int]]) -> None:
        self.tx += 1
        self.records.append((TX, 0, marker("BEGIN", self.tx, self.lsn)))
        for order, (table, inode) in enumerate(changes, start=1):
            self.lsn += 10
            data = row(table, inode, self.tx, self.lsn, order, self.commit)
            self.records.append((TABLE_TOPIC[table], inode % self.partitions, data))
        self.lsn += 10
        self.commit = self.lsn
        self.records.append((TX, 0, marker("END", self.tx, self.lsn, len(changes))))

    def message(self) -> None:
        self.lsn += 10
        self.records.append((MSG, 0, message(self.lsn)))


def interleave(records: list[Record], rng: random.Random) -> list[tuple[str, int, int, bytes]]:
    """The records as a reader of all partitions may see them: each partition in order,
    the partitions mixed at random; with their offsets."""
    queues: dict[tuple[str, int], list[tuple[str, int, int, bytes]]] = {}
    for topic, partition, data in records:
        queue = queues.setdefault((topic, partition), [])
        queue.append((topic, partition, len(queue), data))
    out = []
    while queues:
        key = rng.choice(sorted(queues))
        out.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    return out


def reassembled(records: list[tuple[str, int, int, bytes]]) -> list[bytes]:
    reassembler = Reassembler(TX)
    out: list[bytes] = []
    for topic, partition, offset, data in records:
        reassembler.add(topic, partition, offset, data)
        out.extend(raw for raw, _ in reassembler.take())
    assert reassembler.cut() is not None and reassembler.held == 0
    return out


def commit_order(records: list[Record]) -> list[bytes]:
    """What a reader of one ordered stream hands on: everything but BEGINs, in log order."""
    return [data for topic, _, data in records if b'"BEGIN"' not in data]


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(
        st.one_of(
            st.just("message"),
            st.lists(
                st.tuples(st.sampled_from(sorted(TABLE_TOPIC)), st.integers(1, 20)),
                min_size=0,
                max_size=6,
            ),
        ),
        max_size=25,
    ),
    seed=st.integers(0, 2**32),
)
def test_any_interleaving_of_the_partitions_gives_commit_order(shape: list[Any], seed: int) -> None:
    history = History()
    for step in shape:
        if step == "message":
            history.message()
        else:
            history.transaction(step)
    seen = interleave(history.records, random.Random(seed))
    assert reassembled(seen) == commit_order(history.records)


def test_a_transaction_waits_for_its_rows_and_the_next_one_waits_for_it() -> None:
    history = History()
    history.transaction([("inodes", 1), ("xattrs", 1)])
    history.transaction([("inodes", 2)])
    begin1, inode1, xattr1, end1, begin2, inode2, end2 = history.records
    reassembler = Reassembler(TX)
    for offset, (topic, partition, data) in enumerate([begin1, end1, begin2, end2, inode2]):
        reassembler.add(topic, partition, offset, data)
    assert reassembler.take() == []
    assert reassembler.stalled == "501"
    assert reassembler.cut() is None
    reassembler.add(xattr1[0], xattr1[1], 0, xattr1[2])
    assert reassembler.take() == []  # one row of its two
    reassembler.add(inode1[0], inode1[1], 9, inode1[2])
    handed = [raw for raw, _ in reassembler.take()]
    assert handed == [inode1[2], xattr1[2], end1[2], inode2[2], end2[2]]
    assert reassembler.cut() == {(TX, 0): 4, (INODES, 2): 5, (XATTRS, 1): 1, (INODES, 1): 10}


def test_a_message_waits_for_the_commits_before_it() -> None:
    history = History()
    history.transaction([("inodes", 1)])
    history.message()
    begin, inode, end, mark = history.records
    reassembler = Reassembler(TX)
    reassembler.add(TX, 0, 0, begin[2])
    reassembler.add(TX, 0, 1, end[2])
    reassembler.add(TX, 0, 2, mark[2])
    assert reassembler.take() == []
    reassembler.add(*inode[:2], 0, inode[2])
    assert [raw for raw, _ in reassembler.take()] == [inode[2], end[2], mark[2]]


def test_a_message_inside_a_transaction_open_longer_goes_before_its_commit() -> None:
    reassembler = Reassembler(TX)
    reassembler.add(TX, 0, 0, marker("BEGIN", 7, 1000))
    reassembler.add(INODES, 0, 0, row("inodes", 1, 7, 1010, 1, 900))
    reassembler.add(TX, 0, 1, message(1500))
    assert [orjson.loads(raw)["op"] for raw, _ in reassembler.take()] == ["m"]
    reassembler.add(TX, 0, 2, marker("END", 7, 2000, 1))
    assert [orjson.loads(raw).get("status") for raw, _ in reassembler.take()] == [None, "END"]


def test_snapshot_rows_go_as_read_and_commits_wait_for_its_last_row() -> None:
    reassembler = Reassembler(TX)
    reassembler.add(INODES, 0, 0, row("inodes", 1, 400, 800, 0, 0, snapshot="first"))
    reassembler.add(TX, 0, 0, marker("END", 401, 900, 0))
    assert len(reassembler.take()) == 1 and reassembler.stalled is None
    reassembler.add(XATTRS, 0, 0, row("xattrs", 1, 400, 800, 0, 0, snapshot="last"))
    assert [orjson.loads(raw).get("status") for raw, _ in reassembler.take()] == [None, "END"]
    # a row of the same snapshot read after its last (another topic) opens nothing again
    reassembler.add(INODES, 0, 1, row("inodes", 2, 400, 800, 0, 0, snapshot="true"))
    reassembler.add(TX, 0, 1, marker("END", 402, 950, 0))
    assert [orjson.loads(raw).get("status") for raw, _ in reassembler.take()] == [None, "END"]


def test_copies_after_a_connect_restart_never_hold_the_stream() -> None:
    history = History()
    history.transaction([("inodes", 1), ("xattrs", 1)])
    begin, inode, xattr, end = history.records
    reassembler = Reassembler(TX)
    for offset, (topic, partition, data) in enumerate([begin, inode, xattr, end]):
        reassembler.add(topic, partition, offset, data)
    assert len(reassembler.take()) == 3
    # sent again, in part (the connector's offsets were behind): the END is dropped, the row
    # goes on alone, nothing waits
    for offset, (topic, partition, data) in enumerate([begin, xattr, end], start=10):
        reassembler.add(topic, partition, offset, data)
    assert [raw for raw, _ in reassembler.take()] == [xattr[2]]
    assert reassembler.stalled is None and reassembler.cut() is not None


def test_a_stalled_head_can_be_given_up() -> None:
    history = History()
    history.transaction([("inodes", 1), ("xattrs", 1)])
    history.transaction([("inodes", 2)])
    _begin1, inode1, _lost, end1, _begin2, inode2, end2 = history.records
    reassembler = Reassembler(TX)
    for offset, (topic, partition, data) in enumerate([inode1, end1, inode2, end2]):
        reassembler.add(topic, partition, offset, data)
    assert reassembler.stalled == "501"
    assert reassembler.give_up_head() == ("501", 1, 2)
    assert [raw for raw, _ in reassembler.take()] == [inode1[2], end1[2], inode2[2], end2[2]]
    assert reassembler.stalled is None


def test_what_is_not_a_change_event_is_set_aside_and_the_stream_goes_on() -> None:
    reassembler = Reassembler(TX)
    reassembler.add(INODES, 0, 0, b"{not json")
    reassembler.add(INODES, 0, 1, b"[1, 2]")
    reassembler.add(INODES, 0, 2, None)  # a tombstone
    reassembler.add(TX, 0, 0, marker("END", 9, 100, 0))
    assert [why for _, _, why in reassembler.invalid][1] == "not a JSON object"
    assert reassembler.invalid[0][0] == f"{INODES}[0]@0"
    assert len(reassembler.take()) == 1
    assert reassembler.cut() == {(INODES, 0): 3, (TX, 0): 1}


def test_values_with_schemas_are_read_too() -> None:
    reassembler = Reassembler(TX)
    wrapped = b'{"schema": {"type": "struct"}, "payload": ' + marker("END", 9, 100, 0) + b"}"
    reassembler.add(TX, 0, 0, wrapped)
    [(raw, parsed)] = reassembler.take()
    assert raw == wrapped and parsed["status"] == "END"


def events(translator: EnvelopeTranslator, handed: list[bytes]) -> list[Event]:
    return [e for raw in handed for e in translator.envelope(orjson.loads(raw))]


def test_a_reader_started_again_at_a_cut_gives_the_events_the_same_positions() -> None:
    """The commit's metadata keeps the translator's positions: events after the cut get
    the positions they got before (the lineage graph counts each position once)."""
    history = History()
    history.transaction([("inodes", 1), ("prov_ops", 1)])
    history.message()  # positions after it are above it
    history.transaction([("inodes", 2), ("prov_ops", 2)])
    whole = commit_order(history.records)
    first = EnvelopeTranslator(0)
    before = events(first, whole[:4])  # up to the message: a cut
    after = events(first, whole[4:])
    again = EnvelopeTranslator(0)
    events(again, whole[:4])
    restarted = EnvelopeTranslator(again.position, last=again.last)
    assert events(restarted, whole[4:]) == after
    assert min(e.lsn for e in after) > max(e.lsn for e in before)
    assert events(EnvelopeTranslator(0), whole[4:]) != after  # without them, they differ
