"""Limits of the API: request bodies, trailing-slash redirects, and every 5xx in /metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import Message, Receive, Scope, Send

from epipe.search.query import SearchQuery
from search_api import create_app
from search_api.middleware import Measure
from tests.api.conftest import World

PROBLEM = "application/problem+json"
LIMIT = 4096


@pytest.fixture
def small(world: World) -> Iterator[TestClient]:
    """The world's API with a body limit of 4 KiB."""
    settings = world.settings.model_copy(update={"api_max_body_bytes": LIMIT})
    with TestClient(create_app(settings)) as client:
        yield client


def bearer(world: World, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[user]}"}


def test_a_body_over_the_limit_is_413_and_nothing_is_written(
    world: World, small: TestClient
) -> None:
    params = {"path": "/Projects/cars/img/a.jpg", "name": "big"}
    big = {"text": "x" * LIMIT}
    answer = small.put("/v1/files/xattrs", params=params, json=big, headers=bearer(world, "alice"))
    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["detail"] == f"the request body is larger than {LIMIT} bytes"
    stored = small.get("/v1/files/xattrs", params=params, headers=bearer(world, "alice"))
    assert stored.status_code == 404  # nothing was written
    fits = small.put(
        "/v1/files/xattrs", params=params, json={"text": "x"}, headers=bearer(world, "alice")
    )
    assert fits.status_code == 200


def test_a_streamed_body_is_cut_at_the_limit(world: World, small: TestClient) -> None:
    chunks = [b'{"q": "' + b"x" * 1000] * 8 + [b'"}']  # no Content-Length: chunked
    answer = small.post("/v1/search", content=iter(chunks), headers=bearer(world, "alice"))
    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM
    small_query = small.post("/v1/search", json={"q": "jpg"}, headers=bearer(world, "alice"))
    assert small_query.status_code == 200


def test_a_declared_length_over_the_limit_is_refused_before_the_token_check(
    world: World, small: TestClient
) -> None:
    body = b"{" + b" " * LIMIT + b"}"
    anonymous = small.post("/v1/search", content=body)
    assert anonymous.status_code == 413  # refused before a byte is read: costs nothing
    assert small.post("/v1/search", content=b"{}").status_code == 401


def test_trailing_slashes_do_not_redirect_to_the_host_header(world: World) -> None:
    for url in ("/v1/search/", "/healthz/", "/v1/files/stat/"):
        answer = world.client.get(
            url,
            headers={"Host": "evil.example", **bearer(world, "alice")},
            follow_redirects=False,
        )
        assert answer.status_code == 404, url
        assert answer.headers["content-type"] == PROBLEM
        assert "evil.example" not in str(answer.headers) + answer.text


class Panic(BaseException):
    """What an engine binding's panic is in Python: not an Exception."""


class FailingIndex:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def search(self, query: SearchQuery) -> Any:
        raise self.error


def requests_counted(client: TestClient, route: str, status: int) -> float:
    text = client.get("/metrics").text
    pattern = rf'epipe_http_requests_total\{{route="{re.escape(route)}",status="{status}"\}} (\S+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_every_5xx_is_counted_by_route_and_status(world: World) -> None:
    with TestClient(create_app(world.settings), raise_server_exceptions=False) as client:
        client.app.state.services.index = FailingIndex(RuntimeError("index broken"))  # type: ignore[attr-defined]
        for _ in range(2):
            answer = client.get("/v1/search", params={"q": "x"}, headers=bearer(world, "alice"))
            assert answer.status_code == 500
            assert "Traceback" not in answer.text and "index" not in answer.text
        assert requests_counted(client, "/v1/search", 500) == 2
        assert requests_counted(client, "/metrics", 200) >= 1


def test_a_panic_escaping_the_app_is_counted_as_500() -> None:
    """A panic (a BaseException) passes Starlette's error handler; it is counted anyway."""
    registry = CollectorRegistry()
    requests = Counter("epipe_http_requests", "", ["route", "status"], registry=registry)
    latency = Histogram("epipe_http_request_seconds", "", ["route"], registry=registry)

    async def panicking(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = APIRoute("/v1/search", lambda: None)
        raise Panic("index panicked")

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    measured = Measure(panicking, metrics=lambda: (requests, latency))
    scope: Scope = {"type": "http", "method": "GET", "path": "/v1/search", "headers": []}
    with pytest.raises(Panic):
        asyncio.run(measured(scope, receive, send))
    assert (
        registry.get_sample_value(
            "epipe_http_requests_total", {"route": "/v1/search", "status": "500"}
        )
        == 1
    )
