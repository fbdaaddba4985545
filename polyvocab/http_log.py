"""A malformed HTTP request is the client's fault, not a crash of ours: aiohttp's server
logs it (``aiohttp.server``: "Error handling request") with a full traceback. This filter
keeps that record to one line naming the error (a request line past 8 kB, a bad header),
so a hostile or broken client never puts a traceback in a server's log, and the part of
the request line it quotes is redacted (an explorer ``apikey=`` in a request line past
8 kB was logged as sent). Errors of any other kind keep theirs."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

from polyvocab.redact import redact

__all__ = ["BadRequestLogFilter", "quiet_bad_requests"]


class BadRequestLogFilter(logging.Filter):
    """One line, no traceback, for an aiohttp server's record of a malformed request."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            # aiohttp quotes the start of the request line: a key in its query is masked
            # before the text is cut (a cut key would no longer look like one)
            reason = redact(" ".join(str(exc).split()))[:200]
            record.msg = f"{record.getMessage()}: bad request ({type(exc).__name__}: {reason})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_bad_requests() -> None:
    """Install :class:`BadRequestLogFilter` on the ``aiohttp.server`` logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestLogFilter) for f in logger.filters):
        logger.addFilter(BadRequestLogFilter())
