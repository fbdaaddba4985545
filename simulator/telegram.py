"""A Telegram Bot API stand-in for ``sendMessage`` (sans-I/O).

:class:`TelegramBot` answers as Telegram does (``{"ok": true, "result": Message}`` or
``{"ok": false, "error_code": 400, "description": "Bad Request: ..."}``) and returns the
alert to record. The bot token is never kept, logged or written down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Alert", "TelegramBot", "TelegramReply"]


@dataclass(frozen=True, slots=True)
class Alert:
    chat_id: int | str
    text: str


@dataclass(frozen=True, slots=True)
class TelegramReply:
    status: int
    body: dict[str, Any]
    alert: Alert | None = None


_CHAT_ID_MAX = 2**63 - 1  # chat ids are 64-bit integers; anything larger names no chat


def _bad(description: str, code: int = 400) -> TelegramReply:
    return TelegramReply(code, {"ok": False, "error_code": code, "description": description})


def valid_token(token: str) -> bool:
    """Bot tokens look like ``123456:ABC-def_ghi``."""
    head, sep, tail = token.partition(":")
    return bool(sep) and head.isdigit() and bool(tail) and all(
        c.isalnum() or c in "-_" for c in tail)


class TelegramBot:
    """Counts messages; :meth:`send_message` takes the parsed fields and the time (s)."""

    def __init__(self) -> None:
        self._next_id = 1

    def send_message(self, token: str, fields: dict[str, Any] | None,
                     now_s: float) -> TelegramReply:
        if not valid_token(token):
            return _bad("Unauthorized", 401)
        if fields is None:
            return _bad("Bad Request: message text is empty")
        chat_raw = fields.get("chat_id")
        if chat_raw is None or chat_raw == "":
            return _bad("Bad Request: chat_id is empty")
        text = fields.get("text")
        if text is None or text == "":
            return _bad("Bad Request: message text is empty")
        if isinstance(text, (dict, list)):
            return _bad("Bad Request: message text is empty")
        if not isinstance(text, str):
            text = str(text)
        if len(text) > 4096:
            return _bad("Bad Request: message is too long")
        chat_id: int | str
        if isinstance(chat_raw, bool) or not isinstance(chat_raw, (int, str)):
            return _bad("Bad Request: chat not found")
        digits = chat_raw.lstrip("-") if isinstance(chat_raw, str) else ""
        if digits.isdigit():  # any Unicode digit: only short ASCII ones make an id
            if len(digits) > 19 or not digits.isascii():  # before int(): no huge ints
                return _bad("Bad Request: chat not found")
            chat_id = int(chat_raw)
        elif isinstance(chat_raw, str) and not chat_raw.startswith("@"):
            return _bad("Bad Request: chat not found")
        else:
            chat_id = chat_raw
        if isinstance(chat_id, int) and abs(chat_id) > _CHAT_ID_MAX:
            return _bad("Bad Request: chat not found")
        if isinstance(chat_id, str) and len(chat_id) > 33:  # @ + a 5..32 character username
            return _bad("Bad Request: chat not found")
        message_id = self._next_id
        self._next_id += 1
        chat: dict[str, Any] = ({"id": chat_id, "type": "private"} if isinstance(chat_id, int)
                                else {"id": -1000000000000 - message_id, "type": "channel",
                                      "username": str(chat_id)[1:]})
        result = {"message_id": message_id,
                  "from": {"id": 1, "is_bot": True, "first_name": "sim", "username": "sim_bot"},
                  "chat": chat, "date": int(now_s), "text": text}
        return TelegramReply(200, {"ok": True, "result": result}, Alert(chat_id, text))
