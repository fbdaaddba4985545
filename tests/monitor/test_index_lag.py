"""The explorer's index behind the chain's head for longer than REFERENCE's usual 4-20 s.

Etherscan's ``module=proxy`` ``eth_blockNumber`` asks a node: the chain's head. Its
getLogs answers from the index, which has a block some seconds later; in an incident, a
minute or more. The poller re-reads the last ``explorer_overlap_blocks`` at each poll for
trades indexed late. With the old default (16 blocks: 32 s of 2-s blocks) an index a
minute behind had its trades skipped for good: the cursor moved past blocks the index did
not have yet. The default now covers two minutes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hostile_node import HostileNode, explorer_ok, explorer_row
from monitor_helpers import WALLET, order_filled
from test_reliability import until

from monitor.config import load_settings
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

FIRST, LAST = 100, 180  # a trade of WALLET in every block
LAG_BLOCKS = 30         # the index a minute behind the head (2-s blocks)


def test_an_index_a_minute_behind_the_head_loses_no_trade_with_the_default_overlap(
        tmp_path: Path) -> None:
    trades = [order_filled(block=n, tx=n) for n in range(FIRST, LAST + 1)]
    head = [FIRST - 1]

    def explorer(q: dict[str, str]) -> str:
        if q.get("module") == "proxy":  # a poll begins: 15 s later, ~8 blocks on
            head[0] += 8
            return json.dumps({"jsonrpc": "2.0", "id": 1, "result": hex(head[0])})
        lo, hi = int(q["fromBlock"]), int(q["toBlock"])
        indexed = head[0] - LAG_BLOCKS
        return explorer_ok([explorer_row(t) for t in trades
                            if lo <= int(t["blockNumber"], 16) <= min(hi, indexed)])

    async def go() -> MemorySink:
        async with HostileNode() as node:
            node.explorer = explorer
            s = load_settings({
                "explorer_url": node.explorer_url, "wallets": [WALLET],
                "start_block": FIRST, "state_db": str(tmp_path / "state.db"),
                "speed": 100.0, "polling_interval": 15.0, "block_interval": 2.0,
                "mode": "polling"}, environ={})
            sink = MemorySink()
            mon = WalletMonitor(s, sink=sink)
            await mon.start()
            try:
                await until(lambda: head[0] - LAG_BLOCKS > LAST + 8, "the index past the "
                            "last trade", timeout=60)
            finally:
                await mon.stop()
            return sink

    sink = asyncio.run(go())
    got = sorted(e.trade.block_number for e in sink.events
                 if e.kind == "trade" and e.trade is not None)
    assert got == list(range(FIRST, LAST + 1)), (
        f"{LAST - FIRST + 1 - len(got)} trades skipped")
