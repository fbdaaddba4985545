"""Races between the monitor's tasks, each as a deterministic regression test.

A sync, a reorg's re-check, the live feed, the health loop and the fallback poller share
the shard's state (standing deliveries, cursor, heads) and the sink; every ``await`` of one
lets the others run. Each test holds one answer (the node's, :class:`hostile_node.Held`, or
the bot's callback) until it has made another task change that state, then lets it through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_node import Held, HeldExplorer, HostileNode, RpcErr, header, held_get_logs
from monitor_helpers import order_filled
from test_reliability import (
    cursor_at_least,
    drop_and_resubscribe,
    first_sync,
    history_rows,
    replace_block,
    run_monitor,
    settings,
    trade_ids,
    until,
)

from monitor.sinks import CallbackSink, MemorySink, SinkEvent
from monitor.wallet_monitor import WalletMonitor


def _tid(log: dict[str, Any]) -> str:
    return f"{log['transactionHash']}:0"


def test_a_sync_answer_from_before_a_reorg_does_not_bring_back_a_retracted_trade(
        tmp_path: Path) -> None:
    """A sync's eth_getLogs is answered from the old chain; before the sync goes on, the
    live feed gets the reorg (``removed`` for the trade, the new head) and retracts the
    trade. The sync then delivered the old chain's log: the orphan went to the sink a
    second time (a bot copies it again), until the re-check retracted it once more. Logs
    fetched while the chain changed are not delivered; the range is asked again."""
    orphan = order_filled(block=101, tx=5)

    async def go() -> None:
        async with HostileNode() as node:
            release = asyncio.Event()
            asked: list[tuple[int, int]] = []

            get_logs = held_get_logs(node, release, asked)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs.append(orphan)
                await node.new_head(101)
                await node.notify("logs", orphan)
                await until(lambda: trade_ids(sink) == [_tid(orphan)], "the live trade")
                node.rpc["eth_getLogs"] = get_logs
                await node.new_head(103)  # a gap: a sync of 101..102, answered (held) with
                await until(lambda: bool(asked), "the sync's eth_getLogs")  # the old chain
                # the reorg: block 101 replaced without the trade; the feed says so
                node.logs.remove(orphan)
                replace_block(node, 101)
                await node.notify("logs", dict(orphan, removed=True))
                await node.notify("newHeads", dict(header(101), hash="0x" + "ee" * 32))
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the live retraction")
                release.set()
                await until(lambda: mon.shards[0].counters["reorgs"] >= 1, "re-checked")
                node.head = 102  # the new chain goes on from the new block 101
                await node.notify("newHeads", dict(header(102), parentHash="0x" + "ee" * 32))
                await node.new_head(103)
                await until(lambda: cursor_at_least(mon, 102), "synced past 102")
            await run_monitor(node, tmp_path, body, speed=1.0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "delivered")] == [_tid(orphan)]
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(orphan)]


def _held_each_time(node: HostileNode, asked: list[tuple[int, int]],
                    releases: list[asyncio.Event]) -> Any:
    """An ``eth_getLogs`` answer (the node's logs in the range) held until the test sets
    the event this call appended to ``releases``; ranges asked go to ``asked``."""
    def get_logs(params: list[Any]) -> Any:
        a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        asked.append((a, b))
        releases.append(asyncio.Event())
        return Held(releases[-1], [lg for lg in node.logs
                                   if a <= int(lg["blockNumber"], 16) <= b])
    return get_logs


def test_removals_of_blocks_that_never_were_do_not_starve_the_backfill(
        tmp_path: Path) -> None:
    """A node (broken or hostile) sends ``removed`` logs of blocks that never were, one
    while each eth_getLogs of a gap's sync is in flight. Every removal counted as a
    chain change: each sync was cut and asked again, for as long as the removals came,
    and the gap's trade was never delivered. A removal now makes stale only the fetched
    logs of its own block: the first answer is delivered."""
    missed = order_filled(block=102, tx=9)

    async def go() -> None:
        async with HostileNode() as node:
            asked: list[tuple[int, int]] = []
            releases: list[asyncio.Event] = []

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.logs.append(missed)  # in block 102: no notification for it
                node.rpc["eth_getLogs"] = _held_each_time(node, asked, releases)
                await node.new_head(103)  # a gap: the sync asks for 100..102
                for n in range(3):
                    await until(lambda n=n: len(releases) > n or bool(trade_ids(sink)),
                                "the sync's eth_getLogs (or the trade)")
                    if trade_ids(sink):
                        break
                    read = shard.counters["notifications"]
                    fake = order_filled(block=102, tx=50 + n,
                                        block_hash="0x" + "dd" * 31 + f"{n:02x}")
                    await node.notify("logs", dict(fake, removed=True))
                    await until(lambda read=read: shard.counters["notifications"] > read,
                                "the removal read")
                    releases[n].set()
                del node.rpc["eth_getLogs"]  # no more held answers; free any still held
                for ev in releases:
                    ev.set()
                await until(lambda: trade_ids(sink) == [_tid(missed)], "the gap's trade")
                assert shard.counters["syncs_outrun"] == 0
                assert asked == [(100, 102)]
            await run_monitor(node, tmp_path, body, speed=1.0)
    asyncio.run(go())


def test_a_removal_of_a_fetched_block_alone_keeps_the_sync_from_delivering_it(
        tmp_path: Path) -> None:
    """No reorg head yet, only the feed's ``removed`` log of the trade a sync's held
    eth_getLogs answer (the old chain's) holds: that answer is not delivered (the trade
    would stand, a phantom), the range is asked again and the new chain's answer used."""
    orphan = order_filled(block=102, tx=5)
    kept = order_filled(block=101, tx=6)

    async def go() -> None:
        async with HostileNode() as node:
            asked: list[tuple[int, int]] = []
            releases: list[asyncio.Event] = []

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.logs.extend([kept, orphan])
                node.rpc["eth_getLogs"] = _held_each_time(node, asked, releases)
                await node.new_head(103)
                await until(lambda: bool(releases), "the sync's eth_getLogs")
                node.logs.remove(orphan)  # the node's new chain: block 102 without it
                read = shard.counters["notifications"]
                await node.notify("logs", dict(orphan, removed=True))
                await until(lambda: shard.counters["notifications"] > read,
                            "the removal read")
                del node.rpc["eth_getLogs"]
                releases[0].set()
                await until(lambda: trade_ids(sink) == [_tid(kept)], "the kept trade")
                await until(lambda: cursor_at_least(mon, 102), "synced past 102")
                assert shard.counters["syncs_outrun"] == 1
            await run_monitor(node, tmp_path, body, speed=1.0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "delivered")] == [_tid(kept)]


class _HeldCallback:
    """A bot's callback that records each event it gets and, for the trade ``hold``, does
    not return until ``release`` is set (a slow copy trade)."""

    def __init__(self, hold: str) -> None:
        self.hold = hold
        self.release = asyncio.Event()
        self.calls: list[tuple[str, str, int]] = []

    async def __call__(self, event: SinkEvent) -> None:
        self.calls.append((event.kind, event.trade_id, event.generation))
        if event.kind == "trade" and event.trade_id == self.hold:
            await self.release.wait()


async def _run_with_bot(node: HostileNode, tmp: Path, bot: _HeldCallback,
                        body: Callable[[WalletMonitor], Awaitable[None]],
                        **extra: Any) -> None:
    mon = WalletMonitor(settings(node, tmp, **extra), sink=CallbackSink(bot))
    await mon.start()
    try:
        await body(mon)
    finally:
        bot.release.set()  # a failed wait must not leave the stop waiting on the callback
        await mon.stop()



def test_the_outbox_loop_does_not_pass_an_event_the_callback_is_still_handling(
        tmp_path: Path) -> None:
    """A slow callback: while it handled a trade, the outbox loop (every
    ``outbox_retry_interval``) found the trade's outbox row not yet marked sent and passed
    it to the callback again - a second copy trade, though an event that did not raise
    reaches the callback exactly once. Events go to the sink one batch at a time; a
    redelivery reads the outbox only once the batch being sent is done."""
    live = order_filled(block=101, tx=5)
    bot = _HeldCallback(_tid(live))

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor) -> None:
                assert mon.pipeline is not None
                rounds = 0
                redeliver = mon.pipeline.redeliver

                async def counted() -> int:
                    nonlocal rounds
                    rounds += 1
                    return await redeliver()
                mon.pipeline.redeliver = counted  # type: ignore[method-assign]
                await first_sync(node, mon)
                node.logs.append(live)
                await node.new_head(101)
                await node.notify("logs", live)
                await until(lambda: bool(bot.calls), "the callback called")
                seen = rounds
                await until(lambda: rounds >= seen + 3 or len(bot.calls) > 1,
                            "three outbox rounds meanwhile (or a second call)")
                bot.release.set()
                await until(lambda: mon.store is not None and not mon.store.has_pending(),
                            "the outbox sent")
            await _run_with_bot(node, tmp_path, bot, body)
    asyncio.run(go())
    assert bot.calls == [("trade", _tid(live), 1)]


def test_a_retraction_never_reaches_the_sink_before_its_trade(tmp_path: Path) -> None:
    """A backfill batch [a, b] is being sent (the callback busy with a); the live feed's
    ``removed`` for b is decided meanwhile (b stands in the store, committed with its batch)
    and its retraction went to the sink at once: the bot got the retraction of a trade it
    had never seen, then the trade - and copied an orphan. Events reach the sink in the
    order they were committed."""
    first = order_filled(block=101, tx=1)
    second = order_filled(block=101, tx=2, log_index=1)
    second_id = f"{second['transactionHash']}:1"
    bot = _HeldCallback(_tid(first))

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor) -> None:
                store = mon.store
                assert store is not None
                await first_sync(node, mon)
                node.logs += [first, second]
                await node.new_head(103)  # a gap: the sync's batch is [first, second]
                await until(lambda: bool(bot.calls), "the callback busy with the first")
                await node.notify("logs", dict(second, removed=True))
                await until(lambda: (e := store.dedup_entry(second_id)) is not None
                            and e.retracted, "the retraction decided")
                bot.release.set()
                await until(lambda: not store.has_pending(), "the outbox sent")
            await _run_with_bot(node, tmp_path, bot, body)
    asyncio.run(go())
    assert bot.calls[:3] == [("trade", _tid(first), 1), ("trade", second_id, 1),
                             ("retraction", second_id, 1)]


def test_a_second_reorg_during_a_re_check_is_re_checked_and_its_orphan_not_delivered_again(
        tmp_path: Path) -> None:
    """Block 101 is replaced twice: the first re-check's eth_getLogs is answered with the
    middle chain (its trade z); before the re-check goes on, the feed gets the second
    reorg (``removed`` z, a new head 101) and retracts z. The re-check then delivered z
    again from its old answer, and, since the second reorg started at the same height
    as the first, took it for done: z stood for good (the heads that followed moved the
    cursor past 101 unchecked). A re-check across a chain change delivers nothing from
    its answer, and runs again."""
    z = order_filled(block=101, tx=9, block_hash="0x" + "e1" * 32)
    middle, last = "0x" + "e1" * 32, "0x" + "e2" * 32

    async def go() -> None:
        async with HostileNode() as node:
            release = asyncio.Event()
            asked: list[tuple[int, int]] = []

            get_logs = held_get_logs(node, release, asked)

            def block_101(h: str) -> None:
                node.rpc["eth_getBlockByNumber"] = lambda p: dict(
                    header(int(p[0], 16)), hash=h) if int(p[0], 16) == 101 \
                    else header(int(p[0], 16))

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                await node.new_head(101)
                # the first reorg: block 101 replaced by one holding z, delivered live
                node.logs.append(z)
                block_101(middle)
                node.rpc["eth_getLogs"] = get_logs
                await node.notify("newHeads", dict(header(101), hash=middle))
                await node.notify("logs", z)
                await until(lambda: trade_ids(sink) == [_tid(z)], "z delivered live")
                await until(lambda: bool(asked), "the re-check's eth_getLogs")
                # the second reorg, while that answer (z) is held
                node.logs.remove(z)
                block_101(last)
                await node.notify("logs", dict(z, removed=True))
                await node.notify("newHeads", dict(header(101), hash=last))
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "z retracted live")
                release.set()
                for n in (102, 103, 104):  # the chain goes on from the last block 101
                    node.head = n
                    await node.notify("newHeads", dict(header(n), parentHash=last)
                                      if n == 102 else header(n))
                await until(lambda: cursor_at_least(mon, 103), "the cursor past 101")
            await run_monitor(node, tmp_path, body, speed=1.0)
    asyncio.run(go())
    delivered = [r["trade_id"] for r in history_rows(tmp_path, "delivered")]
    retracted = [r["trade_id"] for r in history_rows(tmp_path, "retracted")]
    assert (delivered, retracted) == ([_tid(z)], [_tid(z)])


def test_a_reconnect_during_the_reconnect_check_checks_again(tmp_path: Path) -> None:
    """Each reconnect re-checks the delivered blocks (a reorg while the socket was down
    sent its removals to nobody). A second reconnect while that check waited for the node
    set the flag again, but the check, finished with answers from before the reorg, then
    marked the blocks verified: the second check never ran and the orphan stood for
    good. The flag is taken when a check starts, so a reconnect meanwhile asks again."""
    orphan = order_filled(block=101, tx=3)

    async def go() -> None:
        async with HostileNode() as node:
            release = asyncio.Event()
            asked: list[int] = []
            reorged = False

            def get_block(params: list[Any]) -> Any:
                n = int(params[0], 16)
                asked.append(n)
                answer = dict(header(n), hash="0x" + "ee" * 32) if n == 101 and reorged \
                    else header(n)
                return answer if release.is_set() else Held(release, answer)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                nonlocal reorged
                shard = mon.shards[0]

                async def reconnect() -> None:
                    connects = shard.counters["connects"]
                    await drop_and_resubscribe(node)
                    await until(lambda: shard.counters["connects"] > connects, "reconnected")
                await first_sync(node, mon)
                node.logs.append(orphan)
                await node.new_head(101)
                await node.notify("logs", orphan)
                await node.new_head(102)
                await until(lambda: len(trade_ids(sink)) == 1 and cursor_at_least(mon, 101),
                            "the trade delivered, the cursor past its block")
                node.rpc["eth_getBlockByNumber"] = get_block
                await reconnect()
                await node.new_head(103)  # the reconnect's check asks the node (held)
                await until(lambda: bool(asked), "the reconnect check in flight")
                await reconnect()  # the socket drops again meanwhile
                release.set()
                await until(lambda: 101 in asked, "the check past the trade's block")
                node.logs.remove(orphan)  # block 101 replaced, its removals sent to nobody
                reorged = True
                connects = shard.counters["connects"]
                await node.new_head(104)  # the third connection's check finds it
                # (not a later reconnect's: a feed silent for long is reconnected)
                await until(lambda: any(e.kind == "retraction" for e in sink.events)
                            or shard.counters["connects"] > connects, "the orphan retracted")
                assert shard.counters["connects"] == connects
            await run_monitor(node, tmp_path, body, speed=1.0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(orphan)]


def test_a_poll_in_flight_at_the_handback_does_not_undo_a_re_check_s_rewind(
        tmp_path: Path) -> None:
    """The feed comes back (handback) with a reorg: the re-check rewinds the cursor to the
    fork, to fetch those blocks again; the fallback poller, whose explorer call was in
    flight, then wrote the cursor it had computed before the rewind (forward only, so up
    past the fork again). The syncs went on from there: an orphan of the old chain above
    the new head (its block unknown to the node at the re-check) was never judged and
    stood for good. A poll whose wallet's cursor went down meanwhile leaves it there."""
    orphan = order_filled(block=107, tx=4)
    other = "0x" + "ee" * 32

    async def go() -> None:
        async with HeldExplorer() as node:
            def new_hash(n: int) -> str:
                return other if n == 105 else "0x" + f"{n:x}".rjust(64, "e")

            def new_chain(p: list[Any]) -> Any:  # 105 replaced; 106 on are the new chain's
                n = int(p[0], 16)
                if n < 105:
                    return header(n)
                if n > node.head:
                    return None
                return dict(header(n), hash=new_hash(n), parentHash=new_hash(n - 1)
                            if n > 105 else header(104)["hash"])

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.logs.append(orphan)
                for n in range(101, 111):
                    await node.new_head(n)
                    if n == 107:
                        await node.notify("logs", orphan)
                await until(lambda: len(trade_ids(sink)) == 1 and cursor_at_least(mon, 108),
                            "the trade delivered, the cursor past its block")
                node.explorer_head = 112
                node.hold = asyncio.Event()
                hold = node.hold
                await until(lambda: node.held_queries > 0, "the fallback poll in flight",
                            timeout=60)
                poll = shard._poll_task
                assert poll is not None
                # the feed comes back with a reorg to 105 (the node has no 106 yet); the
                # old chain's 106..110, and the trade in 107, are gone
                node.logs.remove(orphan)
                node.head = 105
                node.rpc["eth_getBlockByNumber"] = new_chain
                await node.notify("newHeads", dict(header(105), hash=other))
                await until(lambda: shard.counters["reorgs"] >= 1 and shard._poller is None,
                            "re-checked, handing back")
                hold.set()  # the poll goes on, from its view of before the re-check
                await until(poll.done, "handed back")
                for n in range(106, 116):  # the new chain
                    node.head = n
                    await node.notify("newHeads", new_chain([hex(n)]))
                await until(lambda: cursor_at_least(mon, 113), "synced on the new chain")
            await run_monitor(node, tmp_path, body, speed=20.0, reconcile_interval=30,
                              fallback_after=1, explorer_overlap_blocks=0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(orphan)]


def test_a_re_check_after_a_reorg_to_a_shorter_chain_keeps_the_new_chain_s_live_trades(
        tmp_path: Path) -> None:
    """The head-lag probe saw the node at 110 (the feed lagged); then a reorg to a shorter
    chain, head 105. The re-check fetched the logs up to the higher of the feed's head
    and that probe's - 110, a head of the chain the reorg replaced - and retracted what
    it did not find there, including the new chain's trade in 106 the feed delivered
    while the logs were fetched (delivered again later: the bot undid and redid it). The
    node's head a probe saw before a reorg does not count after it."""
    live = order_filled(block=106, tx=6, block_hash="0x" + "e6" * 32)
    other = "0x" + "ee" * 32

    async def go() -> None:
        async with HostileNode() as node:
            release = asyncio.Event()
            asked: list[tuple[int, int]] = []

            get_logs = held_get_logs(node, release, asked)

            def new_chain(p: list[Any]) -> Any:
                n = int(p[0], 16)
                if n > node.head:
                    return None
                return dict(header(n), hash=other) if n == 105 else dict(
                    header(n), hash=live["blockHash"], parentHash=other) if n == 106 \
                    else header(n)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.head = 110  # the node moves on; the feed sends nothing: the probe
                await until(lambda: shard.node_head == 110 and cursor_at_least(mon, 109)
                            and shard.counters["head_lag_reconnects"] == 1,
                            "the probe saw the node ahead")
                await until(lambda: bool(node.subs) and shard.counters["connects"] == 2,
                            "reconnected")
                await node.new_head(110)
                # a reorg to a shorter chain: 105 replaced, the node's head now 105
                node.head = 105
                node.rpc["eth_getBlockByNumber"] = new_chain
                node.rpc["eth_getLogs"] = get_logs
                await node.notify("newHeads", dict(header(105), hash=other))
                await until(lambda: bool(asked), "the re-check's eth_getLogs")
                # the new chain goes on while it is in flight: 106 and its trade, live
                node.head = 106
                node.logs.append(live)
                await node.notify("newHeads", new_chain([hex(106)]))
                await node.notify("logs", live)
                await until(lambda: trade_ids(sink) == [_tid(live)], "the live trade")
                release.set()
                await until(lambda: shard.counters["reorgs"] >= 1, "re-checked")
                node.head = 107
                await node.notify("newHeads", dict(header(107), parentHash=live["blockHash"]))
                await until(lambda: cursor_at_least(mon, 106), "synced past 106")
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())
    assert history_rows(tmp_path, "retracted") == []
    assert [r["trade_id"] for r in history_rows(tmp_path, "delivered")] == [_tid(live)]


def _lagging_http_node(node: HostileNode, chain: dict[int, str]) -> Callable[[int], None]:
    """The node's HTTP side as a provider's lagging HTTP node: it has the blocks up to
    the height set by the returned function (``chain``: number -> hash, the rest as
    :func:`header`); eth_getLogs holds nothing above it, eth_getBlockByNumber answers
    nothing above it. Its WebSocket side (the feed) is what the test pushes."""
    http_head = [node.head]

    def at(n: int) -> dict[str, Any]:
        return dict(header(n), hash=chain[n]) if n in chain else header(n)

    def get_logs(params: list[Any]) -> Any:
        a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        return [lg for lg in node.logs
                if a <= int(lg["blockNumber"], 16) <= min(b, http_head[0])]

    def get_block(params: list[Any]) -> Any:
        n = int(params[0], 16)
        return at(n) if n <= http_head[0] else None

    def catch_up(n: int) -> None:
        http_head[0] = n

    node.rpc["eth_getLogs"] = get_logs
    node.rpc["eth_getBlockByNumber"] = get_block
    node.rpc["eth_blockNumber"] = lambda _p: hex(http_head[0])
    return catch_up


def test_a_re_check_does_not_retract_a_trade_of_a_block_the_http_node_does_not_have_yet(
        tmp_path: Path) -> None:
    """A reorg replaces the head block 101 by one holding a trade, delivered live. The
    provider's HTTP node lags its WebSocket node by a block: it has no block 101 yet. The
    re-check fetched the logs up to the head it knew (101), found no trade there - the
    node could not see that block - and retracted the live trade (delivered again by the
    next sync: the bot undid and redid a real trade). A standing trade is judged an orphan
    only when the node has its block with another hash, as the syncs judge."""
    new_101 = "0x" + "ee" * 32
    live = order_filled(block=101, tx=6, block_hash=new_101)

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                catch_up = _lagging_http_node(node, {101: new_101})
                await node.new_head(101)  # the old block 101, without a trade
                await until(lambda: cursor_at_least(mon, 100), "the cursor at 100")
                # the reorg: 101 replaced by one holding the trade; the HTTP node has none
                node.logs.append(live)
                await node.notify("logs", live)
                await until(lambda: trade_ids(sink) == [_tid(live)], "the live trade")
                await node.notify("newHeads", dict(header(101), hash=new_101))
                await until(lambda: shard.counters["reorgs"] >= 1, "re-checked")
                catch_up(102)  # the HTTP node catches up; the chain goes on
                await node.notify("newHeads", dict(header(102), parentHash=new_101))
                await until(lambda: cursor_at_least(mon, 101), "synced past 101")
            await run_monitor(node, tmp_path, body, speed=1.0)
    asyncio.run(go())
    assert history_rows(tmp_path, "retracted") == []
    assert [r["trade_id"] for r in history_rows(tmp_path, "delivered")] == [_tid(live)]


def _http_node_on_old_101(old: dict[str, Any], live: dict[str, Any], new_101: str
                          ) -> tuple[list[bool], Callable[[list[Any]], Any],
                                     Callable[[list[Any]], Any]]:
    """An HTTP node's eth_getLogs and eth_getBlockByNumber on the chain a reorg replaced
    (block 101 holding ``old``) until the flag it returns is set, then on the new one
    (101 = ``new_101``, holding ``live``)."""
    on_new_chain = [False]

    def get_logs(params: list[Any]) -> Any:
        a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        logs = [live] if on_new_chain[0] else [old]
        return [lg for lg in logs if a <= int(lg["blockNumber"], 16) <= b]

    def get_block(params: list[Any]) -> Any:
        n = int(params[0], 16)
        return dict(header(n), hash=new_101) if n == 101 and on_new_chain[0] else header(n)

    return on_new_chain, get_logs, get_block


async def _old_101_delivered(node: HostileNode, mon: WalletMonitor, sink: MemorySink,
                             old: dict[str, Any], get_logs: Callable[[list[Any]], Any],
                             get_block: Callable[[list[Any]], Any]) -> None:
    """After the first sync, the HTTP node answers with ``get_logs``/``get_block``, and
    ``old`` (in the old block 101) is delivered live."""
    await first_sync(node, mon)
    node.rpc["eth_getLogs"], node.rpc["eth_getBlockByNumber"] = get_logs, get_block
    await node.notify("logs", old)
    await node.new_head(101)  # the old block 101
    await until(lambda: trade_ids(sink) == [_tid(old)], "the old trade")


async def _feed_reorg_of_101(node: HostileNode, old: dict[str, Any], live: dict[str, Any],
                             new_101: str) -> None:
    """The reorg, on the feed only: ``old`` removed, the new 101 with ``live``."""
    await node.notify("logs", dict(old, removed=True))
    await node.notify("logs", live)
    await node.notify("newHeads", dict(header(101), hash=new_101))


def test_a_re_check_waits_for_an_http_node_still_on_the_replaced_chain(
        tmp_path: Path) -> None:
    """A reorg replaces block 101 (a trade, delivered live) by one holding another trade,
    delivered live; the feed retracts the first. The provider's HTTP node lags its
    WebSocket node: it still has the old block 101, hash and logs. The re-check took its
    answers for the chain: it retracted the new trade (its block "has another hash") and
    delivered the old one again, then undid both once the node caught up - the bot copied
    a trade twice and undid a real one. The re-check now waits (with the sync loop's
    back-off) until the node has the reorg head the feed showed."""
    old, new_101 = order_filled(block=101, tx=5), "0x" + "ee" * 32
    live = order_filled(block=101, tx=6, block_hash=new_101)

    async def go() -> None:
        async with HostileNode() as node:
            on_new_chain, get_logs, get_block = _http_node_on_old_101(old, live, new_101)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await _old_101_delivered(node, mon, sink, old, get_logs, get_block)
                await _feed_reorg_of_101(node, old, live, new_101)
                await until(lambda: shard.counters["recheck_node_behind"] >= 1
                            or shard.counters["reorgs"] >= 1, "a re-check tried")
                on_new_chain[0] = True  # the HTTP node catches up
                await until(lambda: shard.counters["reorgs"] >= 1, "re-checked")
                await node.notify("newHeads", dict(header(102), parentHash=new_101))
                await until(lambda: cursor_at_least(mon, 101), "synced past 101")
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(old)]
    assert [r["trade_id"] for r in history_rows(tmp_path, "delivered")] == [
        _tid(old), _tid(live)]


def test_a_re_check_outwaits_an_http_node_slow_to_catch_up_with_the_reorg(
        tmp_path: Path) -> None:
    """As above, but the HTTP node takes longer than ``RECHECK_NODE_WAITS`` back-offs to
    reach the new chain (a provider's node falling behind under load; the CI machine
    loaded: the simulator's lagging node behind by seconds). Its head stays below the
    feed's all along: it is behind, not on a fork of its own. The re-check took its old
    chain after three waits: it retracted the new block's live trade and delivered the
    old one again (75 real trades undone and redone in a loaded CI run of
    test_rpc_lag_monitor). While the node's head is below the feed's it now waits up to
    ``RECHECK_BEHIND_WAITS`` back-offs."""
    old, new_101 = order_filled(block=101, tx=5), "0x" + "ee" * 32
    live = order_filled(block=101, tx=6, block_hash=new_101)

    async def go() -> None:
        async with HostileNode() as node:
            on_new_chain, get_logs, get_block = _http_node_on_old_101(old, live, new_101)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await _old_101_delivered(node, mon, sink, old, get_logs, get_block)
                # the HTTP node falls behind the feed (its head 101, the feed's 102 soon)
                node.rpc["eth_blockNumber"] = lambda _p: hex(101)
                await _feed_reorg_of_101(node, old, live, new_101)
                await node.notify("newHeads", dict(header(102), parentHash=new_101))
                await until(lambda: shard.counters["recheck_node_behind"]
                            > shard.RECHECK_NODE_WAITS or shard.counters["reorgs"] >= 1,
                            "more re-checks put off than for a node on a fork", timeout=60)
                on_new_chain[0] = True  # the HTTP node catches up
                node.rpc["eth_blockNumber"] = lambda _p: hex(102)
                await until(lambda: shard.counters["reorgs"] >= 1, "re-checked", timeout=60)
                await node.notify("newHeads", dict(header(103), parentHash=header(102)["hash"]))
                await until(lambda: cursor_at_least(mon, 102), "synced past 102")
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(old)]
    assert [r["trade_id"] for r in history_rows(tmp_path, "delivered")] == [
        _tid(old), _tid(live)]


def test_a_sync_does_not_retract_a_live_trade_on_the_word_of_a_node_behind_the_feed(
        tmp_path: Path) -> None:
    """The feed has block 101 (a trade, delivered live) from a reorg the HTTP node has not
    followed yet: it still serves the old 101, without the trade, and its head is below
    the feed's. A sweep fetched 101 from it, found the trade missing and the block's hash
    other: it retracted the live trade, delivered again once the node caught up (90 real
    trades undone and redone in a loaded run of test_rpc_lag_monitor: the sweep's logs
    were not stale, since it began after the feed had shown the reorg). The feed's view of
    a block it holds is now judged by a re-check, which waits for the node."""
    new_101 = "0x" + "ee" * 32
    live = order_filled(block=101, tx=6, block_hash=new_101)

    async def go() -> None:
        async with HostileNode() as node:
            caught_up = [False]

            def get_logs(params: list[Any]) -> Any:
                a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
                return [live] if caught_up[0] and a <= 101 <= b else []

            def get_block(params: list[Any]) -> Any:
                n = int(params[0], 16)
                return dict(header(n), hash=new_101) if n == 101 and caught_up[0] \
                    else header(n)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.rpc["eth_getLogs"], node.rpc["eth_getBlockByNumber"] = \
                    get_logs, get_block
                node.rpc["eth_blockNumber"] = lambda _p: hex(102)  # behind the feed
                await node.notify("newHeads", dict(header(101), hash=new_101))
                await node.notify("logs", live)
                await until(lambda: trade_ids(sink) == [_tid(live)], "the live trade")
                await node.notify("newHeads", dict(header(102), parentHash=new_101))
                await node.notify("newHeads", dict(header(103), parentHash=header(102)["hash"]))
                await until(lambda: shard.counters["orphans_deferred"] >= 1
                            or shard.counters["orphans_retracted"] >= 1,
                            "a sweep judged block 101", timeout=60)
                assert shard.counters["orphans_retracted"] == 0, "the live trade retracted"
                caught_up[0] = True  # the HTTP node follows the reorg
                node.rpc["eth_blockNumber"] = lambda _p: hex(104)
                await node.notify("newHeads", dict(header(104), parentHash=header(103)["hash"]))
                await until(lambda: shard.counters["reorgs"] >= 1, "re-checked", timeout=60)
                await until(lambda: cursor_at_least(mon, 102), "synced past 102")
            await run_monitor(node, tmp_path, body, speed=20.0, reconcile_interval=2.0)
    asyncio.run(go())
    assert history_rows(tmp_path, "retracted") == []
    assert [r["trade_id"] for r in history_rows(tmp_path, "delivered")] == [_tid(live)]


def test_a_re_check_takes_the_node_s_chain_when_it_keeps_disagreeing_with_the_feed(
        tmp_path: Path) -> None:
    """The feed shows a reorg to a block the node never gets (the feed's node is on a
    fork of its own): the re-check waits ``RECHECK_NODE_WAITS`` times, then takes the
    node's chain and retracts the trade only the feed's fork holds."""
    fork_101 = "0x" + "ee" * 32
    lone = order_filled(block=101, tx=6, block_hash=fork_101)

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                await node.new_head(101)
                await until(lambda: cursor_at_least(mon, 100), "the cursor at 100")
                await node.notify("logs", lone)
                await node.notify("newHeads", dict(header(101), hash=fork_101))
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the fork's trade retracted")
                assert shard.counters["recheck_node_behind"] == shard.RECHECK_NODE_WAITS
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(lone)]


def test_a_sync_never_moves_the_cursor_past_the_http_node_s_head(tmp_path: Path) -> None:
    """The provider's HTTP node is two blocks behind its WebSocket node, and answers an
    eth_getLogs range above its head with the logs it has (older geth, and the simulator's
    ``rpc_lag``). A gap's sync asked up to the feed's head - 1 and moved the cursor there:
    the block above the HTTP node's head, whose trade no notification had carried, was
    never asked again (a trade lost for good). A sync now goes no higher than the node's
    head - 1, and asks again a block interval later for the rest."""
    missed = order_filled(block=102, tx=9)

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                catch_up = _lagging_http_node(node, {})
                catch_up(101)  # the HTTP node's head: 101
                node.logs.append(missed)  # in block 102: no notification for it
                await node.new_head(103)  # a gap: a sync up to 102
                await until(lambda: cursor_at_least(mon, 100), "the sync up to 100")
                assert not cursor_at_least(mon, 102) and not trade_ids(sink)
                catch_up(103)  # the HTTP node has 102 and 103 now
                await until(lambda: trade_ids(sink) == [_tid(missed)], "the trade of 102")
                await until(lambda: cursor_at_least(mon, 102), "synced past 102")
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())


def test_a_range_refused_as_beyond_the_head_is_asked_again_not_split(
        tmp_path: Path) -> None:
    """geth refuses an eth_getLogs whose toBlock is above its head: -32602 "block range
    extends beyond current head block" (a load-balanced provider sent it to a node behind
    the one that gave the head). Its word "range" made the monitor split the range in
    halves down to single blocks, each refused again, and count a sync error. The range is
    asked again, whole, a back-off later."""
    trade = order_filled(block=102, tx=9)

    async def go() -> None:
        async with HostileNode() as node:
            asked: list[tuple[int, int]] = []

            def get_logs(params: list[Any]) -> Any:
                a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
                asked.append((a, b))
                if len(asked) == 1:
                    return RpcErr(-32602, "block range extends beyond current head block")
                return [lg for lg in node.logs if a <= int(lg["blockNumber"], 16) <= b]

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.logs.append(trade)  # in block 102: no notification for it
                node.rpc["eth_getLogs"] = get_logs
                await node.new_head(103)
                await until(lambda: trade_ids(sink) == [_tid(trade)], "the trade of 102")
                assert asked[:2] == [(100, 102), (100, 102)]
                assert shard.counters["getlogs_splits"] == 0
                assert shard.counters["sync_errors"] == 0
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())


@pytest.mark.parametrize("garbage", [3, "0x3"])
def test_one_garbage_eth_block_number_does_not_lower_the_feed_s_head(
        tmp_path: Path, garbage: Any) -> None:
    """One eth_blockNumber answer far below the feed (the simulator's rpc_garbage puts the
    number 12345678 where a hex string belongs, ~72 million blocks below Polygon's head;
    here 3, or 3 as hex): the sync took it for the node's head and lowered the feed's
    head to it; every real head after it was then refused as a jump ("head 84227730 while
    the last was 12345678"), the feed was judged stale and dropped for the explorer for
    the rest of the run (a soak day: WebSocket uptime 93 % -> 23 %). A number is not an
    answer; a low hex answer holds this sync back, not the feed's chain of heads."""
    trade = order_filled(block=102, tx=9)

    async def go() -> None:
        async with HostileNode() as node:
            answers = [garbage]

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                await node.new_head(101)
                node.rpc["eth_blockNumber"] = lambda p: (
                    answers.pop() if answers else hex(node.head))
                node.logs.append(trade)  # in block 102: no notification for it
                await node.new_head(103)  # a gap: the sync asks the node's head first
                await until(lambda: not answers, "the garbage answer taken")
                for n in range(104, 107):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 105), "synced past 105")
                await until(lambda: trade_ids(sink) == [_tid(trade)], "the trade of 102")
                assert shard.head == 106
                assert shard.counters["head_jump"] <= 1  # the low answer, once
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())


def test_heads_after_a_gap_whose_sync_fails_do_not_move_the_cursor_over_it(
        tmp_path: Path) -> None:
    """With ``reconcile_interval = 0`` a contiguous head moves the cursor to the last
    head's block. A gap (heads 101, then 103): its sync fails (the node errs) and retries
    with back-off; head 104 came first and moved the cursor from 100 to 103, over block
    102, which no sync had asked for and whose trade no notification carried: lost for
    good. A head moves the cursor only from the block before the last head."""
    trade = order_filled(block=102, tx=9)

    async def go() -> None:
        async with HostileNode() as node:
            failing = [True]
            asked: list[tuple[int, int]] = []

            def get_logs(params: list[Any]) -> Any:
                a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
                asked.append((a, b))
                if failing[0]:
                    return RpcErr(-32000, "internal error")
                return [lg for lg in node.logs if a <= int(lg["blockNumber"], 16) <= b]

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                await node.new_head(101)
                await until(lambda: cursor_at_least(mon, 100), "the cursor at 100")
                node.logs.append(trade)  # in block 102: no notification for it
                node.rpc["eth_getLogs"] = get_logs
                await node.new_head(103)  # a gap: its sync fails
                await until(lambda: bool(asked), "the gap's sync tried")
                await node.new_head(104)
                await node.new_head(105)
                await until(lambda: len(asked) >= 3, "the sync retried")
                assert not cursor_at_least(mon, 102)
                failing[0] = False
                await until(lambda: trade_ids(sink) == [_tid(trade)], "the trade of 102")
                await until(lambda: cursor_at_least(mon, 104), "synced past 104")
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())


def test_a_log_the_full_live_queue_dropped_is_fetched_before_heads_move_the_cursor(
        tmp_path: Path) -> None:
    """With ``reconcile_interval = 0`` contiguous heads move the cursor to head - 1. The
    live queue is full (the bot's callback busy, one log waiting): the trade of block 102
    is dropped, for the next sync to fetch. That sync, woken at head 102, went to 101;
    head 103 then moved the cursor to 102 unverified, and no sync ever asked for block
    102: the trade was lost for good. While a dropped log waits for a sync, heads do not
    move the cursor; each wakes the sync instead."""
    held = order_filled(block=101, tx=1)
    waiting = order_filled(block=101, tx=2, log_index=1)
    dropped = order_filled(block=102, tx=3)
    bot = _HeldCallback(_tid(held))

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.logs += [held, waiting, dropped]
                await node.new_head(101)
                await node.notify("logs", held)
                await until(lambda: bool(bot.calls), "the callback busy with a trade")
                await node.notify("logs", waiting)  # the queue (of one) is full
                await node.new_head(102)
                await node.notify("logs", dropped)
                await until(lambda: shard.counters["live_queue_overflow"] == 1,
                            "the trade of 102 dropped")
                await node.new_head(103)
                await until(lambda: shard.head == 103, "head 103 seen")
                bot.release.set()
                await node.new_head(104)
                await node.new_head(105)
                await until(lambda: cursor_at_least(mon, 104), "the cursor at 104")
            await _run_with_bot(node, tmp_path, bot, body, live_queue_max=1)
    asyncio.run(go())
    assert _tid(dropped) in [r["trade_id"] for r in history_rows(tmp_path, "delivered")]


def test_a_removal_the_full_live_queue_dropped_is_retracted_by_the_re_check(
        tmp_path: Path) -> None:
    """Pins who retracts when the full live queue drops a ``removed`` log (no sync brings
    one back: the node's logs of the canonical chain hold no removals): the reorg head
    starts the re-check, which judges the standing trade by its block's hash."""
    orphan = order_filled(block=101, tx=1)
    held = order_filled(block=102, tx=2)
    waiting = order_filled(block=102, tx=3, log_index=1)
    bot = _HeldCallback(_tid(held))

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.logs += [orphan, held, waiting]
                await node.new_head(101)
                await node.notify("logs", orphan)
                await node.new_head(102)
                await node.notify("logs", held)
                await until(lambda: len(bot.calls) == 2, "the callback busy with a trade")
                await node.notify("logs", waiting)  # the queue (of one) is full
                # the reorg: 101 replaced without the trade; its removal is dropped
                node.logs.remove(orphan)
                replace_block(node, 101)
                await node.notify("logs", dict(orphan, removed=True))
                await until(lambda: shard.counters["live_queue_overflow"] == 1,
                            "the removal dropped")
                await node.notify("newHeads", dict(header(101), hash="0x" + "ee" * 32))
                bot.release.set()
                await until(lambda: ("retraction", _tid(orphan), 1) in bot.calls,
                            "the orphan retracted")
            await _run_with_bot(node, tmp_path, bot, body, live_queue_max=1)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(orphan)]
