"""Follow-ups of other hunts: a trade id (``<tx>:<logIndex>``) a reorg gave to another
watched maker's fill, and the restart check of a polling-only monitor."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode
from monitor_helpers import OTHER, WALLET, order_filled
from test_reliability import (
    backfill_block_105,
    drop_and_resubscribe,
    history_rows,
    replace_block,
    run_monitor,
    until,
)

from monitor.pipeline import Pipeline
from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.trades import decode_order_filled
from monitor.wallet_monitor import WalletMonitor

NEW_HASH = "0x" + "ee" * 32


def test_a_log_index_another_watched_maker_took_in_a_reorg_is_delivered_on_websocket(
        tmp_path: Path) -> None:
    """Two watched wallets, one filter. WALLET's trade ``tx:0`` of block 105 was delivered;
    while the socket was down a reorg replaced block 105 and re-included the transaction
    so that its log 0 is OTHER's fill (the ``removed`` notification was lost with the
    socket). The reconnect's backfill offered OTHER's fill: same id, another hash, so
    the dedup took it for WALLET's trade moved: OTHER's trade never reached the bot, and
    WALLET's orphan stood (the re-check found the id among the shard's logs)."""
    live = order_filled(block=105, tx=9)
    other = order_filled(block=105, tx=9, wallet=OTHER, block_hash=NEW_HASH)
    tid = f"{live['transactionHash']}:0"

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(live)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await backfill_block_105(node, mon, sink)
                node.logs[:] = [other]
                replace_block(node, 105)
                await drop_and_resubscribe(node)
                node.head = 111
                await node.new_head(111)
                await until(lambda: len(sink.events) >= 3, "OTHER's fill delivered",
                            timeout=10.0)
                kinds = [(e.kind, e.trade_id, e.block_hash, e.generation)
                         for e in sink.events]
                assert kinds == [("trade", tid, live["blockHash"], 1),
                                 ("retraction", tid, live["blockHash"], 1),
                                 ("trade", tid, NEW_HASH, 2)]
                assert sink.events[2].trade is not None
                assert sink.events[2].trade.wallet == OTHER
                assert mon.store is not None
                # the store says whose trade the id is now: the reorg checks judge it
                # under OTHER
                assert mon.store.standing_in_range([WALLET], 100, 111) == []
                assert [t for t, _n, _h in mon.store.standing_in_range([OTHER], 100, 111)] \
                    == [tid]
            await run_monitor(node, tmp_path, body, wallets=[WALLET, OTHER])
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [tid]


def test_a_redelivered_trade_id_is_stored_under_its_new_wallet(tmp_path: Path) -> None:
    """The delivered row's ``wallet`` was written by the first delivery only: an id
    retracted, then delivered again as another wallet's fill (a reorg moved the log
    index), still said the first wallet, and the reorg checks (standing_in_range by
    wallet) judged it under the wrong one. Also across a restart (loaded from the store)."""
    first = decode_order_filled(order_filled(block=105, tx=9))
    again = decode_order_filled(order_filled(block=105, tx=9, wallet=OTHER,
                                             block_hash=NEW_HASH))

    async def go() -> None:
        store = Store(tmp_path / "m.db")
        pipe = Pipeline(store, MemorySink(), wallets=[WALLET, OTHER])
        assert await pipe.offer(first, "ws") is not None
        assert await pipe.retract(first.id, first.block_hash)
        assert await pipe.offer(again, "backfill") is not None
        assert store.standing_in_range([WALLET], 100, 110) == []
        assert store.standing_in_range([OTHER], 100, 110) == [(again.id, 105, NEW_HASH)]
        store.close()
    asyncio.run(go())


def test_a_polling_only_restart_does_not_send_a_trade_of_a_block_replaced_meanwhile(
        tmp_path: Path) -> None:
    """Polling only (no node): a crash left trades of blocks 105 and 106 in the outbox;
    block 105 was replaced while the monitor was down. WalletMonitor.start passed no
    restart check to Pipeline.recover, so the orphan reached the bot, retracted ~2 polls
    later. It now asks the explorer (monitor.polling.explorer_block_hashes): the orphan
    is retracted, never sent; 106 goes out."""
    from monitor_helpers import word
    from test_polling_baseline import (
        IndexExplorer,
        crash_leaving_an_outbox,
        outbox_explorer,
        retracted,
        served_explorer,
        trades,
    )
    from test_reliability import settings

    fake = outbox_explorer(IndexExplorer())
    sink = MemorySink()

    async def go() -> None:
        async with served_explorer(fake) as url:
            await crash_leaving_an_outbox(tmp_path / "state.db", fake, replaced=105)
            async with HostileNode() as node:  # only for its URLs' shape: not used
                s = settings(node, tmp_path, mode="polling", explorer_url=url,
                             websocket_url=None, rpc_url=None, polling_interval=600.0,
                             explorer_rate_per_s=1000.0)
            mon = WalletMonitor(s, sink=sink)
            await mon.start()  # recover() runs in start, before any poll
            try:
                sent_at_start = (trades(sink), retracted(sink))
            finally:
                await mon.stop()
        # before: ([105, 106], []): the orphan of block 105 went to the bot
        assert sent_at_start == ([106], [f"0x{word(1)}:0"])
    asyncio.run(go())
