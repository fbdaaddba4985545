"""The Telegram alerter against the Bot API's real answers: a text past its length
(400 "Bad Request: message is too long"), a refused token or chat, an alert storm."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

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
