"""Debezium's change events -> domain events (epipe/source/envelope.py): pure translation.

The envelopes are shaped as the Postgres connector 3.6 writes them with JSON converters
without schemas (recorded on this machine; DESIGN-NOTES.md, "Debezium")."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from epipe import events as ev
from epipe.lsn import lsn_to_str
from epipe.source.envelope import UNAVAILABLE, EnvelopeError, EnvelopeTranslator, zoned
from epipe.source.translate import timestamptz

START = 29_700_000


def source(
    table: str | None, lsn: int, tx: int | None, previous: int | None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": "3.6.3.Final",
        "connector": "postgresql",
        "name": "epipe",
        "ts_ms": 1796120394082,
        "snapshot": "false",
        "db": "epipe",
        "sequence": orjson.dumps([None if previous is None else str(previous), str(lsn)]).decode(),
        "schema": "public",
        "table": table,
        "txId": tx,
        "lsn": lsn,
    }
    out.update(extra)
    return out


def change(op: str, table: str, lsn: int, tx: int, previous: int | None, **rows: Any) -> bytes:
    return orjson.dumps(
        {
            "before": rows.get("before"),
            "after": rows.get("after"),
            "source": source(table, lsn, tx, previous),
            "op": op,
            "ts_ms": 1796120394100,
        }
    )


def marker(status: str, tx: int, lsn: int) -> bytes:
    return orjson.dumps({"status": status, "id": f"{tx}:{lsn}", "event_count": None})


def message(lsn: int, prefix: str, content: bytes, tx: int | None = None) -> bytes:
    return orjson.dumps(
        {
            "op": "m",
            "source": source("", lsn, tx, lsn),
            "message": {"prefix": prefix, "content": base64.b64encode(content).decode()},
        }
    )


INODE = {
    "id": 3,
    "parent_id": 2,
    "size": 0,
    "mtime": "2026-12-01T10:19:54.630847Z",
    "ctime": "2026-12-01T10:19:54.630847Z",
    "owner_id": 0,
    "group_id": 0,
    "mode": 420,
    "kind": "f",
    "name": "x.txt",
}


def feed(translator: EnvelopeTranslator, *values: bytes | None) -> list[ev.Event]:
    return [event for value in values for event in translator.feed(value)]


def test_a_transaction_is_one_group_at_a_position_past_the_commit_before_it() -> None:
    t = EnvelopeTranslator(START)
    op = {
        "id": 2,
        "at": "2026-12-01T10:19:54.630847Z",
        "inode_id": 3,
        "parent_id": 2,
        "user_id": 0,
        "op": "create",
        "app_id": None,
        "name": "x.txt",
        "detail": '{"size": 0}',
    }
    events = feed(
        t,
        marker("BEGIN", 767, START + 100),
        change("c", "inodes", START + 100, 767, START, after=INODE),
        change("c", "prov_ops", START + 400, 767, START, after=op),
    )
    assert t.position == START  # not past the transaction before its END
    assert [e.type for e in events] == [ev.INODE_CREATED, ev.PROV_OP]
    assert [(e.lsn, e.seq, e.xid) for e in events] == [(START + 1, 0, 767), (START + 1, 1, 767)]
    inode = events[0].data["inode"]
    assert inode["kind"] == "file" and inode["mtime"] == "2026-12-01T10:19:54.630847+00:00"
    assert events[1].data["op"]["detail"] == {"size": 0}  # jsonb arrives as its text
    assert events[0].committed_at.startswith("2026-12-01T10:19:54.082")
    feed(t, marker("END", 767, START + 800))
    assert t.position == START + 800 and not t.in_transaction

    # the next transaction: past the END (and never below what was given before)
    moved = {**INODE, "name": "y.txt", "ctime": "2026-12-01T10:19:56Z"}
    events = feed(
        t,
        marker("BEGIN", 769, START + 900),
        change("u", "inodes", START + 900, 769, START + 800, before=INODE, after=moved),
    )
    assert [e.type for e in events] == [ev.INODE_MOVED]
    assert events[0].lsn == START + 801 and START + 800 < events[0].lsn < START + 1200
    assert events[0].data["old_name"] == "x.txt" and events[0].data["new_name"] == "y.txt"
    assert set(events[0].data["changed"]) == {"name", "ctime"}


def test_positions_increase_through_messages_and_transactions_without_a_sequence() -> None:
    t = EnvelopeTranslator(START)
    read = orjson.dumps(
        {
            "inode_id": 3,
            "parent_id": 2,
            "user_id": 0,
            "app_id": "a",
            "name": "x.txt",
            "at": "2026-12-01T10:19:55+00:00",
        }
    )
    events = feed(t, message(START + 50, "epipe.prov.read", read))
    assert t.position == START + 50  # delivered between transactions
    assert [(e.type, e.lsn, e.seq, e.inode_id) for e in events] == [(ev.PROV_OP, START + 50, 0, 3)]
    assert events[0].data["op"]["lsn"] == lsn_to_str(START + 50)
    assert events[0].data["op"]["op"] == "read" and events[0].data["op"]["id"] is None
    # the first change after a start has no commit before it in `sequence`
    events = feed(t, change("c", "inodes", START + 60, 800, None, after=INODE))
    assert events[0].lsn == START + 51
    # a transactional message is not epipe's: no event, no position
    assert feed(t, marker("END", 800, START + 90), message(START + 95, "other", b"x", tx=801)) == []
    assert t.position == START + 90


def test_unchanged_toast_values_and_key_only_deletes_of_xattrs() -> None:
    t = EnvelopeTranslator(START)
    key = {"inode_id": 3, "namespace": "user", "name": "k"}
    events = feed(
        t,
        change("u", "xattrs", START + 10, 5, START, after={**key, "value": UNAVAILABLE}),
        change("d", "xattrs", START + 20, 5, START, before={**key, "value": ""}),
    )
    assert [e.type for e in events] == [ev.XATTR_SET, ev.XATTR_REMOVED]
    assert events[0].data == {"xattr": key, "unchanged": ["value"]}
    assert events[1].data == {"xattr": key}  # the placeholder value is not taken


def test_tombstones_heartbeats_and_uncaptured_tables_yield_nothing() -> None:
    t = EnvelopeTranslator(START)
    assert t.feed(None) == []
    assert t.feed(orjson.dumps({"ts_ms": 1796120384996})) == []
    assert feed(t, change("c", "users", START + 5, 9, START, after={"id": 1})) == []


def test_a_read_logged_by_the_provenance_consumer_is_not_an_event_again() -> None:
    t = EnvelopeTranslator(START)
    logged = {"id": 9, "op": "read", "inode_id": 3, "lsn": "AAAAAAHJkZA="}
    assert feed(t, change("c", "prov_ops", START + 5, 9, START, after=logged)) == []
    snapshot = orjson.dumps(
        {
            "before": None,
            "after": logged,
            "op": "r",
            "source": source("prov_ops", START, 9, None, snapshot="last"),
        }
    )
    assert [e.type for e in feed(t, snapshot)] == [ev.PROV_OP]  # a snapshot takes every row


@pytest.mark.parametrize("resync", [False, True])
def test_a_snapshot_is_one_group_and_its_last_row_moves_the_position(resync: bool) -> None:
    t = EnvelopeTranslator(START, resync=resync)

    def row(lsn: int, flag: str, inode: dict[str, Any]) -> bytes:
        return orjson.dumps(
            {
                "before": None,
                "after": inode,
                "op": "r",
                "source": source("inodes", lsn, 700, None, snapshot=flag),
            }
        )

    events = feed(t, row(START + 500, "first", INODE), row(START + 500, "last", {**INODE, "id": 4}))
    types = [e.type for e in events]
    assert types == ([ev.TABLE_TRUNCATED] if resync else []) + [ev.INODE_CREATED] * 2
    assert all(e.snapshot and e.lsn == START + 1 for e in events)
    assert [e.seq for e in events] == list(range(len(events)))
    assert t.position == START + 500 and not t.in_transaction and t.snapshot_done
    after = feed(t, change("c", "inodes", START + 600, 701, START + 500, after=INODE))
    assert after[0].lsn == START + 501 and not after[0].snapshot


def test_a_truncation_of_a_captured_table() -> None:
    t = EnvelopeTranslator(START)
    events = feed(t, change("t", "xattrs", START + 5, 9, START))
    assert [(e.type, e.data["tables"]) for e in events] == [(ev.TABLE_TRUNCATED, ["xattrs"])]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (change("x", "inodes", START + 5, 9, START, after=INODE), "unknown op"),
        (marker("END", 9, -5), "not a position"),
        (orjson.dumps({"status": "ABORT", "id": "9:1"}), "unknown status"),
    ],
)
def test_a_record_that_is_not_the_configured_envelope_is_refused_by_name(
    value: bytes, says: str
) -> None:
    with pytest.raises(EnvelopeError, match=says):
        EnvelopeTranslator(START).feed(value)


def test_a_read_message_with_undecodable_content_goes_on_for_the_dead_letters() -> None:
    t = EnvelopeTranslator(START)
    value = orjson.dumps(
        {
            "op": "m",
            "source": source("", START + 7, None, START + 7),
            "message": {"prefix": "epipe.prov.read", "content": "%%%"},
        }
    )
    (event,) = t.feed(value)
    assert event.type == ev.PROV_OP and event.inode_id is None and "content" in event.data["op"]


@pytest.mark.parametrize(
    ("debezium", "postgres"),
    [
        ("2026-12-01T10:37:19.272640Z", "2026-12-01 10:37:19.27264+00"),
        ("2026-12-01T10:37:19Z", "2026-12-01 10:37:19+00"),
        ("2026-12-01T10:37:19.000001Z", "2026-12-01 10:37:19.000001+00"),
    ],
)
def test_times_read_as_the_built_in_source_reads_postgresqls_text(
    debezium: str, postgres: str
) -> None:
    assert zoned(debezium) == timestamptz(postgres)
