"""The monitor's history: one JSON line per event, stamped with the machine-wide clock.

Rows are redacted before they are written (see :mod:`monitor.redact`). Writes are
line-buffered and flushed so that a ``kill -9`` loses at most the line being written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from monitor.clock import Clock, SystemClock
from monitor.redact import redact_obj

__all__ = ["History", "NullHistory"]


class History:
    """Append-only JSON-lines history. ``record("state", conn=..., to=...)``."""

    def __init__(self, path: str | Path | None, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._fh: IO[str] | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (kept open)

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"t_ns": self._clock.now_ns(), "event": event}
        row.update(redact_obj(fields))
        if self._fh is not None:
            self._fh.write(json.dumps(row, separators=(",", ":"), default=str) + "\n")
        return row

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class NullHistory(History):
    """A history that keeps nothing (for library use and tests)."""

    def __init__(self) -> None:
        super().__init__(None)
