"""Alert rate limiting (pure, time as argument) and the alert sinks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.alerts import (
    SENT_KEPT,
    Alert,
    Alerter,
    AlertPolicy,
    LogAlerter,
    TelegramAlerter,
)

TOKEN = "555000111:AAsecret-alerts-token"


def kinds(*alerts: Alert | None) -> list[str | None]:
    return [a.kind if a else None for a in alerts]


def test_an_outage_is_one_down_alert_and_one_recovery_alert() -> None:
    p = AlertPolicy(conn="ws0", window=300.0)
    # 10 s: lost; 11-40 s: attempts fail with other causes; 70 s: back after 3 attempts
    got = [p.disconnected(10.0, "abrupt_close"), p.disconnected(11.0, "refused"),
           p.disconnected(40.0, "handshake_503"), p.recovered(70.0, attempts=3)]
    assert kinds(*got) == ["disconnected", None, None, "recovered"]
    assert got[0] is not None and "abrupt_close" in got[0].text
    assert got[3] is not None and "60.0 s down" in got[3].text and "3 reconnect" in got[3].text
    assert p.suppressed == 2 and not p.in_outage


def test_a_flap_within_the_window_is_silent_both_ways() -> None:
    p = AlertPolicy(window=300.0)
    assert kinds(p.disconnected(0.0, "x"), p.recovered(5.0, 1)) == ["disconnected",
                                                                   "recovered"]
    # 100 s: down again, inside the 300 s window: neither down nor recovery is sent
    assert kinds(p.disconnected(100.0, "x"), p.recovered(101.0, 1)) == [None, None]
    assert kinds(p.disconnected(200.0, "x"), p.recovered(203.5, 1)) == [None, None]
    # 400 s: outside the window: alerts again, and says the feed flapped meanwhile
    down, back = p.disconnected(400.0, "x"), p.recovered(402.0, 2)
    assert kinds(down, back) == ["disconnected", "recovered"]
    assert down is not None and "and 2 shorter outages since the last alert, 4.5 s down" \
        in down.text
    # counted once: the next announced outage has nothing unannounced before it
    nxt = p.disconnected(800.0, "x")
    assert nxt is not None and "shorter outages" not in nxt.text


def test_failed_is_always_sent_and_its_recovery_too() -> None:
    p = AlertPolicy(window=300.0)
    p.disconnected(0.0, "refused")
    failed = p.failed(30.0, attempts=20, cause="refused")
    assert failed.kind == "failed" and "20 attempts" in failed.text
    assert p.failed(31.0, 20, "refused").kind == "failed"  # never suppressed
    rec = p.recovered(90.0, 21)
    assert rec is not None and "90.0 s down" in rec.text


def test_failed_without_a_prior_down_alert_starts_the_outage() -> None:
    p = AlertPolicy(window=300.0)
    p.disconnected(0.0, "x")
    p.recovered(1.0, 1)
    p.disconnected(10.0, "x")  # suppressed by the window
    p.failed(20.0, 5, "x")
    rec = p.recovered(30.0, 6)
    assert rec is not None and "20.0 s down" in rec.text


def test_recovered_without_an_outage_is_nothing() -> None:
    assert AlertPolicy().recovered(5.0, 0) is None


def test_durations_are_reported_in_simulated_seconds() -> None:
    p = AlertPolicy(window=3.0, speed=100.0)
    p.disconnected(1.0, "x")
    rec = p.recovered(1.5, 4)
    assert rec is not None and "50.0 s down" in rec.text


def test_log_alerter_logs_and_keeps_alerts(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogAlerter()
    assert isinstance(sink, Alerter)
    with caplog.at_level(logging.WARNING, logger="monitor.alerts"):
        assert asyncio.run(sink.send("failed", f"token {TOKEN} leaked?")) is True
    assert sink.sent[0].kind == "failed"
    assert "ALERT failed" in caplog.text


class Stand:
    """A Telegram stand-in whose answers the test chooses."""

    def __init__(self, answer: Any, status: int = 200) -> None:
        self.answer, self.status = answer, status
        self.got: list[dict[str, Any]] = []

    async def run(self, test: Any) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.got.append({"path": request.path, "json": await request.json()})
            if isinstance(self.answer, str):
                return web.Response(text=self.answer, status=self.status)
            return web.json_response(self.answer, status=self.status)

        await with_telegram(handle, test)


Handler = Callable[[web.Request], Awaitable[web.Response]]


async def with_telegram(handle: Handler,
                        test: Callable[[TelegramAlerter], Awaitable[None]]) -> None:
    """A Telegram Bot API stand-in on loopback whose sendMessage ``handle`` answers, and
    a :class:`TelegramAlerter` (token :data:`TOKEN`) pointed at it, given to ``test``."""
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        async with aiohttp.ClientSession() as session:
            await test(TelegramAlerter(TOKEN, "-100200", session=session, api_url=url))
    finally:
        await runner.cleanup()


def test_log_alerter_keeps_a_bounded_number_of_alerts() -> None:
    # the monitor's default alerter: a soak raises ~8 alerts a simulated hour, and every
    # one was kept in ``sent`` for as long as the process ran (issue #10)
    quiet = logging.getLogger("test.alerts.bound")
    quiet.disabled = True

    async def many(sink: LogAlerter, n: int) -> None:
        for i in range(n):
            await sink.send("disconnected", f"down {i}")

    sink = LogAlerter(quiet)
    asyncio.run(many(sink, 5_000))
    assert len(sink.sent) == SENT_KEPT <= 1_000
    assert sink.sent[-1].text == "down 4999" and sink.sent[0].text == "down 4000"
    small = LogAlerter(quiet, keep=3)
    asyncio.run(many(small, 10))
    assert [a.text for a in small.sent] == ["down 7", "down 8", "down 9"]


def test_telegram_posts_chat_id_and_text_to_send_message() -> None:
    stand = Stand({"ok": True, "result": {"message_id": 1}})

    async def test(tg: TelegramAlerter) -> None:
        assert await tg.send("recovered", "back") is True
        assert tg.sent == 1 and tg.failures == 0

    asyncio.run(stand.run(test))
    assert stand.got == [{"path": f"/bot{TOKEN}/sendMessage",
                          "json": {"chat_id": "-100200", "text": "back"}}]


@pytest.mark.parametrize("answer,status,reason", [
    ({"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, 400,
     "chat not found"),
    ({"ok": False, "description": "weird"}, 200, "weird"),
    ("<html>gateway</html>", 502, "not JSON"),
])
def test_telegram_failures_return_false_and_are_counted(
        answer: Any, status: int, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    stand = Stand(answer, status)

    async def test(tg: TelegramAlerter) -> None:
        assert await tg.send("disconnected", "down") is False
        assert tg.failures == 1 and reason in (tg.last_error or "")

    with caplog.at_level(logging.DEBUG):
        asyncio.run(stand.run(test))
    assert "NOT delivered" in caplog.text and TOKEN not in caplog.text


def test_telegram_does_not_follow_a_redirect_with_the_token_in_its_path() -> None:
    """The bot token is in the URL's path: a 307 re-posted it wherever Location named."""
    hits: list[str] = []

    async def main() -> None:
        app = web.Application()

        async def moved(request: web.Request) -> web.Response:
            hits.append(request.path)
            return web.Response(status=307, headers={"Location": f"/elsewhere{request.path}"})

        async def elsewhere(request: web.Request) -> web.Response:
            hits.append(request.path)
            return web.json_response({"ok": True})

        app.router.add_post("/bot{token}/sendMessage", moved)
        app.router.add_post("/elsewhere/{tail:.*}", elsewhere)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        try:
            async with aiohttp.ClientSession() as session:
                tg = TelegramAlerter(TOKEN, "-100200", session=session, api_url=url)
                assert await tg.send("disconnected", "down") is False
                assert "HTTP 307" in (tg.last_error or "")
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert hits == [f"/bot{TOKEN}/sendMessage"]


def test_telegram_needs_a_token() -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ValueError, match="token"):
                TelegramAlerter("", 1, session=session)

    asyncio.run(main())
