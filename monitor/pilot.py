"""The live shadow pilot: the WebSocket path and the polling path side by side.

One process runs two :class:`~monitor.wallet_monitor.WalletMonitor` instances on the same
wallets and the same endpoints: ``websocket`` (the new path, with its explorer fallback)
and ``polling`` (today's behaviour, the shadow). Both write to one durable store
directory with one clock::

    DIR/pilot.sqlite            meta (start block, wallets, exchanges, endpoints without
                                keys),
                                sessions (each process start: wall + monotonic ns),
                                sightings (per path and event: first seen wall/mono ns,
                                block number/hash/timestamp, source), paths (per session
                                and path: seconds observed / healthy / on fallback, state,
                                head, cursor), heads (head per beat)
    DIR/sightings.jsonl         the same sightings as JSON lines (rotated)
    DIR/events.jsonl            pilot events: session start/stop, fallback start/end,
                                FAILED, alerts (rotated)
    DIR/<path>/state.db         each monitor's cursor and outbox (resume after restart)
    DIR/<path>/history.jsonl    each monitor's history (rotated; a ``pilot_session`` row
                                with wall and monotonic ns opens every session)

Sightings are idempotent on ``(path, kind, trade_id, generation)``: the monitors re-send
what they had not confirmed after a crash, and the store keeps the first sighting. The
first start asks the node for its head and stores ``start_block = head + 1`` for both
paths, so both watch from the same block; a restart resumes from each monitor's cursor.
Files are rotated at ``rotate_bytes`` and ``keep`` old files are kept (JSON lines are the
human-readable copy; SQLite is the record).

Alerts (the monitor's Telegram alerter, or the log): the monitors' own (disconnected,
recovered, failed, task crash) plus ``fallback_start`` / ``fallback_end`` and
``failed`` when the WebSocket path enters FAILED.

The pilot knows nothing of the simulator: URLs only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import sqlite3
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import aiohttp

from monitor.bounds import quantity
from monitor.clock import Clock, SystemClock
from monitor.config import Settings, explorer_needs_key
from monitor.connection import ConnState
from monitor.errors import MonitorError, StoreError
from monitor.history import History
from monitor.jsonrpc_client import JsonRpcHttpClient
from monitor.node_sync import node_sync_gap
from monitor.ops_server import OpsServer
from monitor.private_files import PRIVATE_MODE, FileInUse, hold_lock, open_private
from monitor.redact import redact, redact_obj
from monitor.sinks import CallbackSink, SinkEvent
from monitor.store import store_reads
from monitor.wallet_monitor import WalletMonitor

__all__ = ["PATHS", "Pilot", "PilotStore", "RotatingHistory", "RotatingJsonl",
           "chain_block_interval", "check_explorer_key", "check_rpc_chain", "endpoint_host",
           "explorer_needs_key", "pilot_status", "read_rotated"]

log = logging.getLogger("monitor.pilot")

PATHS = ("websocket", "polling")
DB_NAME = "pilot.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, started_wall_ns INTEGER NOT NULL,
    started_mono_ns INTEGER NOT NULL, pid INTEGER, stopped_wall_ns INTEGER,
    last_wall_ns INTEGER);
CREATE TABLE IF NOT EXISTS sightings (
    path TEXT NOT NULL, kind TEXT NOT NULL, trade_id TEXT NOT NULL,
    generation INTEGER NOT NULL, source TEXT, wall_ns INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL, session INTEGER, wallet TEXT, block_number INTEGER,
    block_hash TEXT, block_timestamp INTEGER,
    PRIMARY KEY (path, kind, trade_id, generation));
CREATE TABLE IF NOT EXISTS paths (
    session INTEGER NOT NULL, path TEXT NOT NULL, observed_s REAL NOT NULL,
    healthy_s REAL NOT NULL, fallback_s REAL NOT NULL, state TEXT, healthy INTEGER,
    fallback INTEGER, head INTEGER, cursor INTEGER, wall_ns INTEGER, mono_ns INTEGER,
    PRIMARY KEY (session, path));
CREATE TABLE IF NOT EXISTS heads (
    wall_ns INTEGER NOT NULL, mono_ns INTEGER NOT NULL, path TEXT NOT NULL,
    head INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS heads_wall ON heads(wall_ns);
"""
_COLUMNS = {
    "meta": ("key", "value"),
    "sessions": ("id", "started_wall_ns", "started_mono_ns", "pid", "stopped_wall_ns",
                 "last_wall_ns"),
    "sightings": ("path", "kind", "trade_id", "generation", "source", "wall_ns", "mono_ns",
                  "session", "wallet", "block_number", "block_hash", "block_timestamp"),
    "paths": ("session", "path", "observed_s", "healthy_s", "fallback_s", "state", "healthy",
              "fallback", "head", "cursor", "wall_ns", "mono_ns"),
    "heads": ("wall_ns", "mono_ns", "path", "head"),
}

#: the columns whose values the readers compute with, and the type each must hold (SQLite
#: stores any value in any column: a text where a number belongs, written by hand or by
#: another program, was a TypeError traceback in ``pilot status`` and reconcile). ``?``:
#: NULL allowed
_TYPES: dict[str, dict[str, str]] = {
    "sessions": {"started_wall_ns": "int", "started_mono_ns": "int",
                 "stopped_wall_ns": "int?", "last_wall_ns": "int?"},
    "sightings": {"path": "text", "kind": "text", "trade_id": "text", "generation": "int",
                  "wall_ns": "int", "mono_ns": "int", "session": "int?",
                  "block_number": "int?", "block_timestamp": "int?"},
    "paths": {"path": "text", "observed_s": "real", "healthy_s": "real", "fallback_s": "real",
              "state": "text?", "healthy": "int?", "fallback": "int?", "head": "int?",
              "cursor": "int?"},
    "heads": {"wall_ns": "int", "mono_ns": "int", "path": "text", "head": "int"},
}
#: the meta values the readers compute with: what each must be
_META_TYPES = {"start_block": "int", "wallets": "list of text", "exchanges": "list of text"}


def _is(value: Any, kind: str) -> bool:
    if value is None:
        return kind.endswith("?")
    kind = kind.rstrip("?")
    if kind == "text":
        return isinstance(value, str)
    if kind == "list of text":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or (kind == "real" and math.isfinite(value))


def _checked(db: Path, table: str, cols: Sequence[str], rows: Iterable[Sequence[Any]]
             ) -> list[dict[str, Any]]:
    """``rows`` of ``table`` as dicts, each value of :data:`_TYPES` of its type, or a
    :class:`StoreError` naming the row and column."""
    want = [(i, c, _TYPES[table][c]) for i, c in enumerate(cols) if c in _TYPES[table]]
    out = []
    for n, row in enumerate(rows, 1):
        for i, col, kind in want:
            if not _is(row[i], kind):
                raise StoreError(f"{db}: not a pilot store (table {table}, row {n}: {col} "
                                 f"is {str(row[i])[:40]!r}, not {_KIND_TEXT[kind]})")
        out.append(dict(zip(cols, row, strict=True)))
    return out


_KIND_TEXT = {"int": "an integer", "int?": "an integer or NULL", "real": "a finite number",
              "text": "a text", "text?": "a text or NULL", "list of text": "a list of texts"}


#: seconds between two fallback_start alerts of the pilot (clock seconds)
FALLBACK_ALERT_EVERY_S = 300.0
#: blocks over which the pilot measures the chain's block interval (~6 minutes of Polygon)
INTERVAL_SAMPLE_BLOCKS = 200
#: a measured interval outside this range is no chain's (a node's bad clock or a bad answer)
_INTERVAL_RANGE_S = (0.2, 60.0)


async def chain_block_interval(client: JsonRpcHttpClient, *,
                               blocks: int = INTERVAL_SAMPLE_BLOCKS) -> float:
    """The chain's mean block interval over its last ``blocks`` blocks, from the head's and
    an older block's timestamps (two calls), to 0.01 s; :class:`ValueError` saying why
    when the chain is shorter, the blocks are not served or the interval is implausible.
    Timestamps have 1 s resolution, so over 200 blocks the mean is good to 0.005 s; the
    mean (not the usual gap) also counts a slot's missed blocks, so the watchdogs it tunes
    err on the patient side."""
    head = quantity(await client.call("eth_blockNumber", []))
    if head < blocks:
        raise ValueError(f"the chain has {head + 1} blocks, fewer than {blocks}")
    newer, older = await asyncio.gather(
        client.call("eth_getBlockByNumber", [hex(head), False]),
        client.call("eth_getBlockByNumber", [hex(head - blocks), False]))
    if not isinstance(newer, dict) or not isinstance(older, dict):
        raise ValueError(f"blocks {head - blocks} and {head} are not both served")
    interval = (quantity(newer["timestamp"]) - quantity(older["timestamp"])) / blocks
    low, high = _INTERVAL_RANGE_S
    if not low <= interval <= high:
        raise ValueError(f"{interval:.3f} s between blocks {head - blocks} and {head} is "
                         "no chain's interval")
    return round(interval, 2)


def _check_tables(db: sqlite3.Connection, *, all_there: bool = True) -> None:
    """Raise ``sqlite3.DatabaseError`` naming a table whose columns are not the pilot's
    (the right names with other columns were a traceback), or (``all_there``) the first
    table missing."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = sorted(_COLUMNS.keys() - tables)
    if missing and all_there:
        raise sqlite3.DatabaseError(f"no {', '.join(missing)} table")
    for table, want in _COLUMNS.items():
        have = tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))
        if have != want and table in tables:
            raise sqlite3.DatabaseError(f"table {table} has columns {', '.join(have)}")


def _lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


#: lock files this process holds (a pilot run in-process): never opened by
#: :func:`lock_held`, since closing any descriptor of a file drops the process's POSIX
#: locks on it
_HELD: set[Path] = set()


def _lock_store(directory: Path, db: Path) -> int:
    """Hold ``pilot.sqlite.lock`` while the pilot runs: two pilots on one store both ran,
    each adding its uptime to the same sessions (status showed 166 %)."""
    lock = _lock_path(db)
    try:
        fd = hold_lock(lock)
    except FileInUse as exc:
        who = f"pid {exc.pid}" if exc.pid else f"see {lock}"
        raise StoreError(f"pilot store {directory} is in use by another pilot ({who})"
                         ) from None
    _HELD.add(lock.resolve())
    return fd


def lock_held(db: Path) -> bool | None:
    """Whether a pilot process holds the store's lock now, without taking it (``F_GETLK``;
    a pilot starting meanwhile is never refused): the truth at once after a SIGKILL,
    where the last beat's age said "running" for a minute. None when it cannot be told
    (no lock file, not readable by this user, not Linux)."""
    lock = _lock_path(db)
    if lock.resolve() in _HELD:
        return True
    if not sys.platform.startswith("linux"):
        return None
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:  # struct flock: l_type, l_whence, l_start, l_len, l_pid
        probe = struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
        return int(struct.unpack("hhqqi4x", answer)[0]) != fcntl.F_UNLCK
    except OSError:
        return None
    finally:
        os.close(fd)


#: how a user changes each setting the explorer can refuse (ExplorerSettingRefused.setting)
_SETTING_HOW = {"explorer_url": "--explorer-url",
                "chain_id": "--set chain_id=N or MONITOR_CHAIN_ID",
                "explorer_api_key": "the file EXPLORER_API_KEY_FILE names"}


async def check_explorer_key(settings: Settings, *, clock: Clock | None = None) -> None:
    """Ask the explorer once (``module=proxy&action=eth_blockNumber``): a key, a URL or a
    chain id it refuses whatever is asked (the explorer client's
    :class:`~monitor.explorer_client.ExplorerSettingRefused`, its one reading of those
    texts) raises :class:`~monitor.errors.ConfigError` naming the setting to change (a
    typo in the key file ran a pilot whose polling shadow failed every call for as long
    as it ran, a warning a second in the log). Any other failure (down, slow, rate
    limited) is the paths' to ride out: a warning, and the pilot starts."""
    from monitor.errors import ConfigError
    from monitor.explorer_client import (
        ExplorerClient,
        ExplorerKeyRefused,
        ExplorerSettingRefused,
    )

    host = endpoint_host(settings.explorer_url)
    async with aiohttp.ClientSession() as session:
        client = ExplorerClient(settings.explorer_url, session, api_key=settings.api_key(),
                                chain_id=settings.chain_id, timeout=settings.explorer_timeout,
                                rate_limit_retries=1, clock=clock)
        try:
            await client.block_number()
        except ExplorerKeyRefused as exc:  # no retry helps: fix the key
            raise ConfigError(f"--explorer-url {host} refuses the API key: {exc.text} "
                              "(check the file EXPLORER_API_KEY_FILE names)") from None
        except ExplorerSettingRefused as exc:  # a V1 URL, a chain id it does not serve
            now = (f"; now {settings.chain_id}" if exc.setting == "chain_id" else "")
            raise ConfigError(f"--explorer-url {host} refuses the request for the setting "
                              f"{exc.setting} ({_SETTING_HOW.get(exc.setting, exc.setting)}"
                              f"{now}): {exc.text}; the pilot needs {exc.remedy}") from None
        except MonitorError as exc:
            log.warning("explorer check at start: %s", exc.message)


async def check_rpc_chain(settings: Settings, *, clock: Clock | None = None) -> None:
    """Ask ``--rpc-url`` its ``eth_chainId`` once: a node of another chain than
    ``chain_id`` (an Amoy or Ethereum URL beside Polygon's explorer) raises
    :class:`~monitor.errors.ConfigError` naming both (it ran: its paths watched two
    chains, and reconcile judged every trade of one a phantom). A node that does not
    answer, or answers no quantity, is the paths' to ride out: a warning."""
    from monitor.errors import ConfigError

    if settings.rpc_url is None:
        return
    host = endpoint_host(settings.rpc_url)
    async with aiohttp.ClientSession() as session:
        client = JsonRpcHttpClient(settings.rpc_url, session, clock=clock,
                                   timeout=settings.rpc_timeout, max_retries=0)
        try:
            served = quantity(await client.call("eth_chainId", []))
        except MonitorError as exc:
            _key_refused(exc, "--rpc-url", settings.rpc_url)
            log.warning("chain check at start: --rpc-url %s: %s", host, exc.message)
            return
        except (TypeError, ValueError) as exc:
            log.warning("chain check at start: --rpc-url %s: eth_chainId: %s", host, exc)
            return
    if served != settings.chain_id:
        raise ConfigError(f"--rpc-url {host} serves chain {served}, the pilot watches chain_id "
                          f"{settings.chain_id}: give the URL of a chain {settings.chain_id} "
                          "node (or --set chain_id=N / MONITOR_CHAIN_ID, with an explorer "
                          "of that chain)")


def _key_refused(exc: MonitorError, flag: str, url: str | None) -> None:
    """Raise :class:`~monitor.errors.ConfigError` when ``exc`` is the provider refusing
    its key (HTTP 401/403): a setting to fix (exit 2, no restart), not an outage to
    restart into every 5 s."""
    from monitor.errors import ConfigError
    from polyvocab.errors import key_refused_status

    if key_refused_status(exc) is not None:
        raise ConfigError(f"{flag} {endpoint_host(url)} refuses the request ({exc.message}): "
                          "check the key in its URL") from None


def _quota_spent(exc: MonitorError, flag: str, url: str | None) -> None:
    """Raise :class:`~monitor.errors.ConfigError` when ``exc`` is the provider saying its
    quota is spent (Alchemy's 'Monthly capacity limit exceeded', an HTTP 402): a plan or
    a key to change (exit 2), not an outage to restart into every few seconds."""
    from monitor.errors import ConfigError, QuotaExhausted

    if isinstance(exc, QuotaExhausted):
        raise ConfigError(f"{flag} {endpoint_host(url)}: the provider's quota is spent "
                          f"({redact(exc.message)[:200]}): raise the plan or use another "
                          "key, or give --start-block (the first start asks the node's "
                          "head for it)") from None


def endpoint_host(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an endpoint: no path, query or credentials (keys)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


# -- bounded files -----------------------------------------------------------------------

def _rotate(path: Path, keep: int) -> None:
    """``path`` -> ``path.1`` -> ``path.2`` ...; the oldest past ``keep`` is deleted."""
    for i in range(keep, 0, -1):
        src = path if i == 1 else path.with_name(f"{path.name}.{i - 1}")
        dst = path.with_name(f"{path.name}.{i}")
        if src.exists():
            if i == keep and dst.exists():
                dst.unlink()
            os.replace(src, dst)
    if keep == 0 and path.exists():
        path.unlink()


def read_rotated(path: str | Path) -> list[Path]:
    """The files of a rotated JSON-lines file, oldest first (``x.3``, ``x.2``, ``x.1``,
    ``x``), those that exist."""
    path = Path(path)
    old = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
                 key=lambda p: -int(p.suffix[1:]))
    return [*old, *([path] if path.exists() else [])]


class RotatingJsonl:
    """Append-only JSON lines (0600), one flushed line per row, rotated past
    ``max_bytes`` keeping ``keep`` old files."""

    def __init__(self, path: str | Path, *, max_bytes: int, keep: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._fh: IO[str] | None = open_private(self.path, buffering=1)

    def write(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(redact_obj(row), separators=(",", ":"), default=str) + "\n")
        if self._fh.tell() >= self.max_bytes:
            self._fh.close()
            _rotate(self.path, self.keep)
            self._fh = open_private(self.path, buffering=1)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class RotatingHistory(History):
    """A monitor :class:`~monitor.history.History` whose file is rotated past
    ``max_bytes`` (``keep`` old files kept)."""

    def __init__(self, path: str | Path, *, clock: Clock | None = None, max_bytes: int,
                 keep: int) -> None:
        super().__init__(path, clock=clock)
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        row = super().record(event, **fields)
        fh = self._fh
        if fh is not None:
            try:
                if fh.tell() >= self.max_bytes:
                    fh.close()
                    _rotate(self.path, self.keep)
                    self._fh = open_private(self.path, buffering=1)
            except OSError as exc:
                self.dropped += 1
                log.error("history rotation failed (%s)", exc)
        return row


# -- the durable record ------------------------------------------------------------------

# a read's sqlite3.Error (a damaged store): StoreError, which ``pilot status``, ``pilot
# run`` and reconcile print as one line (was a traceback)
_reads = store_reads(lambda store: str(store.db))


class PilotStore:
    """``DIR/pilot.sqlite`` (WAL; survives SIGKILL). One writer (the pilot, which holds
    ``pilot.sqlite.lock`` while it runs: a second pilot on the store is refused), any
    readers (``readonly``: never creates or changes a file)."""

    def __init__(self, directory: str | Path, *, readonly: bool = False) -> None:
        self.dir = Path(directory)
        self.db = db = self.dir / DB_NAME
        self._lock_fd: int | None = None
        try:  # SQLite's own "unable to open" (a folder, a file of another user) was a
            # traceback in status, run and reconcile
            if readonly:
                if not db.exists():
                    raise FileNotFoundError(f"{db}: no pilot store here")
                # a URI, escaped: "?" or "#" in the folder's name cut "mode=ro" off (the
                # store was "not a pilot store", and SQLite created a stray file at the cut)
                self._db = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True,
                                           timeout=10)
            else:
                self.dir.mkdir(parents=True, exist_ok=True)
                self._lock_fd = _lock_store(self.dir, db)
                if not db.exists():
                    os.close(os.open(db, os.O_WRONLY | os.O_CREAT, PRIVATE_MODE))
                self._db = sqlite3.connect(db, timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            self._unlock()
            raise StoreError(f"{db}: cannot open the pilot store ({exc})") from None
        except BaseException:
            self._unlock()
            raise
        try:  # a file that is not a database, or not a pilot's: one clear error
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                _check_tables(self._db, all_there=False)  # before its indexes fail on them
                self._db.executescript(_SCHEMA)
            _check_tables(self._db)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{db}: not a pilot store ({exc})") from None

    def close(self) -> None:
        self._db.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            _HELD.discard(_lock_path(self.db).resolve())
            os.close(self._lock_fd)
            self._lock_fd = None

    @_reads
    def meta(self) -> dict[str, Any]:
        out = {}
        for key, value in self._db.execute("SELECT key, value FROM meta"):
            try:
                out[key] = json.loads(value)
            except (TypeError, ValueError):
                raise StoreError(f"{self.db}: not a pilot store (meta {key!r} is not "
                                 "JSON)") from None
            kind = _META_TYPES.get(key)
            if kind is not None and not _is(out[key], kind):
                raise StoreError(f"{self.db}: not a pilot store (meta {key!r} is "
                                 f"{str(out[key])[:40]!r}, not {_KIND_TEXT[kind]})")
        return out

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         (key, json.dumps(value)))

    def new_session(self, wall_ns: int, mono_ns: int) -> int:
        cur = self._db.execute("INSERT INTO sessions (started_wall_ns, started_mono_ns, pid, "
                               "last_wall_ns) VALUES (?, ?, ?, ?)",
                               (wall_ns, mono_ns, os.getpid(), wall_ns))
        return int(cur.lastrowid or 0)

    def end_session(self, session: int, wall_ns: int) -> None:
        self._db.execute("UPDATE sessions SET stopped_wall_ns = ?, last_wall_ns = ? "
                         "WHERE id = ?", (wall_ns, wall_ns, session))

    @_reads
    def sessions(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT id, started_wall_ns, started_mono_ns, pid, "
                               "stopped_wall_ns, last_wall_ns FROM sessions ORDER BY id")
        return _checked(self.db, "sessions", [d[0] for d in cur.description], cur)

    def record(self, path: str, event: SinkEvent, *, wall_ns: int, mono_ns: int,
               session: int) -> bool:
        """Keep the first sighting of this event. True if it is new."""
        t = event.trade
        cur = self._db.execute(
            "INSERT OR IGNORE INTO sightings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (path, event.kind, event.trade_id, event.generation, event.source, wall_ns,
             mono_ns, session, t.wallet if t else None, t.block_number if t else None,
             event.block_hash, t.block_timestamp if t else None))
        return cur.rowcount > 0

    @_reads
    def sightings(self, path: str | None = None) -> list[dict[str, Any]]:
        q = ("SELECT path, kind, trade_id, generation, source, wall_ns, mono_ns, session, "
             "wallet, block_number, block_hash, block_timestamp FROM sightings")
        args: tuple[Any, ...] = ()
        if path is not None:
            q += " WHERE path = ?"
            args = (path,)
        cur = self._db.execute(q + " ORDER BY wall_ns, rowid", args)
        return _checked(self.db, "sightings", [d[0] for d in cur.description], cur)

    def beat(self, session: int, path: str, *, dt_s: float, healthy: bool, fallback: bool,
             state: str, head: int | None, cursor: int | None, wall_ns: int,
             mono_ns: int) -> None:
        self._db.execute("BEGIN")
        try:
            self._db.execute(
                "INSERT INTO paths VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(session, path) "
                "DO UPDATE SET observed_s = observed_s + excluded.observed_s, "
                "healthy_s = healthy_s + excluded.healthy_s, "
                "fallback_s = fallback_s + excluded.fallback_s, state = excluded.state, "
                "healthy = excluded.healthy, fallback = excluded.fallback, "
                "head = excluded.head, cursor = excluded.cursor, wall_ns = excluded.wall_ns, "
                "mono_ns = excluded.mono_ns",
                (session, path, dt_s, dt_s if healthy else 0.0, dt_s if fallback else 0.0,
                 state, int(healthy), int(fallback), head, cursor, wall_ns, mono_ns))
            if head is not None:
                self._db.execute("INSERT INTO heads VALUES (?,?,?,?)",
                                 (wall_ns, mono_ns, path, head))
                # bounded over weeks: heads older than the retention are dropped
                self._db.execute("DELETE FROM heads WHERE wall_ns < ?",
                                 (wall_ns - HEADS_RETENTION_NS,))
            self._db.execute("UPDATE sessions SET last_wall_ns = ? WHERE id = ?",
                             (wall_ns, session))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    @_reads
    def paths(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT * FROM paths ORDER BY session, path")
        return _checked(self.db, "paths", [d[0] for d in cur.description], cur)

    @_reads
    def heads(self) -> list[tuple[int, int, str, int]]:
        cur = self._db.execute("SELECT wall_ns, mono_ns, path, head FROM heads "
                               "ORDER BY wall_ns")
        cols = [d[0] for d in cur.description]
        return [(r["wall_ns"], r["mono_ns"], r["path"], r["head"])
                for r in _checked(self.db, "heads", cols, cur)]


HEADS_RETENTION_NS = 90 * 86_400 * 10**9  # 90 days of heads: longer than any pilot phase


# -- status ------------------------------------------------------------------------------

#: seconds a block's timestamp may lie after the pilot saw its trade (clock skew between
#: this machine and the block producers) before the figure is no latency
STAMP_SKEW_S = 60.0


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    vs = sorted(values)
    pos = q * (len(vs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(vs) - 1)
    return vs[lo] + (vs[hi] - vs[lo]) * (pos - lo)


def _liveness(sessions: list[dict[str, Any]], last: int | None, now: int,
              held: bool | None, beat_s: Any) -> dict[str, Any]:
    """``running``; ``ended``: how the last session ended when not running (``stopped``:
    a clean stop; ``killed``: no clean stop, a crash, SIGKILL or power loss) and
    ``stalled``: running, but no beat for three beats (at least 60 s). The lock says
    whether a pilot runs; without it (an old store, another user), a beat in the last
    60 s does."""
    if not sessions:
        return {"running": False, "ended": None, "stalled": False}
    age = (now - last) / 1e9 if last is not None else None
    clean = sessions[-1]["stopped_wall_ns"] is not None
    running = held if held is not None else (not clean and age is not None and age < 60)
    beat = float(beat_s) if isinstance(beat_s, (int, float)) else 5.0
    return {"running": running,
            "ended": None if running else ("stopped" if clean else "killed"),
            "stalled": running and (age is None or age > max(60.0, 3 * beat))}


def pilot_status(directory: str | Path, *, now_wall_ns: int | None = None) -> dict[str, Any]:
    """What ``python -m monitor pilot status`` shows, as a dict (read-only)."""
    store = PilotStore(directory, readonly=True)
    try:
        meta, sessions, paths = store.meta(), store.sessions(), store.paths()
        rows = store.sightings()
    finally:
        store.close()
    now = now_wall_ns if now_wall_ns is not None else time.time_ns()
    start = sessions[0]["started_wall_ns"] if sessions else None
    last = max((s["last_wall_ns"] or s["started_wall_ns"] for s in sessions), default=None)
    span_s = (last - start) / 1e9 if start is not None and last is not None else 0.0
    out: dict[str, Any] = {"store": str(directory), "start_block": meta.get("start_block"),
                           "wallets": meta.get("wallets", []), "sessions": len(sessions),
                           "started_wall_ns": start, "last_beat_wall_ns": last,
                           "last_beat_age_s": (now - last) / 1e9 if last else None,
                           **_liveness(sessions, last, now, lock_held(store.db),
                                       meta.get("beat_s")),
                           "span_s": span_s, "endpoints": meta.get("endpoints", {}),
                           "paths": {}}
    seen: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in PATHS}
    for r in rows:
        if r["kind"] == "trade" and r["trade_id"] not in seen.setdefault(r["path"], {}):
            seen[r["path"]][r["trade_id"]] = r
    for p in PATHS:
        mine = [x for x in paths if x["path"] == p]
        healthy = sum(x["healthy_s"] for x in mine)
        current = mine[-1] if mine else {}
        stamped = [(r["wall_ns"] - r["block_timestamp"] * 1_000_000_000) / 1e9
                   for r in seen[p].values() if r["block_timestamp"] is not None]
        # a block stamped after it was seen, past any clock skew: a timestamp the source
        # got wrong (an explorer row's), not a latency; the report's come from the chain
        lat = [x for x in stamped if x >= -STAMP_SKEW_S]
        others = set().union(*(set(seen[o]) for o in PATHS if o != p))
        out["paths"][p] = {
            # two processes on one store added up past 100 %; never shown above it
            "uptime": min(1.0, healthy / span_s) if span_s > 0 else None,
            "observed_s": sum(x["observed_s"] for x in mine),
            "fallback_s": sum(x["fallback_s"] for x in mine),
            "trades": len(seen[p]),
            "only_this_path": len(set(seen[p]) - others),
            "retractions": sum(1 for r in rows if r["path"] == p and r["kind"] == "retraction"),
            "latency_s": {k: _quantile(lat, q) for k, q in
                          (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))},
            "latency_left_out": len(stamped) - len(lat),
            "state": current.get("state"), "healthy": bool(current.get("healthy")),
            "fallback": bool(current.get("fallback")), "head": current.get("head"),
            "cursor": current.get("cursor")}
    both = set(seen["websocket"]) & set(seen["polling"])
    out["trades_both"] = len(both)
    return out


def format_status(st: dict[str, Any]) -> str:
    def s(v: Any, fmt: str = "{:.2f}") -> str:
        return "-" if v is None else fmt.format(v)

    if st["running"]:
        life = "RUNNING BUT STALLED (no beat lately)" if st.get("stalled") else "running"
    else:
        life = {"stopped": "not running (stopped cleanly)",
                "killed": "NOT RUNNING (ended without a clean stop: crash, SIGKILL or "
                          "power loss; restart it with the same --store)"
                }.get(st.get("ended") or "", "not running")
    state = "state" if st["running"] else "last state"
    lines = [f"pilot store {st['store']}: {st['sessions']} session(s), "
             f"{life}, span {st['span_s'] / 3600:.2f} h, "
             f"last beat {s(st['last_beat_age_s'], '{:.0f}')} s ago, "
             f"start block {st['start_block']}, {len(st['wallets'])} wallet(s)",
             f"trades seen by both paths: {st['trades_both']}"]
    for p, d in st["paths"].items():
        lat = d["latency_s"]
        lines.append(
            f"{p:<9} uptime {s(None if d['uptime'] is None else 100 * d['uptime'], '{:.1f}')}%"
            f"  trades {d['trades']} (only here {d['only_this_path']})"
            f"  latency p50 {s(lat['p50'])} s p95 {s(lat['p95'])} s p99 {s(lat['p99'])} s"
            f" max {s(lat['max'])} s"
            + (f" ({d['latency_left_out']} left out: block stamped after it was seen)"
               if d.get("latency_left_out") else "")
            + f"  {state} {d['state'] or '-'}"
            f"{' FALLBACK' if d['fallback'] else ''}  head {d['head'] or '-'}"
            f"  cursor {d['cursor'] or '-'}")
    return "\n".join(lines)


# -- the pilot ---------------------------------------------------------------------------

class _PollHealth:
    """The polling path is healthy while its last explorer round succeeded recently."""

    def __init__(self) -> None:
        self.polls = 0
        self.errors = 0
        self.last_ok: float | None = None
        self.last_err: float | None = None

    def update(self, polls: int, errors: int, now: float) -> None:
        if errors > self.errors:
            self.last_err = now
        elif polls > self.polls:
            self.last_ok = now
        self.polls, self.errors = polls, errors

    def healthy(self, now: float, limit: float) -> bool:
        return (self.last_ok is not None and now - self.last_ok <= limit
                and (self.last_err is None or self.last_ok > self.last_err))


class Pilot:
    """Both paths, the store, the beat. ``await start()`` ... ``await stop()``."""

    def __init__(self, settings: Settings, directory: str | Path, *, beat_s: float = 5.0,
                 rotate_bytes: int = 64 << 20, keep: int = 5,
                 clock: Clock | None = None, check_key: bool = False) -> None:
        """``check_key``: ask the explorer once at the start, a refused key is a
        :class:`~monitor.errors.ConfigError` (:func:`check_explorer_key`; ``pilot`` does)."""
        self.s = settings
        self.dir = Path(directory)
        self.beat_s = beat_s
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.clock = clock or SystemClock()
        self.store: PilotStore | None = None
        self.session = 0
        self.monitors: dict[str, WalletMonitor] = {}
        self.events: RotatingJsonl | None = None
        self.sightings_log: RotatingJsonl | None = None
        self.ops: OpsServer | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._last_beat: float | None = None
        self._fallback = False
        self._fallback_alerted = False  # the current fallback's start was alerted
        self._fallback_alerted_at: float | None = None
        self._fallback_quiet = 0  # fallback episodes not alerted since the last alert
        self._failed = False
        self._poll_health = _PollHealth()
        self._bg: set[asyncio.Task[Any]] = set()
        self.block_interval = settings.block_interval
        self._interval_source = "setting"
        self._started = False
        self._stop_reason: str | None = None
        self._check_key = check_key

    async def __aenter__(self) -> Pilot:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _event(self, event: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.write({"wall_ns": time.time_ns(), "t_ns": self.clock.now_ns(),
                               "event": event, "session": self.session, **fields})

    async def _start_block(self) -> int:
        store = self.store
        assert store is not None
        meta = store.meta()
        if "start_block" in meta:
            return int(meta["start_block"])
        if self.s.start_block is not None:
            start = self.s.start_block
        else:
            assert self.s.rpc_url is not None
            async with aiohttp.ClientSession() as session:
                client = JsonRpcHttpClient(self.s.rpc_url, session, clock=self.clock,
                                           timeout=self.s.rpc_timeout)
                try:
                    start = quantity(await client.call("eth_blockNumber", [])) + 1
                except MonitorError as exc:  # say which of the three endpoints it was
                    _key_refused(exc, "--rpc-url", self.s.rpc_url)
                    _quota_spent(exc, "--rpc-url", self.s.rpc_url)
                    raise MonitorError(f"--rpc-url {endpoint_host(self.s.rpc_url)}: "
                                       f"eth_blockNumber for the start block: "
                                       f"{exc.message}") from None
                except (TypeError, ValueError) as exc:
                    raise MonitorError(f"--rpc-url {endpoint_host(self.s.rpc_url)}: "
                                       f"eth_blockNumber for the start block: {exc}") from None
                if start <= 1:  # head 0 ("0x0", "0x"): a node syncing from genesis (a
                    # self-hosted bor or geth answers so until its sync is done) or an
                    # empty chain. Start block 1, stored for good, had both paths watch
                    # the chain from genesis (the monitor's own launch point refuses it)
                    raise MonitorError(f"--rpc-url {endpoint_host(self.s.rpc_url)}: "
                                       "eth_blockNumber for the start block: the node is "
                                       "at head 0 (still syncing, or an empty chain); "
                                       "start the pilot once it has synced, or give "
                                       "--start-block")
                gap = await node_sync_gap(client)
                if gap is not None:  # its head is of the chain's past: watched from there,
                    # both paths fetched and sighted every trade since
                    raise MonitorError(f"--rpc-url {endpoint_host(self.s.rpc_url)}: "
                                       f"eth_syncing: the node is syncing, at block "
                                       f"{gap[0]} of {gap[1]}; start the pilot once it has "
                                       "synced, or give --start-block")
        store.set_meta("start_block", start)
        return start

    async def _block_interval(self) -> float:
        """The block interval both monitors expect: the setting when one was given, else
        the chain's own, measured over its last :data:`INTERVAL_SAMPLE_BLOCKS` blocks at
        each start (Polygon's changes with hard forks: 2 s until PIP-86, 1.75 s since, 1.5 s
        planned; the default setting, 2.0, made a 1.75-s chain's silent subscription wait
        14 % longer before it was called stale). A node that cannot say keeps the setting,
        with a warning: the interval tunes the watchdogs and is never worth a failed
        start."""
        if "block_interval" in self.s.model_fields_set or self.s.rpc_url is None:
            self._interval_source = "setting"
            return self.s.block_interval
        try:
            async with aiohttp.ClientSession() as session:
                client = JsonRpcHttpClient(self.s.rpc_url, session, clock=self.clock,
                                           timeout=self.s.rpc_timeout)
                measured: float | None = await chain_block_interval(client)
        except MonitorError as exc:
            _key_refused(exc, "--rpc-url", self.s.rpc_url)
            measured, why = None, exc.message
        except (TypeError, ValueError, KeyError) as exc:
            measured, why = None, str(exc)
        if measured is None:
            log.warning("block interval: the node could not say the chain's (%s); using "
                        "the setting, %.2f s (set block_interval to silence this)",
                        redact(why)[:200], self.s.block_interval)
            self._interval_source = "setting (the chain's could not be measured)"
            return self.s.block_interval
        log.info("block interval: %.2f s, measured over the chain's last %d blocks",
                 measured, INTERVAL_SAMPLE_BLOCKS)
        self._interval_source = f"measured over {INTERVAL_SAMPLE_BLOCKS} blocks"
        return measured

    def _settings(self, path: str, start_block: int) -> Settings:
        sub = self.dir / path
        update: dict[str, Any] = {
            "block_interval": self.block_interval,
            "mode": path, "websocket_enabled": path == "websocket", "websocket_share": 100.0,
            "start_block": start_block, "state_db": str(sub / "state.db"),
            "detections_path": None, "history_path": None, "metrics_port": None,
            # one explorer key, two clients: each gets half of the rate
            "explorer_rate_per_s": self.s.explorer_rate_per_s / 2}
        return self.s.model_copy(update=update)

    async def start(self) -> None:
        self.store = PilotStore(self.dir)
        wall, mono = time.time_ns(), self.clock.now_ns()
        self.session = self.store.new_session(wall, mono)
        self.events = RotatingJsonl(self.dir / "events.jsonl", max_bytes=self.rotate_bytes,
                                    keep=self.keep)
        self.sightings_log = RotatingJsonl(self.dir / "sightings.jsonl",
                                           max_bytes=self.rotate_bytes, keep=self.keep)
        if self._check_key:
            await check_explorer_key(self.s, clock=self.clock)
            await check_rpc_chain(self.s, clock=self.clock)
        start_block = await self._start_block()
        self.block_interval = await self._block_interval()
        self.store.set_meta("block_interval", {"seconds": self.block_interval,
                                               "source": self._interval_source})
        meta = self.store.meta()
        if "wallets" not in meta:
            self.store.set_meta("wallets", list(self.s.wallets))
            self.store.set_meta("created_wall_ns", wall)
        elif sorted(meta["wallets"]) != sorted(self.s.wallets):
            log.warning("the wallets differ from the store's first session: the comparison "
                        "covers the union; start a new store for a new pilot")
            self.store.set_meta("wallets", sorted(set(meta["wallets"]) | set(self.s.wallets)))
        # the truth is asked for these exchanges' logs (reconcile used the defaults: the
        # trades of an exchange added by the setting were judged phantoms)
        watched = [a.lower() for a in self.s.exchanges]
        if sorted(meta.get("exchanges", watched)) != sorted(watched):
            log.warning("the exchanges differ from the store's first session: the "
                        "comparison covers the union")
        self.store.set_meta("exchanges", sorted(set(meta.get("exchanges", [])) | set(watched)))
        self.store.set_meta("beat_s", self.beat_s)  # status: no beat for 3 = stalled
        # the chain watched: reconcile refuses a --rpc-url of another chain (every trade
        # a phantom)
        self.store.set_meta("chain_id", self.s.chain_id)
        self.store.set_meta("endpoints", {
            "websocket": endpoint_host(self.s.websocket_url),
            "rpc": endpoint_host(self.s.rpc_url),
            "explorer": endpoint_host(self.s.explorer_url)})
        self._event("session_start", wall_ns_start=wall, mono_ns_start=mono,
                    start_block=start_block, pid=os.getpid(),
                    block_interval_s=self.block_interval,
                    block_interval_source=self._interval_source)
        for path in PATHS:
            settings = self._settings(path, start_block)
            history = RotatingHistory(self.dir / path / "history.jsonl", clock=self.clock,
                                      max_bytes=self.rotate_bytes, keep=self.keep)
            history.record("pilot_session", session=self.session, wall_ns=wall, mono_ns=mono,
                           path=path)
            mon = WalletMonitor(settings, sink=CallbackSink(self._recorder(path)),
                                history=history, clock=self.clock)
            self.monitors[path] = mon
        for mon in self.monitors.values():
            await mon.start()
        if self.s.metrics_port:
            self.ops = OpsServer([({"path": p}, m) for p, m in self.monitors.items()],
                                 host=self.s.metrics_host, port=self.s.metrics_port)
            await self.ops.start()
        self._beat_task = asyncio.create_task(self._beat_loop(), name="pilot-beat")
        self._started = True
        log.info("pilot started: session %d, %d wallet(s), from block %d, store %s",
                 self.session, len(self.s.wallets), start_block, self.dir)

    def _recorder(self, path: str) -> Any:
        async def on_event(event: SinkEvent) -> None:
            assert self.store is not None
            wall, mono = time.time_ns(), self.clock.now_ns()
            if self.store.record(path, event, wall_ns=wall, mono_ns=mono,
                                 session=self.session) and self.sightings_log is not None:
                t = event.trade
                self.sightings_log.write({
                    "path": path, "kind": event.kind, "trade_id": event.trade_id,
                    "generation": event.generation, "source": event.source,
                    "wall_ns": wall, "t_ns": mono, "block_number": t.block_number if t else None,
                    "block_hash": event.block_hash,
                    "block_timestamp": t.block_timestamp if t else None})
        return on_event

    async def wait_connected(self, timeout: float) -> bool:
        return await self.monitors["websocket"].wait_connected(timeout)

    def _alert(self, kind: str, text: str) -> None:
        self._event("alert", kind=kind, text=text)
        mon = self.monitors.get("websocket")
        if mon is None:
            return
        task = asyncio.create_task(mon.alerts.send(kind, f"[pilot] {text}"))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _beat_loop(self) -> None:
        while True:
            try:
                self.beat()
            except Exception as exc:  # the beat never takes the pilot down
                log.warning("pilot beat failed (%s: %s)", type(exc).__name__,
                            redact(str(exc)))
            await asyncio.sleep(self.beat_s)

    def beat(self) -> None:
        """Record each path's state and accumulate uptime; alert on fallback / FAILED."""
        assert self.store is not None
        now, wall, mono = self.clock.now(), time.time_ns(), self.clock.now_ns()
        dt = 0.0 if self._last_beat is None else min(now - self._last_beat, 3 * self.beat_s)
        self._last_beat = now
        ws = self.monitors["websocket"]
        shards = ws.shards
        # the path is up while every shard is (a shard's wallets are not watched while it
        # is down): the experiment checker's rule, so a reconciled pilot and a simulated
        # run measure uptime alike
        healthy = bool(shards) and all(sh.healthy_now() for sh in shards)
        fallback = any(sh.fallback.polling for sh in shards)
        # a shard whose provider refuses the key stays failed through the CONNECTING of
        # each retry (WebSocketManager.key_refused): one alert an episode, not one a retry
        refused = next((sh.manager.key_refused for sh in shards
                        if getattr(sh.manager, "key_refused", None) is not None), None)
        failed = refused is not None or any(sh.manager.state is ConnState.FAILED
                                            for sh in shards)
        worst = next((sh for sh in shards if sh.manager.state is not ConnState.CONNECTED),
                     shards[0] if shards else None)
        state = worst.manager.state.value if worst is not None else "NONE"
        heads = [sh.head for sh in shards if sh.head is not None]
        cursors = [c for c in (sh.cursor() for sh in shards) if c is not None]
        self.store.beat(self.session, "websocket", dt_s=dt, healthy=healthy, fallback=fallback,
                        state=state, head=max(heads) if heads else None,
                        cursor=min(cursors) if cursors else None, wall_ns=wall, mono_ns=mono)
        if fallback != self._fallback:
            self._fallback = fallback
            self._event("fallback", active=fallback)  # every change, alerted or not
            self._fallback_alert(fallback, now)
        if failed and not self._failed:
            self._alert("failed", "WebSocket path FAILED (reconnects exhausted)"
                        if refused is None else "WebSocket path FAILED: the provider "
                        f"refused the key (HTTP {refused}); fix the key in --ws-url")
        self._failed = failed
        poll = self.monitors["polling"]
        p = poll.poller
        if p is not None:
            self._poll_health.update(p.polls, p.counters.get("errors", 0), now)
            limit = 2 * self.s.scaled(self.s.polling_interval) + self.s.explorer_timeout
            ok = self._poll_health.healthy(now, limit)
            assert poll.store is not None
            pc = [c.block for c in poll.store.cursors().values()]
            self.store.beat(self.session, "polling", dt_s=dt, healthy=ok, fallback=False,
                            state="POLLING" if ok else "ERROR", head=p.last_head,
                            cursor=min(pc) if pc else None, wall_ns=wall, mono_ns=mono)

    def _fallback_alert(self, active: bool, now: float) -> None:
        """Alert a fallback's start (at most one a :data:`FALLBACK_ALERT_EVERY_S`) and the
        end of an alerted one: a feed flapping every few seconds was an alert each way at
        every beat that saw it change, hundreds an hour through Telegram. The episodes
        kept quiet are counted in the next start alert (the events file has them all)."""
        if active:
            last = self._fallback_alerted_at
            if last is not None and now - last < FALLBACK_ALERT_EVERY_S:
                self._fallback_quiet += 1
                self._fallback_alerted = False
                return
            more = (f" ({self._fallback_quiet} more fallback episodes since the last "
                    "alert, not alerted one by one)" if self._fallback_quiet else "")
            self._fallback_alerted_at, self._fallback_alerted = now, True
            self._fallback_quiet = 0
            self._alert("fallback_start", "WebSocket path on explorer fallback" + more)
        elif self._fallback_alerted:
            self._fallback_alerted = False
            self._alert("fallback_end", "WebSocket path back on its feed (fallback ended)")

    def note_stop(self, reason: str) -> None:
        """Why the pilot stops (``session_stop`` event's ``reason``)."""
        self._stop_reason = reason

    async def stop(self) -> None:
        if self._beat_task is not None:
            self._beat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._beat_task
            self._beat_task = None
            with contextlib.suppress(Exception):
                self.beat()
        if self.ops is not None:
            await self.ops.stop()
            self.ops = None
        for mon in self.monitors.values():
            with contextlib.suppress(Exception):
                await mon.stop()
        if self._bg:
            await asyncio.wait(set(self._bg), timeout=5.0)
        # a stop before the start finished (a signal while the node was asked for the
        # start block, or while a path started) says so: the session recorded less
        self._event("session_stop", partial=not self._started,
                    **({"reason": self._stop_reason} if self._stop_reason else {}))
        if self.store is not None:
            self.store.end_session(self.session, time.time_ns())
            self.store.close()
            self.store = None
        for f in (self.events, self.sightings_log):
            if f is not None:
                f.close()


def paths_of(directory: str | Path) -> Iterable[str]:
    return [p for p in PATHS if (Path(directory) / p).is_dir()]
