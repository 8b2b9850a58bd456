"""Whether an index can serve a consumer, from the position it records (pure)."""

from __future__ import annotations

from epipe.index.position import Identity, IndexPosition, stale_because

HERE = Identity("7300000000000000001", "epipe")


def test_an_index_at_or_ahead_of_the_consumer_serves_it() -> None:
    assert stale_because(IndexPosition(100, HERE), HERE, 100) is None
    assert stale_because(IndexPosition(200, HERE), HERE, 100) is None


def test_an_index_behind_the_consumer_is_stale() -> None:
    reason = stale_because(IndexPosition(99, HERE), HERE, 100)
    assert reason is not None and "holds changes up to 0/63 only" in reason


def test_an_index_without_a_position_serves_only_a_consumer_that_never_applied_anything() -> None:
    assert stale_because(None, HERE, 0) is None
    reason = stale_because(None, HERE, 1)
    assert reason is not None and "carries no position" in reason


def test_an_index_of_another_cluster_or_database_is_stale() -> None:
    for other in (Identity("7300000000000000002", "epipe"), Identity(HERE.system, "other")):
        reason = stale_because(IndexPosition(500, other), HERE, 100)
        assert reason is not None and "another database" in reason


def test_a_damaged_record_reads_as_no_position() -> None:
    good = IndexPosition(0x1_0000_0010, HERE)
    assert IndexPosition.from_json(good.to_json()) == good
    damaged: list[object] = [None, {}, [], "x", {"lsn": 5, "system": "1", "database": "d"}]
    for record in [*damaged, {"lsn": "zz", "system": "1", "database": "d"}]:
        assert IndexPosition.from_json(record) is None
