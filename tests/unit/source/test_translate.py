"""Translation of decoded messages into domain events, and the event schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings

from epipe import events as ev
from epipe.events import Event
from epipe.events.codec import CodecError, decode, encode, to_dict
from epipe.lsn import lsn_from_str, lsn_to_str
from epipe.source import pgoutput as pg
from epipe.source.translate import Translator, timestamptz
from tests.json_texts import json_texts, nested

ROOT = Path(__file__).parents[3]
RECORDED = json.loads((ROOT / "tests" / "data" / "pgoutput_v1.json").read_text())
SCHEMA = json.loads((ROOT / "schemas" / "events" / "v1" / "event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def recorded_events() -> list[Event]:
    translator = Translator()
    out = []
    for message in RECORDED["messages"]:
        out.extend(translator.feed(pg.decode(bytes.fromhex(message["hex"]))))
    return out


def test_the_recorded_history_becomes_these_events() -> None:
    kinds = [(e.type, e.seq) for e in recorded_events()]
    assert kinds == [
        ("inode.created", 0),
        ("prov.op", 1),  # mkdir /d
        ("inode.created", 0),
        ("prov.op", 1),  # put /d/f
        ("xattr.set", 0),
        ("prov.op", 1),  # setxattr blob
        ("xattr.removed", 0),
        ("xattr.set", 1),  # the xattr's key changed
        ("inode.moved", 0),
        ("prov.op", 1),  # mv /d/f /g
        ("inode.updated", 0),
        ("prov.op", 1),  # write /g
        ("inode.deleted", 0),
        ("prov.op", 1),  # rm -r /d
        ("inode.deleted", 0),
        ("xattr.removed", 1),
        ("prov.op", 2),  # rm /g and its xattr
    ]  # the origin insert, the update of `samples` and its truncate are not captured


def test_every_event_matches_the_published_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    synthetic = [
        Event(ev.HEARTBEAT, 5, 0, 0, "2026-01-01T00:00:00+00:00", None, {}),
        Event(
            ev.TABLE_TRUNCATED,
            5,
            0,
            9,
            "2026-01-01T00:00:00+00:00",
            None,
            {"tables": ["inodes"], "cascade": True, "restart_identity": False},
        ),
    ]
    for event in [*recorded_events(), *synthetic]:
        VALIDATOR.validate(to_dict(event))


def test_the_schema_rejects_malformed_events() -> None:
    good = to_dict(recorded_events()[0])
    for broken in (
        {**good, "type": "inode.renamed"},
        {**good, "lsn": "12"},
        {k: v for k, v in good.items() if k != "inode"},
        {**good, "inode": {"name": "x"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(broken)


def test_events_carry_the_transaction_envelope() -> None:
    events = recorded_events()
    begins = [pg.decode(bytes.fromhex(m["hex"])) for m in RECORDED["messages"]]
    lsns = {b.final_lsn for b in begins if isinstance(b, pg.Begin)}
    assert {e.lsn for e in events} <= lsns
    assert all(e.committed_at.endswith("+00:00") and "T" in e.committed_at for e in events)
    assert [e.position for e in events] == sorted(e.position for e in events)


def test_a_move_names_the_old_and_new_place() -> None:
    move = next(e for e in recorded_events() if e.type == ev.INODE_MOVED)
    assert (move.data["old_name"], move.data["new_name"]) == ("f", "g")
    assert move.data["old_parent_id"] != move.data["new_parent_id"]
    assert set(move.data["changed"]) == {"parent_id", "name", "ctime"}
    assert move.data["inode"]["kind"] == "file"


def test_a_delete_carries_the_whole_old_row() -> None:
    deleted = next(e for e in recorded_events() if e.type == ev.INODE_DELETED)
    assert deleted.data["inode"]["name"] == "d"
    assert deleted.data["inode"]["kind"] == "dir"


def test_an_unchanged_toasted_value_is_named_not_invented() -> None:
    renamed = next(
        e for e in recorded_events() if e.type == ev.XATTR_SET and e.data.get("unchanged")
    )
    assert renamed.data["unchanged"] == ["value"]
    assert "value" not in renamed.data["xattr"]


# -- synthetic messages for the cases a real history cannot easily produce --------------------

INODE_COLUMNS = [
    ("id", 20),
    ("parent_id", 20),
    ("name", 25),
    ("kind", 18),
    ("size", 20),
    ("mtime", 1184),
]


def translator_with(name: str, columns: list[tuple[str, int]], identity: str = "f") -> Translator:
    translator = Translator()
    translator.feed(pg.Begin(100, 0, 7))
    translator.feed(
        pg.Relation(
            1,
            "public",
            name,
            identity,
            tuple(pg.Column(i == 0, c, oid, -1) for i, (c, oid) in enumerate(columns)),
        )
    )
    return translator


def test_a_full_old_row_fills_in_unchanged_toasted_columns() -> None:
    translator = translator_with(
        "xattrs", [("inode_id", 20), ("namespace", 25), ("name", 25), ("value", 3802)]
    )
    (event,) = translator.feed(
        pg.Update(1, "O", ("5", "user", "a", '{"big": 1}'), ("5", "user", "a", pg.UNCHANGED))
    )
    assert event.data == {
        "xattr": {"inode_id": 5, "namespace": "user", "name": "a", "value": {"big": 1}}
    }


def test_an_update_without_old_row_does_not_guess_a_move() -> None:
    translator = translator_with("inodes", INODE_COLUMNS, identity="d")
    (event,) = translator.feed(
        pg.Update(1, None, None, ("5", "1", "x", "f", "3", "2026-01-01 00:00:00+00"))
    )
    assert event.type == ev.INODE_UPDATED
    assert event.data["changed"] is None


def test_truncating_a_captured_table_is_one_event() -> None:
    translator = translator_with("inodes", INODE_COLUMNS)
    (event,) = translator.feed(pg.Truncate(pg.TRUNCATE_CASCADE, (1, 99)))
    assert event.type == ev.TABLE_TRUNCATED
    assert event.inode_id is None
    assert event.data == {"tables": ["inodes"], "cascade": True, "restart_identity": False}
    assert translator.feed(pg.Truncate(0, (99,))) == []


def test_other_tables_and_provenance_corrections_yield_nothing() -> None:
    translator = translator_with("other", [("id", 20)])
    assert translator.feed(pg.Insert(1, ("1",))) == []
    prov = translator_with("prov_ops", [("id", 20), ("inode_id", 20)])
    assert prov.feed(pg.Update(1, None, None, ("1", "2"))) == []
    assert prov.feed(pg.Delete(1, "K", ("1", None))) == []


def test_sequence_restarts_with_each_transaction() -> None:
    translator = translator_with("inodes", INODE_COLUMNS)
    row = ("5", "1", "x", "f", "3", "2026-01-01 00:00:00+00")
    first = translator.feed(pg.Insert(1, row)) + translator.feed(pg.Insert(1, row))
    translator.feed(pg.Commit(0, 100, 120, 0))
    translator.feed(pg.Begin(200, 0, 8))
    (third,) = translator.feed(pg.Insert(1, row))
    assert [(e.lsn, e.seq) for e in [*first, third]] == [(100, 0), (100, 1), (200, 0)]


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-11-26 18:13:52.033835+00", "2026-11-26T18:13:52.033835+00:00"),
        ("2026-11-26 18:13:52+00", "2026-11-26T18:13:52+00:00"),
        ("2026-11-26 18:13:52.5+05:30", "2026-11-26T18:13:52.5+05:30"),
        ("2026-11-26 18:13:52-08", "2026-11-26T18:13:52-08:00"),
        ("infinity", "infinity"),
    ],
)
def test_timestamps_become_iso_8601(text: str, iso: str) -> None:
    assert timestamptz(text) == iso


def test_codec_round_trip_and_errors() -> None:
    for event in recorded_events():
        assert decode(encode(event)) == event
    snapshot = recorded_events()[0]._replace(snapshot=True)
    assert decode(encode(snapshot)).snapshot
    for raw in (b"not json", b"[1]", b'{"v": 2}', b'{"v": 1, "type": "nope"}'):
        with pytest.raises(CodecError):
            decode(raw)


@pytest.mark.parametrize("lsn", [0, 0x16B3748, (0xFFFFFFFF << 32) | 0xFFFFFFFF, 1 << 32])
def test_lsn_text_round_trip(lsn: int) -> None:
    assert lsn_from_str(lsn_to_str(lsn)) == lsn


@pytest.mark.parametrize("text", ["", "16B3748", "0/", "/1", "G/1", "123456789/1"])
def test_bad_lsn_text(text: str) -> None:
    with pytest.raises(ValueError, match="LSN"):
        lsn_from_str(text)


def test_the_fast_path_gives_exactly_the_events_of_decode_then_feed() -> None:
    generic, fast = Translator(), Translator()
    a, b = [], []
    for message in RECORDED["messages"]:
        payload = bytes.fromhex(message["hex"])
        a.extend(generic.feed(pg.decode(payload)))
        b.extend(fast.feed_raw(payload))
    assert a == b
    assert len(a) == 17


@pytest.mark.parametrize(
    "payload",
    [
        b"I\x00\x00\x00\x01X",  # no new tuple
        b"I\x00\x00\x00\x01N\x00\x06",  # fewer columns than the relation
        b"I\x00\x00\x00\x01N\x00\x06z",  # unknown column kind
        b"D\x00\x00\x00\x01N",  # delete without old tuple
        b"U\x00\x00\x00\x01X",  # update without new tuple
        b"I\x00\x00\x00\x01N\x00\x06t\x00\x00\x00\x09ab",  # truncated value
        b"I\x00\x00\x00\x01N\x00\x06t\x00\x00\x00\x015t\x00\x00\x00\x011"
        b"t\x00\x00\x00\x09abc",  # a text value cut short
    ],
)
def test_the_fast_path_rejects_malformed_rows(payload: bytes) -> None:
    translator = translator_with("inodes", INODE_COLUMNS)
    with pytest.raises(pg.DecodeError):
        translator.feed_raw(payload)


# -- values PostgreSQL holds that orjson cannot read (docs/xattr-values.md) -----------------

XATTR_COLUMNS = [("inode_id", 20), ("namespace", 25), ("name", 25), ("value", 3802)]


def insert_payload(*values: str) -> bytes:
    """A pgoutput Insert into relation 1 with these column texts."""
    encoded = [v.encode() for v in values]
    columns = b"".join(b"t" + len(v).to_bytes(4, "big") + v for v in encoded)
    return b"I" + (1).to_bytes(4, "big") + b"N" + len(values).to_bytes(2, "big") + columns


@pytest.mark.parametrize(
    "value",
    [
        '{"n": 1' + "0" * 309 + "}",  # the number of the issue: infinity as a double
        "[1e131071, 0." + "0" * 16_000 + "1]",
        nested("1", 300, "object"),
        nested("1", 990, "array"),
        '{"a": 1, "a": 2, "": [true, null]}',
    ],
)
def test_any_jsonb_value_becomes_an_event_the_codec_writes(value: str) -> None:
    payload = insert_payload("5", "user", "x", value)
    fast = translator_with("xattrs", XATTR_COLUMNS).feed_raw(payload)
    generic = translator_with("xattrs", XATTR_COLUMNS).feed(pg.decode(payload))
    assert fast == generic
    (event,) = fast
    assert event.type == ev.XATTR_SET
    assert decode(encode(event)).data["xattr"]["inode_id"] == 5
    VALIDATOR.validate(to_dict(event))


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(json_texts.filter(lambda text: not _has_surrogates(text)))
def test_no_json_text_stops_the_translator(value: str) -> None:
    (event,) = translator_with("xattrs", XATTR_COLUMNS).feed_raw(
        insert_payload("5", "user", "x", value)
    )
    encode(event)


def _has_surrogates(text: str) -> bool:  # not UTF-8: a database never sends it
    return any("\ud800" <= char <= "\udfff" for char in text)


def test_a_read_s_message_is_a_provenance_event_at_its_own_position() -> None:
    translator = Translator()
    content = (
        b'{"inode_id": 10, "parent_id": 1, "user_id": 7, "app_id": "train-1", "name": "a.csv",'
        b' "at": "2026-12-01T08:00:00.5+00:00"}'
    )
    (read,) = translator.feed(pg.Message(False, 0x16B3748, "epipe.prov.read", content))
    assert (read.type, read.position, read.xid, read.inode_id) == (
        ev.PROV_OP,
        (0x16B3748, 0),
        0,
        10,
    )
    assert read.committed_at == "2026-12-01T08:00:00.5+00:00"
    assert read.data["op"] == {
        "id": None,
        "lsn": "0/16B3748",
        "op": "read",
        "detail": None,
        "inode_id": 10,
        "parent_id": 1,
        "user_id": 7,
        "app_id": "train-1",
        "name": "a.csv",
        "at": "2026-12-01T08:00:00.5+00:00",
    }
    assert decode(encode(read)) == read


def test_other_messages_are_not_reads_and_bad_content_goes_on_to_be_refused() -> None:
    translator = Translator()
    assert translator.feed(pg.Message(True, 1, "epipe.prov.read", b"{}")) == []
    assert translator.feed(pg.Message(False, 1, "someone.else", b"{}")) == []
    (bad,) = translator.feed(pg.Message(False, 2, "epipe.prov.read", b"\xff not json"))
    assert bad.inode_id is None and bad.data["op"]["lsn"] == "0/2"
    assert "error" in bad.data["op"]
    (odd,) = translator.feed(pg.Message(False, 3, "epipe.prov.read", b"[1, 2]"))
    assert odd.data["op"]["content"] == [1, 2]


def test_a_read_the_provenance_consumer_logged_is_not_published_again() -> None:
    columns = [("id", 20), ("at", 1184), ("inode_id", 20), ("op", 25), ("lsn", 3220)]
    prov = translator_with("prov_ops", columns)
    logged = ("5", "2026-12-01 08:00:00+00", "10", "read", "0/16B3748")
    change = ("6", "2026-12-01 08:00:00+00", "10", "write", None)
    assert prov.feed(pg.Insert(1, logged)) == []
    (written,) = prov.feed(pg.Insert(1, change))
    assert written.data["op"]["op"] == "write"
