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

from monitor.cores import Deduplicator
from monitor.history import History, NullHistory
from monitor.polymarket import DEFAULT_EXCHANGES
from monitor.sinks import Sink, SinkEvent
from monitor.store import OutboxItem, Store
from monitor.trades import DecodeError, Trade, decode_order_filled, trade_id

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
        for item in items:
            await self._send(item)
        if items:
            log.info("redelivered %d outbox event(s) after restart", len(items))
        return len(items)

    async def on_logs(self, logs: Iterable[dict[str, Any]], source: str) -> None:
        for entry in logs:
            await self.on_log(entry, source)

    async def on_log(self, entry: dict[str, Any], source: str) -> Trade | None:
        """One log from any source. Returns the trade if it was delivered now."""
        self.counters["logs"] += 1
        if isinstance(entry, dict) and entry.get("removed") is True:
            await self.retract_log(entry)
            return None
        try:
            trade = decode_order_filled(entry, self.exchanges)
        except DecodeError as exc:
            self.report_decode_error(entry, str(exc))
            return None
        except Exception as exc:  # anything odd in a log is a decode error, never a crash
            self.report_decode_error(entry, f"{type(exc).__name__}: {exc}")
            return None
        return await self.offer(trade, source)

    async def offer(self, trade: Trade, source: str) -> Trade | None:
        if trade.wallet not in self.wallets:
            self.counters["other_wallet"] += 1
            return None
        decision = self.dedup.offer(trade.id, trade.block_hash)
        if not decision.emit:
            self.counters[decision.kind] += 1
            if decision.kind == "moved":
                self.store.commit(decision, trade_id=trade.id, source=source, trade=trade)
            return None
        item = self.store.commit(decision, trade_id=trade.id, source=source, trade=trade)
        if item is not None:
            await self._send(item)
        return trade

    async def retract_log(self, entry: dict[str, Any]) -> bool:
        """A ``removed: true`` log: retract its trade if it stands in that block."""
        try:
            tid = trade_id(str(entry["transactionHash"]), int(str(entry["logIndex"]), 16)
                           if isinstance(entry["logIndex"], str) else int(entry["logIndex"]))
            block_hash = str(entry["blockHash"]).lower()
        except (KeyError, TypeError, ValueError) as exc:
            self.report_decode_error(entry, f"removed log without id fields: {exc}")
            return False
        return await self.retract(tid, block_hash)

    async def retract(self, tid: str, block_hash: str) -> bool:
        decision = self.dedup.retract(tid, block_hash)
        if not decision.emit:
            self.counters["retract_ignored"] += 1
            return False
        item = self.store.commit(decision, trade_id=tid, source="ws")
        if item is not None:
            await self._send(item)
        return True

    async def _send(self, item: OutboxItem) -> None:
        event = SinkEvent(item.kind, item.trade_id, item.generation,
                          _SOURCE_NAMES.get(item.source, item.source), item.block_hash,
                          item.trade)
        await self.sink.emit(event)
        self.store.mark_sent(item.seq)
        if item.kind == "trade":
            self.counters["delivered"] += 1
            self.counters[f"delivered_{event.source}"] += 1
            self.history.record("delivered", trade_id=item.trade_id, source=event.source,
                                block_number=item.trade.block_number if item.trade else None,
                                block_hash=item.block_hash)
        else:
            self.counters["retracted"] += 1
            self.history.record("retracted", trade_id=item.trade_id, block_hash=item.block_hash)

    def report_decode_error(self, entry: Any, reason: str) -> None:
        self.counters["decode_errors"] += 1
        tx = entry.get("transactionHash") if isinstance(entry, dict) else None
        li = entry.get("logIndex") if isinstance(entry, dict) else None
        self.history.record("decode_error", reason=reason[:300], tx_hash=tx, log_index=li)
        log.warning("decode error (tx %s log %s): %s", tx, li, reason[:200])
