"""Attacks on a real `epipe serve` beside a real `epipe run`: three users, two projects.

- 200 concurrent far-future read-your-writes waits do not stall the server: /healthz and
  another tenant's search answer in under 500 ms meanwhile, and the waits beyond the caps
  get 429;
- a client that sends its request head slowly, or nothing, is disconnected.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from epipe.bench.search import Served
from tests.api.conftest import cli_on
from tests.integration.pipeline_helpers import PipelineProcess, new_slot

FAR_FUTURE = "FFFFFFFF/FFFFFFFF"
MAX_WAITS, MAX_WAITS_PER_CALLER = 50, 40  # the total binds before the per-caller caps
HEADER_TIMEOUT = 2.0
BOUND = 0.5  # seconds: what a bystander's call may take while the waits are held


@pytest.fixture
def site(dsn: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """alice and carol in project cars, bob in bikes; the pipeline and the API running."""

    epipe = cli_on(dsn, tmp_path)

    for user in ("alice", "bob", "carol"):
        epipe("user", "add", user)
    epipe("project", "create", "cars", "--owner", "alice")
    epipe("project", "add-member", "cars", "carol", "--role", "member")
    epipe("project", "create", "bikes", "--owner", "bob")
    epipe("fs", "put", "/Projects/bikes/wheel.jpg", "--size", "7", "--user", "bob")
    tokens = {
        user: epipe("token", "create", user).splitlines()[-1] for user in ("alice", "bob", "carol")
    }
    pipeline = PipelineProcess(dsn, tmp_path, new_slot(), tmp_path / "events.jsonl")
    pipeline.start()
    served = Served(dsn, tmp_path)
    served.env.update(
        EPIPE_API_MAX_WAITS=str(MAX_WAITS),
        EPIPE_API_MAX_WAITS_PER_CALLER=str(MAX_WAITS_PER_CALLER),
        EPIPE_API_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
    )
    try:
        with served as url:
            yield {"url": url, "tokens": tokens, "port": served.port}
    finally:
        assert pipeline.stop() == 0, pipeline.log.read_text()


def bearer(site: dict[str, Any], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {site['tokens'][user]}"}


async def until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


def test_far_future_waits_stall_nobody_and_the_extra_ones_get_429(site: dict[str, Any]) -> None:
    asyncio.run(_waits_attack(site))


async def _waits_attack(site: dict[str, Any]) -> None:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with (
        httpx.AsyncClient(base_url=site["url"], timeout=120, limits=limits) as attacker,
        httpx.AsyncClient(base_url=site["url"], timeout=30) as bystander,
    ):
        bob = bearer(site, "bob")
        # bob's search works (and the index has caught up with his file) before the attack
        token = (await bystander.get("/v1/status", headers=bob)).json()["current_lsn"]
        found = await bystander.get(
            "/v1/search", params={"q": "wheel", "after": token, "wait_ms": 30_000}, headers=bob
        )
        assert found.status_code == 200 and found.json()["total"] == 1, found.text

        async def wait_far(user: str) -> httpx.Response:
            params: dict[str, str | int] = {"after": FAR_FUTURE, "wait_ms": 30_000}
            return await attacker.get("/v1/search", params=params, headers=bearer(site, user))

        waits = [asyncio.ensure_future(wait_far(user)) for user in ("alice", "carol") * 100]

        async def held() -> bool:
            metrics = (await bystander.get("/metrics")).text
            found = re.search(r"^epipe_api_waits (\S+)$", metrics, re.MULTILINE)
            return found is not None and float(found.group(1)) == MAX_WAITS

        async def refused() -> bool:
            return sum(w.done() for w in waits) == len(waits) - MAX_WAITS

        await until(held, f"{MAX_WAITS} waits held")
        await until(refused, "the waits beyond the caps answered")
        held_waits = [w for w in waits if not w.done()]
        answered = [w.result() for w in waits if w.done()]
        assert {r.status_code for r in answered} == {429}
        assert all(r.headers["retry-after"] == "1" for r in answered)
        assert answered[0].headers["content-type"] == "application/problem+json"
        per_user = {
            user: sum(1 for w in waits[i::2] if not w.done())
            for i, user in enumerate(("alice", "carol"))
        }
        assert sum(per_user.values()) == MAX_WAITS
        assert max(per_user.values()) <= MAX_WAITS_PER_CALLER

        # meanwhile: liveness, metrics and another tenant's search answer at once
        slowest: dict[str, float] = {}
        for name, url, params, headers in (
            ("healthz", "/healthz", {}, {}),
            ("metrics", "/metrics", {}, {}),
            ("bob's search", "/v1/search", {"q": "wheel"}, bob),
        ):
            for _ in range(5):
                started = time.perf_counter()
                answer = await bystander.get(url, params=params, headers=headers)
                took = time.perf_counter() - started
                assert answer.status_code == 200, answer.text
                slowest[name] = max(slowest.get(name, 0.0), took)
        assert max(slowest.values()) < BOUND, slowest
        assert not any(w.done() for w in held_waits)

        # the attacker gives up: the server lets go of every wait
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        await attacker.aclose()

        async def released() -> bool:
            metrics = (await bystander.get("/metrics")).text
            return re.search(r"^epipe_api_waits 0\.0$", metrics, re.MULTILINE) is not None

        await until(released, "the waits released after their clients left")


def closed_after(sock: socket.socket, trickle: bytes, limit: float) -> float:
    """Send `trickle` a byte at a time (as a slow client would) until the server closes the
    connection; seconds until it did."""
    started = time.monotonic()
    sock.settimeout(0.25)
    position = 0
    while time.monotonic() - started < limit:
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass  # still open: the next byte, a quarter of a second later
        except ConnectionResetError:
            return time.monotonic() - started
        try:
            sock.send(trickle[position % len(trickle) : position % len(trickle) + 1])
            position += 1
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {limit} s")


def test_a_slow_request_head_is_cut_off(site: dict[str, Any]) -> None:
    address = ("127.0.0.1", site["port"])
    with socket.create_connection(address) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        took = closed_after(slow, b"X-Slow: a\r\n", limit=HEADER_TIMEOUT + 20)
        assert HEADER_TIMEOUT - 0.5 <= took <= HEADER_TIMEOUT + 10
    with socket.create_connection(address) as silent:
        silent.settimeout(HEADER_TIMEOUT + 20)
        assert silent.recv(1024) == b""  # nothing sent: closed at the timeout
    # a normal client, and one that keeps its connection between requests, are served
    with httpx.Client(base_url=site["url"]) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
