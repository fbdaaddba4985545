"""The ops server against clients sending malformed HTTP: the log is not theirs to fill."""

from __future__ import annotations

import asyncio
import logging

import pytest

from monitor.ops_server import OpsServer

BAD = [
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /metrics?key=SECRETKEY\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
]


async def _ask(port: int, raw: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(raw)
        await w.drain()
        return await asyncio.wait_for(r.read(), 10)
    finally:
        w.close()


def test_malformed_requests_are_one_line_now_and_then_not_a_traceback_each(
        caplog: pytest.LogCaptureFixture) -> None:
    """Each malformed request (a header past 8 KiB, a control byte in the URL, a bad
    Content-Length) was an ERROR 'Error handling request' with a traceback repeating the
    client's request line: 60 requests, 60 tracebacks, and a key in a query string in the
    journal. It is one WARNING naming the error's type, then nothing for a minute (the
    count goes in the next); the answer is still 400 and the server still serves."""
    bad: list[int | None] = []

    async def main() -> None:
        ops = OpsServer([])
        await ops.start()
        try:
            for i in range(60):
                assert (await _ask(ops.port, BAD[i % len(BAD)])).split(b" ")[1] == b"400"
            ok = await _ask(ops.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                      b"Connection: close\r\n\r\n")
            assert ok.startswith(b"HTTP/1.1 200")
            bad.append(getattr(getattr(ops, "http_log", None), "bad", None))
        finally:
            await ops.stop()

    with caplog.at_level(logging.DEBUG, logger="monitor"):
        caplog.set_level(logging.WARNING, logger="aiohttp")
        asyncio.run(main())
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1 and loud[0].exc_info is None, [r.getMessage() for r in loud]
    assert "answered 400" in loud[0].getMessage()
    assert "SECRETKEY" not in caplog.text and "aaaaaaaa" not in caplog.text
    assert bad == [60]


def test_a_failure_of_the_server_itself_keeps_its_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """Only the client's malformed requests are summarised: the server's own failure (a
    bug in a handler: aiohttp's 'Unhandled exception') is logged whole."""
    ops = OpsServer([])
    with caplog.at_level(logging.WARNING):
        ops.http_log.exception("Unhandled exception", exc_info=RuntimeError("a bug"))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
