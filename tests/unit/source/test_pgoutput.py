"""The pgoutput decoder on payloads recorded from a real server (tests/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from epipe.source import pgoutput as pg

RECORDED = json.loads((Path(__file__).parents[2] / "data" / "pgoutput_v1.json").read_text())
MESSAGES = [pg.decode(bytes.fromhex(m["hex"])) for m in RECORDED["messages"]]


def of(kind: type) -> list:  # type: ignore[type-arg]
    return [m for m in MESSAGES if type(m) is kind]


def test_every_message_kind_was_recorded_and_decodes() -> None:
    kinds = {type(m).__name__ for m in MESSAGES}
    assert kinds == {
        "Begin",
        "Commit",
        "Origin",
        "Relation",
        "Type",
        "Insert",
        "Update",
        "Delete",
        "Truncate",
        "Message",
    }


def test_begin_and_commit_frame_each_transaction() -> None:
    begins, commits = of(pg.Begin), of(pg.Commit)
    assert len(begins) == len(commits) > 5
    for begin, commit in zip(begins, commits, strict=True):
        assert begin.final_lsn == commit.commit_lsn
        assert commit.end_lsn > commit.commit_lsn
        assert begin.commit_ts == commit.commit_ts
    xids = [b.xid for b in begins]
    assert xids == sorted(xids)


def test_relation_describes_columns_types_and_identity() -> None:
    inodes = next(r for r in of(pg.Relation) if r.name == "inodes")
    assert inodes.namespace == "public"
    assert inodes.replica_identity == "f"
    names = [c.name for c in inodes.columns]
    assert names == [
        "id",
        "parent_id",
        "size",
        "mtime",
        "ctime",
        "owner_id",
        "group_id",
        "mode",
        "kind",
        "name",
    ]
    assert inodes.columns[0].type_oid == 20  # bigint
    assert inodes.columns[3].type_oid == 1184  # timestamptz
    xattrs = next(r for r in of(pg.Relation) if r.name == "xattrs")
    assert xattrs.replica_identity == "d"
    assert [c.is_key for c in xattrs.columns] == [True, True, True, False]


def test_type_message_names_a_user_defined_type() -> None:
    (mood, *_) = of(pg.Type)
    assert (mood.namespace, mood.name) == ("public", "mood")
    samples = next(r for r in of(pg.Relation) if r.name == "samples")
    assert samples.columns[1].type_oid == mood.oid


def test_origin_of_a_replayed_transaction() -> None:
    (origin,) = of(pg.Origin)
    assert origin.name == "elsewhere"
    assert origin.commit_lsn == 0xAB


def test_insert_values_are_text_and_nulls_none() -> None:
    inserts = of(pg.Insert)
    first_inode = next(i for i in inserts if len(i.new) == 10)
    assert first_inode.new[0].isdigit()
    assert first_inode.new[8] == "d"
    prov = next(i for i in inserts if len(i.new) == 9)
    assert prov.new[6] is None  # app_id NULL


def test_update_with_full_old_row_and_without_old_tuple() -> None:
    updates = of(pg.Update)
    full = [u for u in updates if u.old_kind == "O"]
    assert full and all(len(u.old or ()) == 10 for u in full)
    move = full[0]
    assert move.old is not None
    assert move.old[9] == "f" and move.new[9] == "g"
    plain = [u for u in updates if u.old_kind is None]
    assert plain and plain[0].old is None and plain[0].new[2] == "changed"


def test_unchanged_toast_is_a_marker_never_a_placeholder() -> None:
    (renamed,) = [u for u in of(pg.Update) if u.old_kind == "K"]
    assert renamed.old == ("3", "user", "blob", None)  # key columns only
    assert renamed.new[2] == "blob2"
    assert renamed.new[3] is pg.UNCHANGED
    assert repr(pg.UNCHANGED) == "UNCHANGED"


def test_delete_carries_the_old_row_or_the_key() -> None:
    deletes = of(pg.Delete)
    assert {d.old_kind for d in deletes} == {"O", "K"}
    xattr = next(d for d in deletes if d.old_kind == "K")
    assert xattr.old[1:3] == ("user", "blob2")


def test_truncate_options() -> None:
    (truncate,) = of(pg.Truncate)
    assert truncate.options == pg.TRUNCATE_CASCADE | pg.TRUNCATE_RESTART_IDENTITY
    assert len(truncate.relation_oids) == 1


def test_logical_messages_transactional_or_not() -> None:
    messages = of(pg.Message)
    assert [(m.transactional, m.prefix, m.content) for m in messages] == [
        (True, "epipe.test", b"hello"),
        (False, "epipe.test", b"now"),
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"S\x00\x00\x00\x01\x01", "unsupported pgoutput message type 'S'"),
        (b"B\x00\x00", "malformed pgoutput 'B'"),
        (b"I\x00\x00\x00\x01X", "insert without a new tuple"),
        (b"I\x00\x00\x00\x01N\x00\x01z", "unknown tuple column kind 'z'"),
        (b"M\x01" + b"\x00" * 8 + b"p\x00\x00\x00\x00\x09ab", "shorter than its length"),
    ],
)
def test_malformed_payloads_raise_decode_error(payload: bytes, reason: str) -> None:
    with pytest.raises(pg.DecodeError, match=reason):
        pg.decode(payload)


def test_binary_column_values_are_bytes() -> None:
    payload = b"I\x00\x00\x00\x07N\x00\x02b\x00\x00\x00\x02\xff\x00t\x00\x00\x00\x01x"
    assert pg.decode(payload) == pg.Insert(7, (b"\xff\x00", "x"))
