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

from hostile_node import HostileNode
from monitor_helpers import order_filled
from test_reliability import (
    first_sync,
    settings,
    until,
)

from monitor.sinks import CallbackSink, SinkEvent
from monitor.wallet_monitor import WalletMonitor


def _tid(log: dict[str, Any]) -> str:
    return f"{log['transactionHash']}:0"


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
