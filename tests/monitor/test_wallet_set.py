"""The wallet set between runs and across shards, each case against a node on loopback.

Users edit their wallet list and restart; a market-wide bot splits thousands of wallets
over several connections. Each wallet has its own stored cursor; a shard watches from the
lowest of its wallets'. These tests pin what a change of the set must not do: skip a
wallet's trades, deliver another wallet's again, or leave a phantom standing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hostile_node import HostileNode
from monitor_helpers import OTHER, WALLET, order_filled
from test_reliability import TIMEOUT, replace_block, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

RETENTION = 1024  # the smallest dedup_retention_blocks allowed


def _tid(log: dict[str, object]) -> str:
    return f"{log['transactionHash']}:0"


def _cursor(mon: WalletMonitor, wallet: str) -> int:
    cur = mon.store.cursor(wallet) if mon.store is not None else None
    return -1 if cur is None else cur.block


async def _run_to(node: HostileNode, tmp: Path, head: int, wallets: list[str],
                  **extra: object) -> list[str]:
    """One run of the monitor on ``wallets``: a fresh subscription, head ``head``, until
    every wallet's cursor is at ``head - 1``; then the dedup prune the monitor runs every
    minute. The trade ids delivered in this run."""
    node.subscribed.clear()
    node.subs.clear()
    node.head = head
    got: list[str] = []

    async def body(mon: WalletMonitor, sink: MemorySink) -> None:
        await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
        await node.new_head(head)
        await until(lambda: all(_cursor(mon, w) >= head - 1 for w in wallets),
                    f"every cursor at {head - 1}")
        assert mon.store is not None
        mon.store.prune_delivered(RETENTION)
        got.extend(trade_ids(sink))
    await run_monitor(node, tmp, body, wallets=wallets, dedup_retention_blocks=RETENTION,
                      **extra)
    return got


@pytest.mark.parametrize("how", ["removed and added back", "added with start_block"])
def test_a_wallet_far_behind_does_not_bring_back_the_other_wallets_old_trades(
        tmp_path: Path, how: str) -> None:
    """A wallet removed from the list and added back keeps its old cursor; a wallet added
    while ``start_block`` stays in the config starts there. Either way the shard syncs from
    far below the other wallets' cursors, and the other wallets' trades there, whose dedup
    ids were pruned long ago (``dedup_retention_blocks``), went to the sink a second time
    (generation 1, not uncertain: the bot copies them again). The other wallets' trades
    below their own cursors are not delivered again; the wallet behind gets its trades
    from its cursor (or ``start_block``), as documented."""
    old = order_filled(block=200, wallet=WALLET, tx=1)      # A's, delivered in run 2
    missed = order_filled(block=600, wallet=OTHER, tx=2)    # B's, while B was not watched

    async def go() -> None:
        async with HostileNode() as node:
            node.logs = [old, missed]
            if how == "removed and added back":  # run 1: both, cursors at 99
                assert await _run_to(node, tmp_path, 100, [WALLET, OTHER]) == []
                start: dict[str, object] = {"start_block": None}
                node.head = 100
            else:
                start = {"start_block": 95}
            # run 2: A alone, to block 1299; A's trade at 200 delivered, later pruned
            assert await _run_to(node, tmp_path, 1300, [WALLET], **start) == [_tid(old)]
            # run 3: B back (or new) beside A
            got = await _run_to(node, tmp_path, 1301, [WALLET, OTHER], **start)
            assert got == [_tid(missed)]
    asyncio.run(go())


def test_a_reorg_while_down_above_a_wallet_far_behind_is_still_found_at_the_restart(
        tmp_path: Path) -> None:
    """B added back with its cursor at 99, A's at 1299; while the monitor was down block
    1250 was replaced: A's trade there is gone and another trade of A is in the new block.
    The shard's cursor is B's: the restart check must still look at the blocks A's cursor
    committed to (the sync does not deliver A's logs below A's own cursor again), so A's
    orphan is retracted and A's new trade delivered, once."""
    orphan = order_filled(block=1250, wallet=WALLET, tx=1)
    new_chain = order_filled(block=1250, wallet=WALLET, tx=3, block_hash="0x" + "ee" * 32)
    missed = order_filled(block=600, wallet=OTHER, tx=2)

    async def go() -> None:
        async with HostileNode() as node:
            node.logs = [missed]
            assert await _run_to(node, tmp_path, 100, [WALLET, OTHER]) == []
            node.logs.append(orphan)
            assert await _run_to(node, tmp_path, 1300, [WALLET],
                                 start_block=None) == [_tid(orphan)]
            node.logs = [missed, new_chain]  # block 1250 replaced while down
            replace_block(node, 1250)
            node.subscribed.clear()
            node.subs.clear()
            node.head = 1301

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(1301)
                await until(lambda: len(sink.events) >= 3 and _cursor(mon, OTHER) >= 1300,
                            "the retraction, both trades, the cursors")
                assert sorted((e.kind, e.trade_id) for e in sink.events) == sorted([
                    ("retraction", _tid(orphan)), ("trade", _tid(new_chain)),
                    ("trade", _tid(missed))])
            await run_monitor(node, tmp_path, body, wallets=[WALLET, OTHER],
                              start_block=None)
    asyncio.run(go())
