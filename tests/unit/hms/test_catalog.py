"""The reconciliation plan: every bound object follows its inode."""

from __future__ import annotations

from epipe.hms.catalog import KEPT, Binding, plan, seen, to_bind
from epipe.hms.locations import LocationMap
from epipe.hms.metastore import DATABASE, PARTITION, TABLE, HiveObject, children_first

FS = LocationMap.of("file:/fs")


def db(name: str, path: str) -> HiveObject:
    return HiveObject(DATABASE, name, location=FS.location(path))


def table(database: str, name: str, location: str) -> HiveObject:
    return HiveObject(TABLE, database, name, location=location)


def part(database: str, name: str, p: str, path: str) -> HiveObject:
    return HiveObject(PARTITION, database, name, p, FS.location(path), (p.split("=")[1],))


def bound(o: HiveObject, path: str, inode: int) -> Binding:
    return Binding(o.key, o.kind, path, inode)


def test_objects_not_bound_yet_are_bound_to_the_inode_their_path_names() -> None:
    d = db("d", "/w/d")
    scan = seen([d, table("d", "elsewhere", "hdfs://other/x")], FS)
    assert to_bind(scan, {}) == {"/w/d"}
    result = plan(scan, {}, {"/w/d": 7}, {7: "/w/d"}, FS)
    assert result.bindings == {"d": Binding("d", DATABASE, "/w/d", 7)}
    assert result.drop == [] and result.relocate == []


def test_an_object_whose_path_is_gone_before_it_was_bound_is_an_orphan_left_alone() -> None:
    d = db("d", "/gone")
    result = plan(seen([d], FS), {}, {}, {}, FS)
    assert result.orphans == [(d, "/gone")]
    assert result.drop == [] and result.bindings == {}


def test_objects_follow_their_inode_when_it_moves_and_go_when_it_goes() -> None:
    t = table("d", "t", FS.location("/a/t"))
    p1 = part("d", "t", "p=1", "/a/t/p=1")
    p2 = part("d", "t", "p=2", "/a/t/p=2")
    bindings = {
        o.key: bound(o, path, i)
        for o, path, i in [(t, "/a/t", 1), (p1, "/a/t/p=1", 2), (p2, "/a/t/p=2", 3)]
    }
    scan = seen([t, p1, p2], FS)
    result = plan(scan, bindings, {}, {1: "/b/t", 2: "/b/t/p=1"}, FS)
    assert result.drop == [p2]
    assert sorted(result.relocate) == sorted([(t, "file:/fs/b/t"), (p1, "file:/fs/b/t/p=1")])
    assert result.bindings[t.key].path == "/b/t"
    assert p2.key not in result.bindings
    # applied: the same inputs with the new locations plan nothing (a replay is harmless)
    t2, p12 = t._replace(location="file:/fs/b/t"), p1._replace(location="file:/fs/b/t/p=1")
    again = plan(seen([t2, p12], FS), result.bindings, {}, {1: "/b/t", 2: "/b/t/p=1"}, FS)
    assert again.drop == [] and again.relocate == [] and again.bindings == result.bindings


def test_a_database_that_holds_tables_elsewhere_is_kept_and_dropped_once_they_go() -> None:
    d = db("d", "/w/d")
    inside = table("d", "in", FS.location("/w/d/in"))
    outside = table("d", "out", "hdfs://other/out")
    bindings = {d.key: bound(d, "/w/d", 1), inside.key: bound(inside, "/w/d/in", 2)}
    result = plan(seen([d, inside, outside], FS), bindings, {}, {}, FS)
    assert result.drop == [inside]
    assert result.kept == [d]
    assert result.bindings[d.key].problem == KEPT
    later = plan(seen([d], FS), result.bindings, {}, {}, FS)
    assert later.drop == [d]


def test_a_move_the_metastore_refused_is_not_asked_again() -> None:
    d = db("d", "/a")
    refused = Binding(d.key, DATABASE, "/a", 1, "move refused: no", "file:/fs/b")
    result = plan(seen([d], FS), {d.key: refused}, {}, {1: "/b"}, FS)
    assert result.relocate == []
    assert result.bindings[d.key] == refused
    moved_again = plan(seen([d], FS), {d.key: refused}, {}, {1: "/c"}, FS)
    assert moved_again.relocate == [(d, "file:/fs/c")]


def test_a_location_changed_by_someone_else_is_bound_again() -> None:
    t = table("d", "t", FS.location("/new"))
    result = plan(seen([t], FS), {t.key: bound(t, "/old", 1)}, {"/new": 5}, {5: "/new"}, FS)
    assert result.bindings[t.key] == Binding(t.key, TABLE, "/new", 5)
    assert result.drop == [] and result.relocate == []


def test_children_go_first() -> None:
    d, t, p = db("d", "/d"), table("d", "t", "file:/fs/d/t"), part("d", "t", "p=1", "/d/t/p=1")
    assert children_first([d, t, p]) == [p, t, d]


class RefusingMetastore:
    """Refuses what it is told to; records the rest (apply's logic only)."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.dropped: list[str] = []
        self.moved: list[tuple[str, str]] = []

    def drop(self, objects: list[HiveObject]) -> list[tuple[HiveObject, str]]:
        self.dropped += [o.key for o in objects if o.key not in self.refuse]
        return [(o, "the metastore refused it: no") for o in objects if o.key in self.refuse]

    def relocate(self, moves: list[tuple[HiveObject, str]]) -> list[tuple[HiveObject, str]]:
        self.moved += [(o.key, loc) for o, loc in moves if o.key not in self.refuse]
        return [(o, "the metastore refused it: no") for o, _ in moves if o.key in self.refuse]


def test_what_the_metastore_refuses_is_a_dead_letter_recorded_on_its_binding() -> None:
    from epipe.sink.hive import apply

    a, b = table("d", "a", FS.location("/x/a")), table("d", "b", FS.location("/x/b"))
    c = table("d", "c", FS.location("/x/c"))
    before = {
        o.key: bound(o, path, i) for o, path, i in [(a, "/x/a", 1), (b, "/x/b", 2), (c, "/x/c", 3)]
    }
    result = plan(seen([a, b, c], FS), before, {}, {1: "/y/a", 2: "/y/b"}, FS)
    metastore = RefusingMetastore({b.key, c.key})
    rejections = apply(metastore, result, before, None)  # type: ignore[arg-type]
    assert metastore.moved == [(a.key, "file:/fs/y/a")]
    assert sorted(reason for _, reason in rejections) == [
        "hive: dropping table d.c: the metastore refused it: no",
        "hive: moving table d.b: the metastore refused it: no",
    ]
    assert result.bindings[b.key] == Binding(
        b.key, TABLE, "/x/b", 2, "move refused: the metastore refused it: no", "file:/fs/y/b"
    )
    assert result.bindings[c.key].problem == "drop refused: the metastore refused it: no"
    # neither is asked again
    again = plan(
        seen([a._replace(location="file:/fs/y/a"), b, c], FS),
        result.bindings,
        {},
        {1: "/y/a", 2: "/y/b"},
        FS,
    )
    assert again.drop == [] and again.relocate == []
