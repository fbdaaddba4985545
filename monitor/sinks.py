"""Where trades and retractions go: the bot's executor (an async callback) or a file.

The sink interface is one coroutine, ``emit(event)``, with an :class:`SinkEvent`.
Sinks MUST be idempotent on ``event.key`` (``kind:trade_id:generation``): after a crash the
monitor re-sends whatever it had not confirmed (see :mod:`monitor.store`).

:class:`JsonlSink` writes the detections file of ``docs/contracts.md``::

    {"t_ns": ..., "wall_ns": ..., "kind": "trade", "source": "ws"|"backfill"|"poll",
     "trade": {...}, "stages": {...}}   (stages: live trades with latency_stages on)
    {"t_ns": ..., "wall_ns": ..., "kind": "retraction", "trade_id": "...", "block_hash": "..."}

``t_ns`` is the machine-wide monotonic clock (compares with the simulator's history);
``wall_ns`` is ``time.time_ns()`` (UTC, compares with block timestamps of a live chain).
Rows written before ``wall_ns`` existed lack it: readers treat it as optional.

It is idempotent without extra fields: on open it counts, per trade id, the trade rows and
retraction rows already in the file (dropping a torn last line), and an event of
generation g is written only if fewer than g rows of its kind are there. Each row is
flushed; ``fsync=True`` also fsyncs it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from monitor.bounds import nesting_ok
from monitor.clock import Clock, SystemClock, wall_ns
from monitor.cores import check_twin
from monitor.errors import ConfigError
from monitor.private_files import PRIVATE_MODE, check_regular, end_of_last_line
from monitor.trades import Trade

__all__ = ["CallbackSink", "JsonlSink", "MemorySink", "Sink", "SinkError", "SinkEvent",
           "sink_event"]

log = logging.getLogger("monitor.sinks")


class SinkError(ConfigError):
    """The detections file cannot be opened (a directory, no permission). Fix the path."""


@dataclass(frozen=True, slots=True)
class SinkEvent:
    """A trade (``trade`` set) or a retraction of ``trade_id`` in block ``block_hash``."""

    kind: str  # "trade" | "retraction"
    trade_id: str
    generation: int
    source: str  # "ws" | "backfill" | "poll"
    block_hash: str
    trade: Trade | None = None
    #: the path's stamps (``latency_stages``; see :mod:`monitor.stages`), else None
    stages: dict[str, int] | None = field(default=None, compare=False)
    #: ``trade.to_json()`` when the pipeline has it already (the outbox payload), so a
    #: sink that writes JSON does not encode the trade again; None: encode ``trade``
    trade_json: str | None = field(default=None, compare=False, repr=False)
    #: the event may have reached the sink before (redelivered after a restart, or retried
    #: after the sink raised on it): the bot may already have acted on it
    uncertain: bool = field(default=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.trade_id}:{self.generation}"


class _SinkEventSlots:
    """A :class:`SinkEvent`'s slots, filled with plain stores and then made a
    ``SinkEvent`` (see :class:`monitor.cores._DedupEntrySlots`): one a delivered event."""

    __slots__ = SinkEvent.__slots__

    def __init__(self, kind: str, trade_id: str, generation: int, source: str,
                 block_hash: str, trade: Trade | None, stages: dict[str, int] | None,
                 trade_json: str | None, uncertain: bool) -> None:
        self.kind = kind
        self.trade_id = trade_id
        self.generation = generation
        self.source = source
        self.block_hash = block_hash
        self.trade = trade
        self.stages = stages
        self.trade_json = trade_json
        self.uncertain = uncertain


check_twin(_SinkEventSlots, SinkEvent)


def sink_event(kind: str, trade_id: str, generation: int, source: str, block_hash: str,
               trade: Trade | None, stages: dict[str, int] | None, trade_json: str | None,
               uncertain: bool) -> SinkEvent:
    """``SinkEvent(...)`` with every field given: the same object, ~4x faster
    (:class:`_SinkEventSlots`); the pipeline makes one a delivered event."""
    event = _SinkEventSlots(kind, trade_id, generation, source, block_hash, trade, stages,
                            trade_json, uncertain)
    event.__class__ = SinkEvent  # type: ignore[assignment]
    return event  # type: ignore[return-value]


class Sink(Protocol):
    async def emit(self, event: SinkEvent) -> None: ...

    def close(self) -> None: ...


class CallbackSink:
    """Wraps the bot's ``async def on_event(event: SinkEvent)``, idempotent on ``event.key``.

    An event whose callback returned is never passed again: within the process, and across
    restarts with ``keys_db`` (a SQLite file, each key committed after its callback
    returned), so the monitor's redelivery after a crash (an event the callback finished
    but the monitor had not yet marked sent) is skipped.

    No store can make a callback's side effect and its record one atomic step: the process
    can die inside the callback, after it acted and before the key is written. The monitor
    therefore marks ``event.uncertain`` every event that may have reached the callback
    before (redelivered after a restart, or retried after the callback raised). On such an
    event the callback must look (the executor's order under the client id ``event.key``)
    before it acts again. Every other event reaches the callback exactly once."""

    def __init__(self, callback: Callable[[SinkEvent], Awaitable[None]], *,
                 keys_db: str | Path | None = None, remember: int = 200_000) -> None:
        """``remember``: with ``keys_db``, how many keys are also held in memory (the file
        has them all); without it every key is held."""
        self._callback = callback
        self._remember = remember
        self._keys: set[str] = set()
        self._db: sqlite3.Connection | None = None
        if keys_db is not None:
            self._db = _open_keys_db(Path(keys_db))

    def _seen(self, key: str) -> bool:
        if key in self._keys:
            return True
        if self._db is not None and self._db.execute(
                "SELECT 1 FROM sent WHERE key = ?", (key,)).fetchone() is not None:
            self._hold(key)
            return True
        return False

    def _hold(self, key: str) -> None:
        if self._db is not None and len(self._keys) >= self._remember:
            self._keys.clear()  # the file answers for the older keys
        self._keys.add(key)

    async def emit(self, event: SinkEvent) -> None:
        if self._seen(event.key):
            return
        await self._callback(event)
        if self._db is not None:
            self._db.execute("INSERT OR IGNORE INTO sent VALUES (?)", (event.key,))
        self._hold(event.key)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _open_keys_db(path: Path) -> sqlite3.Connection:
    """The callback's keys file, created 0600 (it names the trades the bot acted on; it
    was 0644), WAL. A file that is not a SQLite database, or not this one, is a
    :class:`SinkError` naming it, not a ``sqlite3`` traceback."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_regular(path)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_MODE))
        db = sqlite3.connect(str(path), isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SinkError(f"keys_db {path}: {reason}") from None
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS sent (key TEXT PRIMARY KEY)")
        db.execute("SELECT key FROM sent LIMIT 1")
    except sqlite3.Error as exc:
        db.close()
        raise SinkError(f"keys_db {path}: not a keys file ({exc})") from None
    return db


class MemorySink:
    """Keeps events in a list (tests, benchmarks); idempotent on the event key."""

    def __init__(self) -> None:
        self.events: list[SinkEvent] = []
        self._keys: set[str] = set()

    async def emit(self, event: SinkEvent) -> None:
        if event.key not in self._keys:
            self._keys.add(event.key)
            self.events.append(event)

    def close(self) -> None:
        pass


class JsonlSink:
    """The detections file (mode 0600). Idempotent across crashes (see the module docstring).

    Each row is one ``os.write`` of a whole line. A write that fails (ENOSPC, EIO) is
    undone by truncating the file back to its size before the write, so a torn line never
    sits in the middle of the file, and the error goes to the caller (the pipeline keeps
    the event in its outbox and tries again later)."""

    def __init__(self, path: str | Path, *, fsync: bool = False,
                 clock: Clock | None = None, remember: int = 500_000) -> None:
        """``remember``: the rows per (kind, trade id) are counted for the most recent
        ``remember`` ids only, so memory stays flat over weeks (a simulated week grew by
        ~0.25 MB an hour without it). An older id is only ever written again by a
        redelivery, and redeliveries come from the outbox, which holds recent events."""
        if remember < 1:
            raise ValueError("remember must be >= 1")
        self.path = Path(path)
        self.fsync = fsync
        self._clock = clock or SystemClock()
        self._remember = remember
        self._counts: dict[tuple[str, str], int] = {}
        self.skipped_lines = 0
        if self.path.is_dir():
            raise SinkError(f"detections file {self.path} is a directory")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            check_regular(self.path)  # a FIFO or a device: refused, not waited on
            self._recover()
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                           PRIVATE_MODE)
        except OSError as exc:
            raise SinkError(f"detections file {self.path}: {exc.strerror or exc}") from None
        self._size = os.fstat(self._fd).st_size

    def _recover(self) -> None:
        """Cut a torn last line, then count the rows of the last ``remember`` lines: the
        file is read from where they start, a line at a time, never whole (a simulated
        week's file is 400 MB; it was read whole, then split, at every start)."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            end = _after_last_newline(fh, size)
            if end < size:  # a torn last line: the write never completed
                fh.truncate(end)
            self._count_last(fh, end, self._remember)
        self._warn_skipped()

    def _count_last(self, fh: BinaryIO, end: int, lines: int) -> None:
        fh.seek(_start_of_last_lines(fh, end, lines))
        for line in _bounded_lines(fh, _MAX_ROW_BYTES):
            self._recover_row(line)

    def cover(self, events: int) -> None:
        """Count the rows of at least the last ``events`` lines, and keep room for
        ``events`` more ids: a restart's outbox holds ``events`` events, those a killed
        process wrote here before it could record that (the last lines) among them, and
        each must be found, however small ``remember`` is. With ``remember`` below the
        outbox, the rows the outbox re-sent past the last ``remember`` lines were written
        again, and each write pushed out an id still to come: the whole batch twice."""
        if events <= 0 or self._fd is None:
            return
        lines = max(self._remember, events)
        self._remember = lines + events
        self._counts.clear()
        self.skipped_lines = 0
        with open(self.path, "rb") as fh:
            self._count_last(fh, fh.seek(0, os.SEEK_END), lines)

    def _recover_row(self, line: bytes | None) -> None:
        """Count one row of the file (None: a line past the row bound, skipped)."""
        try:
            text = line.decode("utf-8", "replace") if line is not None else ""
            row = json.loads(text) if text and nesting_ok(text) else None
        except (ValueError, RecursionError):
            row = None
        if not isinstance(row, dict):  # garbage, or JSON that is not a row
            self.skipped_lines += 1
            return
        kind = row.get("kind")
        trade = row.get("trade")
        if kind == "retraction":
            tid = row.get("trade_id")
        else:
            tid = trade.get("id") if isinstance(trade, dict) else None
        if isinstance(kind, str) and isinstance(tid, str):
            self._count((kind, tid))
        else:
            self.skipped_lines += 1

    def _warn_skipped(self) -> None:
        if self.skipped_lines:
            log.warning("detections file %s: %d line(s) are not detection rows; kept as they "
                        "are and ignored", self.path, self.skipped_lines)

    def _count(self, key: tuple[str, str]) -> None:
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        if len(counts) > self._remember:  # dicts keep insertion order: drop the oldest id
            del counts[next(iter(counts))]

    def written(self, kind: str, trade_id: str) -> int:
        """How many rows of ``kind`` for ``trade_id`` the file holds."""
        return self._counts.get((kind, trade_id), 0)

    async def emit(self, event: SinkEvent) -> None:
        self.write(event)

    def write(self, event: SinkEvent) -> bool:
        """Write the row unless the file already has it. True if written. Raises
        ``OSError`` (the file unchanged) when the write fails."""
        if self._fd is None:
            raise SinkError("sink is closed")
        k = (event.kind, event.trade_id)
        if self._counts.get(k, 0) >= event.generation:
            return False
        if event.kind == "trade":
            if event.trade is None:
                raise ValueError("a trade event needs its trade")
            data = self._trade_row(event)
        else:
            row = {"t_ns": self._clock.now_ns(), "wall_ns": wall_ns(self._clock),
                   "kind": "retraction", "trade_id": event.trade_id,
                   "block_hash": event.block_hash}
            data = (_encode(row) + "\n").encode("utf-8")
        try:
            done = 0
            while done < len(data):
                done += os.write(self._fd, data[done:])
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)
        self._count(k)
        return True

    def _trade_row(self, event: SinkEvent) -> bytes:
        """The trade row, the bytes ``json.dumps`` of ``{"t_ns", "wall_ns", "kind",
        "source", "trade": trade.to_dict(), "stages"}`` (compact) gives, around the trade's
        JSON as the outbox holds it (``event.trade_json``) instead of encoding it again."""
        assert event.trade is not None
        t_ns = self._clock.now_ns()
        trade = event.trade_json if event.trade_json is not None else event.trade.to_json()
        source = _SOURCES.get(event.source) or _encode(event.source)
        head = (f'{{"t_ns":{_number(t_ns)},"wall_ns":{_number(wall_ns(self._clock))},'
                f'"kind":"trade","source":{source},"trade":')
        if event.stages is None:
            return f"{head}{trade}}}\n".encode()
        stages = {**event.stages, "deliver": t_ns - event.stages["recv_ns"]}
        return f'{head}{trade},"stages":{_encode(stages)}}}\n'.encode()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_encode = json.JSONEncoder(separators=(",", ":")).encode
_SOURCES = {s: _encode(s) for s in ("ws", "backfill", "poll")}


def _number(value: object) -> str:
    """``json.dumps(value)`` for the clocks' stamps (an int: its repr, which json uses)."""
    return repr(value) if type(value) is int else _encode(value)


_CHUNK = 1 << 20  # bytes read at a time when looking for line ends from the back
_MAX_ROW_BYTES = 1 << 20  # a detections row is ~1 kB: a longer line is garbage, skipped


def _after_last_newline(fh: BinaryIO, size: int) -> int:
    """The offset just after the file's last newline (0: none), read from the back."""
    return end_of_last_line(fh.fileno(), size)


def _start_of_last_lines(fh: BinaryIO, end: int, n: int) -> int:
    """Where the last ``n`` lines before ``end`` (which follows a newline) start: after
    the newline that ends the line before them (0: the file has no more lines)."""
    pos, seen = end, 0  # newlines seen from the back; the one at end - 1 ends the last line
    while pos > 0:
        base = max(0, pos - _CHUNK)
        fh.seek(base)
        chunk = fh.read(pos - base)
        k = chunk.count(b"\n")
        if seen + k > n:  # the (n + 1)-th newline from the back is in this chunk
            i = len(chunk)
            for _ in range(n + 1 - seen):
                i = chunk.rfind(b"\n", 0, i)
            return base + i + 1
        seen += k
        pos = base
    return 0


def _bounded_lines(fh: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """The lines from here on, each at most ``limit`` bytes held; a longer one comes as
    None (skipped to its end, never held whole)."""
    while line := fh.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while (rest := fh.readline(limit + 1)) and not rest.endswith(b"\n"):
            pass
        yield None
