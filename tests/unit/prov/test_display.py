"""The lineage tree printed by `epipe lineage`."""

from __future__ import annotations

from typing import Any

from epipe.prov.display import tree


def file(n: int, path: str, artifact: str | None = None, deleted: bool = False) -> dict[str, Any]:
    return {"id": f"file:{n}", "type": "file", "path": path, "artifact": artifact,
            "deleted": deleted}  # fmt: skip


GRAPH = {
    "root": "file:3",
    "nodes": [
        file(3, "/p/m.pb", "model"),
        {"id": "app:train", "type": "app", "app_id": "train"},
        file(2, "/p/b.csv", "dataset", deleted=True),
        file(1, "/p/a\ncsv"),
        {"id": "app:prep", "type": "app", "app_id": "prep"},
    ],
    "edges": [
        {"from": "app:train", "to": "file:3", "op": "wrote"},
        {"from": "file:2", "to": "app:train", "op": "read"},
        {"from": "file:1", "to": "app:train", "op": "read"},
        {"from": "app:prep", "to": "file:2", "op": "wrote"},
        {"from": "file:1", "to": "app:prep", "op": "read"},
    ],
    "truncated": True,
}


def test_upstream_is_a_tree_from_the_root_back_to_what_it_was_made_from() -> None:
    assert tree(GRAPH, "upstream") == [
        "/p/m.pb  (model)",
        "  <- written by app train",
        "    <- read /p/a\\ncsv",
        "    <- read /p/b.csv  (dataset, deleted)",
        "      <- written by app prep",
        "        <- read /p/a\\ncsv  (above)",
        "(truncated: more nodes than one answer holds)",
    ]


def test_downstream_follows_the_data_forward() -> None:
    graph = {
        "root": "file:1",
        "nodes": GRAPH["nodes"],
        "edges": [
            {"from": "file:1", "to": "app:prep", "op": "read"},
            {"from": "app:prep", "to": "file:2", "op": "wrote"},
        ],
        "truncated": False,
    }
    assert tree(graph, "downstream") == [
        "/p/a\\ncsv",
        "  -> read by app prep",
        "    -> wrote /p/b.csv  (dataset, deleted)",
    ]
