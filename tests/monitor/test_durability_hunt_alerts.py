"""Durability hunt, the alert channel: Telegram answering 429 with ``retry_after``, a
gateway's page that is not UTF-8. An alert must not be lost to a rate limit, and the
alerter must never raise."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from test_alerts import TOKEN, with_telegram

from monitor.alerts import TelegramAlerter


def test_an_alert_telegram_rate_limits_is_sent_after_its_retry_after() -> None:
    """Telegram answers 429 ``{"parameters": {"retry_after": n}}`` to a burst (a provider
    outage alerts from every shard at once): the alert was dropped, and with it maybe the
    one saying the feed FAILED. It is sent again once ``retry_after`` has passed."""
    got: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(await request.json())
        if len(got) == 1:
            return web.json_response(
                {"ok": False, "error_code": 429, "description": "Too Many Requests: "
                 "retry after 1", "parameters": {"retry_after": 1}}, status=429)
        return web.json_response({"ok": True, "result": {"message_id": 2}})

    async def test(tg: TelegramAlerter) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await asyncio.wait_for(tg.send("failed", "feed FAILED"), 30.0) is True
        assert loop.time() - t0 >= 0.9  # it waited what Telegram asked
        assert tg.sent == 1 and tg.failures == 0

    asyncio.run(with_telegram(handle, test))
    assert [g["text"] for g in got] == ["feed FAILED", "feed FAILED"]


def test_a_rate_limit_asking_too_long_a_wait_gives_up_at_once() -> None:
    """A ``retry_after`` past the bound is not waited on (the alert would be stale)."""
    got: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(1)
        return web.json_response({"ok": False, "error_code": 429, "description": "Too "
                                  "Many Requests", "parameters": {"retry_after": 3600}},
                                 status=429)

    async def test(tg: TelegramAlerter) -> None:
        assert await asyncio.wait_for(tg.send("failed", "x"), 30.0) is False
        assert tg.failures == 1 and "429" in (tg.last_error or "")

    asyncio.run(with_telegram(handle, test))
    assert got == [1]


@pytest.mark.parametrize("body", [b"\xff\xfe<html>bad gateway</html>", b"\x80ok"])
def test_a_telegram_answer_that_is_not_utf8_is_a_failure_not_a_raise(
        body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy's error page in another charset made ``send`` raise UnicodeDecodeError:
    the alerter's contract is to never raise (its callers run it in background tasks) and
    to count the failure."""
    monkeypatch.setattr(TelegramAlerter, "RETRY_DELAYS_S", (0.01,), raising=False)
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, status=502, content_type="text/html")

    async def test(tg: TelegramAlerter) -> None:
        assert await tg.send("disconnected", "down") is False
        assert tg.failures == 1 and "502" in (tg.last_error or "")

    asyncio.run(with_telegram(handle, test))


def test_a_gateway_error_is_tried_again_after_a_short_backoff(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 503 from Telegram's front (a passing outage) dropped the alert; it is posted
    again, a bounded number of times."""
    monkeypatch.setattr(TelegramAlerter, "RETRY_DELAYS_S", (0.01,), raising=False)
    got: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(1)
        if len(got) < 3:
            return web.Response(text="<html>503 Service Unavailable</html>", status=503)
        return web.json_response({"ok": True, "result": {"message_id": 3}})

    async def test(tg: TelegramAlerter) -> None:
        assert await asyncio.wait_for(tg.send("disconnected", "down"), 30.0) is True
        assert tg.sent == 1 and tg.failures == 0

    asyncio.run(with_telegram(handle, test))
    assert len(got) == 3


def test_a_bad_token_is_not_tried_again_and_never_shows(
        caplog: pytest.LogCaptureFixture) -> None:
    """401 (a revoked token): one post, one failure, the token nowhere in the log."""
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(request.path)
        return web.json_response({"ok": False, "error_code": 401,
                                  "description": "Unauthorized"}, status=401)

    async def test(tg: TelegramAlerter) -> None:
        assert await tg.send("failed", "x") is False
        assert tg.failures == 1 and "401" in (tg.last_error or "")

    asyncio.run(with_telegram(handle, test))
    assert len(got) == 1 and TOKEN not in caplog.text


def test_a_secret_in_an_alert_text_never_leaves_for_telegram() -> None:
    """An alert's text is built from error messages (a sink's exception, a task's crash):
    one carrying a registered secret (a provider key in a URL) was posted to Telegram as
    it was, a third party's chat history. It is redacted like the logs."""
    from monitor.redact import register_secret

    key = "durabilityhuntproviderkey0123456789"
    register_secret(key)
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((await request.json())["text"])
        return web.json_response({"ok": True, "result": {"message_id": 4}})

    async def test(tg: TelegramAlerter) -> None:
        assert await tg.send("sink_failed", f"sink FAILED (https://x.example/{key}/order)")

    asyncio.run(with_telegram(handle, test))
    assert len(got) == 1 and key not in got[0] and "x.example" in got[0]


def test_an_alert_sent_after_the_session_closed_fails_without_raising() -> None:
    """At stop the HTTP session closes while alerts may still be on their way (a retry
    waiting out a 429): aiohttp's RuntimeError('Session is closed') came out of ``send``,
    which is never to raise."""
    async def main() -> None:
        session = aiohttp.ClientSession()
        tg = TelegramAlerter(TOKEN, "-100200", session=session, api_url="http://127.0.0.1:9")
        await session.close()
        assert await tg.send("failed", "late") is False
        assert tg.failures == 1

    asyncio.run(main())
