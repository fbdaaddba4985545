"""Review of 9650491 (a block's head held until the frames parsed after it are handled):
a ``newHeads`` subscription cancelled while its head is held still gets that head. The
owner cancelled it while the frames after the head were handled (here: from a task a
logs callback started), and the manager's own ``unsubscribe`` promises no more
callbacks; before 9650491 the head had been handed over before the cancel. A held head
whose subscription is gone is dropped (failed before the fix)."""

from __future__ import annotations

import asyncio
from typing import Any

from test_ws_head_after_burst import HEADS, LOGS, TIMEOUT, BurstNode, _header, _note

from monitor.clock import SystemClock
from monitor.connection import WsSettings
from monitor.history import NullHistory
from monitor.websocket_manager import WebSocketManager


def test_a_head_held_for_a_subscription_cancelled_meanwhile_is_not_handed_over() -> None:
    async def main() -> None:
        async with BurstNode() as node:
            heads: list[int] = []
            cancelled = asyncio.Event()
            tasks: list[asyncio.Task[Any]] = []
            mgr = WebSocketManager(node.url, settings=WsSettings(staleness_blocks=0),
                                   clock=SystemClock(), history=NullHistory(), conn_id="t")

            def on_head(result: Any) -> None:
                heads.append(int(result["number"], 16))

            async def cancel_heads() -> None:
                await mgr.unsubscribe(heads_id)
                cancelled.set()

            def on_log(result: Any) -> None:
                # the owner stops watching heads (its own task: unsubscribe awaits an
                # answer this reader reads)
                if not tasks:
                    tasks.append(asyncio.get_running_loop().create_task(cancel_heads()))

            heads_id = await mgr.subscribe(["newHeads"], on_head)
            await mgr.subscribe(["logs", {}], on_log)
            await mgr.start()
            await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
            await node.burst(_note(HEADS, _header(5)), _note(LOGS, {"i": 1}))
            await asyncio.wait_for(cancelled.wait(), TIMEOUT)
            # a frame after the cancel is the test's barrier: the reader has passed the
            # held head (handed over or not) once this frame is read
            await node.burst(_note(LOGS, {"i": 2}))
            assert await mgr.wait_until(lambda: mgr.metrics.notifications >= 2, TIMEOUT)
            await mgr.stop()
            assert heads == [], heads  # not handed over once the subscription is gone
    asyncio.run(main())
