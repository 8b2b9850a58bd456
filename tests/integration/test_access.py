"""Project-membership checks: non-superusers act only inside their projects."""

from __future__ import annotations

import psycopg
import pytest

from epipe import accounts
from epipe.errors import AccountError, FsError
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from tests.integration.helpers import prov_ops, snapshot


@pytest.fixture
def world(ns: Namespace, conn: psycopg.Connection) -> dict[str, Namespace]:
    """alice owns `cars`, bob owns `bikes`, carol reads `cars`; a few files in each."""
    for name in ("alice", "bob", "carol"):
        accounts.add_user(conn, name)
    accounts.create_project(conn, "cars", "alice")
    accounts.create_project(conn, "bikes", "bob")
    accounts.add_member(conn, "cars", "carol", "reader")
    ns.put("/Projects/cars/a.jpg")
    ns.put("/Projects/bikes/b.jpg")
    ns.mkdir("/shared")
    return {name: Namespace(conn, Actor(name, "app")) for name in ("alice", "bob", "carol")}


def denied(conn: psycopg.Connection, call: object, *args: object, **kwargs: object) -> None:
    before = snapshot(conn)
    with pytest.raises(FsError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.code == "EACCES", str(caught.value)
    assert snapshot(conn) == before


def test_project_creation_makes_its_directory(ns: Namespace, world: dict[str, Namespace]) -> None:
    root = ns.stat("/Projects/cars")
    assert (root.kind, root.owner, root.group, root.mode) == ("dir", "alice", "cars", 0o770)


def test_members_work_inside_their_project(
    world: dict[str, Namespace], conn: psycopg.Connection
) -> None:
    alice = world["alice"]
    alice.mkdir("/Projects/cars/images/train", parents=True)
    alice.put("/Projects/cars/images/train/1.jpg", size=10)
    alice.setxattr("/Projects/cars/images/train/1.jpg", "labels", {"car": 1})
    alice.mv("/Projects/cars/images/train/1.jpg", "/Projects/cars/1.jpg")
    alice.cat("/Projects/cars/1.jpg")
    entry = alice.stat("/Projects/cars/1.jpg")
    assert (entry.owner, entry.group) == ("alice", "cars")  # group inherited from the project
    assert {e.name for e in alice.ls("/Projects/cars")} == {"a.jpg", "1.jpg", "images"}
    alice.rm("/Projects/cars/images", recursive=True)
    assert prov_ops(conn)[-1] == ("delete", "images", "app")


def test_other_projects_are_off_limits(
    world: dict[str, Namespace], conn: psycopg.Connection
) -> None:
    alice = world["alice"]
    other = "/Projects/bikes/b.jpg"
    for call, args in [
        (alice.stat, (other,)),
        (alice.ls, ("/Projects/bikes",)),
        (alice.cat, (other,)),
        (alice.getxattr, (other,)),
        (alice.put, ("/Projects/bikes/new",)),
        (alice.write, (other,)),
        (alice.setxattr, (other, "x", 1)),
        (alice.rmxattr, (other, "x")),
        (alice.rm, (other,)),
        (alice.mkdir, ("/Projects/bikes/d",)),
        (alice.mv, (other, "/Projects/cars/stolen.jpg")),
        (alice.mv, ("/Projects/cars/a.jpg", "/Projects/bikes/a.jpg")),
    ]:
        kwargs = {"size": 1} if call == alice.write else {}
        denied(conn, call, *args, **kwargs)


def test_a_missing_file_in_another_project_looks_the_same_as_an_existing_one(
    world: dict[str, Namespace],
) -> None:
    alice = world["alice"]
    for path in ("/Projects/bikes/b.jpg", "/Projects/bikes/nope", "/Projects/nosuch/x"):
        with pytest.raises(FsError) as caught:
            alice.stat(path)
        assert caught.value.code == "EACCES"


def test_outside_projects_only_the_superuser_may_act(
    world: dict[str, Namespace], conn: psycopg.Connection
) -> None:
    alice = world["alice"]
    denied(conn, alice.mkdir, "/tmp")
    denied(conn, alice.ls, "/")
    denied(conn, alice.ls, "/shared")
    denied(conn, alice.stat, "/Projects")
    denied(conn, alice.mkdir, "/Projects/newproject")
    denied(conn, alice.mkdir, "/Projects/newproject/x", parents=True)


def test_the_project_root_cannot_be_removed_or_renamed_by_members(
    world: dict[str, Namespace], conn: psycopg.Connection
) -> None:
    alice = world["alice"]
    denied(conn, alice.rm, "/Projects/cars", recursive=True)
    denied(conn, alice.mv, "/Projects/cars", "/Projects/cars2")
    alice.setxattr("/Projects/cars", "description", "car images")  # but may annotate it
    assert alice.getxattr("/Projects/cars") == {"description": "car images"}


def test_readers_read_but_do_not_write(
    world: dict[str, Namespace], conn: psycopg.Connection
) -> None:
    carol = world["carol"]
    assert [e.name for e in carol.ls("/Projects/cars")] == ["a.jpg"]
    carol.cat("/Projects/cars/a.jpg")
    assert carol.getxattr("/Projects/cars/a.jpg") == {}
    denied(conn, carol.put, "/Projects/cars/new")
    denied(conn, carol.write, "/Projects/cars/a.jpg", size=1)
    denied(conn, carol.setxattr, "/Projects/cars/a.jpg", "x", 1)
    denied(conn, carol.rm, "/Projects/cars/a.jpg")
    denied(conn, carol.mv, "/Projects/cars/a.jpg", "/Projects/cars/b.jpg")


def test_system_xattrs_are_for_the_superuser(
    world: dict[str, Namespace], ns: Namespace, conn: psycopg.Connection
) -> None:
    denied(conn, world["alice"].setxattr, "/Projects/cars/a.jpg", "system.acl", "x")
    ns.setxattr("/Projects/cars/a.jpg", "system.acl", "x")
    denied(conn, world["alice"].rmxattr, "/Projects/cars/a.jpg", "system.acl")


def test_membership_changes_take_effect_at_once(
    world: dict[str, Namespace], conn: psycopg.Connection
) -> None:
    bob = world["bob"]
    denied(conn, bob.put, "/Projects/cars/bob.txt")
    accounts.add_member(conn, "cars", "bob", "member")
    bob.put("/Projects/cars/bob.txt")
    accounts.add_member(conn, "cars", "bob", "reader")
    denied(conn, bob.rm, "/Projects/cars/bob.txt")


def test_account_errors(conn: psycopg.Connection, world: dict[str, Namespace]) -> None:
    with pytest.raises(AccountError, match="already exists"):
        accounts.add_user(conn, "alice")
    with pytest.raises(AccountError, match="invalid user name"):
        accounts.add_user(conn, "Bad Name")
    with pytest.raises(AccountError, match="already exists"):
        accounts.create_project(conn, "cars", "bob")
    with pytest.raises(AccountError, match="invalid project name"):
        accounts.create_project(conn, "no/slash", "bob")
    with pytest.raises(AccountError, match="unknown user"):
        accounts.create_project(conn, "new", "nobody")
    with pytest.raises(AccountError, match="unknown project"):
        accounts.add_member(conn, "nope", "bob")
    with pytest.raises(AccountError, match="invalid role"):
        accounts.add_member(conn, "cars", "bob", "admin")
    with pytest.raises(AccountError, match="unknown user"):
        Namespace(conn, Actor("mallory"))
    assert [(m.user, m.role) for m in accounts.memberships(conn, "cars")] == [
        ("alice", "owner"),
        ("carol", "reader"),
    ]


def test_a_project_adopts_an_existing_directory(ns: Namespace, conn: psycopg.Connection) -> None:
    ns.mkdir("/Projects/legacy/data", parents=True)
    accounts.add_user(conn, "dave")
    accounts.create_project(conn, "legacy", "dave")
    assert ns.stat("/Projects/legacy").owner == "dave"
    Namespace(conn, Actor("dave")).put("/Projects/legacy/data/new")
