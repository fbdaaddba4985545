"""``reconcile_interval = 0``, a quota fill, and the explorer's index head not known this
round (its probe failed: the poller takes the head less the last lag measured, an
estimate). In an indexing incident the index falls further behind than that: the poll
reads nothing of blocks the index lacks and the poller's cursor passes them (its own
limit, as ever). Before fdfd326 the zero mode's sweep fetched them from the node once
the quota was back; since, ``_poller_read`` counted them as swept and no one fetched
them: a trade of the feed's gap lost for good. Only blocks below an index head known
(the probe's answer, a row) count as swept."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hostile_node import NO_RECORDS, HostileNode, explorer_ok, explorer_row, spend_quota
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_a_block_past_an_estimated_index_head_is_still_swept(tmp_path: Path) -> None:
    spent = {"on": False}
    index = {"head": 0, "probe": True}
    got: list[str] = []

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent)

            def explorer(q: dict[str, str]) -> str:
                if q.get("module") == "proxy":
                    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": hex(node.head)})
                if q.get("action") == "txlist":
                    if not index["probe"]:
                        return explorer_ok([{"hash": "0x1"}])  # no block: unknown
                    return explorer_ok([{"blockNumber": str(index["head"]),
                                         "confirmations": "1"}])
                if q.get("action") != "getLogs":
                    return NO_RECORDS
                lo, hi = int(q.get("fromBlock", "0")), int(q.get("toBlock", "99999999"))
                hi = min(hi, index["head"])  # the index has nothing above its head
                rows = [explorer_row(x) for x in node.logs
                        if lo <= int(x["blockNumber"], 16) <= hi]
                return explorer_ok(rows) if rows else NO_RECORDS
            node.explorer = explorer

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                for n in range(101, 111):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                spent["on"] = True
                index["head"] = 298
                node.head = 300
                await node.new_head(300)  # a gap: the explorer fills it
                await until(lambda: shard._poller is not None, "the quota fill")
                await until(lambda: cursor_at_least(mon, 298), "the explorer read to 298")
                # an indexing incident: the index stays at 300, its probe fails
                index["head"], index["probe"] = 300, False
                node.logs.append(order_filled(block=310, tx=7))  # the feed never sent it
                node.head = 320
                await node.new_head(320)
                await until(lambda: cursor_at_least(mon, 305), "the explorer polled again")
                spent["on"] = False
                index["probe"] = True
                for n in range(321, 380):
                    node.head = n
                    index["head"] = n
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                await until(lambda: shard._poller is None, "the node takes over")
                await until(lambda: len(sink.events) >= 1, "block 310's trade")
                got.extend(e.trade_id for e in sink.events)
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, head_jump_slack=1000,
                              backfill_chunk_blocks=10)
    asyncio.run(go())
    assert len(got) == 1, got
