"""ASGI middleware of the API: request metrics and the request-body limit.

Both are plain ASGI (not Starlette's BaseHTTPMiddleware), so they see every answer: one an
exception produced (`Measure` counts it as 500 before Starlette's error handler answers) and
one they give themselves (`BodyLimit`'s 413).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search_api.problems import response


class Measure:
    """Counts every HTTP answer by route template and status, and observes its latency;
    an exception escaping the app counts as a 500 (Starlette's error handler answers it)."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], tuple[Any, Any] | None]) -> None:
        self.app = app
        self.metrics = metrics  # (requests counter, latency histogram), once the app started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except asyncio.CancelledError:
            raise
        except BaseException:  # an engine panic is a BaseException: count it too
            status = 500
            raise
        finally:
            found = self.metrics()
            if found is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                requests, latency = found
                requests.labels(route, str(status)).inc()
                latency.labels(route).observe(time.perf_counter() - started)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Request bodies of at most `limit` bytes. A declared Content-Length over the limit is
    refused before a byte of the body is read (and before authentication: the refusal costs
    nothing and tells nothing); a body without one (chunked) is counted as it is read and
    refused at the first chunk past the limit, whatever the app was doing with it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        exceeded = started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app answers to a body cut short, the answer is 413
            started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = response(
            413,
            f"the request body is larger than {self.limit} bytes",
            headers={"Connection": "close"},
        )
        await answer(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses it before the app runs
    return None
