"""``reconcile_interval = 0``, a quota fill, and an explorer whose index probe has not
answered once for this poller (its ``txlist`` errors: no index head known, no lag
measured). The poller then takes ``head - overlap`` (its own limit, as ever), and an
index far behind answers nothing of the blocks between: a trade there, in the feed's
gap, is not read. ``_poller_read`` counted those blocks as read all the same (8bfb316
bounded the count only by an index head known), ``_swept_to`` moved over them, and once
the quota was back the zero mode's sweep started above them: the trade lost for good.
Only blocks an answer proves indexed (a probe's, a row's) count as read."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hostile_node import NO_RECORDS, HostileNode, explorer_ok, explorer_row, spend_quota
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until
from test_zero_mode_fill_swept import node_calls_once_the_quota_is_back

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def _explorer(node: HostileNode, index: dict[str, int]) -> None:
    """The explorer's proxy says the node's head; its index has nothing above
    ``index["head"]``; its ``txlist`` answers a row without a block (the probe errors)."""
    def explorer(q: dict[str, str]) -> str:
        if q.get("module") == "proxy":
            return json.dumps({"jsonrpc": "2.0", "id": 1, "result": hex(node.head)})
        if q.get("action") == "txlist":
            return explorer_ok([{"hash": "0x1"}])  # no block: the probe fails
        if q.get("action") != "getLogs":
            return NO_RECORDS
        lo, hi = int(q.get("fromBlock", "0")), int(q.get("toBlock", "99999999"))
        hi = min(hi, index["head"])
        rows = [explorer_row(x) for x in node.logs if lo <= int(x["blockNumber"], 16) <= hi]
        return explorer_ok(rows) if rows else NO_RECORDS
    node.explorer = explorer


def test_a_block_the_unprobed_index_lacks_is_still_swept(tmp_path: Path) -> None:
    spent = {"on": False}
    index = {"head": 150}  # an indexing incident: 150 blocks behind the head
    asked: list[tuple[int, int]] = []
    got: list[str] = []
    swept: list[int | None] = []

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent, asked=asked)
            _explorer(node, index)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                spent["on"] = True
                node.logs.append(order_filled(block=200, tx=7))  # the feed never sent it
                node.head = 300
                await node.new_head(300)  # a gap: the explorer fills it
                await until(lambda: shard._poller is not None, "the quota fill")
                await until(lambda: cursor_at_least(mon, 299), "the explorer polled")
                swept.append(shard._swept_to)
                await node_calls_once_the_quota_is_back(
                    node, mon, spent, asked, range(301, 306))
                await until(lambda: len(sink.events) >= 1, "block 200's trade")
                got.extend(e.trade_id for e in sink.events)
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, head_jump_slack=1000,
                              backfill_chunk_blocks=10)
    asyncio.run(go())
    assert swept[0] is not None and swept[0] < 200, swept  # not counted as read
    assert len(got) == 1, got
