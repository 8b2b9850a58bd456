"""Fuzz every operation of the OpenAPI document (schemathesis) against a real server: no
input, however odd, makes the API answer 5xx or leak a stack trace."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from epipe import accounts
from epipe.index.rebuild import rebuild
from epipe.settings import Settings
from epipe.wiring import open_index_store
from search_api import create_app
from tests.api.conftest import populate

# the document only: building the app touches nothing until it starts serving
schema = schemathesis.openapi.from_dict(create_app(Settings(home=Path("."))).openapi())


@pytest.fixture
def server(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> Iterator[tuple[str, str]]:
    populate(conn)
    app_settings = Settings(dsn=dsn, home=tmp_path)  # type: ignore[arg-type]
    _, index = rebuild(conn, open_index_store(app_settings))
    index.close()
    token = accounts.create_token(conn, "alice")
    # The server takes a socket already bound: no other process can take its port meanwhile.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(create_app(app_settings), log_level="error"))
    thread = threading.Thread(target=instance.run, args=([listener],), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while not instance.started:
            assert thread.is_alive(), "the API server stopped while starting"
            assert time.monotonic() < deadline, "the API server did not start within 60 s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}", token
    finally:
        instance.should_exit = True
        thread.join(30)
        listener.close()
    assert not thread.is_alive(), "the API server did not stop"


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case: schemathesis.Case[Any], server: tuple[str, str]) -> None:
    url, token = server
    response = case.call(base_url=url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, (case.method, case.path, response.text)
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        content_type = response.headers.get("content-type")  # schemathesis: a list of values
        assert content_type in (["application/problem+json"], "application/problem+json"), (
            response.text
        )
