"""The monitor's history: one JSON line per event, stamped with the machine-wide clock.

Rows are redacted before they are written (see :mod:`monitor.redact`). Writes are
line-buffered and flushed so that a ``kill -9`` loses at most the line being written. The
file is created 0600. A write that fails (disk full) never raises into the monitor: the
row is counted in :attr:`History.dropped` and logged once per failure streak.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from math import isfinite
from pathlib import Path
from typing import IO, Any

from monitor.clock import Clock, SystemClock
from monitor.errors import ConfigError
from monitor.private_files import open_private
from monitor.redact import redact, redact_obj

log = logging.getLogger("monitor.history")

__all__ = ["History", "NullHistory", "record_bad_input"]


class History:
    """Append-only JSON-lines history. ``record("state", conn=..., to=...)``."""

    def __init__(self, path: str | Path | None, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._fh: IO[str] | None = None
        self.dropped = 0
        self._failing = False
        if path is not None:
            p = Path(path)
            if p.is_dir():
                raise ConfigError(f"history file {p} is a directory")
            try:
                self._fh = open_private(p, buffering=1)
            except OSError as exc:
                raise ConfigError(f"history file {p}: {exc.strerror or exc}") from None

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        t_ns = self._clock.now_ns()
        row: dict[str, Any] = {"t_ns": t_ns, "event": event}
        # the line written by hand while every value is a string, an int, a bool, None or
        # a finite float (a delivered row: ~2x cheaper than the encoder); anything else
        # goes through the encoder. The same bytes (tests/monitor/test_history_line.py)
        parts: list[str] | None = ([f'{{"t_ns":{int.__repr__(t_ns)},"event":{_str(event)}']
                                   if self._fh is not None and type(t_ns) is int
                                   and type(event) is str else None)
        for name, value in fields.items():  # redact_obj(fields), without the copy a row
            kind = type(value)
            if kind is str:
                value = redact(value)
                text = _str(value)
            elif value is None:
                text = "null"
            elif kind is int:
                text = int.__repr__(value)
            elif kind is bool:
                text = "true" if value else "false"
            elif kind is float and isfinite(value):
                text = float.__repr__(value)
            else:
                if kind is not float:
                    value = redact_obj(value, 1)
                parts = None
            row[name] = value
            if parts is not None:
                if name == "t_ns":  # replaces the stamp in its place: the encoder's way
                    parts = None
                else:
                    key = _KEYS.get(name)
                    if key is None:
                        key = _str(name)
                        if len(_KEYS) < 1_000:  # the code's field names: a few dozen
                            _KEYS[name] = key
                    parts.append(f",{key}:{text}")
        if self._fh is not None:
            self._put("".join(parts) + "}\n" if parts is not None else _encode(row) + "\n")
        return row

    def delivered(self, trade_id: Any, source: Any, block_number: Any,
                  block_hash: Any) -> None:
        """``record("delivered", trade_id=..., source=..., block_number=...,
        block_hash=...)`` (one a delivered trade), the same line written without the
        generic field loop when every value is a string (``block_number``: an int or
        None) and ``record`` is this class's own; else ``record`` itself. Without a
        file (:class:`NullHistory`) nothing is done: ``record`` kept nothing either.
        A property test proves the lines equal (``tests/monitor/test_history_delivered.py``)."""
        if type(self).record is not History.record or "record" in self.__dict__ or not (
                type(trade_id) is str and type(source) is str and type(block_hash) is str
                and (block_number is None or type(block_number) is int)):
            self.record("delivered", trade_id=trade_id, source=source,
                        block_number=block_number, block_hash=block_hash)
            return
        if self._fh is None:
            return
        t_ns = self._clock.now_ns()
        trade_id, source, block_hash = redact(trade_id), redact(source), redact(block_hash)
        if type(t_ns) is not int:  # the encoder's way, as record() goes then
            self._put(_encode({"t_ns": t_ns, "event": "delivered", "trade_id": trade_id,
                               "source": source, "block_number": block_number,
                               "block_hash": block_hash}) + "\n")
            return
        number = "null" if block_number is None else int.__repr__(block_number)
        self._put(f'{{"t_ns":{int.__repr__(t_ns)},"event":"delivered","trade_id":'
                  f'{_str(trade_id)},"source":{_str(source)},"block_number":{number},'
                  f'"block_hash":{_str(block_hash)}}}\n')

    def _put(self, line: str) -> None:
        """Write one line; a failure is counted (:attr:`dropped`) and logged once a streak."""
        assert self._fh is not None
        try:
            self._fh.write(line)
            self._failing = False
        except (OSError, ValueError) as exc:
            self.dropped += 1
            if not self._failing:
                self._failing = True
                log.error("history write failed (%s): rows are dropped until it works", exc)

    def flush(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            except OSError:
                self.dropped += 1

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                self.dropped += 1
            self._fh = None


def _redacted_str(value: object) -> str:
    """What the encoder writes for a value JSON has no form for: its text, redacted."""
    return redact(str(value))


_encode = json.JSONEncoder(separators=(",", ":"), default=_redacted_str).encode
_str = json.encoder.encode_basestring_ascii  # the encoder's own, for its strings and keys
_KEYS: dict[str, str] = {}  # field name -> its JSON text


class NullHistory(History):
    """A history that keeps nothing (for library use and tests)."""

    def __init__(self) -> None:
        super().__init__(None)


def record_bad_input(history: History, counters: Counter[str], logger: logging.Logger, *,
                     kind: str, source: str, reason: str) -> None:
    """A malformed or implausible input refused: counted under ``kind``, a ``bad_input``
    history row, and a warning for the first of each kind, then every 1000th (a source
    sending garbage at full rate must not write a warning a row)."""
    counters[kind] += 1
    history.record("bad_input", kind=kind, source=source, reason=reason[:200])
    if counters[kind] == 1 or counters[kind] % 1000 == 0:
        logger.warning("[%s] rejected %s (%d so far): %s", source, kind, counters[kind],
                       reason[:200])
