"""A cap on the connections an aiohttp server holds at once, for the simulator's node and
the monitor's ops server alike: each listens through ``loop.create_server(cap.protocol)``
so that every new connection passes here. Past the cap a connection is answered 503 and
closed at once (its file descriptor is given back before the process runs out of them),
and the refusals are logged at most once every ``every_s`` with a count."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web

__all__ = ["ConnectionCap"]

_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n")


class _Refuse(asyncio.Protocol):
    """A connection past the cap: answered 503 and closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_REFUSED)
        transport.close()


class ConnectionCap:
    """``limit`` connections of ``server()`` at once (``server``: the aiohttp low-level
    server the app runner made, read when a connection arrives); ``refused`` counts the
    others. ``what`` names the server in the log line."""

    def __init__(self, limit: int, server: Callable[[], web.Server | None], *,
                 log: logging.Logger, what: str, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.refused = 0
        self._server = server
        self._log, self._what, self._every_s, self._clock = log, what, every_s, clock
        self._logged_at: float | None = None

    def protocol(self) -> asyncio.Protocol:
        """The protocol of a new connection: aiohttp's, or a refusal past the cap."""
        server = self._server()
        assert server is not None, "the app runner is set up before the listener"
        if len(server.connections) < self.limit:
            return server()
        self.refused += 1
        now = self._clock()
        if self._logged_at is None or now - self._logged_at > self._every_s:
            self._logged_at = now
            self._log.warning("%s: refusing connections: %d open, the limit; %d refused so "
                              "far", self._what, len(server.connections), self.refused)
        return _Refuse()
