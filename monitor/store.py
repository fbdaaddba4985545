"""The monitor's state on disk: SQLite (stdlib ``sqlite3``, WAL), one file.

Tables:
- ``cursors``   per wallet: the last *fully processed* block (number + hash) and which
                group (``websocket`` / ``polling``) processed it. Per wallet, so a rollout
                change on restart moves a wallet between groups without a gap. Group
                ``launch`` (:data:`LAUNCH_GROUP`): the wallet's start, stored at the
                process's start (:meth:`Store.start_cursors`), no block processed yet.
- ``blocks``    recent block hashes (reorg detection across restarts).
- ``delivered`` every trade id emitted: block hash, retracted flag, how many times it
                was delivered / retracted (the :class:`~monitor.cores.Deduplicator` state);
                rows far below their wallet's cursor are pruned
                (:meth:`Store.prune_delivered`, ``dedup_retention_blocks``).
- ``outbox``    sink events (trade or retraction) not yet confirmed by the sink.
- ``launches``  per wallet: its launch point, the first cursor it was given (kept when
                the cursor moves on): a restart's re-checks never reach below it.
- ``sweep_floors`` per wallet: ``reconcile_interval = 0``, the block up to which its
                shard's sweeps had fetched every block, stored while the cursor the heads
                move is further past it than a restart's window reaches
                (:meth:`Store.set_sweep_floors`): a restart's first sweep fetches again
                from there.
- ``owed_back`` per wallet: one added back to the list while the trades a run before
                owed it were still being read (:class:`monitor.departed.OwedDrain`): the
                last block read for it and the last one owed (:meth:`Store.owed_back`);
                its cursor is its source's again. Ignored by an older monitor (no bump):
                it leaves the rest unread, as it did.
- ``cursor_sets`` / ``cursor_members``: the cursors of wallets that move together (a
                shard's, :data:`CURSOR_SET_MIN` or more at a time) as ONE row, and which
                wallets share it. A wallet's cursor is its ``cursors`` row or its set's,
                never both. A sync of 100,000 wallets wrote 100,000 rows (~0.4 CPU s
                every ``reconcile_interval``, half the monitor's CPU); now it writes one.

One process at a time: a store holds ``<db>.lock`` (``lockf``, released when the process
ends, even by ``kill -9``); a second monitor on the same file is refused at open.

Delivery protocol (exactly once at the sink across ``kill -9``):
1. :meth:`Store.commit` - in ONE transaction update ``delivered`` and insert the event into
   ``outbox`` (unique on ``(kind, trade_id, generation)``);
2. hand the event to the sink (which is idempotent on that key, see :mod:`monitor.sinks`);
3. :meth:`Store.mark_sent_later`: the "sent" marks are written in the next transaction
   (the next batch's :meth:`Store.commit_many`; when no batch follows, the
   :meth:`Store.prune_outbox` the monitor runs once the marks have waited a whole
   ``outbox_retry_interval``; :meth:`Store.pending` or :meth:`close`), not in one more
   fsync'd commit a batch.
A crash before 1 loses nothing (the cursor did not pass the block, the trade is fetched
again); between 1 and the durable mark the event stays in the outbox and
:meth:`Store.pending` returns it on restart; the sink skips it if it had already written it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from monitor.cores import Decision, DedupEntry, check_twin, dedup_entry
from monitor.errors import StoreError
from monitor.private_files import FileInUse, check_regular, hold_lock
from monitor.trades import Trade

__all__ = ["CHECKPOINT_HARD_ROWS", "CHECKPOINT_ROWS", "CURSOR_SET_MAX", "CURSOR_SET_MIN",
           "LAUNCH_GROUP", "SCHEMA_VERSION", "Cursor", "OutboxItem", "Store"]

#: rows written (outbox events, dedup ids, marks) after which the monitor's outbox round
#: checkpoints the WAL (:meth:`Store.checkpoint_if_due`): about SQLite's own 1,000 pages
CHECKPOINT_ROWS = 2_000
#: ... after which a commit does it itself (no outbox round came: a WAL kept bounded)
CHECKPOINT_HARD_ROWS = 50_000

#: wallets given one cursor in one :meth:`Store.set_cursors` from which they are kept as a
#: cursor set (one row for all); fewer each get their own row
CURSOR_SET_MIN = 256
#: ... and at most this many a set: a longer list is cut, in its order, into sets of this
#: many (the same list in the same order: the same sets, whether given at once or in
#: parts of this size, as a shard does to let its event loop run between them)
CURSOR_SET_MAX = 2_000

#: the group of a cursor stored as a wallet's start (the launch point) that no source has
#: moved yet: a restart that finds it has nothing of a run before to re-check below it
LAUNCH_GROUP = "launch"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    wallet TEXT PRIMARY KEY, block INTEGER NOT NULL, hash TEXT, grp TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS delivered (
    trade_id TEXT PRIMARY KEY, wallet TEXT, block_number INTEGER, block_hash TEXT NOT NULL,
    retracted INTEGER NOT NULL, deliveries INTEGER NOT NULL, retractions INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS delivered_block ON delivered(block_number);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, trade_id TEXT NOT NULL,
    generation INTEGER NOT NULL, source TEXT NOT NULL, block_hash TEXT NOT NULL,
    payload TEXT, sent INTEGER NOT NULL DEFAULT 0, UNIQUE(kind, trade_id, generation));
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(sent, seq);
CREATE TABLE IF NOT EXISTS launches (wallet TEXT PRIMARY KEY, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cursor_sets (
    id INTEGER PRIMARY KEY, block INTEGER NOT NULL, hash TEXT, grp TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursor_members (wallet TEXT PRIMARY KEY, set_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sweep_floors (wallet TEXT PRIMARY KEY, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS owed_back (
    wallet TEXT PRIMARY KEY, block INTEGER NOT NULL, top INTEGER NOT NULL);
"""

#: every wallet's cursor, its own row or its set's (this connection's view, not stored)
_CURSORS_VIEW = """
CREATE TEMP VIEW IF NOT EXISTS wallet_cursors(wallet, block, hash, grp) AS
    SELECT wallet, block, hash, grp FROM cursors
    UNION ALL
    SELECT m.wallet, s.block, s.hash, s.grp
    FROM cursor_members m JOIN cursor_sets s ON s.id = m.set_id;
"""

#: :meth:`Store.prune_delivered`: each candidate row's wallet looked up by key, the bound
#: from the sets' rows. Through ``wallet_cursors`` (the view) SQLite walked every cursor
#: member for the bound and the join: ~40-80 ms a call at 100,000 wallets in sets, on the
#: event loop (test_wallets_bench), where this is ~4 ms
_PRUNE_DELIVERED = (
    "DELETE FROM delivered WHERE rowid IN ("
    " SELECT d.rowid FROM delivered d"
    " WHERE d.block_number < (SELECT MAX(b) FROM (SELECT MAX(block) AS b FROM cursors"
    " UNION ALL SELECT MAX(block) FROM cursor_sets)) - ?"
    " AND d.block_number < COALESCE((SELECT block FROM cursors WHERE wallet = d.wallet),"
    " (SELECT s.block FROM cursor_members m JOIN cursor_sets s ON s.id = m.set_id"
    " WHERE m.wallet = d.wallet)) - ? AND d.block_number < ? LIMIT ?)")
#: :meth:`Store.prune_delivered`'s ``keep_from`` when nothing is held: above any block
_NO_HOLD = 1 << 62

#: ``PRAGMA user_version`` of the schema above. A file stamped higher was written by a
#: newer monitor and is refused; 0 is a file from before the stamp (or a new one), taken
#: when its tables have the columns below. Bump it with any change to ``_SCHEMA`` an older
#: monitor cannot use: not for a table it ignores (``launches``: an older monitor leaves
#: the launch of the wallets it starts unstored, and restarts are unbounded for them).
#: 2: cursor sets (a monitor of schema 1 would not see a set's wallets' cursors, and
#: would start them over at its head: the blocks in between never looked at).
#: ``sweep_floors`` (no bump): an older monitor ignores it (its restart sweeps only the
#: blocks just below the cursor); a row it left behind is only lower than the truth, and
#: what a restart's sweep reads from there is judged by the retention as before.
SCHEMA_VERSION = 2
_COLUMNS = {
    "cursors": ("wallet", "block", "hash", "grp"),
    "blocks": ("number", "hash"),
    "delivered": ("trade_id", "wallet", "block_number", "block_hash", "retracted",
                  "deliveries", "retractions"),
    "outbox": ("seq", "kind", "trade_id", "generation", "source", "block_hash", "payload",
               "sent"),
    "launches": ("wallet", "block"),
    "cursor_sets": ("id", "block", "hash", "grp"),
    "cursor_members": ("wallet", "set_id"),
    "sweep_floors": ("wallet", "block"),
    "owed_back": ("wallet", "block", "top"),
}


def _check_schema(db: sqlite3.Connection, name: str) -> None:
    """Refuse a file this code cannot use: a newer schema, another program's database,
    or one of the tables with other columns (every sync failed on it, or a traceback)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(f"state_db {name} was written by a newer monitor (schema {version} "
                         f"> {SCHEMA_VERSION}): run that version, or use another state_db")
    tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                       "AND name NOT LIKE 'sqlite_%'")}
    ours = sorted(tables & _COLUMNS.keys())
    if tables and not ours:
        raise StoreError(f"state_db {name}: not a monitor state database (it holds "
                         f"{', '.join(sorted(tables)[:3])})")
    for table in ours:
        have = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        missing = [c for c in _COLUMNS[table] if c not in have]
        extra = [c for c in have if c not in _COLUMNS[table]]
        if missing or extra:
            what = f"no column {missing[0]}" if missing else f"unknown column {extra[0]}"
            raise StoreError(f"state_db {name}: not a monitor state database (table "
                             f"{table}: {what})")
    for table, key, col in _BLOCK_COLUMNS:
        if table not in ours:
            continue
        bad = db.execute(f"SELECT {key}, {col} FROM {table} WHERE typeof({col}) != 'integer' "
                         f"OR {col} < 0 LIMIT 1").fetchone()
        if bad is not None:
            raise StoreError(f"state_db {name} is damaged (table {table}: {col} of "
                             f"{str(bad[0])[:66]} is {str(bad[1])[:40]!r}, not a block "
                             "number): fix the row with sqlite3, or use another state_db")


#: the block numbers the monitor computes with as it starts (table, its key, the column):
#: SQLite keeps any value in any column, and a text there (a hand edit, another program)
#: was a TypeError traceback out of the monitor's start
_BLOCK_COLUMNS = (("cursors", "wallet", "block"), ("cursor_sets", "id", "block"),
                  ("blocks", "number", "number"), ("launches", "wallet", "block"),
                  ("sweep_floors", "wallet", "block"), ("owed_back", "wallet", "block"),
                  ("owed_back", "wallet", "top"))


def _stamp_version(db: sqlite3.Connection, name: str) -> None:
    """Write :data:`SCHEMA_VERSION`: a real write, so a file SQLite opened read-only
    (``chmod 444``, an immutable file) is refused here, not at the first trade."""
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise StoreError(f"state_db {name} cannot be written ({exc})") from None


_MAX_SEQ = 2**63 - 1  # SQLite's largest integer: "no upper bound" for a seq
_IN_LIMIT = 500  # values a statement's IN (...) takes: well under SQLite's variable limit


def _in_parts(values: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """``values`` in parts of at most :data:`_IN_LIMIT`, each with its ``?,?,...``."""
    for i in range(0, len(values), _IN_LIMIT):
        part = values[i:i + _IN_LIMIT]
        yield part, ",".join("?" * len(part))


_UPSERT_DELIVERED = (
    "INSERT INTO delivered(trade_id, wallet, block_number, block_hash, retracted, "
    "deliveries, retractions) VALUES (?,?,?,?,?,?,?) "
    "ON CONFLICT(trade_id) DO UPDATE SET block_hash=excluded.block_hash, "
    "retracted=excluded.retracted, deliveries=excluded.deliveries, "
    "retractions=excluded.retractions, "
    "block_number=COALESCE(excluded.block_number, block_number), "
    "wallet=COALESCE(excluded.wallet, wallet)")


def _entry(block_hash: str, retracted: int, deliveries: int, retractions: int,
           wallet: str | None) -> DedupEntry:
    """A delivered row as the deduplicator holds it (one string object a wallet)."""
    return dedup_entry(block_hash, bool(retracted), deliveries, retractions,
                       sys.intern(wallet) if isinstance(wallet, str) else None)


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last fully processed block of one wallet."""

    wallet: str
    block: int
    hash: str | None
    group: str


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One sink event waiting for delivery. ``trade`` is None for retractions."""

    seq: int
    kind: str  # "trade" | "retraction"
    trade_id: str
    generation: int
    source: str
    block_hash: str
    trade: Trade | None
    #: ``trade.to_json()`` as written to the outbox by this process (None when read back
    #: from the file): the sink reuses it instead of encoding the trade again
    payload: str | None = None

    @property
    def key(self) -> str:
        """The sink's idempotency key."""
        return f"{self.kind}:{self.trade_id}:{self.generation}"


class _OutboxItemSlots:
    """An :class:`OutboxItem`'s slots, filled with plain stores and then made an
    ``OutboxItem`` (see :class:`monitor.cores._DedupEntrySlots`): one a trade of a batch."""

    __slots__ = OutboxItem.__slots__

    def __init__(self, seq: int, kind: str, trade_id: str, generation: int, source: str,
                 block_hash: str, trade: Trade | None, payload: str | None) -> None:
        self.seq = seq
        self.kind = kind
        self.trade_id = trade_id
        self.generation = generation
        self.source = source
        self.block_hash = block_hash
        self.trade = trade
        self.payload = payload


check_twin(_OutboxItemSlots, OutboxItem)


def _outbox_item(seq: int, kind: str, trade_id: str, generation: int, source: str,
                 block_hash: str, trade: Trade | None, payload: str | None) -> OutboxItem:
    """``OutboxItem(...)``, the same object, ~4x faster (:class:`_OutboxItemSlots`)."""
    item = _OutboxItemSlots(seq, kind, trade_id, generation, source, block_hash, trade,
                            payload)
    item.__class__ = OutboxItem  # type: ignore[assignment]
    return item  # type: ignore[return-value]


def _lock(path: Path) -> int:
    """Hold ``<db>.lock`` for this process's lifetime: two monitors on one state database
    share its outbox and dedup table, so one delivers the other's trades again (or into
    its own sink). The second one is refused before it touches the database."""
    lock = path.with_name(path.name + ".lock")
    try:
        return hold_lock(lock)
    except FileInUse as exc:
        who = f"pid {exc.pid}" if exc.pid else f"see {lock}"
        raise StoreError(f"state_db {path} is in use by another monitor ({who})") from None
    except OSError as exc:
        raise StoreError(f"state_db {path}: cannot create its lock file {lock}: "
                         f"{exc.strerror or exc}") from None


_S = TypeVar("_S")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def store_reads(where: Callable[[Any], str]) -> Callable[
        [Callable[Concatenate[_S, _P], _R]], Callable[Concatenate[_S, _P], _R]]:
    """A decorator for a SQLite store's reads: a read's ``sqlite3.Error`` (a damaged file,
    a table changed under the process) becomes :class:`StoreError` naming the store
    (``where(self)``), as a write's does: the error the callers and the CLIs handle (one
    line), not a traceback. The state DB's and the pilot store's reads use it."""
    def decorate(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
        @functools.wraps(method)
        def read(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise StoreError(f"{where(self)}: {exc}") from None
        return read
    return decorate


_reads = store_reads(lambda store: f"state_db {store.path}")


class Store:
    """One SQLite database. Not thread-safe: use it from the event loop thread only."""

    def __init__(self, path: str | Path, *, keep_blocks: int = 256,
                 synchronous: str = "FULL", cursor_set_min: int = CURSOR_SET_MIN,
                 cursor_set_max: int = CURSOR_SET_MAX) -> None:
        """Open (or create, mode 0600) the database, holding ``<path>.lock`` until
        :meth:`close` or the process ends. Raises :class:`StoreError` when ``path`` is a
        directory, not a database, cannot be written, or another process has it open.

        ``synchronous``: ``FULL`` (default) fsyncs the WAL at every commit, so a delivered
        trade survives power loss; ``NORMAL`` survives a process crash (``kill -9``) but may
        lose the last commits on power loss. The cost is in ``make bench``.

        ``cursor_set_min``, ``cursor_set_max``: see :data:`CURSOR_SET_MIN`,
        :data:`CURSOR_SET_MAX`."""
        self.path = str(path)
        self.cursor_set_min = max(1, cursor_set_min)
        self.cursor_set_max = max(self.cursor_set_min, cursor_set_max)
        #: the cursor sets as committed (this store is their only writer): wallet -> its
        #: set, and each set's member count
        self._set_of: dict[str, int] = {}
        self._set_size: dict[int, int] = {}
        #: sets whose members are known to be exactly these wallets, in this order: a
        #: sync of the same slice again is then one comparison and one row
        self._set_exact: dict[int, tuple[str, ...]] = {}
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA", "OFF"):
            raise StoreError(f"state_db: synchronous must be FULL or NORMAL, not {synchronous!r}")
        self._lock_fd: int | None = None
        try:
            self._db = self._open(synchronous.upper())
            #: what the ``blocks`` table holds (this store is its only writer): a save
            #: writes the hashes that changed, not the ~128 the sync saves every time
            self._blocks_held: dict[int, str] = {}
            self._load_mirrors()
        except sqlite3.Error as exc:
            self._db.close()
            self._unlock()
            raise StoreError(f"state_db {self.path}: {exc}") from None
        except StoreError:
            self._unlock()
            raise
        self.keep_blocks = keep_blocks
        #: rows changed (``total_changes``) at the last WAL checkpoint (see checkpoint_if_due)
        self._checkpointed_at = 0
        #: the second connection :meth:`checkpoint_in_thread` checkpoints through (opened on
        #: first use), the lock its worker thread holds while it does, and whether one runs
        self._synchronous = synchronous.upper()
        self._ckpt_db: sqlite3.Connection | None = None
        self._ckpt_lock = threading.Lock()
        self._ckpt_closed = False  # the store closed: the worker opens nothing more
        self._checkpointing = False
        #: (busy, WAL frames, frames copied) of the last checkpoint on that connection
        self.last_checkpoint: tuple[int, int, int] | None = None
        self._sent_later: set[int] = set()  # seqs sent, their mark not yet written
        #: outbox rows marked sent since the last :meth:`prune_outbox` (1 at open: rows a
        #: previous process marked may be there, so the first prune is never skipped)
        self.sent_unpruned = 1

    def _open(self, synchronous: str) -> sqlite3.Connection:
        """Lock and connect; refuse a file of another schema, or one that cannot be
        written (the monitor would print READY and then fail every commit: nothing ever
        delivered); create what is missing and stamp :data:`SCHEMA_VERSION`."""
        try:
            if self.path != ":memory:":
                p = Path(self.path)
                if p.is_dir():
                    raise StoreError(f"state_db {self.path} is a directory, not a database file")
                check_regular(p)  # a FIFO: SQLite said "disk I/O error", after the lock
                p.parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = _lock(p)
                if not p.exists():  # created private: it holds the wallets watched
                    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        except sqlite3.Error as exc:
            raise StoreError(f"state_db {self.path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"state_db {self.path}: {exc.strerror or exc}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            # no checkpoint inside a commit: SQLite's automatic one (at 1,000 WAL pages)
            # ran in whichever commit crossed it - a live batch's, on the path of its
            # trades (at 100,000 wallets: 20-60 ms more for one busy block in every ~15).
            # checkpoint_if_due runs them from the monitor's 5-s outbox round instead
            db.execute("PRAGMA wal_autocheckpoint=0")
            _check_schema(db, self.path)
            db.executescript(_SCHEMA)
            db.executescript(_CURSORS_VIEW)
            _stamp_version(db, self.path)
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"state_db {self.path}: {exc}") from None
        except StoreError:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Write the pending "sent" marks (best effort: unwritten ones are sent again after
        a restart, and the sink skips them), then close."""
        with contextlib.suppress(StoreError):
            self._write_sent_marks()
        self._db.close()
        self._close_checkpointer()
        self._unlock()

    def abandon(self) -> None:
        """Close as a killed process's connection closes: the pending "sent" marks are not
        written and whatever a transaction still open holds is rolled back (SQLite's
        journal does it). For a harness that kills the monitor in its own process."""
        self._db.close()
        self._close_checkpointer()
        self._unlock()

    def _close_checkpointer(self) -> None:
        """Close :meth:`checkpoint_in_thread`'s connection, once its worker (if one runs)
        is done with it: a closed store leaves no connection open behind it."""
        with self._ckpt_lock:
            self._ckpt_closed = True
            if self._ckpt_db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._ckpt_db.close()
                self._ckpt_db = None

    def _unlock(self) -> None:
        """Let another monitor open the file (after :meth:`close`, or a failed open)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _load_mirrors(self) -> None:
        """What the ``blocks`` table and the cursor sets hold, read from the file."""
        self._blocks_held = dict(self._db.execute("SELECT number, hash FROM blocks"))
        set_of: dict[str, int] = {}
        set_size: dict[int, int] = {}
        for wallet, set_id in self._db.execute("SELECT wallet, set_id FROM cursor_members"):
            set_of[sys.intern(wallet)] = set_id
            set_size[set_id] = set_size.get(set_id, 0) + 1
        self._set_of, self._set_size = set_of, set_size
        self._set_exact = {}

    @contextlib.contextmanager
    def _mirrored_tx(self) -> Iterator[None]:
        """:meth:`_tx` for a write the in-memory mirrors follow after its commit: when it
        fails they are read again from the file. A failed COMMIT may still have committed
        (SQLite said "interrupted" for one that had): the mirrors kept as they were
        then differed from the file, and a wallet had two cursors, or a set was moved
        that held other wallets."""
        try:
            with self._tx():
                yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._load_mirrors()
            raise

    def _tx(self) -> _Tx:
        if self._db.total_changes - self._checkpointed_at >= CHECKPOINT_HARD_ROWS \
                and not self._checkpointing:  # (one on a worker thread copies it now)
            self.checkpoint_if_due(CHECKPOINT_HARD_ROWS)  # no outbox round checkpointed
        return _Tx(self._db)

    # -- cursors ----------------------------------------------------------------------

    @_reads
    def cursor(self, wallet: str) -> Cursor | None:
        set_id = self._set_of.get(wallet)
        if set_id is not None:
            row = self._db.execute("SELECT block, hash, grp FROM cursor_sets WHERE id=?",
                                   (set_id,)).fetchone()
            return Cursor(wallet, *row) if row else None
        row = self._db.execute("SELECT wallet, block, hash, grp FROM cursors WHERE wallet=?",
                               (wallet,)).fetchone()
        return Cursor(*row) if row else None

    @_reads
    def cursors(self) -> dict[str, Cursor]:
        rows = self._db.execute("SELECT wallet, block, hash, grp FROM cursors").fetchall()
        out = {r[0]: Cursor(*r) for r in rows}
        if self._set_of:
            sets = {r[0]: r[1:] for r in self._db.execute(
                "SELECT id, block, hash, grp FROM cursor_sets")}
            for wallet, set_id in self._set_of.items():
                row = sets.get(set_id)
                if row is not None:
                    out[wallet] = Cursor(wallet, *row)
        return out

    def set_cursors(self, wallets: Iterable[str], block: int, block_hash: str | None,
                    group: str, *, forward_only: bool = True,
                    blocks: dict[int, str] | None = None, launch: bool = False) -> None:
        """Advance the cursor of every wallet in ``wallets`` to ``block``, in one
        transaction (kept as cursor sets of ``cursor_set_max`` wallets, in their order).

        ``forward_only`` (default): a cursor never moves back (two sources may both
        advance it). After a reorg below the cursor pass ``forward_only=False``.
        ``blocks``: block hashes saved in the same transaction (as :meth:`save_blocks`).
        ``launch``: the wallets start here (no cursor was stored for them): ``block`` is
        also their launch point (:meth:`launches`), unless they have one.
        """
        ws = list(dict.fromkeys(wallets))
        held = None
        moves: dict[str, int | None] = {}
        exact: dict[int, tuple[str, ...]] = {}
        with self._mirrored_tx():
            self._write(ws, block, block_hash, group, forward_only, moves, exact)
            if launch:
                self._launch([(w, block) for w in ws])
            if blocks:
                held = self._save_blocks(blocks)
        self._moved(moves, exact)  # committed: the sets as they are now
        if held is not None:  # committed: what the table holds now
            self._blocks_held = held

    def set_cursors_each(self, parts: Iterable[tuple[Iterable[str], int, str | None]],
                         group: str, *, forward_only: bool = True) -> None:
        """:meth:`set_cursors` of each ``(wallets, block, hash)`` of ``parts`` (no wallet
        in two of them), all in ONE transaction. The owed drain's mark of the wallets
        removed from the list (each keeps its block): a call per distinct cursor was a
        transaction each - 100,000 removed polled wallets, ~100 s of a start."""
        moves: dict[str, int | None] = {}
        exact: dict[int, tuple[str, ...]] = {}
        with self._mirrored_tx():
            # (the parts share no wallet: each part's outcome is as if alone, the sets
            # it leaves and the moves it makes followed once it is all committed)
            for wallets, block, block_hash in parts:
                ws = list(dict.fromkeys(wallets))
                if ws:
                    self._write(ws, block, block_hash, group, forward_only, moves, exact)
        self._moved(moves, exact)

    def _write(self, ws: list[str], block: int, block_hash: str | None, group: str,
               forward_only: bool, moves: dict[str, int | None],
               exact: dict[int, tuple[str, ...]]) -> None:
        """Inside a transaction: the cursors of ``ws`` (no wallet twice), in sets of
        ``cursor_set_max`` cut in their order, or each its own row where a part is short
        of ``cursor_set_min``."""
        for i in range(0, len(ws), self.cursor_set_max):
            part = ws[i:i + self.cursor_set_max]
            if len(part) >= self.cursor_set_min:
                self._set_as_one(part, block, block_hash, group, forward_only, moves, exact)
            else:
                self._set_own(part, block, block_hash, group, forward_only, moves)
        self._drop_emptied(moves)

    def _set_own(self, ws: list[str], block: int, block_hash: str | None, group: str,
                 forward_only: bool, moves: dict[str, int | None]) -> None:
        """Inside a transaction: ``ws`` each at ``block`` in a row of its own; one in a
        set leaves it, taking the set's cursor with it first (so ``forward_only``
        compares with what it had)."""
        members = [w for w in ws if w in self._set_of]
        if members:
            sets = self._set_rows({self._set_of[w] for w in members})
            self._db.executemany(
                "INSERT INTO cursors(wallet, block, hash, grp) VALUES (?,?,?,?) "
                "ON CONFLICT(wallet) DO UPDATE SET block=excluded.block, hash=excluded.hash, "
                "grp=excluded.grp", [(w, *sets[self._set_of[w]]) for w in members])
            for part, marks in _in_parts(members):
                self._db.execute(f"DELETE FROM cursor_members WHERE wallet IN ({marks})", part)
            moves.update(dict.fromkeys(members))
        cond = " WHERE excluded.block > cursors.block" if forward_only else ""
        self._db.executemany(
            "INSERT INTO cursors(wallet, block, hash, grp) VALUES (?,?,?,?) "
            "ON CONFLICT(wallet) DO UPDATE SET block=excluded.block, hash=excluded.hash, "
            "grp=excluded.grp" + cond, [(w, block, block_hash, group) for w in ws])

    def _set_as_one(self, ws: list[str], block: int, block_hash: str | None, group: str,
                    forward_only: bool, moves: dict[str, int | None],
                    exact: dict[int, tuple[str, ...]]) -> None:
        """Inside a transaction: ``ws`` at ``block`` as one cursor set. The set of
        ``ws[0]``, when no wallet outside ``ws`` shares it, is moved (one row) and the rest
        of ``ws`` joins it; otherwise a new set is made. Per wallet the outcome is that of
        :meth:`_set_own`: under ``forward_only`` a wallet at or past ``block`` keeps its
        cursor (and so stays out of the set). ``exact``: the sets whose members this
        leaves exactly ``ws``."""
        key = tuple(ws)
        set_id = self._set_of.get(ws[0])
        if set_id is not None and self._set_exact.get(set_id) == key:
            others: list[str] = []  # the same slice as last time: one row
        elif set_id is not None and sum(
                1 for w in ws if self._set_of.get(w) == set_id) == self._set_size[set_id]:
            others = [w for w in ws if self._set_of.get(w) != set_id]
        else:
            set_id = None
        if set_id is not None:
            was = self._set_rows({set_id})[set_id]
            if not forward_only or was[0] < block:
                self._db.execute("UPDATE cursor_sets SET block=?, hash=?, grp=? WHERE id=?",
                                 (block, block_hash, group, set_id))
            elif was != (block, block_hash, group):  # it stays as it is, where the others
                if others:                           # would not be: each on its own
                    self._set_own(others, block, block_hash, group, forward_only, moves)
                return
            if not others:
                exact[set_id] = key
                return
        else:
            others = ws
        if forward_only:
            now = self._blocks_of(others)
            joining = [w for w in others if w not in now or now[w] < block]
        else:
            joining = others
        if not joining:
            return
        if set_id is None:
            set_id = int(self._db.execute(
                "INSERT INTO cursor_sets(block, hash, grp) VALUES (?,?,?)",
                (block, block_hash, group)).lastrowid or 0)
        for part, marks in _in_parts(joining):
            self._db.execute(f"DELETE FROM cursors WHERE wallet IN ({marks})", part)
        self._db.executemany(
            "INSERT INTO cursor_members(wallet, set_id) VALUES (?,?) "
            "ON CONFLICT(wallet) DO UPDATE SET set_id=excluded.set_id",
            [(w, set_id) for w in joining])
        moves.update(dict.fromkeys(joining, set_id))
        if len(joining) == len(others):  # every one of ws is in the set, and no other
            exact[set_id] = key

    def _set_rows(self, set_ids: set[int]) -> dict[int, tuple[int, str | None, str]]:
        """Each set's (block, hash, group)."""
        out: dict[int, tuple[int, str | None, str]] = {}
        for part, marks in _in_parts(sorted(set_ids)):
            for set_id, block, block_hash, group in self._db.execute(
                    f"SELECT id, block, hash, grp FROM cursor_sets WHERE id IN ({marks})", part):
                out[set_id] = (block, block_hash, group)
        return out

    def _blocks_of(self, ws: list[str]) -> dict[str, int]:
        """The cursor block of each of ``ws`` that has one."""
        out: dict[str, int] = {}
        in_sets = [w for w in ws if w in self._set_of]
        if in_sets:
            sets = self._set_rows({self._set_of[w] for w in in_sets})
            out.update((w, sets[self._set_of[w]][0]) for w in in_sets)
        own = [w for w in ws if w not in self._set_of]
        for part, marks in _in_parts(own):
            out.update(self._db.execute(
                f"SELECT wallet, block FROM cursors WHERE wallet IN ({marks})", part))
        return out

    def _drop_emptied(self, moves: dict[str, int | None]) -> None:
        """Inside a transaction: delete the sets ``moves`` leaves without a member."""
        left: dict[int, int] = {}
        for w, to in moves.items():
            was = self._set_of.get(w)
            if was is not None and was != to:
                left[was] = left.get(was, 0) + 1
        empty = [set_id for set_id, n in left.items() if n >= self._set_size[set_id]]
        for part, marks in _in_parts(empty):
            self._db.execute(f"DELETE FROM cursor_sets WHERE id IN ({marks})", part)

    def _moved(self, moves: dict[str, int | None], exact: dict[int, tuple[str, ...]]) -> None:
        """After the commit: the in-memory sets follow ``moves`` (wallet -> its set now,
        None: a row of its own); ``exact``: sets now known to hold exactly those wallets."""
        for w, to in moves.items():
            was = self._set_of.pop(w, None)
            if was is not None:
                self._set_exact.pop(was, None)
                self._set_size[was] -= 1
                if not self._set_size[was]:
                    del self._set_size[was]
            if to is not None:
                self._set_exact.pop(to, None)
                self._set_of[sys.intern(w)] = to
                self._set_size[to] = self._set_size.get(to, 0) + 1
        self._set_exact.update(exact)

    def start_cursors(self, wallets: Iterable[str], block: int) -> list[str]:
        """Give every one of ``wallets`` that has no cursor yet one at ``block`` (its
        first block to watch less one), of group :data:`LAUNCH_GROUP`, all in ONE
        transaction; a wallet with a cursor keeps it. Returns the wallets started.

        The monitor's launch point: it runs at start, before anything is delivered, so a
        process killed before its first head or first poll leaves its start on disk and
        the next one resumes from there, not from its own later head (see
        :meth:`monitor.wallet_monitor.WalletMonitor.record_launch`); the polling monitor's
        first round calls it too (a launch whose head could not be had)."""
        moves: dict[str, int | None] = {}
        exact: dict[int, tuple[str, ...]] = {}
        with self._mirrored_tx():
            have = {w for (w,) in self._db.execute("SELECT wallet FROM cursors")}
            have.update(self._set_of)
            fresh = [w for w in dict.fromkeys(wallets) if w not in have]
            # as a sync will write them: a shard's first sync is then one row a set
            self._write(fresh, block, None, LAUNCH_GROUP, True, moves, exact)
            self._launch([(w, block) for w in fresh])
        self._moved(moves, exact)
        return fresh

    def forget_wallets(self, wallets: Iterable[str], *, start_at: int | None = None,
                       owed: dict[str, tuple[int, int]] | None = None) -> None:
        """Drop what the store keeps of ``wallets`` as watched ones - their cursors (a row
        of their own, or their place in a set: a set left with no member goes), launch
        points and sweep floors - in ONE transaction. For wallets removed from the list
        once the trades the run before owed them were delivered
        (:class:`monitor.departed.OwedDrain`): one added again later starts at that
        start's launch point. With its old cursor kept it resumed there, and the
        backfill of the whole time it was not watched sent the bot trades never its.
        Their ``delivered`` rows stay (dedup ids; the departed re-checks read them).

        ``start_at``: each starts again at this block (a cursor of its own of group
        :data:`LAUNCH_GROUP`, and its launch point) in the same transaction - a wallet
        added back to the list while still owed: forgotten and started in two, a kill
        between them left it with no cursor and no mark, and the next start took it for
        a new wallet: the rest of what it was owed never read. ``owed``: wallet -> (the
        last block read for it, the last one owed), kept for those (:meth:`owed_back`):
        a drain of it cut short is resumed by the next start."""
        ws = list(dict.fromkeys(wallets))
        if not ws:
            return
        moves: dict[str, int | None] = {w: -1 for w in ws if w in self._set_of}  # no set
        with self._mirrored_tx():
            for part, marks in _in_parts(ws):
                for table in ("cursors", "cursor_members", "launches", "sweep_floors",
                              "owed_back"):
                    self._db.execute(f"DELETE FROM {table} WHERE wallet IN ({marks})", part)
            self._drop_emptied(moves)
            if start_at is not None:
                self._db.executemany(
                    "INSERT INTO cursors(wallet, block, hash, grp) VALUES (?,?,NULL,?)",
                    [(w, start_at, LAUNCH_GROUP) for w in ws])
                self._launch([(w, start_at) for w in ws])
            if owed:
                self._db.executemany("INSERT INTO owed_back(wallet, block, top) VALUES (?,?,?)",
                                     [(w, *owed[w]) for w in ws if w in owed])
        for w in moves:
            was = self._set_of.pop(w)
            self._set_exact.pop(was, None)
            self._set_size[was] -= 1
            if not self._set_size[was]:
                del self._set_size[was]

    def _launch(self, rows: list[tuple[str, int]]) -> None:
        """Inside a transaction: the launch points of wallets that have none."""
        self._db.executemany("INSERT INTO launches(wallet, block) VALUES (?,?) "
                             "ON CONFLICT(wallet) DO NOTHING", rows)

    @_reads
    def launches(self) -> dict[str, int]:
        """Every wallet's launch point: the cursor it was first given (its first block to
        watch less one), kept when the cursor moves on. Nothing below it was ever the
        bot's: a restart's re-checks never reach under it. A wallet first watched by a
        monitor from before this table has none (no bound)."""
        return {w: b for w, b in self._db.execute("SELECT wallet, block FROM launches")}

    def set_sweep_floors(self, wallets: Iterable[str], block: int | None) -> None:
        """``reconcile_interval = 0``: every block of ``wallets`` up to ``block`` was
        fetched by a sweep, the blocks above up to the cursor perhaps not (the heads moved
        it over them); None: no such row (the sweeps caught up). One transaction, before
        the cursor write that passes it, so a restart's first sweep (which reads
        :meth:`sweep_floors`) takes them again."""
        ws = list(dict.fromkeys(wallets))
        with self._tx():
            if block is None:
                for part, marks in _in_parts(ws):
                    self._db.execute(f"DELETE FROM sweep_floors WHERE wallet IN ({marks})",
                                     part)
            else:
                self._db.executemany(
                    "INSERT INTO sweep_floors(wallet, block) VALUES (?,?) "
                    "ON CONFLICT(wallet) DO UPDATE SET block=excluded.block",
                    [(w, max(0, block)) for w in ws])

    def set_owed_back(self, wallets: Iterable[str], block: int | None) -> None:
        """The owed drain of ``wallets`` (back on the list) read up to ``block`` (it only
        moves forward); None: done, their rows go. One transaction."""
        ws = list(dict.fromkeys(wallets))
        if not ws:
            return
        with self._tx():
            for part, marks in _in_parts(ws):
                if block is None:
                    self._db.execute(f"DELETE FROM owed_back WHERE wallet IN ({marks})", part)
                else:
                    self._db.execute(f"UPDATE owed_back SET block=? WHERE block < ? AND "
                                     f"wallet IN ({marks})", [block, block, *part])

    @_reads
    def owed_back(self) -> dict[str, tuple[int, int]]:
        """Wallets back on the list still owed trades of a run before their removal: the
        last block read for each, and the last one owed (:meth:`forget_wallets`)."""
        return {w: (b, top) for w, b, top in self._db.execute(
            "SELECT wallet, block, top FROM owed_back")}

    @_reads
    def sweep_floors(self) -> dict[str, int]:
        """Every wallet's stored sweep floor (:meth:`set_sweep_floors`); most have none."""
        return {w: b for w, b in self._db.execute("SELECT wallet, block FROM sweep_floors")}

    # -- recent block hashes ------------------------------------------------------------

    def save_blocks(self, hashes: dict[int, str]) -> None:
        if not hashes:
            return
        with self._mirrored_tx():
            held = self._save_blocks(hashes)
        self._blocks_held = held  # committed

    def _save_blocks(self, hashes: dict[int, str]) -> dict[int, str]:
        """Write the hashes the table does not hold as given, drop the rows more than
        ``keep_blocks`` below the highest; return what the table holds once this
        transaction commits (kept by the caller only then)."""
        held = self._blocks_held
        changed = [(n, h) for n, h in hashes.items() if held.get(n) != h]
        floor = max(hashes) - self.keep_blocks
        stale = [n for n in held if n <= floor]
        if changed:
            self._db.executemany("INSERT OR REPLACE INTO blocks(number, hash) VALUES (?,?)",
                                 changed)
        if stale or any(n <= floor for n, _h in changed):
            self._db.execute("DELETE FROM blocks WHERE number <= ?", (floor,))
        if not changed and not stale:
            return held
        after = {**held, **dict(changed)}
        return {n: h for n, h in after.items() if n > floor}

    @_reads
    def blocks(self) -> dict[int, str]:
        return dict(self._db.execute("SELECT number, hash FROM blocks ORDER BY number"))

    # -- dedup + outbox -----------------------------------------------------------------

    def dedup_entries(self, limit: int | None = None) -> Iterator[tuple[str, DedupEntry]]:
        """The persisted dedup state, to preload a :class:`~monitor.cores.Deduplicator`:
        every entry, or the ``limit`` most recent ones (highest blocks), oldest first."""
        cols = "trade_id, block_hash, retracted, deliveries, retractions, wallet"
        try:  # a generator: its reads happen while the caller iterates
            if limit is None:
                rows = self._db.execute(f"SELECT {cols} FROM delivered")
            else:
                rows = self._db.execute(
                    f"SELECT {cols} FROM (SELECT {cols}, block_number, rowid AS r FROM "
                    "delivered ORDER BY block_number DESC, r DESC LIMIT ?) "
                    "ORDER BY block_number, r", (int(limit),))
            for tid, bh, retracted, d, r, w in rows:
                yield tid, _entry(bh, retracted, d, r, w)
        except sqlite3.Error as exc:
            raise StoreError(f"state_db {self.path}: {exc}") from None

    @_reads
    def dedup_entry(self, trade_id: str) -> DedupEntry | None:
        """One trade id's dedup state (the deduplicator asks when it evicted it)."""
        row = self._db.execute(
            "SELECT block_hash, retracted, deliveries, retractions, wallet FROM delivered "
            "WHERE trade_id=?", (trade_id,)).fetchone()
        return None if row is None else _entry(*row)

    @_reads
    def dedup_entries_of(self, trade_ids: Iterable[str]) -> dict[str, DedupEntry]:
        """The stored dedup state of those of ``trade_ids`` the store knows: one query a
        500 ids (a batch's look-ups at once, not a query a trade)."""
        out: dict[str, DedupEntry] = {}
        for part, marks in _in_parts(list(dict.fromkeys(trade_ids))):
            for tid, bh, retracted, d, r, w in self._db.execute(
                    "SELECT trade_id, block_hash, retracted, deliveries, retractions, wallet "
                    f"FROM delivered WHERE trade_id IN ({marks})", part):
                out[tid] = _entry(bh, retracted, d, r, w)
        return out

    @_reads
    def standing_in_range(self, wallets: Iterable[str], first: int,
                          last: int) -> list[tuple[str, int, str]]:
        """Delivered, not retracted trades of ``wallets`` in blocks first..last:
        (trade_id, block_number, block_hash). A set or frozenset of ``wallets`` is taken as
        it is (a firehose shard's 100,000 copied and hashed again: 6 ms a sync)."""
        ws: Collection[str] = (wallets if isinstance(wallets, (set, frozenset))
                               else list(wallets))
        if len(ws) > _IN_LIMIT:  # one scan of the block range, filtered here: a scan per 500
            # wallets took 0.5 s for 100,000 wallets and 15 busy blocks
            keep = ws if isinstance(ws, (set, frozenset)) else set(ws)
            return [(tid, n, bh) for tid, n, bh, w in self._db.execute(
                "SELECT trade_id, block_number, block_hash, wallet FROM delivered "
                "WHERE retracted=0 AND block_number BETWEEN ? AND ?", (first, last))
                if w in keep]
        out: list[tuple[str, int, str]] = []
        for part, marks in _in_parts(list(ws)):  # one part: its order is not the rows'
            out.extend(self._db.execute(
                f"SELECT trade_id, block_number, block_hash FROM delivered WHERE retracted=0 "
                f"AND block_number BETWEEN ? AND ? AND wallet IN ({marks})",
                (first, last, *part)).fetchall())
        return out

    @_reads
    def recent_wallets(self, depth: int) -> tuple[set[str], int]:
        """The wallets with a standing delivery in the ``depth`` blocks up to the highest
        block delivered, and the lowest of those blocks (``set(), 0`` when none)."""
        top = self._db.execute("SELECT MAX(block_number) FROM delivered").fetchone()[0]
        if top is None:
            return set(), 0
        first = max(0, int(top) - depth)
        return {w for (w,) in self._db.execute(
            "SELECT DISTINCT wallet FROM delivered WHERE retracted=0 AND block_number >= ? "
            "AND wallet IS NOT NULL", (first,))}, first

    def commit(self, decision: Decision, *, trade_id: str, source: str,
               trade: Trade | None = None) -> OutboxItem | None:
        """Persist one dedup decision; if it emits, queue the sink event. One transaction."""
        items = self.commit_many([(decision, trade_id, source, trade)])
        return items[0] if items else None

    def commit_many(self, decisions: Iterable[tuple[Decision, str, str, Trade | None]]
                    ) -> list[OutboxItem]:
        """Persist dedup decisions ``(decision, trade_id, source, trade)`` and queue the sink
        events of those that emit, all in ONE transaction. Returns the queued events."""
        rows = [d for d in decisions
                if d[0].entry is not None and d[0].kind not in ("duplicate", "ignored")]
        if not rows:
            return []
        state: list[tuple[Any, ...]] = []
        queued: dict[tuple[str, str, int], tuple[str, str, Trade | None, str | None]] = {}
        events: list[tuple[Any, ...]] = []
        for decision, trade_id, source, trade in rows:
            entry = decision.entry
            assert entry is not None
            state.append((trade_id, trade.wallet if trade is not None else None,
                          trade.block_number if trade is not None else None,
                          entry.block_hash, int(entry.retracted), entry.deliveries,
                          entry.retractions))
            if not decision.emit:
                continue
            kind = "trade" if decision.kind == "trade" else "retraction"
            key = (kind, trade_id, decision.generation)
            if key in queued:  # the outbox holds one event per key (INSERT OR IGNORE)
                continue
            payload = trade.to_json() if (trade is not None and kind == "trade") else None
            queued[key] = (source, entry.block_hash, trade if kind == "trade" else None,
                           payload)
            events.append((*key, source, entry.block_hash, payload))
        out: list[OutboxItem] = []
        marks = self._marks()
        # two statements a batch, not two a trade; the previous batches' "sent" marks
        # ride along (no commit of their own)
        with self._tx():
            self._set_sent(marks)
            self._db.executemany(_UPSERT_DELIVERED, state)
            if events:
                added = self._db.executemany(
                    "INSERT OR IGNORE INTO outbox(kind, trade_id, generation, source, "
                    "block_hash, payload) VALUES (?,?,?,?,?,?)", events).rowcount
                if added > 0:
                    out = self._queued_items(events, queued, added)
        self._sent_later.difference_update(marks)
        return out

    def _queued_items(self, events: list[tuple[Any, ...]],
                      queued: dict[tuple[str, str, int],
                                    tuple[str, str, Trade | None, str | None]],
                      added: int) -> list[OutboxItem]:
        """Inside :meth:`commit_many`'s transaction, after its ``INSERT OR IGNORE`` of
        ``events`` (one a key of ``queued``, in its order) added ``added`` rows: the
        events queued, by seq. AUTOINCREMENT gives a row a seq above every seq the table
        ever had, and this process is the file's only writer. All added (the usual
        case): one statement run added them one after the other, so their seqs are the
        ``added`` up to ``last_insert_rowid()``, counted out here, not read back (that was
        a row fetched a trade). Some ignored (their key was queued before; SQLite may use
        up a seq for an ignored row too): each key's row is read, and the rows added are
        the ``added`` of highest seq (every row added is above every row there before)."""
        if added == len(events):
            first = int(self._db.execute("SELECT last_insert_rowid()").fetchone()[0]) \
                - added + 1
            return [_outbox_item(seq, kind, tid, gen, *value)
                    for seq, ((kind, tid, gen), value) in enumerate(queued.items(), first)]
        rows = sorted(self._db.execute(
            "SELECT seq, kind, trade_id, generation FROM outbox WHERE kind=? AND "
            "trade_id=? AND generation=?", key).fetchone() for key in queued)
        return [_outbox_item(seq, kind, tid, gen, *queued[(kind, tid, gen)])
                for seq, kind, tid, gen in rows[len(rows) - added:]]

    def mark_sent_many(self, seqs: list[int]) -> None:
        """Mark outbox events sent now (one transaction)."""
        if not seqs:
            return
        with self._tx():
            self._set_sent(seqs)
        self._sent_later.difference_update(seqs)

    def mark_sent(self, seq: int) -> None:
        self.mark_sent_many([seq])

    def mark_sent_later(self, seqs: Iterable[int]) -> None:
        """Mark outbox events sent with the next transaction this store runs (see the
        module docstring); until then :meth:`has_pending` and :meth:`stats` count them as
        sent. A crash before that leaves them pending: sent again, skipped by the sink."""
        self._sent_later.update(seqs)

    def _marks(self) -> list[int]:
        return sorted(self._sent_later)

    def _set_sent(self, seqs: list[int]) -> None:
        """Inside a transaction: ``sent=1`` for ``seqs``, one statement a 500."""
        for part, marks in _in_parts(seqs):
            self._db.execute(f"UPDATE outbox SET sent=1 WHERE seq IN ({marks})", part)
        self.sent_unpruned += len(seqs)

    @property
    def marks_pending(self) -> bool:
        """Sent events whose "sent" mark is not written yet (:meth:`mark_sent_later`)."""
        return bool(self._sent_later)

    def mark_seqs(self) -> tuple[int, int] | None:
        """The lowest and highest seq whose "sent" mark waits, or None. Marks are written
        all at once, so a seq seen waiting before and still waiting has waited since."""
        if not self._sent_later:
            return None
        return min(self._sent_later), max(self._sent_later)

    def _write_sent_marks(self) -> None:
        marks = self._marks()
        if marks:
            with self._tx():
                self._set_sent(marks)
            self._sent_later.difference_update(marks)

    @_reads
    def _unsent(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent=0").fetchone()[0])

    @_reads
    def unsent(self) -> int:
        """Outbox events without a "sent" mark on disk (after a kill: those the sink may
        have had, as well as those it never had)."""
        return self._unsent()

    @_reads
    def has_pending(self) -> bool:
        """Events not yet handed to the sink (or handed, but the monitor died before it
        recorded that: after a restart)."""
        if not self._sent_later:
            return self._db.execute("SELECT 1 FROM outbox WHERE sent=0 LIMIT 1").fetchone() \
                is not None
        return self._unsent() > len(self._sent_later)

    @_reads
    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says ok."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    @_reads
    def pending(self, *, after: int = 0, upto: int | None = None,
                limit: int | None = None) -> list[OutboxItem]:
        """Events queued but not confirmed by the sink, oldest first: those of seq above
        ``after`` and at most ``upto``, the first ``limit`` of them (a page: a long sink
        outage leaves many, each decoded here). Writes the pending "sent" marks first."""
        self._write_sent_marks()
        rows = self._db.execute(
            "SELECT seq, kind, trade_id, generation, source, block_hash, payload FROM outbox "
            "WHERE sent=0 AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after, _MAX_SEQ if upto is None else upto,
             -1 if limit is None else limit)).fetchall()
        out = []
        for seq, kind, tid, gen, source, bh, payload in rows:
            try:
                trade = Trade.from_dict(json.loads(payload)) if payload else None
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # a damaged row (a disk error, an edit by hand): neither dropped nor
                # skipped - the sink may never have had it - but said, with where it is
                raise StoreError(
                    f"{self.path}: outbox row seq {seq} (trade {tid}) cannot be read "
                    f"({type(exc).__name__}: {str(exc)[:120]}); it may never have reached the "
                    "sink: look at it with sqlite3 (SELECT * FROM outbox WHERE seq = "
                    f"{seq}), then delete it to go on") from None
            out.append(OutboxItem(seq, kind, tid, gen, source, bh, trade))
        return out

    def prune_outbox(self) -> int:
        """Drop sent outbox rows (the ``delivered`` table keeps dedup state), with the
        pending "sent" marks in the same transaction."""
        marks = self._marks()
        with self._tx():
            self._set_sent(marks)
            pruned = int(self._db.execute("DELETE FROM outbox WHERE sent=1").rowcount)
        self._sent_later.difference_update(marks)
        self.sent_unpruned = 0
        return pruned

    def prune_delivered(self, retention_blocks: int, limit: int = 1_000, *,
                        keep_from: int | None = None) -> int:
        """Drop at most ``limit`` dedup rows of blocks more than ``retention_blocks`` below
        their wallet's own cursor (rows of a wallet without a cursor, or without a wallet,
        are kept). No backfill goes back there: a sync starts at the cursor less a small
        overlap, and a reorg or the reconnect re-check looks back at most a few hundred
        blocks. ``keep_from``: rows of this block and above are kept whatever the cursors
        say (blocks a sweep is still to read: ``reconcile_interval = 0``, where heads move
        the cursors over blocks no ``eth_getLogs`` fetched yet). Returns how many rows
        went. The rows are found through the block index below the highest cursor's
        bound, so a call costs what it drops, not the table."""
        if retention_blocks <= 0:
            return 0
        below = _NO_HOLD if keep_from is None else max(0, min(keep_from, _NO_HOLD))
        with self._tx():
            return int(self._db.execute(
                _PRUNE_DELIVERED, (retention_blocks, retention_blocks, below, limit)).rowcount)

    @_reads
    def last_seq(self) -> int:
        """The highest seq the outbox holds (0: none)."""
        return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])

    @_reads
    def outbox_size(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def checkpoint_if_due(self, rows: int = CHECKPOINT_ROWS) -> bool:
        """Copy the WAL back into the database (``PRAGMA wal_checkpoint(PASSIVE)``) once
        ``rows`` rows were written since the last time; True if it ran. The monitor calls
        it between batches (the outbox round, :meth:`monitor.pipeline.Pipeline.redeliver`)
        instead of SQLite doing it inside the commit that crosses 1,000 pages, on a live
        batch's path. A commit that finds :data:`CHECKPOINT_HARD_ROWS` unchecked rows runs
        one itself (a WAL never grows without bound). Raises :class:`StoreError`."""
        if self._db.total_changes - self._checkpointed_at < rows:
            return False
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"state_db: checkpoint failed: {exc}") from None
        self._checkpointed_at = self._db.total_changes
        return True

    async def checkpoint_in_thread(self, rows: int = CHECKPOINT_ROWS) -> bool:
        """:meth:`checkpoint_if_due` with the copy and its fsync on a worker thread, through
        a second connection to the file, while the event loop goes on (live batches commit
        to the WAL meanwhile: SQLite's WAL lets one writer and a PASSIVE checkpoint run at
        once). At 100,000 wallets the copy of ~2,000 rows' pages held the loop ~10 ms on a
        loaded machine, on the path of the trades that arrived meanwhile.

        For real time only: under a virtual clock a thread makes time jump while it works
        (the monitor's outbox round uses :meth:`checkpoint_if_due` there). A store in
        memory has no file to open twice and checkpoints inline. Raises
        :class:`StoreError` as :meth:`checkpoint_if_due` does."""
        if self.path == ":memory:":
            return self.checkpoint_if_due(rows)
        if self._checkpointing or self._db.total_changes - self._checkpointed_at < rows:
            return False
        mark = self._db.total_changes  # what the WAL holds now is what it copies, at least
        work = asyncio.get_running_loop().run_in_executor(
            None, self._checkpoint_on_second_connection)
        # until the thread is done, not until this call is (a caller cancelled meanwhile):
        # no second checkpoint starts beside it
        self._checkpointing = True
        work.add_done_callback(self._checkpoint_done)
        try:
            await asyncio.shield(work)
        except sqlite3.Error as exc:
            raise StoreError(f"state_db: checkpoint failed: {exc}") from None
        self._checkpointed_at = max(self._checkpointed_at, mark)
        return True

    def _checkpoint_done(self, work: asyncio.Future[None]) -> None:
        self._checkpointing = False
        if not work.cancelled():
            work.exception()  # retrieved: a caller cancelled meanwhile does not look at it

    def _checkpoint_on_second_connection(self) -> None:
        """The worker thread's part of :meth:`checkpoint_in_thread`."""
        with self._ckpt_lock:
            if self._ckpt_closed:  # closed while this thread waited to start: nothing to do
                return
            if self._ckpt_db is None:
                db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0,
                                     check_same_thread=False)
                try:
                    db.execute(f"PRAGMA synchronous={self._synchronous}")
                except sqlite3.Error:
                    db.close()
                    raise
                self._ckpt_db = db
            row = self._ckpt_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.last_checkpoint = (int(row[0]), int(row[1]), int(row[2]))

    @_reads
    def stats(self) -> dict[str, Any]:
        q = self._db.execute
        return {
            "delivered": q("SELECT COUNT(*) FROM delivered").fetchone()[0],
            "pending": self._unsent() - len(self._sent_later),
            "wallets_with_cursor": q("SELECT COUNT(*) FROM cursors").fetchone()[0]
                                   + len(self._set_of),
        }


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error). SQLite's own failures
    (locked, disk full, I/O error, corrupt file) become :class:`StoreError`; a value SQLite
    cannot hold (``OverflowError``) passes through as it is."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> _Tx:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            # a BEGIN that failed after it began (interrupted once it had the write lock)
            # leaves the transaction open: every later one failed "within a transaction"
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise StoreError(f"state_db: cannot begin a transaction: {exc}") from None
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise StoreError(f"state_db: commit failed: {err}") from None
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"state_db: {exc}") from None
