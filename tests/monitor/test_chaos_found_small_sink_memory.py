"""A monitor killed after it handed a batch of trades to the detections file and before
it wrote their "sent" marks sends the batch again at restart; the file is idempotent on
the rows it counts when it opens. It counted only its last ``dedup_capacity`` lines: a
batch larger than that (a backfill after downtime, a busy block) was written again at
restart, and the bot acted twice on each of those trades."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from monitor_helpers import WALLET, order_filled

from monitor.config import load_settings
from monitor.pipeline import Pipeline
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor


def test_a_batch_larger_than_the_dedup_capacity_is_not_written_twice_after_a_kill(
        tmp_path: Path) -> None:
    path = tmp_path / "detections.jsonl"
    settings = load_settings({
        "wallets": [WALLET], "mode": "polling", "dedup_capacity": 50,
        "explorer_url": "http://127.0.0.1:9/api",  # never answered: nothing else comes
        "state_db": str(tmp_path / "state.db"), "detections_path": str(path)}, environ={})
    logs = [order_filled(block=100 + i // 4, tx=i + 1, log_index=i % 4) for i in range(120)]

    async def main() -> None:
        first = WalletMonitor(settings)  # its detections file; its store and pipeline
        store = Store(settings.state_db)
        pipeline = Pipeline(store, first.sink, wallets=[WALLET], dedup_capacity=50)
        await pipeline.on_logs(logs, "backfill")  # one batch: sent, marks not yet written
        assert store.marks_pending
        store._db.close()  # killed: the marks are never written
        store._unlock()
        first.sink.close()
        async with WalletMonitor(settings) as again:  # the outbox goes out at start
            assert again.store is not None and not again.store.has_pending()

    asyncio.run(main())
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    written = Counter(r["trade"]["id"] for r in rows if r["kind"] == "trade")
    assert len(written) == 120
    assert sorted(n for n in written.values() if n > 1) == []
