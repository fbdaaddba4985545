"""A malformed HTTP request is one log line without a traceback, a flood of them a few
lines and a count (polyvocab.http_log), on a real aiohttp server over loopback as the
simulator's node and the monitor's ops server run it; the pace and the line's text are
pure and tested without a server."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, LineTooLong

from polyvocab.http_log import BadRequestLog, BadRequestPace, describe, escape_controls

TIMEOUT = 30.0
SECRET = b"ExplorerKey0123456789SECRET"


# -- the pace: no clock of its own --------------------------------------------------------

def test_the_first_few_get_a_line_and_the_rest_a_count_at_the_window_end() -> None:
    pace = BadRequestPace(first=2, every_s=60)
    # 0 s: a window opens; two lines, then counted
    assert [pace.note(t) for t in (0.0, 1.0, 2.0, 3.0, 59.0)] == [0, 0, None, None, None]
    assert pace.untold == 3 and pace.due() == 60.0
    assert pace.flush(59.9) == 0  # the window is not over
    # 60 s: the window is over: the count is said once, the window closed
    assert pace.flush(60.0) == 3 and pace.flush(61.0) == 0 and pace.due() is None
    # 70 s: a new window, two lines again
    assert [pace.note(t) for t in (70.0, 71.0, 72.0)] == [0, 0, None]
    # 200 s: the next request's line carries the count untold before it
    assert pace.note(200.0) == 1
    assert pace.total == 9


def test_a_clock_that_went_back_closes_the_window() -> None:
    pace = BadRequestPace(first=1, every_s=60)
    assert pace.note(100.0) == 0 and pace.note(101.0) is None
    assert pace.note(50.0) == 1  # back in time: a new window, the count with its line


def test_closing_says_the_count_whatever_the_time() -> None:
    pace = BadRequestPace(first=1, every_s=60)
    pace.note(0.0), pace.note(1.0), pace.note(2.0)
    assert pace.flush(3.0) == 0 and pace.flush(3.0, force=True) == 2


def test_a_pace_that_would_say_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        BadRequestPace(first=0)
    with pytest.raises(ValueError):
        BadRequestPace(every_s=0)


# -- the line's text ----------------------------------------------------------------------

def test_control_characters_in_a_request_line_are_escaped_not_written() -> None:
    """A request line holding CR LF (a forged second log line), ANSI escapes (a terminal
    recoloured, the screen cleared), a Unicode line separator or a direction override
    reaches the log escaped."""
    hostile = ("GET /\r\n2026-12-03 00:00:00 monitor CRITICAL forged\x1b[2J\x1b[31m"
               "\u2028\u202e\x7f\x85 HTTP/1.1")
    text = describe(BadHttpMessage(hostile), quote=1000)
    assert text.startswith("BadHttpMessage, answered 400: GET /")
    assert text.isprintable(), text
    for raw, shown in (("\r", "\\r"), ("\n", "\\n"), ("\x1b", "\\x1b"), ("\u2028", "\\u2028"),
                       ("\u202e", "\\u202e"), ("\x7f", "\\x7f"), ("\x85", "\\x85")):
        assert raw not in text and shown in text
    assert escape_controls("plain text, a space") == "plain text, a space"


def test_the_quote_is_bounded_and_a_key_masked_before_the_cut() -> None:
    line = "GET /v2/api?chainid=137&apikey=" + SECRET.decode() + "&x=" + "k" * 9000
    text = describe(LineTooLong(line.encode()[:100] + b"...", 8190), quote=80)
    assert len(text) <= len("LineTooLong, answered 400: ") + 80
    assert SECRET.decode() not in text and "ExplorerKey" not in text
    assert describe(LineTooLong(line, 8190), quote=0) == "LineTooLong, answered 400"


def test_aiohttps_layout_is_undone() -> None:
    """aiohttp's parser writes 'what:\\n\\n    b'<line>'\\n      ^': one line here."""
    exc = BadStatusLine("", "Invalid method encountered:\n\n    b'G\\x1b[2JET'\n       ^")
    assert describe(exc) == ("BadStatusLine, answered 400: Invalid method encountered: "
                             "b'G\\x1b[2JET'")


# -- the adapter on a real server -----------------------------------------------------------

async def _send_raw(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


async def _serve(http_log: BadRequestLog, payloads: list[bytes]) -> list[bytes]:
    """Each payload on its own connection to an aiohttp server logging through
    ``http_log``; the answers."""
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None, logger=http_log)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return [await _send_raw(port, p) for p in payloads]
    finally:
        await runner.cleanup()
        http_log.close()


HOSTILE = [
    b"GET /v2/api?address=" + b"0xab" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # > 8 kB
    # > 8 kB with the explorer key early in the query: aiohttp quotes it
    b"GET /v2/api?chainid=137&apikey=" + SECRET + b"&x=" + b"k" * 9000
    + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS to a plain port
    b"GET /a\x1b[2Jb HTTP/1.1\r\nHost: x\r\n\r\n",  # ANSI escape in the path
    b"G\x1b[31mET / HTTP/1.1\r\nHost: x\r\n\r\n",  # and in the method
    b"GET /x\r\n\x1b[31m2026-12-03 CRITICAL forged HTTP/1.1\r\n\r\n",
    b"GET /metrics?key=SECRETKEY\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_a_malformed_request_is_one_line_without_a_traceback(
        payload: bytes, caplog: pytest.LogCaptureFixture) -> None:
    http_log = BadRequestLog(logging.getLogger("tests.http_log"), level=logging.INFO)
    with caplog.at_level(logging.DEBUG, logger="tests.http_log"):
        (answer,) = asyncio.run(asyncio.wait_for(_serve(http_log, [payload]), 60))
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    records = [r for r in caplog.records if r.name == "tests.http_log"]
    assert len(records) == 1, [r.getMessage() for r in records]
    (r,) = records
    assert r.exc_info is None and "malformed request (" in r.getMessage()
    assert "Traceback" not in caplog.text and r.getMessage().isprintable()
    assert SECRET.decode() not in caplog.text and "SECRETKEY" not in caplog.text
    assert http_log.bad == 1


def test_a_flood_is_the_first_few_lines_then_a_count(caplog: pytest.LogCaptureFixture) -> None:
    """40 malformed requests: 3 lines, then nothing; the 37 others are one count line (at
    the server's close here: the minute is not over)."""
    http_log = BadRequestLog(logging.getLogger("tests.http_log"), level=logging.WARNING,
                             prefix="node: ", first=3, every_s=60)
    with caplog.at_level(logging.DEBUG, logger="tests.http_log"):
        answers = asyncio.run(asyncio.wait_for(_serve(http_log, [HOSTILE[0]] * 40), 60))
    assert all(b" 400 " in a.split(b"\r\n")[0] for a in answers)
    lines = [r.getMessage() for r in caplog.records if r.name == "tests.http_log"]
    assert len(lines) == 4, lines
    assert all(m.startswith("node: ") and "LineTooLong, answered 400" in m for m in lines[:3])
    assert lines[3] == "node: 37 more malformed requests in the last 60 s (not logged)"
    assert http_log.bad == 40


def test_the_untold_count_is_said_when_its_window_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    """No further request needed: a timer says the count at the window's end."""
    http_log = BadRequestLog(logging.getLogger("tests.http_log"), level=logging.WARNING,
                             first=1, every_s=0.3)
    told = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "more malformed requests" in record.getMessage():
                told.set()

    async def main() -> None:
        logger = logging.getLogger("tests.http_log")
        watch = Watch()
        logger.addHandler(watch)
        try:
            app = web.Application()
            runner = web.AppRunner(app, access_log=None, logger=http_log)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            for _ in range(5):
                await _send_raw(port, HOSTILE[2])
            await asyncio.wait_for(told.wait(), TIMEOUT)
            await runner.cleanup()
        finally:
            logger.removeHandler(watch)
        http_log.close()  # nothing more to say

    with caplog.at_level(logging.DEBUG, logger="tests.http_log"):
        asyncio.run(asyncio.wait_for(main(), 60))
    lines = [r.getMessage() for r in caplog.records if r.name == "tests.http_log"]
    assert len(lines) == 2 and lines[1].startswith("4 more malformed requests"), lines
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_other_errors_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    http_log = BadRequestLog(logging.getLogger("tests.http_log"))
    try:
        raise RuntimeError("our own bug")
    except RuntimeError:
        with caplog.at_level(logging.DEBUG, logger="tests.http_log"):
            http_log.exception("Unhandled exception")
            http_log.exception("Unhandled exception", exc_info=sys.exc_info())
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 2
    assert all(r.exc_info is not None for r in caplog.records)
    assert all(r.getMessage() == "Unhandled exception" for r in caplog.records)
    assert http_log.bad == 0


def test_a_debug_line_no_one_reads_takes_no_line_of_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp logs a first request in no HTTP method (TLS to a plain port) at DEBUG: with
    the logger at INFO it is counted and takes none of the window's lines, so the
    malformed request after it is still told."""
    http_log = BadRequestLog(logging.getLogger("tests.http_log"), level=logging.WARNING,
                             first=1, every_s=60)
    with caplog.at_level(logging.INFO, logger="tests.http_log"):
        asyncio.run(asyncio.wait_for(_serve(http_log, [HOSTILE[3], HOSTILE[3], HOSTILE[2]]),
                                     60))
    lines = [r.getMessage() for r in caplog.records if r.name == "tests.http_log"]
    assert len(lines) == 1 and "BadHttpMessage" in lines[0], lines
    assert http_log.bad == 3
