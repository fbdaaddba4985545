"""The wallet set between runs and across shards, each case against a node on loopback.

Users edit their wallet list and restart; a market-wide bot splits thousands of wallets
over several connections. Each wallet has its own stored cursor; a shard watches from the
lowest of its wallets'. These tests pin what a change of the set must not do: skip a
wallet's trades, deliver another wallet's again, or leave a phantom standing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from hostile_node import HostileNode, block_hash, header
from monitor_helpers import OTHER, WALLET, order_filled, topic
from test_reliability import TIMEOUT, replace_block, run_monitor, trade_ids, until

from monitor.connection import ConnState
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

RETENTION = 1024  # the smallest dedup_retention_blocks allowed


class ShardedNode(HostileNode):
    """A node whose connections each have their own subscriptions (one a shard): heads go
    to every connection, a log to those whose filter holds its maker (or no maker list).
    A connection whose filter holds a maker of ``refused`` is closed once it subscribes."""

    def __init__(self) -> None:
        super().__init__()
        self.conns: dict[web.WebSocketResponse, dict[str, Any]] = {}
        self.refused: set[str] = set()

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 22)
        await ws.prepare(request)
        conn: dict[str, Any] = {}
        self.conns[ws] = conn
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                item = json.loads(msg.data)
                method, params = item.get("method"), item.get("params") or []
                if method != "eth_subscribe":
                    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": item["id"],
                                                  "result": self.answer(method, params)}))
                    continue
                sid = f"0x{len(self.conns):08x}{len(conn):024x}"
                conn[params[0]] = sid
                if params[0] == "logs":
                    topics = params[1]["topics"]
                    conn["makers"] = {t.lower() for t in topics[2]} if len(topics) > 2 \
                        else None
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": item["id"],
                                              "result": sid}))
                if conn.get("makers") and conn["makers"] & {topic(w) for w in self.refused}:
                    await ws.close()
        finally:
            del self.conns[ws]
        return ws

    def answer(self, method: str, params: list[Any]) -> Any:
        got = super().answer(method, params)
        if method == "eth_getLogs" and isinstance(got, list):  # the filter's makers only
            topics = params[0].get("topics") or []
            if len(topics) > 2 and topics[2] is not None:
                makers = {t.lower() for t in topics[2]}
                got = [lg for lg in got if lg["topics"][2].lower() in makers]
        return got

    def ready(self, wallet: str) -> bool:
        """The shard of ``wallet`` has both subscriptions on an open connection."""
        return any("newHeads" in c and c.get("makers") is not None
                   and topic(wallet) in c["makers"] for c in self.conns.values())

    async def head_to_all(self, head: dict[str, Any]) -> None:
        self.head = max(self.head, int(head["number"], 16))
        for ws, conn in list(self.conns.items()):
            if "newHeads" in conn and not ws.closed:
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                              "params": {"subscription": conn["newHeads"],
                                                         "result": head}}))

    async def new_head(self, n: int) -> None:
        await self.head_to_all(header(n))

    async def close_shard_of(self, wallet: str) -> None:
        self.refused.add(wallet)
        for ws, conn in list(self.conns.items()):
            if conn.get("makers") and topic(wallet) in conn["makers"]:
                await ws.close()


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
    """A wallet added while ``start_block`` stays in the config starts there: the shard
    syncs from far below the other wallets' cursors, and the other wallets' trades there,
    whose dedup ids were pruned long ago (``dedup_retention_blocks``), went to the sink a
    second time (generation 1, not uncertain: the bot copies them again). The other
    wallets' trades below their own cursors are not delivered again; the wallet behind
    gets its trades from ``start_block``. A wallet removed from the list gets what the
    run before owed it (its trades from its cursor up to the head at the start that
    removed it, monitor.departed) and is forgotten: added back, it starts at that
    start's launch point, not far behind (it kept its old cursor before)."""
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
            # run 2: A alone, to block 1299; A's trade at 200 delivered, later pruned (and
            # B's, owed: mined after B's cursor, before the start that removed it)
            got = await _run_to(node, tmp_path, 1300, [WALLET], **start)
            owed = [_tid(missed)] if how == "removed and added back" else []
            assert sorted(got) == sorted([_tid(old), *owed])
            # run 3: B back (or new) beside A
            got = await _run_to(node, tmp_path, 1301, [WALLET, OTHER], **start)
            assert got == ([] if owed else [_tid(missed)])
    asyncio.run(go())


def test_a_reorg_while_down_above_a_wallet_far_behind_is_still_found_at_the_restart(
        tmp_path: Path) -> None:
    """B added (``start_block`` 95 in the config) with its cursor at 94, A's at 1299;
    while the monitor was down block 1250 was replaced: A's trade there is gone and
    another trade of A is in the new block.
    The shard's cursor is B's: the restart check must still look at the blocks A's cursor
    committed to (the sync does not deliver A's logs below A's own cursor again), so A's
    orphan is retracted and A's new trade delivered, once."""
    orphan = order_filled(block=1250, wallet=WALLET, tx=1)
    new_chain = order_filled(block=1250, wallet=WALLET, tx=3, block_hash="0x" + "ee" * 32)
    missed = order_filled(block=600, wallet=OTHER, tx=2)

    async def go() -> None:
        async with HostileNode() as node:
            node.logs = [missed]
            assert await _run_to(node, tmp_path, 100, [WALLET]) == []
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
                              start_block=95)
    asyncio.run(go())


async def _resend_until(send: Callable[[], Awaitable[None]], pred: Callable[[], bool],
                        what: str) -> None:
    """``send`` heads, then wait for ``pred``; again every 2 s until the test's timeout. A
    shard whose staleness watchdog (1 s of wall time at speed 20) reconnected it on a
    loaded machine re-subscribed after the heads were sent, and never saw them."""
    loop = asyncio.get_running_loop()
    end = loop.time() + TIMEOUT
    while True:
        await send()
        try:
            await until(pred, what, timeout=2.0)
            return
        except AssertionError:
            if loop.time() > end:
                raise


def _forked(n: int) -> str:
    return "0x" + "e" * 58 + f"{n:06x}"


def _forked_header(n: int, fork: int) -> dict[str, Any]:
    """Block ``n`` of a chain that replaced every block from ``fork`` up."""
    return dict(header(n), hash=_forked(n),
                parentHash=_forked(n - 1) if n - 1 >= fork else block_hash(n - 1))


def test_a_reorg_one_shard_saw_live_is_still_fixed_for_a_shard_that_was_down(
        tmp_path: Path) -> None:
    """Two shards (A's and B's). Both synced past block 105; B's connection is down when
    105 is replaced, and the new 105 holds a trade of B. A's shard sees the reorg live,
    re-checks its own wallets and stores the new chain's hashes. B's shard, back, checks
    the blocks it committed to against the node: the shared table already said the new
    chain, so it found nothing, and B's trade (below B's cursor) was never fetched."""
    fork = 105
    new_trade = order_filled(block=fork, wallet=OTHER, tx=7, block_hash=_forked(fork))

    async def go() -> None:
        async with ShardedNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                assert len(mon.shards) == 2
                await until(lambda: node.ready(WALLET) and node.ready(OTHER), "two shards")
                async def heads() -> None:  # contiguous, then a gap: both sync to 108
                    for n in [*range(100, 108), 109]:
                        await node.new_head(n)
                await _resend_until(heads, lambda: min(
                    _cursor(mon, WALLET), _cursor(mon, OTHER)) >= 108
                    and mon.store is not None and fork in mon.store.blocks(),
                    "both shards synced past 105")
                await node.close_shard_of(OTHER)
                await until(lambda: not node.ready(OTHER)
                            and mon.shards[1].manager.state is not ConnState.CONNECTED,
                            "B's shard down")
                # the reorg: 105 and up replaced; the new 105 holds B's trade
                node.rpc["eth_getBlockByNumber"] = lambda p: (
                    _forked_header(int(p[0], 16), fork) if int(p[0], 16) >= fork
                    else header(int(p[0], 16)))
                node.logs.append(new_trade)
                for n in range(fork, 111):
                    await node.head_to_all(_forked_header(n, fork))
                await until(lambda: mon.shards[0].counters["reorgs"] >= 1
                            and mon.store is not None
                            and mon.store.blocks().get(fork) == _forked(fork),
                            "A's shard re-checked and stored the new chain")
                node.refused.clear()  # B's shard reconnects
                await until(lambda: node.ready(OTHER), "B's shard back")
                await _resend_until(lambda: node.head_to_all(_forked_header(112, fork)),
                                    lambda: _tid(new_trade) in trade_ids(sink),
                                    "B's new trade")
            await run_monitor(node, tmp_path, body, wallets=[WALLET, OTHER],
                              max_wallets_per_filter=1, fallback_after=3600.0,
                              head_lag_blocks=0)  # B's shard asks nothing while down
    asyncio.run(go())
