"""A sync's cursor write after its orphan check, with a reorg between them.

A sync checks that no reorg came while a range's logs were fetched and delivered, then
runs the orphan check (it may ask the node), lets the event loop run (8abf5a2) and writes
the cursors (a pause between cursor sets) with the feed's block hashes of the range read
after the last pause. A reorg the feed showed in between was taken for verified: the new
chain's hashes were stored beside logs of the old chain. A kill before the re-check (it
waits for the node) left a state whose restart check found every stored hash matching the
node: the new chain's trade in the range was never fetched (lost for good).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hostile_node import Held, HostileNode, block_hash, header
from monitor_helpers import WALLET, order_filled
from test_reliability import TIMEOUT, cursor_at_least, settings, trade_ids, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor, WsShard


def new_hash(n: int) -> str:
    """Block ``n``'s hash on the new chain (it forks from the old one at 101)."""
    return block_hash(n) if n < 101 else "0x" + f"{n:x}".rjust(64, "e")


def new_header(n: int) -> dict[str, Any]:
    return dict(header(n), hash=new_hash(n), parentHash=new_hash(n - 1))


OTHER = "0x2222222222222222222222222222222222222222"
NEW_TRADE = order_filled(block=101, tx=7, block_hash=new_hash(101))  # the new chain's only


def _new_chain_block(node: HostileNode) -> Callable[[list[Any]], Any]:
    def answer(params: list[Any]) -> Any:
        n = int(params[0], 16) if params[0] != "latest" else node.head
        return new_header(n)
    return answer


async def _killed_then_restarted(
        tmp: Path, wallets: list[str],
        hook: Callable[[HostileNode, WsShard, WalletMonitor], Awaitable[None]], *,
        heads: tuple[int, ...] = (101, 102)) -> list[str]:
    """Run 1: first sync at head 100, ``heads`` 101 and 102 (the feed has their hashes), then
    ``hook`` sends head 104 (a gap: a sync of 100..103 on the old chain, no trade of the
    wallets; no sweep timer in the test's time) and makes the reorg of block 101 (the new
    chain holds NEW_TRADE there, its notification never comes) reach the shard inside
    that sync; the sync writes, the re-check is held, the monitor killed. Run 2 on the
    new chain: the trades delivered up to head 105."""
    async with HostileNode() as node:
        release_blocks = asyncio.Event()
        recheck_asked = asyncio.Event()
        new_chain_block = _new_chain_block(node)

        def held_block(params: list[Any]) -> Any:
            recheck_asked.set()
            return Held(release_blocks, new_chain_block(params))

        opts = {"wallets": wallets, "reconcile_interval": 3600.0}
        mon = WalletMonitor(settings(node, tmp, **opts), sink=MemorySink())
        await mon.start()
        try:
            await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
            await node.new_head(100)
            await until(lambda: mon.store is not None and cursor_at_least(mon, 99),
                        "first sync")
            shard = mon.shards[0]

            def reorged() -> None:
                node.logs.append(NEW_TRADE)
                node.rpc["eth_getBlockByNumber"] = held_block  # the re-check waits
            shard.reorged = reorged  # type: ignore[attr-defined]
            for n in heads:
                await node.new_head(n)
            await until(lambda: shard.head == max(heads, default=100), "the heads")
            await hook(node, shard, mon)
            await asyncio.wait_for(recheck_asked.wait(), TIMEOUT)  # the sync is over
        finally:
            await mon.abort()  # killed before the re-check could do anything
            release_blocks.set()

        node.rpc["eth_getBlockByNumber"] = new_chain_block
        node.subscribed.clear()
        node.subs.clear()
        sink = MemorySink()
        mon2 = WalletMonitor(settings(node, tmp, **opts), sink=sink)
        await mon2.start()
        try:
            await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
            node.head = 105
            await node.notify("newHeads", new_header(105))
            await until(lambda: cursor_at_least(mon2, 104), "synced to 104")
            return trade_ids(sink)
        finally:
            await mon2.stop()


def test_a_reorg_during_the_orphan_check_keeps_the_sync_from_storing_its_range(
        tmp_path: Path) -> None:
    """The reorg head comes over the socket while the orphan check of 100..103 runs (held
    there as a node call of it, or the pause after it, lets the reader run)."""
    async def hook(node: HostileNode, shard: WsShard, mon: WalletMonitor) -> None:
        gate, reached = asyncio.Event(), asyncio.Event()
        real = shard._retract_orphans

        async def orphan_check(a: int, b: int, logs: list[dict[str, Any]],
                               **kw: Any) -> None:
            await real(a, b, logs, **kw)
            if b == 103 and not kw.get("recheck") and not reached.is_set():
                reached.set()
                await gate.wait()
        shard._retract_orphans = orphan_check  # type: ignore[method-assign]
        await node.new_head(104)
        await asyncio.wait_for(reached.wait(), TIMEOUT)
        shard.reorged()  # type: ignore[attr-defined]
        seen = shard.counters["reorgs_seen"]
        await node.notify("newHeads", new_header(101))
        await until(lambda: shard.counters["reorgs_seen"] > seen, "the reorg head")
        gate.set()

    got = asyncio.run(_killed_then_restarted(tmp_path, [WALLET], hook))
    assert got == [f"{NEW_TRADE['transactionHash']}:0"]


def test_a_reorg_between_the_cursor_sets_does_not_store_the_new_chain_s_hashes(
        tmp_path: Path) -> None:
    """Two cursor sets (cursor_set_max 1): the feed's reader runs at the pause between
    them and takes the reorg head (called here as the reader calls it, at that pause)."""
    async def hook(node: HostileNode, shard: WsShard, mon: WalletMonitor) -> None:
        store = mon.store
        assert store is not None
        store.cursor_set_max = 1
        real = store.set_cursors
        parts: list[int] = []

        def set_cursors(wallets: Any, block: int, *a: Any, **k: Any) -> None:
            real(wallets, block, *a, **k)
            if block == 103:
                parts.append(block)
                if len(parts) == 1:  # the pause after the first set
                    shard.reorged()  # type: ignore[attr-defined]
                    shard._on_head(new_header(101))
        store.set_cursors = set_cursors  # type: ignore[method-assign]
        await node.new_head(104)
        await until(lambda: len(parts) == 2, "both cursor sets written")

    got = asyncio.run(_killed_then_restarted(tmp_path, [WALLET, OTHER], hook))
    assert got == [f"{NEW_TRADE['transactionHash']}:0"]


def test_a_reorg_of_a_gap_just_after_its_sync_survives_a_kill(tmp_path: Path) -> None:
    """Heads 100 then 104 only (the feed never showed 101..103): the sync of 100..103
    writes its cursor with no hash of 101..103; the reorg of 101 comes just after that
    write (not inside the sync at all); killed before the re-check."""
    async def hook(node: HostileNode, shard: WsShard, mon: WalletMonitor) -> None:
        store = mon.store
        assert store is not None
        real = store.set_cursors
        done: list[int] = []

        def set_cursors(wallets: Any, block: int, *a: Any, **k: Any) -> None:
            real(wallets, block, *a, **k)
            if block == 103 and not done:
                done.append(block)
                shard.reorged()  # type: ignore[attr-defined]
                asyncio.get_running_loop().call_soon(shard._on_head, new_header(101))
        store.set_cursors = set_cursors  # type: ignore[method-assign]
        await node.new_head(104)
        await until(lambda: bool(done), "the sync's cursor write")

    got = asyncio.run(_killed_then_restarted(tmp_path, [WALLET], hook, heads=()))
    assert got == [f"{NEW_TRADE['transactionHash']}:0"]
