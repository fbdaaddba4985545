"""A malformed HTTP request is one log line without a traceback (polyvocab.http_log), on a
real aiohttp server over loopback, as the simulator and the monitor's ops server run it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from polyvocab.http_log import BadRequestLogFilter, quiet_bad_requests


async def _send_raw(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(4096), 30)
    writer.close()
    return data


SECRET = b"ExplorerKey0123456789SECRET"


@pytest.mark.parametrize("payload", [
    b"GET /v2/api?address=" + b"0xab" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # > 8 kB
    # > 8 kB with the explorer key early in the query: aiohttp quotes it; it was logged
    b"GET /v2/api?chainid=137&apikey=" + SECRET + b"&x=" + b"k" * 9000
    + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS to a plain port
])
def test_a_malformed_request_is_one_line_without_a_traceback(
        payload: bytes, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("aiohttp.server")
    monkeypatch.setattr(logger, "filters", [])
    quiet_bad_requests()
    quiet_bad_requests()  # once is enough: not installed twice
    assert sum(isinstance(f, BadRequestLogFilter) for f in logger.filters) == 1

    async def main() -> bytes:
        app = web.Application()
        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app.router.add_get("/", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await _send_raw(port, payload)
        finally:
            await runner.cleanup()

    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        answer = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records, "aiohttp logged nothing: the case did not reach the filter"
    for r in records:
        assert r.exc_info is None and "bad request (" in r.getMessage()
    assert "Traceback" not in caplog.text
    assert SECRET.decode() not in caplog.text


def test_other_errors_keep_their_traceback() -> None:
    try:
        raise RuntimeError("our own bug")
    except RuntimeError:
        import sys
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                                   "Error handling request", None, sys.exc_info())
    assert BadRequestLogFilter().filter(record) and record.exc_info is not None
