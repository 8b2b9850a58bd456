"""The OpenAPI lists the statuses each route really answers: no 422 (validation errors are
400), 401 wherever a token is needed, and each problem status the route gives."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from tests.api.conftest import World

FILE = "/Projects/cars/img/a.jpg"
PROBLEMS = {400, 401, 403, 404, 409}  # what requests here can provoke (503 needs an outage)

# (method, route, user, query, body): requests that provoke each status a route can give
REQUESTS: list[tuple[str, str, str | None, dict[str, Any], Any]] = [
    ("GET", "/v1/search", None, {}, None),
    ("GET", "/v1/search", "alice", {"limit": 0}, None),
    ("GET", "/v1/search", "alice", {"after": "FFFFFFFF/0", "wait_ms": 0}, None),
    ("POST", "/v1/search", None, {}, {}),
    ("POST", "/v1/search", "alice", {}, {"xattr": ["labels."]}),
    ("POST", "/v1/search", "alice", {"after": "FFFFFFFF/0"}, {}),
    ("GET", "/v1/files/xattrs", None, {"path": FILE}, None),
    ("GET", "/v1/files/xattrs", "alice", {"path": "relative"}, None),
    ("GET", "/v1/files/xattrs", "alice", {"path": FILE, "name": "missing"}, None),
    ("GET", "/v1/files/xattrs", "carol", {"path": FILE}, None),
    ("PUT", "/v1/files/xattrs", None, {"path": FILE, "name": "n"}, 1),
    ("PUT", "/v1/files/xattrs", "alice", {"path": FILE, "name": "n"}, "{bad"),
    ("PUT", "/v1/files/xattrs", "carol", {"path": FILE, "name": "n"}, 1),
    ("PUT", "/v1/files/xattrs", "alice", {"path": "/Projects/cars/nope", "name": "n"}, 1),
    ("DELETE", "/v1/files/xattrs", None, {"path": FILE, "name": "labels"}, None),
    ("DELETE", "/v1/files/xattrs", "alice", {"path": FILE, "name": ""}, None),
    ("DELETE", "/v1/files/xattrs", "carol", {"path": FILE, "name": "labels"}, None),
    ("DELETE", "/v1/files/xattrs", "alice", {"path": "/Projects/bikes/x.jpg", "name": "x"}, None),
    ("GET", "/v1/files/stat", None, {"path": FILE}, None),
    ("GET", "/v1/files/stat", "alice", {"path": "/a/../b"}, None),
    ("GET", "/v1/files/stat", "alice", {"path": "/Projects/bikes/x.jpg"}, None),
    ("GET", "/v1/files/list", None, {"path": "/"}, None),
    ("GET", "/v1/files/list", "alice", {"path": "/Projects", "limit": 0}, None),
    ("GET", "/v1/files/list", "alice", {"path": "/Projects/bikes"}, None),
    ("GET", "/v1/lineage", None, {"path": FILE}, None),
    ("GET", "/v1/lineage", "alice", {"path": FILE, "depth": 0}, None),
    ("GET", "/v1/lineage", "alice", {"path": FILE}, None),  # no app touched it: in no lineage
    ("GET", "/v1/lineage", "alice", {"path": FILE, "after": "FFFFFFFF/0"}, None),
    ("GET", "/v1/provenance/files", None, {"path": FILE}, None),
    ("GET", "/v1/provenance/files", "alice", {"path": FILE, "limit": 0}, None),
    ("GET", "/v1/provenance/files", "alice", {"path": FILE}, None),
    ("GET", "/v1/provenance/files", "bob", {"path": FILE}, None),
    ("GET", "/v1/provenance/files", "alice", {"path": FILE, "after": "FFFFFFFF/0"}, None),
    ("GET", "/v1/provenance/apps/{app_id}", None, {}, None),
    ("GET", "/v1/provenance/apps/{app_id}", "alice", {"after": "0/0/0"}, None),
    ("GET", "/v1/provenance/apps/{app_id}", "alice", {}, None),
    ("GET", "/v1/provenance/apps/{app_id}", "alice", {"after": "FFFFFFFF/0"}, None),
    ("GET", "/v1/status", None, {}, None),
    ("GET", "/v1/status", "alice", {}, None),
    ("GET", "/healthz", None, {}, None),
    ("GET", "/metrics", None, {}, None),
]


def _documented(world: World) -> dict[tuple[str, str], set[int]]:
    spec = world.client.get("/openapi.json").json()
    return {
        (method.upper(), route): {int(status) for status in operation["responses"]}
        for route, operations in spec["paths"].items()
        for method, operation in operations.items()
    }


def test_no_route_documents_a_422(world: World) -> None:
    spec = world.client.get("/openapi.json")
    assert '"422"' not in spec.text
    assert "HTTPValidationError" not in spec.text


def test_every_route_that_needs_a_token_documents_401(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    for route, operations in spec["paths"].items():
        for method, operation in operations.items():
            names = {p["name"].lower() for p in operation.get("parameters", [])}
            if "authorization" in names:
                assert "401" in operation["responses"], (method, route)
            elif route not in ("/healthz", "/metrics"):
                raise AssertionError(f"{method} {route} needs no token")


def test_documented_statuses_are_those_the_routes_give(world: World) -> None:
    documented = _documented(world)
    given: dict[tuple[str, str], set[int]] = defaultdict(set)
    for method, route, user, query, body in REQUESTS:
        headers = {"Authorization": f"Bearer {world.tokens[user]}"} if user else {}
        headers["Content-Type"] = "application/json"
        content = None if body is None else body if isinstance(body, str) else json.dumps(body)
        url = route.replace("{app_id}", "setup")
        answer = world.client.request(method, url, params=query, headers=headers, content=content)
        given[(method, route)].add(answer.status_code)
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == "application/problem+json", route
    assert set(given) == set(documented), "every route is exercised above"
    for operation, statuses in given.items():
        assert statuses <= documented[operation], operation
        assert documented[operation] & PROBLEMS == statuses & PROBLEMS, operation


def test_the_search_documents_the_artifact_filter_with_its_kinds(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    (parameter,) = [
        p for p in spec["paths"]["/v1/search"]["get"]["parameters"] if p["name"] == "artifact"
    ]
    assert parameter["in"] == "query"
    assert "model, dataset, notebook, image" in parameter["description"]
    body = spec["components"]["schemas"]["SearchRequest"]["properties"]
    assert body["artifact"]["description"] == parameter["description"]
