"""Restart hunt: what a crashed process left behind meets a chain that moved meanwhile.

Each case runs the monitor in-process against :class:`hostile_node.HostileNode` on
loopback; the crashed process's state is made with the real store and pipeline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import Held, HostileNode, header
from monitor_helpers import OTHER, WALLET, order_filled
from test_reliability import (
    TIMEOUT,
    cursor_at_least,
    first_sync,
    replace_block,
    run_monitor,
    trade_ids,
    until,
)

from monitor.pipeline import Pipeline
from monitor.sinks import MemorySink, SinkEvent
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor
from polyvocab import trade_id


class DeadSink:
    """The bot's executor down: every event stays in the outbox."""

    async def emit(self, event: SinkEvent) -> None:
        raise ConnectionError("executor down")

    def close(self) -> None:
        pass


def tid(log: dict[str, Any]) -> str:
    return trade_id(log["transactionHash"], int(log["logIndex"], 16))


async def crashed_with_pending(tmp: Path, logs: list[dict[str, Any]]) -> None:
    """A previous process delivered ``logs`` live, but its sink never confirmed them: the
    events wait in the outbox (as after a kill between the commit and the sink)."""
    store = Store(tmp / "state.db")
    try:
        pipeline = Pipeline(store, DeadSink(), wallets=[WALLET])
        await pipeline.on_logs(logs, "ws")
        assert store.has_pending()
    finally:
        store.close()


def test_a_pending_trade_of_a_block_replaced_while_down_is_not_sent_at_restart(
        tmp_path: Path) -> None:
    """The process died with two live trades in its outbox (blocks 97 and 98); while it was
    down, a reorg replaced block 98 and the trade left the chain. At start the outbox went
    out first (the bot copied the orphan) and only the restart's sync retracted it. Now the
    node is asked first: the trade of block 98 never reaches the sink (its retraction
    does: the dead process may have passed it on), the one of block 97 goes out at once,
    marked uncertain, and nothing of either comes twice."""
    kept = order_filled(block=97, tx=1)
    orphan = order_filled(block=98, tx=2)

    async def main() -> None:
        await crashed_with_pending(tmp_path, [kept, orphan])
        async with HostileNode() as node:
            node.head = 100
            node.logs = [kept]  # the new block 98 has no trade of the wallet
            replace_block(node, 98)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                # recovered before start() returned: the outbox is judged already
                assert trade_ids(sink) == [tid(kept)]
                assert [e.uncertain for e in sink.events if e.kind == "trade"] == [True]
                await first_sync(node, mon)
                await until(lambda: mon.store is not None and not mon.store.has_pending(),
                            "the outbox sent")

            mon = await run_monitor(node, tmp_path, body)
            sink = mon.sink
            assert isinstance(sink, MemorySink)
            assert trade_ids(sink) == [tid(kept)], "the orphan reached the bot"
            retractions = [e.trade_id for e in sink.events if e.kind == "retraction"]
            assert retractions == [tid(orphan)]
            assert mon.pipeline is not None
            assert mon.pipeline.counters["orphans_dropped_at_restart"] == 1
    asyncio.run(main())


def test_a_node_silent_at_restart_does_not_hold_the_outbox_back_for_long(
        tmp_path: Path) -> None:
    """The node does not answer at start: the outbox's trades go out unchecked after a
    bounded wait (RESTART_CHECK_WAIT_S, at least a second), not after the node's retries."""
    trade = order_filled(block=97, tx=1)

    async def main() -> None:
        await crashed_with_pending(tmp_path, [trade])
        release = asyncio.Event()
        async with HostileNode() as node:
            node.head = 100
            node.logs = [trade]
            node.rpc["eth_getBlockByNumber"] = lambda p: Held(release, header(int(p[0], 16)))
            loop = asyncio.get_running_loop()
            began = loop.time()

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                assert loop.time() - began < 5.0, "start() waited for the node"
                assert trade_ids(sink) == [tid(trade)]
                release.set()
                await first_sync(node, mon)

            mon = await run_monitor(node, tmp_path, body)
            assert isinstance(mon.sink, MemorySink)
            assert trade_ids(mon.sink) == [tid(trade)]
            assert not [e for e in mon.sink.events if e.kind == "retraction"]
    asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))


# -- a wallet removed from the list: its last deliveries are still re-checked -------------

async def first_run_with_live_trades_of(node: HostileNode, tmp: Path,
                                        live: list[dict[str, Any]]) -> None:
    """A first run watching WALLET and OTHER: sync at head 100, then ``live`` (OTHER's
    trades, above the cursor) delivered live; stopped (the node forgets its
    subscriptions, so the next run's first_sync waits for its own)."""
    node.head = 100
    node.logs.extend(live)

    async def first(mon: WalletMonitor, sink: MemorySink) -> None:
        await first_sync(node, mon)
        for lg in live:
            await node.notify("logs", lg)
        await until(lambda: trade_ids(sink) == [tid(lg) for lg in live], "the live trades")
    await run_monitor(node, tmp, first, wallets=[WALLET, OTHER])
    node.subs.clear()
    node.subscribed.clear()


def retracted(sink: MemorySink) -> list[str]:
    return [e.trade_id for e in sink.events if e.kind == "retraction"]


def test_a_removed_wallets_trade_reorged_out_while_down_is_retracted(tmp_path: Path) -> None:
    """OTHER's trade of block 102 was delivered (the bot copied it); the user took OTHER
    off the list and restarted; meanwhile a reorg replaced block 102 without it. No
    shard watched OTHER, so no re-check looked at its deliveries: the phantom stood.
    Now the first shard judges them until the chain is past them: retracted."""
    live = order_filled(wallet=OTHER, block=102, tx=7)

    async def main() -> None:
        async with HostileNode() as node:
            await first_run_with_live_trades_of(node, tmp_path, [live])
            node.logs = []
            replace_block(node, 102)

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.head = 104
                await node.new_head(104)
                await until(lambda: cursor_at_least(mon, 103), "synced past 102")
                await until(lambda: retracted(sink) == [tid(live)], "the phantom retracted",
                            timeout=5.0)

            mon = await run_monitor(node, tmp_path, second)
            assert isinstance(mon.sink, MemorySink)
            assert trade_ids(mon.sink) == []
    asyncio.run(main())


def test_a_removed_wallets_trade_reorged_out_after_the_restart_is_retracted(
        tmp_path: Path) -> None:
    """As above, but the reorg of block 102 comes after the restart, shown by the feed
    (a new head at 102): the re-check judged only the watched wallets' trades."""
    live = order_filled(wallet=OTHER, block=102, tx=7)
    kept = order_filled(wallet=OTHER, block=101, tx=8)

    async def main() -> None:
        async with HostileNode() as node:
            await first_run_with_live_trades_of(node, tmp_path, [kept, live])
            node.logs = [kept]  # block 101 stays; the new 102 has no trade of OTHER

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                for n in (101, 102):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 101), "synced to 101")
                replace_block(node, 102)
                await node.notify("newHeads", dict(header(102), hash="0x" + "ee" * 32))
                await until(lambda: retracted(sink) == [tid(live)], "the phantom retracted",
                            timeout=10.0)

            mon = await run_monitor(node, tmp_path, second)
            assert isinstance(mon.sink, MemorySink)
            assert trade_ids(mon.sink) == []
            assert retracted(mon.sink) == [tid(live)], "the trade of block 101 was retracted"
    asyncio.run(main())


# -- reconcile_interval = 0: a logs subscription silent while heads flow -----------------

@pytest.mark.parametrize("start_block", [95, None], ids=["from_a_cursor", "first_start_at_head"])
def test_with_no_reconcile_sweeps_a_silent_logs_subscription_loses_no_trade(
        start_block: int | None, tmp_path: Path) -> None:
    """``reconcile_interval = 0``: heads move the cursor. The logs subscription sends
    nothing (dropped on the provider's side) while heads flow: the trade of block 110 was
    never notified, no sweep ever fetched its block, and the cursor moved past it: lost for
    good. Now the blocks the heads passed are fetched once every ZERO_MODE_SWEEP_BLOCKS:
    the trade comes late but comes, and the silent subscription is re-made.

    ``first_start_at_head`` (found by ``python -m experiments chaos``, seed 142, 900 s): no
    ``start_block`` and no stored cursor, so the monitor starts at the chain's head and its
    first sync has no block to fetch. The sweeps start where a sync last fetched - never
    set, so no sweep ever ran (17 missed in the chaos run)."""
    trade = order_filled(block=110, tx=3)

    async def main() -> None:
        async with HostileNode() as node:
            node.head = 100

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs.append(trade)  # on the chain; never notified
                for n in range(101, 181):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 179), "heads moved the cursor")
                await until(lambda: trade_ids(sink) == [tid(trade)], "the trade fetched",
                            timeout=10.0)
                shard = mon.shards[0]
                if start_block is None:
                    # the sweep counts each chunk once it is delivered: the trade's chunk
                    # reaches the sink before the next chunk is counted
                    await until(lambda: shard.counters["zero_mode_swept_blocks"] >= 64,
                                "the launch's blocks swept", timeout=10.0)
                    return
                await until(lambda: shard.counters["live_missed"] >= 1, "seen as missed",
                            timeout=10.0)

            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              start_block=start_block)
    asyncio.run(main())
