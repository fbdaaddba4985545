"""The subscription lifecycle against real providers' behaviours, each defect found as a
regression test (a hostile node on loopback, or a scripted connection).

The monitor runs in-process against :class:`hostile_node.HostileNode` as in
test_reliability.py; the manager alone runs against a scripted connection or a small
``websockets`` server. No fixed sleeps as synchronisation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled

from monitor.config import load_settings
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

TIMEOUT = 30.0


async def until(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def settings(node: HostileNode, tmp: Path, **extra: Any) -> Any:
    base: dict[str, Any] = {
        "websocket_url": node.ws_url, "rpc_url": node.rpc_url,
        "explorer_url": node.explorer_url, "wallets": [WALLET], "start_block": 95,
        "state_db": str(tmp / "state.db"), "history_path": str(tmp / "history.jsonl"),
        "speed": 20.0, "polling_interval": 1.0, "fallback_polling_interval": 1.0,
        "block_interval": 2.0, "reconcile_interval": 0, "backoff_initial": 0.2,
        "backoff_max": 1.0, "outbox_retry_interval": 1.0}
    base.update(extra)
    return load_settings(base, environ={})


async def run_monitor(node: HostileNode, tmp: Path,
                      body: Callable[[WalletMonitor, MemorySink], Awaitable[None]],
                      **extra: Any) -> WalletMonitor:
    sink = MemorySink()
    mon = WalletMonitor(settings(node, tmp, **extra), sink=sink)
    await mon.start()
    try:
        await body(mon, sink)
    finally:
        await mon.stop()
    return mon


def notification(sid: str, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                       "params": {"subscription": sid, "result": result}})


def cursor(mon: WalletMonitor) -> int | None:
    cur = mon.store.cursor(WALLET) if mon.store else None
    return None if cur is None else cur.block


# -- a notification that overtakes its eth_subscribe answer ------------------------------

def test_a_log_notified_before_the_subscribe_answer_is_delivered(tmp_path: Path) -> None:
    """A provider behind a proxy can send a subscription's first notification before the
    ``eth_subscribe`` answer that names it (ethers v6 buffers them for that reason). The
    manager dropped it as an unknown subscription; with ``reconcile_interval = 0`` the
    heads then moved the cursor past its block and the trade was lost for good."""
    live = order_filled(block=101, tx=7)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(live)  # the node has it: only a sync over 101 would find it
            node.before_answer = lambda kind, sid: (
                [notification(sid, live)] if kind == "logs" else [])

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                node.head = 101
                await node.new_head(101)  # first head: the sync goes to 100
                await until(lambda: (cursor(mon) or 0) >= 100, "first sync")
                for n in (102, 103):
                    node.head = n
                    await node.new_head(n)
                await until(lambda: (cursor(mon) or 0) >= 102, "cursor moved by heads")
                await until(lambda: len(sink.events) == 1, "the early trade", timeout=5.0)
                assert mon.shards[0].manager.bad_frames["unknown_subscription"] == 0
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())
