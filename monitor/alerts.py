"""Alerts for humans: a Telegram Bot API client, a log sink, and the rate-limiting core.

* :class:`Alerter` - the protocol every sink follows: ``await send(kind, text) -> bool``.
  A sink never raises: a failed delivery is logged and counted, and ``send`` returns
  False.
* :class:`TelegramAlerter` - ``POST {api_url}/bot{token}/sendMessage`` with JSON
  ``{chat_id, text}`` over the caller's :class:`aiohttp.ClientSession`; checks the
  ``{"ok": true}`` answer. The token is registered with :mod:`monitor.redact`, so it
  never shows in logs, histories or exceptions; the texts sent are redacted too. A 429
  is tried again after its ``retry_after``, a 5xx or a failed connection after a short
  backoff (bounded). A refused token (401, 404) or chat (403 "bot was blocked by the
  user", 400 "chat not found") is said once as an ERROR naming the setting to fix; no
  post for 10 minutes then. An alert not delivered is logged with its text; one past
  Telegram's 4096 characters is sent cut.
* :class:`LogAlerter` - logs the alert (for when Telegram is not configured).
* :class:`AlertPolicy` - pure, time as argument: one outage gives ONE ``disconnected``
  alert and ONE ``recovered`` alert (with how long it was down and how many attempts),
  not a storm; repeats of a kind within ``window`` are suppressed (the next down alert
  counts the outages it kept quiet); ``failed`` is always sent (also for a key the
  provider refused at the handshake: :meth:`AlertPolicy.key_refused`);
  ``quota_exhausted`` once a window (:meth:`AlertPolicy.quota_exhausted`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import aiohttp

from monitor.bounds import nesting_ok
from monitor.errors import BadResponse
from monitor.http_read import read_body
from monitor.redact import redact, register_secret
from polyvocab.policies import parse_retry_after

__all__ = [
    "Alert",
    "AlertPolicy",
    "Alerter",
    "LogAlerter",
    "TelegramAlerter",
    "fit_text",
    "seconds_text",
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
                     f"{seconds_text(self._silent_down_s, places=1)} s down in all, not "
                     "alerted one by one)")
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
                                  f"{seconds_text(down_s, places=1)} s down, {attempts} "
                                  "reconnect attempts")

    def failed(self, now: float, attempts: int, cause: str) -> Alert:
        """The manager gave up. Always sent."""
        if self._down_since is None:
            self._down_since = now
        self._down_alerted = True
        self._last_sent["failed"] = now
        return Alert("failed", f"[{self.conn}] WebSocket feed FAILED after {attempts} "
                               f"attempts (last cause: {cause}); falling back")

    def key_refused(self, now: float, status: int, retry_s: float) -> Alert:
        """The provider refused the key at the handshake (HTTP ``status``): FAILED at
        once, not an outage to retry into. A ``failed`` alert, sent once an episode by
        the caller (the first refusal); ``recovered`` follows once a handshake succeeds
        (the caller keeps trying every ``retry_s`` simulated seconds)."""
        if self._down_since is None:
            self._down_since = now
        self._down_alerted = True
        self._last_sent["failed"] = now
        return Alert("failed", f"[{self.conn}] WebSocket feed FAILED: the provider refused "
                               f"the key (HTTP {status}); falling back to polling; fix the "
                               f"key in websocket_url (tried again every "
                               f"{seconds_text(retry_s)} s)")

    def quota_exhausted(self, now: float, detail: str, retry_s: float) -> Alert | None:
        """The provider answered that its quota (a month's, a day's) is spent: no retry
        at a rate limit's pace helps, a human must raise the plan or change the key.
        A ``quota_exhausted`` alert, once a ``window`` (the caller tries again every
        ``retry_s`` simulated seconds meanwhile)."""
        if not self._allow("quota_exhausted", now):
            return None
        return Alert("quota_exhausted", f"[{self.conn}] the provider's quota is EXHAUSTED "
                                        f"({detail}): its calls are refused until the quota "
                                        "resets or the plan is raised; falling back; tried "
                                        f"again every {seconds_text(retry_s)} s")


def seconds_text(seconds: float, *, places: int = 0) -> str:
    """A duration in seconds as an alert says it: ``places`` decimals, but a sub-second
    value in two significant digits ("0.05", "0.25": with ``places`` 0 a backoff_max of
    0.5 s read "tried again every 0 s") and, with ``places`` 0, one decimal under 10 s
    ("1.5", "2"). Zero, negative or not finite: as ``places`` says."""
    if not math.isfinite(seconds) or seconds <= 0 or seconds >= 10:
        return f"{seconds:.{places}f}"
    if seconds < 1:
        return f"{seconds:.2g}"
    if places == 0:
        return f"{seconds:.1f}".removesuffix(".0")
    return f"{seconds:.{places}f}"


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
    counted in ``failures``; ``send`` then returns False and never raises. A rate limit
    (429), a 5xx or a connection failure is tried again, within bounds (see :meth:`send`).
    """

    #: posts of one alert at most, and the longest wait before one (a 429's
    #: ``retry_after`` longer than that gives up); the backoff after a 5xx or a failed
    #: connection (seconds, per retry)
    ATTEMPTS = 3
    MAX_WAIT_S = 60.0
    RETRY_DELAYS_S = (1.0, 2.0)
    #: after Telegram refused the token or the chat, seconds before a post is tried again
    REFUSED_RETRY_S = 600.0
    #: alerts being sent at once (posting or waiting their turn); one past it is not
    #: posted (logged with its text, counted in ``dropped``, told by the next one sent)
    MAX_PENDING = 20
    #: posts in a burst, then one every 1 / POSTS_PER_S seconds: Telegram takes about
    #: 20 messages a minute into a group before it answers 429
    BURST = 20
    POSTS_PER_S = 1 / 3

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
        self._quiet_until = 0.0  # loop time before which no send goes out (a 429's wait)
        self.dropped = 0  # alerts not posted: MAX_PENDING were being sent
        self._dropped_untold = 0  # of them, not yet told in an alert sent
        self._pending = 0
        self._tokens = float(self.BURST)  # posts that may go out now (a token bucket)
        self._tokens_at: float | None = None
        #: what Telegram's refusal of the token or the chat asks the operator to fix
        self.refused: str | None = None
        self._refused_until = 0.0  # loop time before which no post is tried again

    def __repr__(self) -> str:
        return f"TelegramAlerter(api_url={self.api_url!r}, chat_id={self.chat_id!r})"

    async def send(self, kind: str, text: str) -> bool:
        """Post the alert; on a rate limit (429, after its ``retry_after``), a 5xx or a
        connection failure try again, :attr:`ATTEMPTS` times in all and never waiting
        more than :attr:`MAX_WAIT_S` (an older alert is worth little). A rate limit holds
        back every send of this alerter until it has passed (a burst of alerts from
        every shard, each retrying at once, was refused again). Posts go out at most
        :attr:`BURST` at once, then at :attr:`POSTS_PER_S`; past :attr:`MAX_PENDING`
        alerts being sent, one is logged (not posted) and ``send`` returns at once."""
        # built from error messages: a secret in one stays here; and one past Telegram's
        # length is refused whole (400 "message is too long"): it is cut to fit
        whole = redact(text)
        text = fit_text(whole)
        if text != whole:
            log.warning("alert %s is too long for Telegram (%d characters): sent cut; in "
                        "whole: %s", kind, len(whole), whole[:_LOGGED_CHARS])
        loop = asyncio.get_running_loop()
        if self.refused is not None and loop.time() < self._refused_until:
            # the token or the chat refused: said once; the alert stays in the log
            return self._fail(kind, self.refused, text)
        quiet = self._quiet_until - loop.time()
        if quiet > self.MAX_WAIT_S:  # Telegram asked for no post that long: not waited
            return self._fail(kind, f"telegram asked for no post for {quiet:.0f} s more "
                                    "(a 429's retry_after)", text)
        if self._pending >= self.MAX_PENDING:  # a storm: bounded, never waited on
            self.dropped += 1
            self._dropped_untold += 1
            return self._fail(kind, f"{self.MAX_PENDING} alerts already being sent", text)
        self._pending += 1
        try:
            return await self._send(kind, text)
        except asyncio.CancelledError:
            # the monitor stopping (its alerts waited a few seconds, then cancelled) while
            # this one waited its turn or Telegram's answer: the text stays in the log
            log.warning("alert %s NOT delivered to telegram (stopped while sending): %s",
                        kind, text[:_LOGGED_CHARS])
            raise
        finally:
            self._pending -= 1

    async def _send(self, kind: str, text: str) -> bool:
        reason = ""
        loop = asyncio.get_running_loop()
        for attempt in range(self.ATTEMPTS):
            await self._wait_quiet()
            await asyncio.sleep(self._take_turn(loop.time()))
            refusal = None
            told, self._dropped_untold = self._dropped_untold, 0  # told by this post
            message = text if not told else fit_text(
                f"{text}\n({told} more alerts were not sent to telegram in a burst: they "
                "are in the monitor's log)")
            try:
                ok, reason, retry_after, refusal = await self._post(message)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError, BadResponse) as exc:
                ok, reason, retry_after = False, f"{type(exc).__name__}: {exc}", 0.0
            except RuntimeError as exc:  # "Session is closed": the monitor is stopping
                ok, reason, retry_after = False, f"{type(exc).__name__}: {exc}", None
            if ok:
                self.sent += 1
                if self.refused is not None:
                    log.warning("telegram takes the alerts again (chat %s)", self.chat_id)
                    self.refused = None
                log.info("alert %s sent to telegram chat %s", kind, self.chat_id)
                return True
            self._dropped_untold += told  # not told after all
            if refusal is not None:
                self._refuse(refusal)
                return self._fail(kind, refusal, text)
            if retry_after is None or attempt + 1 == self.ATTEMPTS:
                break
            wait = retry_after or self.RETRY_DELAYS_S[min(attempt,
                                                          len(self.RETRY_DELAYS_S) - 1)]
            # a longer wait (a flood ban: hours) holds back every post till it passes too:
            # posting into it was refused each time, and Telegram lengthens such a ban
            self._quiet_until = max(self._quiet_until, loop.time() + wait)
            if wait > self.MAX_WAIT_S:
                break
        return self._fail(kind, reason, text)

    def _refuse(self, refusal: str) -> None:
        """Telegram refused the token or the chat: said once (an ERROR naming the
        setting to fix), then no post for :attr:`REFUSED_RETRY_S` (the alerts go to the
        log), then one try: a fixed chat (the bot unblocked) takes the alerts again."""
        if refusal != self.refused:
            log.error("%s; until then alerts are written to this log only (telegram is "
                      "tried again every %.0f s)", refusal, self.REFUSED_RETRY_S)
        self.refused = refusal
        self._refused_until = asyncio.get_running_loop().time() + self.REFUSED_RETRY_S

    def _take_turn(self, now: float) -> float:
        """Seconds to wait before this post (a token bucket of :attr:`BURST` posts
        refilled at :attr:`POSTS_PER_S`; a post reserves its token now)."""
        if self._tokens_at is not None:
            self._tokens = min(float(self.BURST),
                               self._tokens + (now - self._tokens_at) * self.POSTS_PER_S)
        self._tokens_at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.POSTS_PER_S

    async def _wait_quiet(self) -> None:
        delay = self._quiet_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _post(self, text: str, *, migrated: bool = False
                    ) -> tuple[bool, str, float | None, str | None]:
        """One ``sendMessage``: (delivered, why not, seconds to wait before trying again:
        ``retry_after`` of a 429, 0.0 for a 5xx (the caller's backoff), None when
        another try cannot help: a 4xx, ``{"ok": false}``; and, when Telegram refused
        the token or the chat, what the operator must fix)."""
        url = f"{self.api_url}/bot{self._token}/sendMessage"
        payload: dict[str, Any] = {"chat_id": self.chat_id, "text": text}
        async with self._session.post(url, json=payload, timeout=self._timeout,
                                      allow_redirects=False) as resp:  # token in path
            # a gateway's page in another charset must not raise (UnicodeDecodeError)
            body = (await read_body(resp, what="telegram", limit=_MAX_ANSWER_BYTES)
                    ).decode("utf-8", "replace")
            status = resp.status
            header_wait = parse_retry_after(resp.headers.get("Retry-After"))
        parsed: Any = None
        try:
            if not nesting_ok(body):
                raise ValueError("nested too deep")
            parsed = json.loads(body)
        except ValueError:
            description = f"not JSON: {body[:80]!r}"
        else:
            description = str(parsed.get("description", "")) if isinstance(parsed,
                                                                           dict) else ""
        if status == 200 and isinstance(parsed, dict) and parsed.get("ok") is True:
            return True, "", None, None
        reason = f"HTTP {status} {description}".strip()
        moved = _migrated_to(parsed) if status == 400 else None
        if moved is not None and not migrated and str(moved) != str(self.chat_id):
            # a group upgraded to a supergroup has a new id (400 "group chat was upgraded
            # to a supergroup chat", parameters.migrate_to_chat_id): every alert was
            # refused for good. Posted there (this run), the setting to change said once
            log.warning("telegram: chat %s was upgraded to a supergroup, chat %s: alerts go "
                        "there; set telegram_chat_id=%s", self.chat_id, moved, moved)
            self.chat_id = moved
            return await self._post(text, migrated=True)
        if status == 429:
            return False, reason, _body_retry_after(parsed) or header_wait or 1.0, None
        return (False, reason, 0.0 if status >= 500 else None,
                _refusal(status, description, self.chat_id))

    def _fail(self, kind: str, reason: str, text: str) -> bool:
        """Count and log a failed alert, with its text: nothing is lost for Telegram."""
        self.failures += 1
        self.last_error = redact(reason)
        why = ("telegram refuses the token or the chat: see the error said once"
               if reason == self.refused else self.last_error[:200])
        log.warning("alert %s NOT delivered to telegram (%s): %s", kind, why,
                    text[:_LOGGED_CHARS])
        return False


def _refusal(status: int, description: str, chat_id: str | int) -> str | None:
    """What the operator must fix when Telegram's answer refuses the token (401; 404,
    its answer to a token of the wrong form) or the chat (403 "Forbidden: bot was blocked
    by the user", "bot is not a member of the group chat"; 400 "Bad Request: chat not
    found"); None for an answer about this one message."""
    said = f"HTTP {status} {description[:120]}".strip()
    if status in (401, 404):
        return (f"telegram REFUSED the bot token ({said}): fix telegram_token (the token "
                "@BotFather gave; and telegram_api_url if it is set)")
    if status == 403 or (status == 400 and "chat not found" in description.lower()):
        return (f"telegram will not post to chat {chat_id} ({said}): fix telegram_chat_id, "
                "or unblock the bot / send it /start / add it to the group")
    return None


#: Telegram's longest ``sendMessage`` text, in UTF-16 code units (its "1-4096
#: characters"); a longer one is refused whole with 400 "Bad Request: message is too long"
MAX_TEXT_UNITS = 4096
_LOGGED_CHARS = 1 << 16  # of an alert too long for Telegram, the log's copy
_CUT = " [... cut: the whole alert is in the monitor's log]"


def fit_text(text: str, limit: int = MAX_TEXT_UNITS) -> str:
    """``text`` as Telegram takes it: at most ``limit`` UTF-16 code units (an astral
    character, an emoji, counts two), cut with a note when longer; never empty (400
    "message text is empty")."""
    if not text.strip():
        return "(empty alert)"
    if _units(text) <= limit:
        return text
    room = limit - _units(_CUT)
    cut = text[:room]  # at most 2 units a character: shrink to fit
    while _units(cut) > room:
        cut = cut[:-max(1, (_units(cut) - room) // 2)]
    return cut + _CUT


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


_MAX_ANSWER_BYTES = 1 << 20  # Telegram answers a few hundred bytes; a page past this: garbage


def _migrated_to(parsed: Any) -> int | None:
    """``parameters.migrate_to_chat_id`` of a Telegram error answer, if it is one."""
    params = parsed.get("parameters") if isinstance(parsed, dict) else None
    chat = params.get("migrate_to_chat_id") if isinstance(params, dict) else None
    return chat if isinstance(chat, int) and not isinstance(chat, bool) else None


def _body_retry_after(parsed: Any) -> float | None:
    """``parameters.retry_after`` of a Telegram error answer (seconds), if it is one."""
    params = parsed.get("parameters") if isinstance(parsed, dict) else None
    wait = params.get("retry_after") if isinstance(params, dict) else None
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not wait >= 0:
        return None
    return float(wait)
