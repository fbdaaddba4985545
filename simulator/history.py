"""The simulator's history: one JSON line per event (docs/contracts.md), machine-wide clock.

Events: ``start``, ``block_published``, ``explorer_indexed``, ``reorg``, ``fault_start``,
``fault_stop``, ``request``, ``alert``, ``stop``, ``malformed`` (one malformed item a fault
injected: ``fault_id``, ``name``, ``kind``, ``api``), ``recording_error`` (a streamed
recording found defective mid-file: ``error``, ``blocks`` read; the replay ends there).
Every row carries ``t_ns`` = ``time.monotonic_ns()`` unless the caller passes the time the
event happened. Rows are
written in the order they are recorded, which is not strictly ``t_ns`` order: the replay
writes an ``explorer_indexed`` row (its ``t_ns`` the index time) at its next block's turn,
not at that time. API keys are masked before they get here (:func:`mask_key`); bot tokens
are never passed at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["EVENTS", "SimHistory", "mask_key"]

EVENTS = frozenset({"start", "block_published", "explorer_indexed", "reorg", "fault_start",
                    "fault_stop", "request", "alert", "stop", "malformed",
                    "recording_error"})


def mask_key(key: str | None) -> str:
    """An API key as it may be written down: ``key#`` and 8 hex digits of its SHA-256, so
    rows of one key can be told apart without any of its characters (``-`` for none)."""
    if not key:
        return "-"
    return "key#" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:8]


#: ``json.dumps(row, separators=(",", ":"), ensure_ascii=False)`` without an encoder per row
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class SimHistory:
    """Append-only JSON-lines history; keeps rows in memory too when ``keep`` is set."""

    def __init__(self, path: str | Path | None = None, *, keep: bool = False,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.clock_ns = clock_ns
        self._fh: IO[str] | None = None
        self.rows: list[dict[str, Any]] | None = [] if keep else None
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def record(self, event: str, *, t_ns: int | None = None, **fields: Any) -> dict[str, Any]:
        if event not in EVENTS:
            raise ValueError(f"unknown history event {event!r}")
        row: dict[str, Any] = {"t_ns": self.clock_ns() if t_ns is None else t_ns,
                               "event": event}
        row.update(fields)
        if self.rows is not None:
            self.rows.append(row)
        if self._fh is not None:
            self._fh.write(_encode(row) + "\n")
        return row

    @property
    def to_file(self) -> bool:
        """Whether rows are written to a file (and so may wait in its buffer)."""
        return self._fh is not None

    def events(self, event: str) -> list[dict[str, Any]]:
        """Rows of one kind (only when kept in memory)."""
        return [r for r in self.rows or () if r["event"] == event]

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
