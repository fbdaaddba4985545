"""The Telegram alerter against the Bot API's real answers: a text past its length
(400 "Bad Request: message is too long"), a refused token or chat, an alert storm."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from test_alerts import TOKEN, with_telegram

from monitor.alerts import MAX_TEXT_UNITS, TelegramAlerter, fit_text


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


async def _telegram_like(request: web.Request) -> web.Response:
    """sendMessage as Telegram checks its text: 1-4096 UTF-16 code units."""
    text = (await request.json()).get("text", "")
    if not text.strip():
        return web.json_response({"ok": False, "error_code": 400,
                                  "description": "Bad Request: message text is empty"},
                                 status=400)
    if _units(text) > 4096:
        return web.json_response({"ok": False, "error_code": 400,
                                  "description": "Bad Request: message is too long"},
                                 status=400)
    return web.json_response({"ok": True, "result": {"message_id": 1}})


@pytest.mark.parametrize("text", ["x" * 10_000, "\U0001f525" * 3_000, "é" * 4_097, "  "])
def test_an_alert_past_telegrams_length_is_sent_cut_not_lost(
        text: str, caplog: pytest.LogCaptureFixture) -> None:
    """A crash's traceback text or a long provider error made an alert past 4096
    characters: Telegram refused it whole (400 "message is too long") and the alert was
    lost, maybe the one saying the feed FAILED. It is sent cut, its whole text logged."""
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((await request.json())["text"])
        return await _telegram_like(request)

    async def test(tg: TelegramAlerter) -> None:
        assert await tg.send("failed", text) is True, tg.last_error

    with caplog.at_level(logging.INFO):
        asyncio.run(with_telegram(handle, test))
    assert len(got) == 1 and 0 < _units(got[0]) <= MAX_TEXT_UNITS
    if text.strip():
        assert got[0].startswith(text[:100])
        if _units(text) > MAX_TEXT_UNITS:
            assert "cut" in got[0] and text[:1000] in caplog.text


def test_fit_text_keeps_a_short_text_and_never_splits_a_surrogate_pair() -> None:
    assert fit_text("back") == "back"
    cut = fit_text("a" + "\U0001f525" * 5_000)
    assert _units(cut) <= MAX_TEXT_UNITS and "\ufffd" not in cut
    cut.encode("utf-8")  # no lone surrogate


REFUSALS = [
    (401, "Unauthorized", "telegram_token"),
    (404, "Not Found", "telegram_token"),
    (403, "Forbidden: bot was blocked by the user", "telegram_chat_id"),
    (400, "Bad Request: chat not found", "telegram_chat_id"),
]


@pytest.mark.parametrize("status,description,setting", REFUSALS)
def test_a_refused_token_or_chat_is_said_once_and_the_alerts_stay_in_the_log(
        status: int, description: str, setting: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """A wrong token (401; 404 for one of the wrong form) or a chat that refuses the bot
    (403 blocked, 400 chat not found): every alert posted again, each failure a warning
    'HTTP 401 Unauthorized' naming no setting, and the alert's own text nowhere. The
    refusal is one ERROR naming the setting to fix; the alerts after it are not posted
    (for REFUSED_RETRY_S) and every alert's text is in the log."""
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((await request.json())["text"])
        return web.json_response({"ok": False, "error_code": status,
                                  "description": description}, status=status)

    async def test(tg: TelegramAlerter) -> None:
        for i in range(5):
            assert await tg.send("failed", f"feed down number {i}") is False
        assert tg.failures == 5 and tg.refused is not None

    with caplog.at_level(logging.INFO):
        asyncio.run(with_telegram(handle, test))
    assert len(got) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and setting in errors[0] and str(status) in errors[0]
    for i in range(5):
        assert f"feed down number {i}" in caplog.text
    assert TOKEN not in caplog.text


def test_a_chat_that_takes_the_bot_again_gets_the_alerts_again(
        caplog: pytest.LogCaptureFixture) -> None:
    """Refused (the bot blocked), then unblocked: once REFUSED_RETRY_S has passed the
    next alert is posted and delivered."""
    answers = [403, 200]

    async def handle(request: web.Request) -> web.Response:
        status = answers.pop(0)
        if status == 200:
            return web.json_response({"ok": True, "result": {"message_id": 3}})
        return web.json_response({"ok": False, "error_code": 403, "description":
                                  "Forbidden: bot was blocked by the user"}, status=403)

    async def test(tg: TelegramAlerter) -> None:
        tg.REFUSED_RETRY_S = 0.0
        assert await tg.send("failed", "one") is False
        assert await tg.send("recovered", "two") is True
        assert tg.refused is None and tg.sent == 1

    with caplog.at_level(logging.INFO):
        asyncio.run(with_telegram(handle, test))
    assert answers == [] and "again" in caplog.text


def test_an_alert_storm_is_bounded_and_never_waited_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """2,000 alerts at once (every shard of a provider outage, a crash loop): each was
    posted at once, 2,000 requests in flight and every one its own task waiting on
    Telegram (whose 429s then refused the alert that mattered). At most MAX_PENDING are
    sent; the others return at once (False), are logged with their text and counted;
    the next alert sent says how many were not."""
    got: list[str] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        got.append((await request.json())["text"])
        await release.wait()  # Telegram slow: the storm piles up on the alerter
        return web.json_response({"ok": True, "result": {"message_id": len(got)}})

    async def test(tg: TelegramAlerter) -> None:
        loop = asyncio.get_running_loop()
        sends = [asyncio.ensure_future(tg.send("task_crash", f"storm {i}"))
                 for i in range(2_000)]
        while len(got) < tg.MAX_PENDING:
            await asyncio.sleep(0.01)
        started = loop.time()
        done = [s for s in sends if s.done()]
        while len(done) < 2_000 - tg.MAX_PENDING and loop.time() - started < 10:
            await asyncio.sleep(0.01)
            done = [s for s in sends if s.done()]
        assert len(done) == 2_000 - tg.MAX_PENDING and not any(s.result() for s in done)
        assert len(got) == tg.MAX_PENDING and tg.dropped == 2_000 - tg.MAX_PENDING
        release.set()
        assert all(await asyncio.gather(*(s for s in sends if s not in done)))
        tg.POSTS_PER_S = 1_000.0  # the burst is spent: no 3-s turn in a test
        assert await tg.send("recovered", "after the storm") is True

    with caplog.at_level(logging.WARNING):
        asyncio.run(with_telegram(handle, test))
    told = [t for t in got if "more alerts were not sent" in t]
    assert len(told) == 1 and f"\n({2_000 - TelegramAlerter.MAX_PENDING} more" in told[0]
    assert "storm 1999" in caplog.text and TOKEN not in caplog.text


def test_posts_past_the_burst_wait_their_turn() -> None:
    """The token bucket: BURST posts at once, then one every 1 / POSTS_PER_S s."""
    async def main() -> list[float]:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            tg = TelegramAlerter(TOKEN, 1, session=session)
            return [tg._take_turn(100.0) for _ in range(tg.BURST + 2)] + [
                tg._take_turn(100.0 + 6.0)]

    waits = asyncio.run(main())
    assert waits[:TelegramAlerter.BURST] == [0.0] * TelegramAlerter.BURST
    assert waits[TelegramAlerter.BURST:] == pytest.approx([3.0, 6.0, 3.0])


def test_a_long_flood_ban_holds_back_every_post_till_it_passes(
        caplog: pytest.LogCaptureFixture) -> None:
    """Telegram's flood control answers 429 with a retry_after of an hour (or more): the
    alert gave up (rightly) but the next alert was posted at once, refused again, and so
    on for every alert of the hour (a ban Telegram lengthens). No post until the wait has
    passed; the alerts meanwhile fail at once, each in the log with its text."""
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((await request.json())["text"])
        return web.json_response({"ok": False, "error_code": 429, "description":
                                  "Too Many Requests: retry after 3600",
                                  "parameters": {"retry_after": 3600}}, status=429)

    async def test(tg: TelegramAlerter) -> None:
        for i in range(5):
            assert await asyncio.wait_for(tg.send("failed", f"banned {i}"), 5) is False
        assert "3600" in (tg.last_error or "") or "retry_after" in (tg.last_error or "")

    with caplog.at_level(logging.WARNING):
        asyncio.run(with_telegram(handle, test))
    assert len(got) == 1
    assert all(f"banned {i}" in caplog.text for i in range(5))


def test_a_group_upgraded_to_a_supergroup_gets_the_alerts_at_its_new_id(
        caplog: pytest.LogCaptureFixture) -> None:
    """A group grown into a supergroup has a new id: Telegram answers 400 'Bad Request:
    group chat was upgraded to a supergroup chat' with parameters.migrate_to_chat_id, and
    every alert was refused for good. The alert is posted to the new id (and the ones
    after it), the setting to change said once."""
    chats: list[object] = []

    async def handle(request: web.Request) -> web.Response:
        chat = (await request.json())["chat_id"]
        chats.append(chat)
        if chat == -1001557912345:
            return web.json_response({"ok": True, "result": {"message_id": len(chats)}})
        return web.json_response({"ok": False, "error_code": 400, "description":
                                  "Bad Request: group chat was upgraded to a supergroup "
                                  "chat", "parameters": {"migrate_to_chat_id":
                                                         -1001557912345}}, status=400)

    async def test(tg: TelegramAlerter) -> None:
        assert await tg.send("failed", "one") is True
        assert await tg.send("recovered", "two") is True

    with caplog.at_level(logging.WARNING):
        asyncio.run(with_telegram(handle, test))
    assert chats == ["-100200", -1001557912345, -1001557912345]
    assert caplog.text.count("telegram_chat_id=-1001557912345") == 1


def test_an_alert_cancelled_while_sending_is_left_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    """At its stop the monitor waits a few seconds for the alerts being sent, then they
    are cancelled: one waiting for Telegram's answer (or its turn) was gone without a
    trace. Its text is in the log."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()  # Telegram answers only after the cancel
        return web.json_response({"ok": True, "result": {"message_id": 1}})

    async def test(tg: TelegramAlerter) -> None:
        sending = asyncio.ensure_future(tg.send("failed", "the feed FAILED at stop"))
        await asyncio.wait_for(arrived.wait(), 5)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        release.set()

    with caplog.at_level(logging.WARNING):
        asyncio.run(with_telegram(handle, test))
    assert "the feed FAILED at stop" in caplog.text and TOKEN not in caplog.text
