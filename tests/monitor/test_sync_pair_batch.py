"""A sync asks the HTTP node's head and its first range's logs in ONE JSON-RPC batch (one
HTTP request, the same two calls), and keeps only what the node's head vouches for.

Against :class:`hostile_node.HostileNode` on loopback: the monitor in-process (real
aiohttp/websockets clients, real SQLite), the node's answers scripted per test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, RpcErr
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


def _settings(node: HostileNode, tmp: Path, **extra: Any) -> Any:
    base: dict[str, Any] = {
        "websocket_url": node.ws_url, "rpc_url": node.rpc_url,
        "explorer_url": node.explorer_url, "wallets": [WALLET], "start_block": 95,
        "state_db": str(tmp / "state.db"), "history_path": str(tmp / "history.jsonl"),
        "speed": 20.0, "block_interval": 2.0, "reconcile_interval": 0,
        "backoff_initial": 0.2, "backoff_max": 1.0, "outbox_retry_interval": 1.0}
    base.update(extra)
    return load_settings(base, environ={})


#: no head comes after 110: the feed is not taken for stale meanwhile (no reconnect, no
#: fallback to the explorer moving the cursors)
QUIET: dict[str, Any] = {"staleness_blocks": 10_000, "fallback_after": 3600.0}


def _methods(body: Any) -> list[str]:
    return [c["method"] for c in body] if isinstance(body, list) else [body["method"]]


def _trades(sink: MemorySink) -> list[str]:
    return [e.trade_id for e in sink.events if e.kind == "trade"]


#: the HTTP node's head in :func:`_gap_sync` (a test moves it on)
http_head = [0]


def _cursor(mon: WalletMonitor) -> int | None:
    cur = mon.store.cursor(WALLET) if mon.store else None
    return None if cur is None else cur.block


async def _gap_sync(tmp: Path, node: HostileNode, *, node_head: int,
                    then: Callable[[WalletMonitor, MemorySink], Any] | None = None,
                    **extra: Any) -> tuple[MemorySink, WalletMonitor]:
    """Head 100 (the first sync), then a gap to head 110 with the node at ``node_head``:
    the next sync backfills 100..109 (or up to the node's head - 1)."""
    sink = MemorySink()
    mon = WalletMonitor(_settings(node, tmp, **extra), sink=sink)
    await mon.start()
    try:
        await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
        await node.new_head(100)
        await until(lambda: (_cursor(mon) or 0) >= 99, "first sync")
        node.requests.clear()
        http_head[0] = node_head  # the HTTP node's head; the feed's is 110
        node.rpc["eth_blockNumber"] = lambda _p: hex(http_head[0])
        await node.new_head(110)
        if then is not None:
            await then(mon, sink)
    finally:
        await mon.stop()
    return sink, mon


def test_a_sync_asks_the_head_and_the_logs_in_one_request(tmp_path: Path) -> None:
    """The gap's sync: one HTTP request holding eth_blockNumber then eth_getLogs of
    100..109 (two requests before); the trade of block 105 delivered once."""
    trade = order_filled(block=105, tx=5)

    async def go() -> None:
        async with HostileNode() as node:
            node.logs = [trade]

            async def settled(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: len(_trades(sink)) == 1 and (_cursor(mon) or 0) >= 109,
                            "backfilled")

            sink, mon = await _gap_sync(tmp_path, node, node_head=110, then=settled)
            syncs = [b for b in node.requests if "eth_getLogs" in _methods(b)]
            assert syncs and _methods(syncs[0]) == ["eth_blockNumber", "eth_getLogs"]
            flt = syncs[0][1]["params"][0]
            assert (int(flt["fromBlock"], 16), int(flt["toBlock"], 16)) == (100, 109)
            assert not any(_methods(b) == ["eth_blockNumber"] for b in node.requests)
            assert len(_trades(sink)) == 1
            calls = mon.rpc.calls if mon.rpc is not None else {}
            assert calls["eth_blockNumber"] >= 2 and calls["eth_getLogs"] >= 2  # both counted

    asyncio.run(go())


def test_logs_above_the_node_head_less_one_wait_for_the_node(tmp_path: Path) -> None:
    """The node two blocks behind the feed (head 107, target 109): of the batch's logs of
    100..109 only those up to 106 are delivered and the cursor stops at 106; block 108's
    trade comes once the node has it, and neither twice."""
    early, late = order_filled(block=105, tx=5), order_filled(block=108, tx=8)

    async def go() -> None:
        async with HostileNode() as node:
            node.logs = [early, late]

            async def behind(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: len(_trades(sink)) == 1 and _cursor(mon) == 106,
                            "synced up to the node's head - 1")
                assert _trades(sink)[0].startswith(early["transactionHash"].lower())
                http_head[0] = 110
                await until(lambda: len(_trades(sink)) == 2 and (_cursor(mon) or 0) >= 109,
                            "the rest once the node caught up")

            sink, _mon = await _gap_sync(tmp_path, node, node_head=107, then=behind,
                                         **QUIET)
            assert len(set(_trades(sink))) == 2

    asyncio.run(go())


def test_a_range_refused_past_the_node_head_is_asked_again_below_it(tmp_path: Path) -> None:
    """Today's geth refuses a range past its head: the batch's eth_getLogs error is not
    the sync's failure, the range up to the node's head - 1 is asked apart."""
    early, late = order_filled(block=105, tx=5), order_filled(block=108, tx=8)

    async def go() -> None:
        async with HostileNode() as node:
            node.logs = [early, late]

            def get_logs(params: list[Any]) -> Any:
                a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
                if b > http_head[0]:
                    return RpcErr(-32000, "block range extends beyond current head block")
                return [lg for lg in node.logs if a <= int(lg["blockNumber"], 16) <= b]
            node.rpc["eth_getLogs"] = get_logs

            async def behind(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: len(_trades(sink)) == 1 and _cursor(mon) == 106,
                            "synced up to the node's head - 1")
                http_head[0] = 110
                await until(lambda: len(_trades(sink)) == 2 and (_cursor(mon) or 0) >= 109,
                            "the rest once the node caught up")

            sink, mon = await _gap_sync(tmp_path, node, node_head=107, then=behind, **QUIET)
            assert len(set(_trades(sink))) == 2
            assert mon.shards[0].counters.get("sync_errors", 0) == 0

    asyncio.run(go())


def test_a_node_refusing_batches_is_asked_one_call_at_a_time(tmp_path: Path) -> None:
    """A provider without batches: the refused pair is asked apart, and no pair is sent
    again; with rpc_batch_size = 1 none is sent at all."""
    trade = order_filled(block=105, tx=5)

    async def go(tmp: Path, **extra: Any) -> list[Any]:
        async with HostileNode() as node:
            node.logs = [trade]
            node.refuse_batches = True

            async def settled(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: len(_trades(sink)) == 1 and (_cursor(mon) or 0) >= 109,
                            "backfilled")
                http_head[0] = 120
                await node.new_head(120)  # another gap: another sync
                await until(lambda: (_cursor(mon) or 0) >= 119, "second sync")

            sink, _mon = await _gap_sync(tmp, node, node_head=110, then=settled, **extra)
            assert len(_trades(sink)) == 1
            return list(node.requests)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    refused = asyncio.run(go(tmp_path / "a"))
    pairs = [b for b in refused if isinstance(b, list) and "eth_getLogs" in _methods(b)]
    assert len(pairs) <= 1  # the first, refused; then apart
    assert sum(_methods(b) == ["eth_getLogs"] for b in refused) >= 2
    single = asyncio.run(go(tmp_path / "b", rpc_batch_size=1))
    assert not any(isinstance(b, list) for b in single)


def test_a_node_lagging_the_feed_is_asked_in_one_request_a_sync_too(tmp_path: Path) -> None:
    """The HTTP node two blocks behind the feed for a while (a sync every block): once its
    lag is known, each sync's batch asks the logs up to the node's head - 1, one request,
    no eth_getLogs apart; the cursor never passes the node's head - 1; every trade once
    (sent live too, as a live feed does)."""
    trades = {n: order_filled(block=n, tx=n) for n in (108, 112, 114)}

    async def go() -> None:
        async with HostileNode() as node:
            node.logs = [trades[108]]

            async def lagging(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: _cursor(mon) == 106, "synced up to the node's head - 1")
                for head in range(111, 118):
                    http_head[0] = head - 2
                    if head == 114:
                        node.requests.clear()  # the lag is known by now
                    if head in trades:
                        node.logs.append(trades[head])
                        await node.notify("logs", trades[head])
                    await node.new_head(head)
                    await until(lambda h=head: _cursor(mon) == h - 3, f"synced to {head - 3}")
                await until(lambda: len(_trades(sink)) == 3, "every trade")

            sink, _mon = await _gap_sync(tmp_path, node, node_head=107, then=lagging,
                                         reconcile_interval=30.0, **QUIET)
            assert len(_trades(sink)) == len(set(_trades(sink))) == 3
            syncs = [b for b in node.requests if "eth_getLogs" in _methods(b)]
            assert syncs and all(_methods(b) == ["eth_blockNumber", "eth_getLogs"]
                                 for b in syncs)
            for b in syncs:  # up to the node's head - 1 as it answered
                assert int(b[1]["params"][0]["toBlock"], 16) <= max(
                    http_head[0] - 1, int(b[1]["params"][0]["fromBlock"], 16))

    asyncio.run(go())
