"""Logs in -> trades and retractions at the sink, once. Shared by every source.

``log dict -> decode -> (removed: retract | dedup) -> store (dedup state + outbox, one
transaction) -> sink -> mark sent -> history``. Decode errors are counted and written to
the history (``decode_error``); they never stop the monitor.

The dedup decision is taken synchronously before any ``await``, so sources running in
parallel (WebSocket, backfill, explorer) cannot both deliver one trade id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from monitor.cores import Decision, Deduplicator
from monitor.history import History, NullHistory
from monitor.sinks import Sink, SinkEvent
from monitor.store import OutboxItem, Store
from monitor.trades import DecodeError, Trade, decode_order_filled
from polyvocab import DEFAULT_EXCHANGES, trade_id

__all__ = ["Pipeline"]

log = logging.getLogger("monitor.pipeline")

_SOURCE_NAMES = {"ws": "ws", "backfill": "backfill", "poll": "poll"}


class Pipeline:
    """Decode, deduplicate, persist and deliver. One per monitor process."""

    def __init__(self, store: Store, sink: Sink, *, wallets: Iterable[str],
                 exchanges: Iterable[str] = DEFAULT_EXCHANGES,
                 history: History | None = None) -> None:
        self.store = store
        self.sink = sink
        self.history = history or NullHistory()
        self.wallets = {w.lower() for w in wallets}
        self.exchanges = tuple(e.lower() for e in exchanges)
        self.dedup = Deduplicator()
        self.counters: Counter[str] = Counter()
        self.dedup.load(store.dedup_entries())

    async def recover(self) -> int:
        """Deliver whatever the outbox still holds (after a crash). Returns how many."""
        items = self.store.pending()
        await self._send_all(items)
        if items:
            log.info("redelivered %d outbox event(s) after restart", len(items))
        return len(items)

    async def on_log(self, entry: dict[str, Any], source: str) -> Trade | None:
        """One log from any source. Returns the trade if it was delivered now."""
        delivered = await self.on_logs([entry], source)
        return delivered[0] if delivered else None

    async def on_logs(self, entries: Iterable[dict[str, Any]], source: str) -> list[Trade]:
        """A batch of logs from one source: decisions for all, ONE store transaction, sink
        events in order, one transaction marking them sent. Returns the trades delivered."""
        pending: list[tuple[Decision, str, str, Trade | None]] = []
        for entry in entries:
            self.counters["logs"] += 1
            if isinstance(entry, dict) and entry.get("removed") is True:
                self._removed(entry, source, pending)
                continue
            try:
                trade = decode_order_filled(entry, self.exchanges)
            except DecodeError as exc:
                self.report_decode_error(entry, str(exc))
                continue
            except Exception as exc:  # anything odd in a log is a decode error, never a crash
                self.report_decode_error(entry, f"{type(exc).__name__}: {exc}")
                continue
            self._offer(trade, source, pending)
        items = self.store.commit_many(pending)
        await self._send_all(items)
        return [i.trade for i in items if i.kind == "trade" and i.trade is not None]

    async def offer(self, trade: Trade, source: str) -> Trade | None:
        pending: list[tuple[Decision, str, str, Trade | None]] = []
        self._offer(trade, source, pending)
        items = self.store.commit_many(pending)
        await self._send_all(items)
        return trade if any(i.kind == "trade" for i in items) else None

    async def retract(self, tid: str, block_hash: str) -> bool:
        """Retract ``tid`` if it stands in ``block_hash`` (reorg re-check)."""
        pending: list[tuple[Decision, str, str, Trade | None]] = []
        self._retract(tid, block_hash, "backfill", pending)
        items = self.store.commit_many(pending)
        await self._send_all(items)
        return bool(items)

    def _offer(self, trade: Trade, source: str,
               pending: list[tuple[Decision, str, str, Trade | None]]) -> None:
        if trade.wallet not in self.wallets:
            self.counters["other_wallet"] += 1
            return
        decision = self.dedup.offer(trade.id, trade.block_hash)
        if not decision.emit:
            self.counters[decision.kind] += 1
        if decision.emit or decision.kind == "moved":
            pending.append((decision, trade.id, source, trade))

    def _removed(self, entry: dict[str, Any], source: str,
                 pending: list[tuple[Decision, str, str, Trade | None]]) -> None:
        try:
            raw = entry["logIndex"]
            index = int(raw, 16) if isinstance(raw, str) else int(raw)
            tid = trade_id(str(entry["transactionHash"]), index)
            block_hash = str(entry["blockHash"]).lower()
        except (KeyError, TypeError, ValueError) as exc:
            self.report_decode_error(entry, f"removed log without id fields: {exc}")
            return
        self._retract(tid, block_hash, source, pending)

    def _retract(self, tid: str, block_hash: str, source: str,
                 pending: list[tuple[Decision, str, str, Trade | None]]) -> None:
        decision = self.dedup.retract(tid, block_hash)
        if not decision.emit:
            self.counters["retract_ignored"] += 1
            return
        pending.append((decision, tid, source, None))

    async def _send_all(self, items: list[OutboxItem]) -> None:
        if not items:
            return
        sent: list[int] = []
        try:
            for item in items:
                event = SinkEvent(item.kind, item.trade_id, item.generation,
                                  _SOURCE_NAMES.get(item.source, item.source), item.block_hash,
                                  item.trade)
                await self.sink.emit(event)
                sent.append(item.seq)
                if item.kind == "trade":
                    self.counters["delivered"] += 1
                    self.counters[f"delivered_{event.source}"] += 1
                    self.history.record(
                        "delivered", trade_id=item.trade_id, source=event.source,
                        block_number=item.trade.block_number if item.trade else None,
                        block_hash=item.block_hash)
                else:
                    self.counters["retracted"] += 1
                    self.history.record("retracted", trade_id=item.trade_id,
                                        block_hash=item.block_hash)
        finally:
            self.store.mark_sent_many(sent)

    def report_decode_error(self, entry: Any, reason: str) -> None:
        self.counters["decode_errors"] += 1
        tx = entry.get("transactionHash") if isinstance(entry, dict) else None
        li = entry.get("logIndex") if isinstance(entry, dict) else None
        self.history.record("decode_error", reason=reason[:300], tx_hash=tx, log_index=li)
        log.warning("decode error (tx %s log %s): %s", tx, li, reason[:200])
