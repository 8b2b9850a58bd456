"""The lineage graph's changes from operations: any split of the log folds the same."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epipe.prov.graph import INPUT, OPS, OUTPUT, Delta, Op, Span, fold, merge, op_of

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def op(n: int, kind: str, inode: int, app: str | None = "train-1", user: int = 7) -> Op:
    return Op(n, T0 + timedelta(seconds=n), inode, 1, user, kind, app, f"f{inode}")


def test_reads_are_inputs_and_writes_outputs_of_their_app() -> None:
    delta = fold(
        [op(1, "read", 10), op(2, "read", 11), op(3, "read", 10), op(4, "create", 20),
         op(5, "write", 20), op(6, "setxattr", 20), op(7, "move", 11), op(8, "rmxattr", 20)]
    )  # fmt: skip
    assert set(delta.edges) == {
        ("train-1", INPUT, 10),
        ("train-1", INPUT, 11),
        ("train-1", OUTPUT, 20),
    }
    assert delta.edges[("train-1", INPUT, 10)] == Span(
        T0 + timedelta(seconds=1), T0 + timedelta(seconds=3), 2, {"read"}
    )
    assert delta.edges[("train-1", OUTPUT, 20)].kinds == {"create", "write", "setxattr"}
    assert delta.apps["train-1"].count == 8
    assert delta.nodes == {10, 11, 20}


def test_operations_without_an_app_make_no_lineage_but_deletions_count() -> None:
    delta = fold([op(1, "read", 10, app=None), op(2, "delete", 10, app=None)])
    assert delta.edges == {} and delta.apps == {}
    assert delta.deleted == {10: T0 + timedelta(seconds=2)}
    assert delta


def test_users_of_an_app_are_collected() -> None:
    delta = fold([op(1, "read", 10, user=1), op(2, "write", 11, user=2)])
    assert delta.users == {"train-1": {1, 2}}


def test_an_event_row_becomes_an_operation() -> None:
    row = {
        "id": 5, "at": "2026-12-01T01:55:00.123+00:00", "inode_id": 9, "parent_id": None,
        "user_id": 3, "op": "read", "app_id": "a", "name": "x.csv", "detail": None,
    }  # fmt: skip
    assert op_of(row) == Op(
        5, datetime(2026, 12, 1, 1, 55, 0, 123000, tzinfo=UTC), 9, None, 3, "read", "a", "x.csv"
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"op": "chmod"}, "unknown op 'chmod'"),
        ({"at": "2026-12-01T01:55:00"}, "has no time zone"),
        ({"at": "yesterday"}, "malformed provenance operation"),
        ({"inode_id": None}, "malformed provenance operation"),
    ],
)
def test_a_malformed_row_is_refused_naming_what_is_wrong(
    change: dict[str, object], says: str
) -> None:
    row: dict[str, object] = {
        "id": 5, "at": "2026-12-01T01:55:00+00:00", "inode_id": 9, "parent_id": 1,
        "user_id": 3, "op": "read", "app_id": "a", "name": "x",
    }  # fmt: skip
    with pytest.raises(ValueError, match=says):
        op_of({**row, **change})


def merged(deltas: list[Delta]) -> tuple[dict[object, Span], dict[str, Span]]:
    edges: dict[object, Span] = {}
    apps: dict[str, Span] = {}
    for delta in deltas:
        for key, span in delta.edges.items():
            edges[key] = merge(edges[key], span) if key in edges else span
        for app, span in delta.apps.items():
            apps[app] = merge(apps[app], span) if app in apps else span
    return edges, apps


operations = st.lists(
    st.tuples(st.sampled_from(OPS), st.integers(1, 6), st.sampled_from(["a", "b", None])),
    max_size=40,
)


@given(operations, st.lists(st.integers(0, 40), max_size=5))
def test_any_split_of_the_log_folds_to_the_same_graph(
    steps: list[tuple[str, int, str | None]], cuts: list[int]
) -> None:
    log = [op(n, kind, inode, app) for n, (kind, inode, app) in enumerate(steps)]
    bounds = sorted({0, len(log), *(c for c in cuts if c <= len(log))})
    parts = [fold(log[a:b]) for a, b in itertools.pairwise(bounds)]
    whole = fold(log)
    assert merged(parts) == (whole.edges, whole.apps)


def message(**changes: object) -> dict[str, object]:
    """A read's message as the translator hands it on (migration 0015)."""
    row: dict[str, object] = {
        "id": None,
        "lsn": "0/16B3748",
        "at": "2026-12-01T08:00:00+00:00",
        "inode_id": 10,
        "parent_id": 1,
        "user_id": 7,
        "op": "read",
        "app_id": "train-1",
        "name": "a.csv",
        "detail": None,
    }
    row.update(changes)
    return row


def test_a_read_s_message_is_keyed_by_its_position() -> None:
    read = op_of(message())
    assert (read.id, read.lsn, read.op, read.app_id) == (None, 0x16B3748, "read", "train-1")
    assert fold([read]).edges[("train-1", INPUT, 10)].count == 1


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"op": "write"}, "only reads are messages"),
        ({"inode_id": 2**63}, "inode_id 9223372036854775808 is out of range"),
        ({"user_id": -(2**31) - 1}, "user_id -2147483649 is out of range"),
        ({"parent_id": 2**64}, "parent_id 18446744073709551616 is out of range"),
        ({"app_id": ""}, "app id must be 1 to 255 bytes"),
        ({"app_id": "é" * 128}, "app id must be 1 to 255 bytes"),
        ({"name": "a\x00b"}, "NUL character"),
        ({"lsn": "nowhere"}, "not an LSN"),
        ({"at": "2026-12-01T08:00:00"}, "has no time zone"),
        ({"inode_id": None}, "malformed provenance operation"),
    ],
)
def test_a_message_the_log_would_refuse_is_refused_with_its_reason(
    changes: dict[str, object], why: str
) -> None:
    """One bad message is a dead letter, not a batch that cannot commit."""
    with pytest.raises(ValueError, match=why):
        op_of(message(**changes))
