"""A lineage graph as an indented tree for the terminal: pure.

Upstream, each file is followed by the apps that wrote it and each app by the files it
read; downstream, each file by the apps that read it and each app by the files it wrote.
A node met again is shown once more with `(above)` and not expanded a second time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from epipe.fs.display import escape


def tree(graph: dict[str, Any], direction: str) -> list[str]:
    nodes = {n["id"]: n for n in graph["nodes"]}
    below: dict[str, list[str]] = defaultdict(list)
    for edge in graph["edges"]:
        parent, child = (
            (edge["to"], edge["from"]) if direction == "upstream" else (edge["from"], edge["to"])
        )
        below[parent].append(child)
    lines: list[str] = []
    shown: set[str] = set()

    def walk(node_id: str, depth: int) -> None:
        node = nodes[node_id]
        again = node_id in shown
        lines.append("  " * depth + _label(node, depth, direction) + ("  (above)" if again else ""))
        if again:
            return
        shown.add(node_id)
        for child in sorted(below[node_id], key=lambda c: _sort_key(nodes[c])):
            walk(child, depth + 1)

    walk(graph["root"], 0)
    if graph.get("truncated"):
        lines.append("(truncated: more nodes than one answer holds)")
    return lines


def _label(node: dict[str, Any], depth: int, direction: str) -> str:
    if node["type"] == "app":
        verb = "<- written by" if direction == "upstream" else "-> read by"
        return f"{verb} app {escape(node['app_id'])}"
    flags = ", ".join(f for f in (node["artifact"], "deleted" if node["deleted"] else None) if f)
    text = escape(node["path"]) + (f"  ({flags})" if flags else "")
    if depth == 0:
        return text
    return ("<- read " if direction == "upstream" else "-> wrote ") + text


def _sort_key(node: dict[str, Any]) -> str:
    return str(node.get("path") or node.get("app_id"))
