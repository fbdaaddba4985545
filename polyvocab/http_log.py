"""A malformed HTTP request is one log line, and a flood of them a few lines a minute: the
one log adapter of the simulator's node and the monitor's ops server.

aiohttp's server logs each request it cannot parse (``HttpProcessingError``: a header line
past 8190 bytes, a bad header or status line, TLS sent to a plain port, a control byte in
the URL) as "Error handling request" with the parser's traceback, whose text quotes the
client's bytes. A scanner or a broken client looping on them filled the log and the disk,
with whatever it sent. Here:

- :class:`BadRequestPace` (no I/O, time as an argument) decides: the first ``first``
  malformed requests of a window of ``every_s`` seconds get a line each; the others are
  counted, and their count is said when the window is over (or with the next line);
- :func:`describe` makes the line's text: the error's type and status and, up to ``quote``
  characters, aiohttp's reason, where a key in a query is masked (before the cut) and
  every control character is escaped (``\\r``, ``\\n``, ``\\x1b``: a request line cannot
  start a log line of its own or colour a terminal);
- :class:`BadRequestLog` is the ``logger=`` an ``aiohttp.web.AppRunner`` takes: it runs
  the two over aiohttp's records, counts them (:attr:`BadRequestLog.bad`), and says an
  untold count from a timer at the end of its window (or at :meth:`BadRequestLog.close`).

Everything else (a handler's own failure: "Unhandled exception") keeps its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from polyvocab.redact import redact

__all__ = ["BadRequestLog", "BadRequestPace", "describe", "escape_controls"]

#: characters of the log line's own text (aiohttp's message, the peer) kept at most
LINE_CHARS = 300
#: characters of aiohttp's reason (which quotes the request) a line keeps by default
QUOTE_CHARS = 120

# aiohttp's own layout of a parser error: "what:\n\n    b'<line>'\n        ^"
_CARET_LINE = re.compile(r"\n[ \t]*\^[ \t]*$")
_QUOTED_LINE = re.compile(r":\n\n[ \t]+")
_NAMED_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """``text`` with every character that is not printable escaped: CR, LF, ESC, DEL, the C1
    controls, Unicode line separators and direction overrides (``\\r``, ``\\x1b``,
    ``\\u2028``). A space stays a space."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(0, limit - 3)] + "..."


def _reason(exc: HttpProcessingError) -> str:
    """aiohttp's reason, its layout undone (the caret line dropped, the quoted line joined
    to its text), any other line break left for :func:`escape_controls`."""
    text = exc.message if isinstance(exc.message, str) else str(exc.message)
    text = _QUOTED_LINE.sub(": ", _CARET_LINE.sub("", text.strip("\n")))
    return text.strip(" ")


def describe(exc: HttpProcessingError, *, quote: int = QUOTE_CHARS) -> str:
    """``"LineTooLong, answered 400: Got more than 8190 bytes when reading: b'aaa..."``:
    the error's type and status, then at most ``quote`` characters of its reason (none
    when ``quote`` is 0), redacted before the cut (a cut key would no longer look like
    one), controls escaped."""
    head = f"{type(exc).__name__}, answered {int(exc.code or 400)}"
    if quote <= 0:
        return head
    reason = _cut(escape_controls(redact(_reason(exc))), quote)
    return f"{head}: {reason}" if reason else head


class BadRequestPace:
    """How many malformed-request lines to write, and when to say the count of the others.

    A window opens at the first malformed request after the last one closed and lasts
    ``every_s`` seconds (``now``: any clock in seconds, given to each call). In it, the
    first ``first`` requests get a line each; the rest are counted. ::

        pace = BadRequestPace(first=2, every_s=60)
        pace.note(0.0)   # -> 0      a line (0 untold before it)
        pace.note(1.0)   # -> 0      a line
        pace.note(2.0)   # -> None   counted, untold
        pace.due()       # -> 60.0   when the untold count is to be said
        pace.flush(60.0) # -> 1      say "1 more"; the window is closed
        pace.note(61.0)  # -> 0      a new window: a line

    A clock that went back closes the window."""

    def __init__(self, *, first: int = 5, every_s: float = 60.0) -> None:
        if first < 1 or not every_s > 0:
            raise ValueError(f"first must be >= 1 and every_s > 0 (got {first}, {every_s})")
        self.first, self.every_s = first, float(every_s)
        self.total = 0  # malformed requests noted
        self._opened: float | None = None  # when the window opened (None: no window)
        self._said = 0  # lines written in the window
        self._untold = 0  # requests counted and not yet said

    @property
    def untold(self) -> int:
        return self._untold

    def _expired(self, now: float) -> bool:
        return self._opened is None or not 0 <= now - self._opened < self.every_s

    def note(self, now: float) -> int | None:
        """One malformed request at ``now``: None to write nothing (it is counted), else
        write its line, with the returned count of untold requests before it (0: none)."""
        self.total += 1
        if self._expired(now):
            self._opened, self._said = now, 0
        if self._said < self.first:
            self._said += 1
            untold, self._untold = self._untold, 0
            return untold
        self._untold += 1
        return None

    def due(self) -> float | None:
        """When the untold count is to be said (the window's end), None if none is."""
        if not self._untold or self._opened is None:
            return None
        return self._opened + self.every_s

    def flush(self, now: float, *, force: bool = False) -> int:
        """The untold count to say at ``now`` (0: nothing yet), once its window is over or
        ``force`` (closing); saying it closes the window."""
        if not self._untold or not (force or self._expired(now)):
            return 0
        untold, self._untold, self._opened = self._untold, 0, None
        return untold


def _malformed(exc_info: Any) -> HttpProcessingError | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        exc_info = exc_info[1]
    return exc_info if isinstance(exc_info, HttpProcessingError) else None


class BadRequestLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log (``web.AppRunner(app, logger=BadRequestLog(...))``).

    A record of a malformed request becomes, as :class:`BadRequestPace` allows, one line
    at ``level`` (at DEBUG where aiohttp chose DEBUG: a first request in a bad method, as
    TLS to a plain port is), ``prefix`` first, without a traceback; :attr:`bad` counts
    them all. The count left untold at the window's end is said from a timer on the
    running loop (a ``level`` line), and at :meth:`close` (an INFO line at most). Any
    other record passes as it came. ``clock``: seconds, for the pace."""

    def __init__(self, logger: logging.Logger, *, level: int = logging.INFO,
                 prefix: str = "", first: int = 5, every_s: float = 60.0,
                 quote: int = QUOTE_CHARS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(logger, {})
        self.level, self.prefix, self.quote = level, prefix, quote
        self.pace = BadRequestPace(first=first, every_s=every_s)
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._unheard = 0  # DEBUG lines of a logger not at DEBUG: counted, not paced

    @property
    def bad(self) -> int:
        """Malformed requests seen (logged or not)."""
        return self.pace.total + self._unheard

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = _malformed(kwargs.get("exc_info"))
        if exc is None:
            super().log(level, msg, *args, **kwargs)
            return
        level = level if level < logging.INFO else self.level
        if level < logging.INFO and not self.logger.isEnabledFor(level):
            # aiohttp's DEBUG (TLS or other non-HTTP bytes first on a connection) where
            # no one reads DEBUG: it takes none of the lines the others may have
            self._unheard += 1
            return
        untold = self.pace.note(self._clock())
        if untold is None:
            self._arm()
            return
        try:
            what = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            what = str(msg)
        line = f"{_cut(escape_controls(redact(what)), LINE_CHARS)}: malformed request " \
               f"({describe(exc, quote=self.quote)})"
        if untold:
            line += f"; {untold} more before it, not logged"
        self.logger.log(level, "%s%s", self.prefix, line)

    def _say_untold(self, untold: int, level: int) -> None:
        if untold:
            self.logger.log(level, "%s%d more malformed requests in the last %.0f s "
                            "(not logged)", self.prefix, untold, self.pace.every_s)

    def _arm(self) -> None:
        """A timer for the untold count's window end (on the running loop, if any)."""
        due = self.pace.due()
        if due is None or self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the count goes with the next line
            return
        self._timer = loop.call_later(max(0.0, due - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._say_untold(self.pace.flush(self._clock()), self.level)
        self._arm()

    def close(self) -> None:
        """The server stops: the timer cancelled, an untold count said (INFO at most)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._say_untold(self.pace.flush(self._clock(), force=True),
                         min(self.level, logging.INFO))
