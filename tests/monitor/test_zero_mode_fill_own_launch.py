"""A quota fill (``reconcile_interval = 0``) rewinds the cursors below a live log lost
(``_fill_from_lost``) or to ``_swept_to`` (``_fill_from_swept``), never below the
wallets' launch point: the lowest of them. A wallet added at a restart has a later one,
and the explorer poller (which, unlike the node's syncs, knows no launch point) then
read it from below its own: its trades mined before it was watched went to the bot as
new ones. Each wallet now goes back no lower than its own launch point."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hostile_node import NO_RECORDS, HostileNode, explorer_ok, explorer_row, spend_quota
from monitor_helpers import OTHER, WALLET, order_filled
from test_reliability import run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_a_wallet_added_later_is_not_read_below_its_own_launch(tmp_path: Path) -> None:
    spent = {"on": False}
    got: list[str] = []
    launches: dict[str, int] = {}

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent)

            def explorer(q: dict[str, str]) -> str:  # (by the maker, as the real one)
                if q.get("module") == "proxy":
                    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": hex(node.head)})
                if q.get("action") != "getLogs":
                    return NO_RECORDS
                lo, hi = int(q.get("fromBlock", "0")), int(q.get("toBlock", "99999999"))
                rows = [explorer_row(x) for x in node.logs
                        if lo <= int(x["blockNumber"], 16) <= hi
                        and ("topic2" not in q or x["topics"][2] == q["topic2"])]
                return explorer_ok(rows) if rows else NO_RECORDS
            node.explorer = explorer

            def at(mon: WalletMonitor, wallet: str, block: int) -> bool:
                cur = mon.store.cursor(wallet) if mon.store else None
                return cur is not None and cur.block >= block

            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                await node.new_head(100)
                await until(lambda: at(mon, WALLET, 99), "first sync")
            await run_monitor(node, tmp_path, first, start_block=None)

            # OTHER's trade of block 120, before it was watched
            node.logs.append(order_filled(wallet=OTHER, block=120, tx=5))
            node.subscribed.clear()
            node.head = 150

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                launches.update(mon.store.launches())
                shard = mon.shards[0]
                for n in range(150, 171):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: at(mon, WALLET, n - 1) and at(mon, OTHER, n - 1),
                                f"head {n}")
                spent["on"] = True
                # a watched log whose fields came garbled: block 0, data cut short
                cut = order_filled(block=0, tx=9)
                await node.notify("logs", dict(cut, data=cut["data"][:40]))
                await until(lambda: shard.counters["quota_fill_rewinds"] >= 1,
                            "the fill rewinds below the lost log")
                await until(lambda: shard._poller is not None and shard._poller.polls >= 2
                            and at(mon, WALLET, 168) and at(mon, OTHER, 168),
                            "the fill read up to the head again")
                got.extend(e.trade_id for e in sink.events)
            await run_monitor(node, tmp_path, second, start_block=None,
                              wallets=[WALLET, OTHER], explorer_overlap_blocks=1,
                              head_jump_slack=1000)
    asyncio.run(go())
    assert launches[OTHER] > 120 > launches[WALLET], launches
    assert got == [], got
