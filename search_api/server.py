"""Serving the app with uvicorn, with a deadline for each request's line and headers.

uvicorn times out idle keep-alive connections only: a client that connects and sends nothing,
or sends its headers a byte at a time, holds a connection for ever. `HeaderTimeoutProtocol`
(uvicorn's h11 protocol) closes a connection whose request line and headers have not all
arrived within the timeout, counted from the connection or from the first byte of a next
request on a kept-alive connection. The body and the answer are not limited by it.
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

KEEP_ALIVE_SECONDS = 5  # idle time between requests on one connection (uvicorn's default)


class HeaderTimeoutProtocol(H11Protocol):
    header_timeout = 10.0  # seconds; set by `protocol`

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # a request's head is (still) arriving
            self._arm()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the head is in: the request runs
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closing a connection: no complete request head in time")
            self.transport.close()


def protocol(header_timeout: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class with this header timeout (uvicorn instantiates it per connection)."""
    return type(
        "HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout}
    )


def serve(app: FastAPI, host: str, port: int, header_timeout: float) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=protocol(header_timeout),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
