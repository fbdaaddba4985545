"""``reconcile_interval = 0``, a restart: the first sweep fetches the restart window (the
``RESTART_SWEEP_BLOCKS`` below the stored cursor), kept until its blocks were fetched
(511ca4c). Kept while the node failed it for longer than ``dedup_retention_blocks`` (the
heads moving the cursor on: the first sync fetched above it) or through a quota fill
(the restart straight into one: the fill read from the cursor, above the window), the
window was fetched at last with the ids of the trades the run before's feed delivered
there pruned (:meth:`Store.prune_delivered`, below the cursor less the retention): every
one went to the bot a second time. The window is bounded as the zero mode's sweep is
(``_unswept_floor``, 585e05c): no lower than the cursor less the retention, what it
leaves said once (alert ``zero_mode_unswept``); a fill reads it from the explorer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode, RpcErr, explorer_from_logs, spend_quota
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, history_rows, run_monitor, until
from test_zero_mode_fill_swept import node_calls_once_the_quota_is_back

from monitor import config, wallet_monitor
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

KEEP = 100  # dedup_retention_blocks (the floor of 1024 lowered for a short test)


@pytest.mark.slow  # (~4 s: 240 heads)
@pytest.mark.parametrize("then", ["node_back", "quota_fill"])
def test_a_window_kept_past_the_retention_sends_no_trade_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str) -> None:
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    # the store pruned below (no hold): the window kept past ZERO_MODE_HOLD_BLOCKS
    monkeypatch.setattr(wallet_monitor, "ZERO_MODE_HOLD_BLOCKS", KEEP)
    spent, broken = {"on": False}, {"on": False}
    asked: list[tuple[int, int]] = []
    out: dict[str, Any] = {}
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": 1, "head_jump_slack": 1000,
            "backfill_chunk_blocks": 50, "dedup_retention_blocks": KEEP,
            "dedup_capacity": 1}
    live = order_filled(block=105, tx=5)
    newer = order_filled(block=200, tx=6)  # (105's id out of the pipeline's memory)

    async def go() -> None:
        async with HostileNode() as node:
            node.logs.append(live)

            async def first(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                for n in range(101, 121):
                    node.head = n
                    await node.new_head(n)
                    if n == 106:
                        await node.notify("logs", live)
                        await until(lambda: len(sink.events) == 1, "the live trade")
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
            await run_monitor(node, tmp_path, first, **opts)

        async with HostileNode() as node:  # the restart
            node.logs.extend([live, newer])
            spend_quota(node, spent, asked=asked)
            explorer_from_logs(node)
            quota = node.answer

            def answer(method: str, params: list[Any]) -> Any:
                if method == "eth_getLogs" and broken["on"] and \
                        int(params[0]["fromBlock"], 16) <= 119:
                    return RpcErr(-32603, "internal error")  # the window's asks fail
                return quota(method, params)
            node.answer = answer  # type: ignore[method-assign]
            spent["on"] = then == "quota_fill"
            broken["on"] = then == "node_back"

            async def second(mon: WalletMonitor, _sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                node.head = 125
                await node.new_head(125)
                if then == "quota_fill":
                    await until(lambda: shard._poller is not None, "the quota fill")
                else:
                    await until(lambda: cursor_at_least(mon, 124), "the first sync")
                for n in range(126, 261):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                    if n == 201:
                        await node.notify("logs", newer)
                        await until(lambda: mon.pipeline.counters["delivered"] == 1,
                                    "the newer trade")
                await until(lambda: cursor_at_least(mon, 258), "the heads' moves")
                assert mon.store is not None
                mon.store.prune_delivered(KEEP)  # the pipeline's periodic prune
                broken["on"] = False
                # the node back: the window with the next sweep (the heads 64 blocks
                # past _swept_to; at once after a fill)
                await node_calls_once_the_quota_is_back(node, mon, spent, asked,
                                                        range(261, 330))
                await until(lambda: shard._restart_window is None, "the window done")
                out["delivered"] = mon.pipeline.counters["delivered"]
            await run_monitor(node, tmp_path, second, **opts)
    asyncio.run(go())
    assert out["delivered"] == 1, out  # block 105's trade not sent to the bot again
    rows = [r for r in history_rows(tmp_path, "alert") if r.get("kind") == "zero_mode_unswept"]
    if then == "node_back":
        assert len(rows) == 1, rows  # the window left unswept: said once
