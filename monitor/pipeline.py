"""Logs in -> trades and retractions at the sink, once. Shared by every source.

``log dict -> decode -> (removed: retract | dedup) -> store (dedup state + outbox + the
previous batches' "sent" marks, one transaction) -> dedup state in memory -> sink ->
history -> mark sent (with the next transaction, see :mod:`monitor.store`)``. Decode
errors are counted and written to the history (``decode_error``); they never stop the
monitor.

The dedup decisions of a batch are *staged*: memory changes only after the SQLite commit
succeeded. A commit that fails (locked database, full disk) leaves memory as it was and
raises :class:`~monitor.errors.StoreError`, so the caller does not move its cursor and the
trades are fetched again. A row SQLite rejects on its own (a value it cannot hold) is
dropped and counted without taking the valid rows of its batch with it.

Decisions and commit are synchronous (no ``await`` between them), so sources running in
parallel (WebSocket, backfill, explorer) cannot both deliver one trade id.

A sink that fails (``OSError`` such as ENOSPC, or the bot's callback raising) does not lose
anything: the events stay in the outbox, the error is counted and logged, and
:meth:`Pipeline.redeliver` (run periodically by the monitor) sends them again while the
process runs. Sent outbox rows are pruned there too.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from itertools import repeat
from typing import Any

from monitor.alerts import Alerter
from monitor.clock import Clock, SystemClock
from monitor.cores import Decision, DedupEntry, Deduplicator
from monitor.history import History, NullHistory
from monitor.redact import redact
from monitor.sinks import Sink, sink_event
from monitor.stages import FrameStamps, stage_offsets
from monitor.store import OutboxItem, Store
from monitor.trades import DecodeError, Trade, decode_order_filled
from polyvocab import DEFAULT_EXCHANGES, trade_id

__all__ = ["NodeHashes", "Pipeline"]

#: the node's hash of each of these block numbers (None: a block it does not have); ``{}``
#: when it cannot say (unreachable, too slow): nothing is judged then
NodeHashes = Callable[[Collection[int]], Awaitable[dict[int, str | None]]]

log = logging.getLogger("monitor.pipeline")

_SOURCE_NAMES = {"ws": "ws", "backfill": "backfill", "poll": "poll"}


class Pipeline:
    """Decode, deduplicate, persist and deliver. One per monitor process."""

    #: seconds between prunes of the stored dedup ids, and the rows one prune drops at most:
    #: one short transaction on the event loop (1,000 rows of a week's 444,000-row table:
    #: ~5-25 ms; 20,000: ~170 ms); a full slice is followed by the next at the next
    #: :meth:`redeliver`, ~12,000 rows a minute, past a market-wide firehose's ~7,000
    DEDUP_PRUNE_INTERVAL_S = 60.0
    DEDUP_PRUNE_LIMIT = 1_000
    #: the sent outbox rows are deleted once this many seconds passed since the last
    #: prune, or once this many rows wait (a firehose's minute is ~7,000: one short DELETE,
    #: not a long one); not at every :meth:`redeliver` (every ``outbox_retry_interval``,
    #: 5 s), which was one more transaction (an fsync) every 5 s, busy or idle
    OUTBOX_PRUNE_INTERVAL_S = 60.0
    OUTBOX_PRUNE_ROWS = 1_000
    #: seconds (loop clock) one ``sink.emit`` may take: a callback that never returns (a
    #: request without a timeout) held the send lock for good, so every source's batches
    #: waited behind it, silently. Past this it is cancelled and counts as a sink failure:
    #: the event stays in the outbox, sent again ``uncertain`` (it may have acted)
    SINK_TIMEOUT_S = 60.0
    #: seconds (loop clock) between two ``sink_failed`` alerts of a sink that fails,
    #: recovers and fails again (each streak's first failure, at most this often)
    SINK_ALERT_EVERY_S = 300.0
    #: outbox events one read of a redelivery takes (decoded at once, on the event loop):
    #: the next page is read only once this one went through, so a sink that fails costs
    #: a page a retry, not the whole outbox (100,000 events: 3.5 s of the loop)
    REDELIVER_PAGE = 1_000
    #: the blocks (the highest) whose pending trade events :meth:`recover` has the node
    #: judge: no reorg reaches deeper, and a long sink outage's outbox is not asked whole
    RECOVER_CHECK_BLOCKS = 256

    def __init__(self, store: Store, sink: Sink, *, wallets: Iterable[str],
                 exchanges: Iterable[str] = DEFAULT_EXCHANGES,
                 history: History | None = None, dedup_capacity: int = 200_000,
                 dedup_retention_blocks: int = 0, clock: Clock | None = None,
                 checkpoint_in_thread: bool = False) -> None:
        """``dedup_capacity``: trade ids kept in memory (most recently seen); older ones
        are looked up in the store, so memory stays flat over weeks of trades.
        ``dedup_retention_blocks`` (0: keep every id): :meth:`redeliver` drops the stored
        ids of blocks that far below their wallet's cursor, at most every
        :attr:`DEDUP_PRUNE_INTERVAL_S`, so the state DB stays flat too. ``clock`` is read
        for the stage stamps of :meth:`on_logs` (``stamps``) and that interval.
        ``checkpoint_in_thread`` (real time only): :meth:`redeliver`'s WAL checkpoint runs
        on a worker thread (:meth:`Store.checkpoint_in_thread`), not on the event loop."""
        self.store = store
        self._now_ns = (clock or SystemClock()).now_ns
        self.sink = sink
        self.history = history or NullHistory()
        self.wallets = {w.lower() for w in wallets}
        #: wallets off the list whose trades :meth:`on_logs` takes too, while it decides
        self._owed: frozenset[str] = frozenset()
        self.exchanges = tuple(e.lower() for e in exchanges)
        self.dedup = Deduplicator(capacity=dedup_capacity, lookup=self._stored_entry)
        self.counters: Counter[str] = Counter()
        loaded = list(store.dedup_entries(limit=dedup_capacity))
        self.dedup.load(loaded)
        # The store held fewer ids than memory keeps: until memory is full (and evicts),
        # an id not in memory is not in the store either, and is not looked up there.
        self._store_in_memory = len(loaded) < dedup_capacity
        self._absent: set[str] = set()  # ids of the batch the store was asked for: unknown
        self.dedup_retention_blocks = dedup_retention_blocks
        #: the lowest block whose stored ids the prune keeps whatever the cursors say
        #: (None: none held); set by the monitor (blocks its sweeps are still to read)
        self.prune_hold: Callable[[], int | None] | None = None
        self.checkpoint_in_thread = checkpoint_in_thread
        self._next_dedup_prune_ns = 0
        self._next_outbox_prune_ns = 0
        self._marks_seen: tuple[int, int] | None = None  # waiting at the last redeliver()
        self.sink_failing = False
        #: outbox seqs that may have reached the sink already (their emit raised or was
        #: cancelled): they go out ``uncertain`` until one emit of theirs returns
        self._raised: set[int] = set()
        #: the seqs up to this one were left in the outbox by a previous process, which
        #: may have died after the sink acted on them: they always go out ``uncertain``
        self._inherited_upto = 0
        self._sending = asyncio.Lock()  # held while events go to the sink (see _send_all)
        #: where a failing sink and its recovery are told (the monitor's alerter, set
        #: once it exists); None: the log and the history only
        self.alerts: Alerter | None = None
        self._failure_alerted = False  # this streak's sink_failed alert went out
        self._last_failure_alert = float("-inf")
        self._alert_tasks: set[asyncio.Task[Any]] = set()

    async def recover(self, node_hashes: NodeHashes | None = None) -> int:
        """Deliver whatever the outbox still holds (after a crash). Returns how many.
        These events go out ``uncertain``: the crashed process may have been inside the
        sink with any of them (see :class:`monitor.sinks.CallbackSink`).

        ``node_hashes`` (the node's hash of each block number asked; None for a block it
        does not have; ``{}`` when it cannot say in time): asked first for the blocks of
        the pending trade events (the highest :attr:`RECOVER_CHECK_BLOCKS`). A trade of a
        block the node now has with another hash (a reorg while the monitor was down) is
        not sent: the bot would copy a trade the chain no longer holds, retracted only
        once the restart's re-check ran. It is retracted instead (see
        :meth:`_drop_orphans`); the others go out as before."""
        async with self._sending:
            # uncertain whoever sends them: this call or, when the sink fails now, a later
            # redeliver() (which sent them as certain: a bot acted on them twice)
            self._inherited_upto = self.store.last_seq()
            if node_hashes is not None:
                await self._drop_orphans(node_hashes)
            sent = await self._send_pending()
        if sent:
            log.info("redelivered %d outbox event(s) after restart", sent)
        return sent

    def _pending_trades(self) -> list[tuple[int, str, int, str]]:
        """The pending trade events of the outbox: (seq, trade id, block number, block
        hash), read a page at a time."""
        out: list[tuple[int, str, int, str]] = []
        after = 0
        while True:
            items = self.store.pending(after=after, limit=self.REDELIVER_PAGE)
            out.extend((i.seq, i.trade_id, i.trade.block_number, i.block_hash.lower())
                       for i in items if i.kind == "trade" and i.trade is not None)
            if len(items) < self.REDELIVER_PAGE:
                return out
            after = items[-1].seq

    async def _drop_orphans(self, node_hashes: NodeHashes) -> None:
        """Before a restart's outbox goes out: its trade events of blocks the node has with
        another hash are dropped (marked sent, never passed to the sink), and each such
        trade still standing in that block is retracted (its retraction queued behind the
        events kept, in the same transaction as the marks): the crashed process may have
        passed the trade to the sink already, and the bot must not act on it, or must undo
        it. A trade that stands in another block by now (it moved) is sent as before, and
        a block the node does not have cannot be judged: its trades are sent too. A trade
        the new chain holds elsewhere is delivered again by the syncs (dedup: retracted,
        then seen again)."""
        trades = self._pending_trades()
        if not trades:
            return
        blocks = sorted({n for _s, _t, n, _h in trades})[-self.RECOVER_CHECK_BLOCKS:]
        hashes = await node_hashes(blocks)
        orphans = [(seq, tid, bh) for seq, tid, n, bh in trades
                   if hashes.get(n) is not None and hashes[n] != bh]
        if not orphans:
            return
        pending: list[tuple[Decision, str, str, Trade | None]] = []
        staged: dict[str, DedupEntry] = {}
        dropped: list[int] = []
        for seq, tid, bh in orphans:
            decision = self.dedup.retract(tid, bh, staged)
            entry = decision.entry
            if entry is None or entry.block_hash != bh:
                continue  # it moved to another block (or is unknown): sent as before
            dropped.append(seq)
            if decision.emit:
                pending.append((decision, tid, "backfill", None))
        if not dropped:
            return
        self.counters["orphans_dropped_at_restart"] += len(dropped)
        log.warning("%d outbox trade event(s) left by the last process are of blocks the "
                    "chain replaced while it was down: not sent, %d retraction(s) sent instead",
                    len(dropped), len(pending))
        self.store.mark_sent_later(dropped)  # written with the retractions' transaction
        self._commit(pending, staged)

    async def redeliver(self) -> int:
        """Re-send outbox events a failed sink left behind, then prune sent rows.
        Returns how many were re-sent. Cheap when nothing is pending."""
        sent = 0
        # not while a batch is being sent: its rows, not yet marked sent, were passed to
        # the sink a second time while it handled them (a slow callback acted twice on
        # one event); what else waits goes at the next call
        if (self.sink_failing or self.store.has_pending()) and not self._sending.locked():
            async with self._sending:
                sent = await self._send_pending()
            if sent:
                log.info("redelivered %d outbox event(s)", sent)
        self.counters["outbox_pruned"] += self._maybe_prune_outbox()
        # each of these writes (a commit, the checkpoint's copy and fsync) one stretch of
        # the loop, the live batches between them: together they held one 15-54 ms at
        # 100,000 wallets (test_wallets_bench)
        await asyncio.sleep(0)
        # between batches, not inside a live batch's commit (Store.checkpoint_if_due); in
        # real time off the loop, the live batches committing meanwhile
        self.counters["wal_checkpoints"] += int(
            await self.store.checkpoint_in_thread() if self.checkpoint_in_thread
            else self.store.checkpoint_if_due())
        await asyncio.sleep(0)
        if self.dedup_retention_blocks and self._now_ns() >= self._next_dedup_prune_ns:
            pruned = self.store.prune_delivered(
                self.dedup_retention_blocks, self.DEDUP_PRUNE_LIMIT,
                keep_from=None if self.prune_hold is None else self.prune_hold())
            self.counters["dedup_pruned"] += pruned
            # a full slice: more to drop, at the next call; else wait the interval
            wait_s = 0.0 if pruned >= self.DEDUP_PRUNE_LIMIT else self.DEDUP_PRUNE_INTERVAL_S
            self._next_dedup_prune_ns = self._now_ns() + int(wait_s * 1e9)
        return sent

    async def _send_pending(self) -> int:
        """Send what the outbox holds now (``_sending`` held), a page
        (:attr:`REDELIVER_PAGE`) at a time, stopping at the first failure; events queued
        meanwhile (a batch waiting for the lock) are left to their own batch. Yields to
        the loop between pages (the feed's reads and heartbeats)."""
        top, after, sent = self.store.last_seq(), 0, 0
        while True:
            items = self.store.pending(after=after, upto=top, limit=self.REDELIVER_PAGE)
            done = await self._send(items, retry=True)
            sent += done
            if done < len(items) or len(items) < self.REDELIVER_PAGE:
                return sent
            after = items[-1].seq
            await asyncio.sleep(0)

    def _maybe_prune_outbox(self) -> int:
        """Prune the outbox when it is due (:attr:`OUTBOX_PRUNE_INTERVAL_S` or
        :attr:`OUTBOX_PRUNE_ROWS`), or when "sent" marks have waited since the last call
        with no transaction to write them (the feed went quiet, so they wait at most two
        calls): a feed writes them with its next batch, so only a quiet monitor needs this
        commit. Returns the rows deleted."""
        store, now = self.store, self._now_ns()
        marks, seen = store.mark_seqs(), self._marks_seen
        quiet = marks is not None and seen is not None and marks[0] <= seen[1]
        due = store.sent_unpruned > 0 and (now >= self._next_outbox_prune_ns
                                           or store.sent_unpruned >= self.OUTBOX_PRUNE_ROWS)
        pruned = 0
        if due or quiet:
            pruned = store.prune_outbox()
            self._next_outbox_prune_ns = now + int(self.OUTBOX_PRUNE_INTERVAL_S * 1e9)
        self._marks_seen = store.mark_seqs()
        return pruned

    async def on_log(self, entry: dict[str, Any], source: str) -> Trade | None:
        """One log from any source. Returns the trade if it was delivered now."""
        delivered = await self.on_logs([entry], source)
        return delivered[0] if delivered else None

    async def on_logs(self, entries: Iterable[dict[str, Any]], source: str, *,
                      stamps: Sequence[FrameStamps | None] | None = None,
                      undecodable: Callable[[Any], None] | None = None,
                      owed: frozenset[str] = frozenset()) -> list[Trade]:
        """A batch of logs from one source: decisions for all, ONE store transaction (with
        the earlier batches' "sent" marks), sink events in order, marked sent with the next
        transaction. Returns the trades delivered.

        ``stamps`` (latency budget, one per entry): the frame each log came in; a delivered
        trade then carries its path's stamps to the sink (:mod:`monitor.stages`).
        ``undecodable``: called with each entry that does not decode, after it is counted
        (a live feed's caller has its block fetched again: the node's copy may be whole).
        ``owed``: wallets off the list whose trades are taken too (the trades a run
        before owed wallets since removed: :class:`monitor.departed.OwedDrain`)."""
        self._owed = owed  # (only until the commit below: no await before it)
        try:
            pending: list[tuple[Decision, str, str, Trade | None]] = []
            staged: dict[str, DedupEntry] = {}
            marks: dict[str, tuple[FrameStamps, int, int]] = {}
            now_ns = self._now_ns
            queue_ns = now_ns() if stamps is not None else 0
            # decode all, then the dedup state of the batch's ids in one query, then decide
            decoded: list[tuple[Trade | None, dict[str, Any], FrameStamps | None, int]] = []
            for entry, frame in zip(entries, stamps if stamps is not None else repeat(None),
                                    strict=False):
                self.counters["logs"] += 1
                if isinstance(entry, dict) and entry.get("removed") is True:
                    decoded.append((None, entry, None, 0))
                    continue
                try:
                    trade = decode_order_filled(entry, self.exchanges)
                except DecodeError as exc:
                    self.report_decode_error(entry, str(exc))
                    if undecodable is not None:
                        undecodable(entry)
                    continue
                except Exception as exc:  # anything odd in a log is a decode error, never a crash
                    self.report_decode_error(entry, f"{type(exc).__name__}: {exc}")
                    if undecodable is not None:
                        undecodable(entry)
                    continue
                decoded.append((trade, entry, frame, 0 if frame is None else now_ns()))
            self._prefetch(t.id for t, _e, _f, _d in decoded
                           if t is not None and (t.wallet in self.wallets or t.wallet in owed))
            try:
                for got, entry, frame, decode_ns in decoded:
                    if got is None:
                        self._removed(entry, source, pending, staged)
                    elif frame is None:
                        self._offer(got, source, pending, staged)
                    else:
                        n = len(pending)
                        self._offer(got, source, pending, staged)
                        if len(pending) > n:  # to be delivered now (not a duplicate of the batch)
                            marks[got.id] = (frame, decode_ns, now_ns())
            finally:
                self._absent.clear()
            items = self._commit(pending, staged)
        finally:
            self._owed = frozenset()
        stages = None
        if marks:
            persist_ns = now_ns()
            stages = {tid: stage_offsets(f, queue_ns, d, k, persist_ns)
                      for tid, (f, d, k) in marks.items()}
        await self._send_all(items, stages=stages)
        return [i.trade for i in items if i.kind == "trade" and i.trade is not None]

    async def offer(self, trade: Trade, source: str) -> Trade | None:
        pending: list[tuple[Decision, str, str, Trade | None]] = []
        staged: dict[str, DedupEntry] = {}
        self._offer(trade, source, pending, staged)
        items = self._commit(pending, staged)
        await self._send_all(items)
        return trade if any(i.kind == "trade" for i in items) else None

    async def retract(self, tid: str, block_hash: str) -> bool:
        """Retract ``tid`` if it stands in ``block_hash`` (reorg re-check)."""
        pending: list[tuple[Decision, str, str, Trade | None]] = []
        staged: dict[str, DedupEntry] = {}
        self._retract(tid, block_hash, "backfill", pending, staged)
        items = self._commit(pending, staged)
        await self._send_all(items)
        return bool(items)

    def _stored_entry(self, tid: str) -> DedupEntry | None:
        """The deduplicator's look-up of an id it does not hold (evicted, or never seen)."""
        if tid in self._absent or self._all_in_memory():
            return None
        return self.store.dedup_entry(tid)

    def _all_in_memory(self) -> bool:
        return self._store_in_memory and len(self.dedup) < (self.dedup.capacity or 0)

    def _prefetch(self, ids: Iterable[str]) -> None:
        """Once memory has evicted ids: ask the store for a batch's unknown ids in one
        query (not one a trade); found ones join memory, the rest are known absent until
        the batch is decided (no ``await`` before that, and this process is the store's
        only writer)."""
        if self._all_in_memory():
            return
        unknown = [tid for tid in ids if not self.dedup.in_memory(tid)]
        if not unknown:
            return
        found = self.store.dedup_entries_of(unknown)
        self.dedup.load(found.items())
        self._absent.update(tid for tid in unknown if tid not in found)

    def _commit(self, pending: list[tuple[Decision, str, str, Trade | None]],
                staged: dict[str, DedupEntry]) -> list[OutboxItem]:
        """Commit the staged decisions, then (only then) apply them in memory.

        A transient failure (locked, disk full, I/O) raises :class:`StoreError` with memory
        untouched. A row SQLite rejects by itself is dropped (counted, ``store_rejected`` in
        the history) and the rest of the batch is committed row by row."""
        if not pending:
            return []
        try:
            items = self.store.commit_many(pending)
        except (OverflowError, ValueError, TypeError) as exc:  # StoreError passes through
            return self._commit_rows(pending, staged, exc)
        self.dedup.apply(staged)
        return items

    def _commit_rows(self, pending: list[tuple[Decision, str, str, Trade | None]],
                     staged: dict[str, DedupEntry], cause: Exception
                     ) -> list[OutboxItem]:
        log.warning("a batch of %d decision(s) was refused by the store (%s): committing "
                    "row by row", len(pending), type(cause).__name__)
        bad: set[str] = set()
        items: list[OutboxItem] = []
        for row in pending:
            if row[1] in bad:
                continue
            try:
                items.extend(self.store.commit_many([row]))
            except (OverflowError, ValueError, TypeError) as exc:
                bad.add(row[1])
                self.counters["store_rejected"] += 1
                self.history.record("bad_input", kind="store_rejected", trade_id=row[1],
                                    reason=f"{type(exc).__name__}: {exc}"[:200])
        self.dedup.apply({k: v for k, v in staged.items() if k not in bad})
        return items

    def _offer(self, trade: Trade, source: str,
               pending: list[tuple[Decision, str, str, Trade | None]],
               staged: dict[str, DedupEntry]) -> None:
        if trade.wallet not in self.wallets and trade.wallet not in self._owed:
            self.counters["other_wallet"] += 1
            return
        first = self.dedup.offer_unknown(trade.id, trade.block_hash, trade.wallet, staged)
        if first is not None:  # an id never seen: nothing taken, nothing to compare
            pending.append((first, trade.id, source, trade))
            return
        taken = self.dedup.taken(trade.id, trade.block_hash, trade.wallet, staged)
        if taken is not None:
            # a reorg re-included the transaction and gave this log index, another watched
            # wallet's trade in a block no longer on the chain, to this fill: not that
            # trade moved. The orphan is retracted, then this fill delivered (next
            # generation); whichever source sees it first, and whether or not the
            # ``removed`` notification of the old log came
            self.counters["ids_taken_retracted"] += 1
            log.warning("trade id %s is %s's fill now, in block %s...: the trade of %s of "
                        "that id (block %s...) is retracted", trade.id[:18], trade.wallet[:10],
                        trade.block_hash[:10], (taken.wallet or "?")[:10],
                        taken.block_hash[:10])
            self._retract(trade.id, taken.block_hash, source, pending, staged)
        decision = self.dedup.offer(trade.id, trade.block_hash, staged, wallet=trade.wallet)
        if not decision.emit:
            self.counters[decision.kind] += 1
        if decision.emit or decision.kind == "moved":
            pending.append((decision, trade.id, source, trade))

    def _removed(self, entry: dict[str, Any], source: str,
                 pending: list[tuple[Decision, str, str, Trade | None]],
                 staged: dict[str, DedupEntry]) -> None:
        try:
            raw = entry["logIndex"]
            index = int(raw, 16) if isinstance(raw, str) else int(raw)
            tid = trade_id(str(entry["transactionHash"]), index)
            block_hash = str(entry["blockHash"]).lower()
        except (KeyError, TypeError, ValueError) as exc:
            self.report_decode_error(entry, f"removed log without id fields: {exc}")
            return
        self._retract(tid, block_hash, source, pending, staged)

    def _retract(self, tid: str, block_hash: str, source: str,
                 pending: list[tuple[Decision, str, str, Trade | None]],
                 staged: dict[str, DedupEntry]) -> None:
        decision = self.dedup.retract(tid, block_hash, staged)
        if not decision.emit:
            self.counters["retract_ignored"] += 1
            return
        pending.append((decision, tid, source, None))

    async def _send_all(self, items: list[OutboxItem], *, retry: bool = False,
                        stages: dict[str, dict[str, int]] | None = None) -> int:
        """:meth:`_send` of a batch just committed, once the batches committed before it
        were sent: one batch at a time, in commit order. Sources run in parallel and a
        sink may await (the bot's callback): a batch sent while another waited in the sink
        passed a trade's retraction before the trade itself (the bot copied an orphan).
        There is no ``await`` between a batch's commit and this call, and the lock queues
        its waiters in order."""
        if not items:
            return 0
        async with self._sending:
            return await self._send(items, retry=retry, stages=stages)

    async def _send(self, items: list[OutboxItem], *, retry: bool = False,
                    stages: dict[str, dict[str, int]] | None = None) -> int:
        """Hand events to the sink in order (``_sending`` held); stop at the first failure
        (the rest stay in the outbox for :meth:`redeliver`). Never raises for a sink
        failure. An event is ``uncertain`` when it may have reached the sink before (its
        seq in ``_raised``). While the sink is failing, new events wait in the
        outbox behind the older ones (order kept) unless ``retry``. Returns how many were
        sent. With ``stages`` (trade id -> stamps) the events carry them, and the time
        spent writing ``delivered`` history rows is counted (``history_write_ns`` /
        ``history_writes``: what the history costs the path)."""
        if not items or (self.sink_failing and not retry):
            return 0
        sent: list[int] = []
        loop = asyncio.get_running_loop()
        # the "delivered" row, one a trade: History's own writer where it has one
        delivered = (self.history.delivered if isinstance(self.history, History)
                     else self._record_delivered)
        # one deadline for the batch, moved on at most every 60th of SINK_TIMEOUT_S (a
        # timer a call cost ~5 us an event): a call that never returns is cancelled
        # between 59/60 of SINK_TIMEOUT_S and SINK_TIMEOUT_S after it began
        deadline, rearm_at = asyncio.timeout(None), -math.inf
        try:
            async with deadline:
                for item in items:
                    event = sink_event(item.kind, item.trade_id, item.generation,
                                       _SOURCE_NAMES.get(item.source, item.source),
                                       item.block_hash, item.trade,
                                       stages.get(item.trade_id) if stages else None,
                                       item.payload, item.seq <= self._inherited_upto
                                       or item.seq in self._raised)
                    if (now := loop.time()) >= rearm_at:
                        deadline.reschedule(now + self.SINK_TIMEOUT_S)
                        rearm_at = now + self.SINK_TIMEOUT_S / 60
                    try:
                        try:
                            await self.sink.emit(event)
                        except asyncio.CancelledError:
                            if not deadline.expired():  # stop() inside the call: it may have
                                self._raised.add(item.seq)  # acted
                                raise
                            raise TimeoutError from None  # the deadline's: the call hung
                    except Exception as exc:  # ENOSPC, the bot's callback raising, timing out
                        self._raised.add(item.seq)
                        self.counters["sink_errors"] += 1
                        reason = self._sink_failure(exc, timed_out=deadline.expired())
                        if not self.sink_failing:
                            log.error("sink failed (%s: %s): %d event(s) kept in the outbox, "
                                      "retried while running", type(exc).__name__, reason,
                                      len(items) - len(sent))
                            self.history.record("sink_error", error=type(exc).__name__,
                                                reason=reason[:200])
                            self._alert_failure(f"{type(exc).__name__}: {reason}"[:200])
                        self.sink_failing = True
                        return len(sent)
                    sent.append(item.seq)
                    if self._raised:
                        self._raised.discard(item.seq)
                    if item.kind == "trade":
                        self.counters["delivered"] += 1
                        self.counters[f"delivered_{event.source}"] += 1
                        t_hist = self._now_ns() if stages else 0
                        delivered(item.trade_id, event.source,
                                  item.trade.block_number if item.trade else None,
                                  item.block_hash)
                        if stages:
                            self.counters["history_write_ns"] += self._now_ns() - t_hist
                            self.counters["history_writes"] += 1
                    else:
                        self.counters["retracted"] += 1
                        self.history.record("retracted", trade_id=item.trade_id,
                                            block_hash=item.block_hash)
                if self.sink_failing:
                    self.sink_failing = False
                    log.info("sink delivering again")
                    self.history.record("sink_recovered")
                    if self._failure_alerted:
                        self._failure_alerted = False
                        self._alert("sink_recovered", "monitor sink delivering again: the "
                                    "trades kept in the outbox were sent")
        finally:  # written with the next transaction, not one more fsync'd commit
            self.store.mark_sent_later(sent)
        return len(sent)

    def _record_delivered(self, trade_id: str, source: str, block_number: int | None,
                          block_hash: str) -> None:
        """:meth:`History.delivered` of a history that is not a :class:`History`."""
        self.history.record("delivered", trade_id=trade_id, source=source,
                            block_number=block_number, block_hash=block_hash)

    def _alert_failure(self, reason: str) -> None:
        """Tell the operator the sink fails (nothing reaches the bot until it works):
        the first failure of a streak, at most every :attr:`SINK_ALERT_EVERY_S`."""
        now = asyncio.get_running_loop().time()
        if self.alerts is None or now - self._last_failure_alert < self.SINK_ALERT_EVERY_S:
            return
        self._last_failure_alert, self._failure_alerted = now, True
        self._alert("sink_failed", redact(f"monitor sink FAILED ({reason}): trades are "
                                          "kept in the outbox and sent again while the "
                                          "monitor runs"))

    def _alert(self, kind: str, text: str) -> None:
        """Send in the background: a slow or dead alert channel never holds delivery."""
        if self.alerts is None:
            return
        task = asyncio.create_task(self._send_alert(self.alerts, kind, text),
                                   name=f"alert-{kind}")
        self._alert_tasks.add(task)
        task.add_done_callback(self._alert_tasks.discard)

    @staticmethod
    async def _send_alert(alerts: Alerter, kind: str, text: str) -> None:
        try:
            await alerts.send(kind, text)
        except Exception as exc:  # an Alerter must not raise; be safe anyway
            log.warning("alert %s failed: %s", kind, redact(f"{type(exc).__name__}: {exc}"))

    async def flush_alerts(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for the alerts still being sent (at stop)."""
        if self._alert_tasks:
            await asyncio.wait(set(self._alert_tasks), timeout=timeout)

    def _sink_failure(self, exc: Exception, *, timed_out: bool) -> str:
        """What went wrong in ``sink.emit``, for the log and the history (a timeout's own
        text is empty); its :attr:`SINK_TIMEOUT_S` running out is also counted apart
        (``sink_timeouts``)."""
        if timed_out:
            self.counters["sink_timeouts"] += 1
            return f"no return within {self.SINK_TIMEOUT_S:g} s; the call was cancelled"
        return str(exc)

    def report_decode_error(self, entry: Any, reason: str) -> None:
        """Count and record a log that does not decode; logged for the first three, then
        every 1000th (a node sending garbage at full rate wrote a warning a log)."""
        self.counters["decode_errors"] += 1
        tx = _short(entry.get("transactionHash")) if isinstance(entry, dict) else None
        li = _short(entry.get("logIndex")) if isinstance(entry, dict) else None
        self.history.record("decode_error", reason=reason[:300], tx_hash=tx, log_index=li)
        n = self.counters["decode_errors"]
        if n <= 3 or n % 1000 == 0:
            log.warning("decode error (tx %s log %s; %d so far): %s", tx, li, n, reason[:200])


def _short(value: Any) -> Any:
    """A field of a bad log as it may be written down: a hash-sized string as is, anything
    else (a 10 MB string, a list) as a short text."""
    if value is None or (isinstance(value, str) and len(value) <= 66):
        return value
    text = value if isinstance(value, str) else repr(value)
    return f"{text[:66]}... ({len(text):,} characters)"
