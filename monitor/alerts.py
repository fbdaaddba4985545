"""Alerts for humans: a Telegram Bot API client, a log sink, and the rate-limiting core.

* :class:`Alerter` - the protocol every sink follows: ``await send(kind, text) -> bool``.
  A sink never raises: a failed delivery is logged and counted, and ``send`` returns
  False.
* :class:`TelegramAlerter` - ``POST {api_url}/bot{token}/sendMessage`` with JSON
  ``{chat_id, text}`` over the caller's :class:`aiohttp.ClientSession`; checks the
  ``{"ok": true}`` answer. The token is registered with :mod:`monitor.redact`, so it
  never shows in logs, histories or exceptions.
* :class:`LogAlerter` - logs the alert (for when Telegram is not configured).
* :class:`AlertPolicy` - pure, time as argument: one outage gives ONE ``disconnected``
  alert and ONE ``recovered`` alert (with how long it was down and how many attempts),
  not a storm; repeats of a kind within ``window`` are suppressed (the next down alert
  counts the outages it kept quiet); ``failed`` is always sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import aiohttp

from monitor.bounds import nesting_ok
from monitor.redact import redact, register_secret

__all__ = [
    "Alert",
    "AlertPolicy",
    "Alerter",
    "LogAlerter",
    "TelegramAlerter",
]

log = logging.getLogger("monitor.alerts")


@runtime_checkable
class Alerter(Protocol):
    async def send(self, kind: str, text: str) -> bool:
        """Deliver one alert. Never raises; False when it could not be delivered."""
        ...


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # "disconnected" | "recovered" | "failed" | anything the caller uses
    text: str


@dataclass(slots=True)
class AlertPolicy:
    """Decides which connection alerts to send. Times are clock seconds.

    ``window``: a kind already sent less than ``window`` ago is not sent again (a
    flapping connection gives one alert per window). ``speed`` turns clock seconds into
    the simulated seconds the texts report.
    """

    conn: str = "ws0"
    window: float = 300.0
    speed: float = 1.0
    _down_since: float | None = None
    _down_alerted: bool = False
    _last_sent: dict[str, float] = field(default_factory=dict)
    suppressed: int = 0
    #: outages that began and ended unannounced since the last down alert (a flapping
    #: feed): the next down alert says how many, so a quiet window is not read as calm
    _silent_outages: int = 0
    _silent_down_s: float = 0.0

    @property
    def in_outage(self) -> bool:
        return self._down_since is not None

    def _allow(self, kind: str, now: float) -> bool:
        last = self._last_sent.get(kind)
        if last is not None and now - last < self.window:
            self.suppressed += 1
            return False
        self._last_sent[kind] = now
        return True

    def disconnected(self, now: float, cause: str) -> Alert | None:
        """The connection went down (or a first attempt failed). One alert per outage."""
        if self._down_since is None:
            self._down_since = now
        if self._down_alerted:
            self.suppressed += 1
            return None
        if not self._allow("disconnected", now):
            return None
        self._down_alerted = True
        text = f"[{self.conn}] WebSocket feed down: {cause}"
        if self._silent_outages:
            text += (f" (and {self._silent_outages} shorter outages since the last alert, "
                     f"{self._silent_down_s:.1f} s down in all, not alerted one by one)")
            self._silent_outages, self._silent_down_s = 0, 0.0
        return Alert("disconnected", text)

    def recovered(self, now: float, attempts: int) -> Alert | None:
        """The connection is back. Sent only if the outage's down alert was sent."""
        if self._down_since is None:
            return None
        down_s = (now - self._down_since) * self.speed
        alerted = self._down_alerted
        self._down_since, self._down_alerted = None, False
        if not alerted:
            self.suppressed += 1
            self._silent_outages += 1
            self._silent_down_s += down_s
            return None
        self._last_sent["recovered"] = now
        return Alert("recovered", f"[{self.conn}] WebSocket feed recovered after "
                                  f"{down_s:.1f} s down, {attempts} reconnect attempts")

    def failed(self, now: float, attempts: int, cause: str) -> Alert:
        """The manager gave up. Always sent."""
        if self._down_since is None:
            self._down_since = now
        self._down_alerted = True
        self._last_sent["failed"] = now
        return Alert("failed", f"[{self.conn}] WebSocket feed FAILED after {attempts} "
                               f"attempts (last cause: {cause}); falling back")


#: alerts a :class:`LogAlerter` keeps in ``sent`` (the most recent; the log has them all)
SENT_KEPT = 1000


class LogAlerter:
    """Writes alerts to the log. Keeps the last ``keep`` it sent in ``sent`` (it is the
    monitor's default alerter: a list of every alert grew for as long as the process ran,
    ~8 alerts a simulated hour of the soak)."""

    def __init__(self, logger: logging.Logger | None = None, *, keep: int = SENT_KEPT) -> None:
        self._log = logger or log
        self.sent: deque[Alert] = deque(maxlen=keep)

    async def send(self, kind: str, text: str) -> bool:
        self.sent.append(Alert(kind, redact(text)))
        self._log.warning("ALERT %s: %s", kind, redact(text))
        return True


class TelegramAlerter:
    """Telegram Bot API ``sendMessage`` over the caller's aiohttp session.

    ``api_url`` is configurable so tests and the simulator can stand in for Telegram.
    Failures (HTTP error, ``{"ok": false}``, timeout, connection error) are logged and
    counted in ``failures``; ``send`` then returns False and never raises.
    """

    def __init__(
        self,
        token: str,
        chat_id: str | int,
        *,
        session: aiohttp.ClientSession,
        api_url: str = "https://api.telegram.org",
        timeout: float = 10.0,
    ) -> None:
        if not token:
            raise ValueError("TelegramAlerter needs a bot token")
        register_secret(token)
        self._token = token
        self.chat_id = chat_id
        self._session = session
        self.api_url = api_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.sent = 0
        self.failures = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"TelegramAlerter(api_url={self.api_url!r}, chat_id={self.chat_id!r})"

    async def send(self, kind: str, text: str) -> bool:
        url = f"{self.api_url}/bot{self._token}/sendMessage"
        payload: dict[str, Any] = {"chat_id": self.chat_id, "text": text}
        try:
            async with self._session.post(url, json=payload, timeout=self._timeout,
                                          allow_redirects=False) as resp:  # token in path
                body = await resp.text()
                status = resp.status
            ok = False
            description = ""
            try:
                if not nesting_ok(body):
                    raise ValueError("nested too deep")
                parsed = json.loads(body)
                ok = isinstance(parsed, dict) and parsed.get("ok") is True
                if isinstance(parsed, dict):
                    description = str(parsed.get("description", ""))
            except ValueError:
                description = f"not JSON: {body[:80]!r}"
            if status != 200 or not ok:
                return self._fail(kind, f"HTTP {status} {description}".strip())
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self._fail(kind, f"{type(exc).__name__}: {exc}")
        self.sent += 1
        log.info("alert %s sent to telegram chat %s", kind, self.chat_id)
        return True

    def _fail(self, kind: str, reason: str) -> bool:
        self.failures += 1
        self.last_error = redact(reason)
        log.warning("alert %s NOT delivered to telegram: %s", kind, self.last_error)
        return False
