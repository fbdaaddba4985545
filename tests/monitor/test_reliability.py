"""Issue 8's defects, each as a regression test against a hostile node on loopback.

The monitor runs in-process (real aiohttp/websockets clients, real SQLite) against
:class:`hostile_node.HostileNode`, which sends exactly the bytes each test scripts.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_node import (
    HostileNode,
    Raw,
    Slow,
    deep,
    explorer_ok,
    explorer_row,
    header,
    held_get_logs,
)
from monitor_helpers import WALLET, order_filled

from monitor.config import load_settings
from monitor.errors import StoreError
from monitor.history import History
from monitor.pipeline import Pipeline
from monitor.sinks import JsonlSink, MemorySink
from monitor.store import Store
from monitor.supervisor import Supervisor, crash_delay
from monitor.wallet_monitor import WalletMonitor

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


async def until(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``pred`` on the loop (no fixed sleep as synchronisation)."""
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


def history_rows(tmp: Path, event: str) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (tmp / "history.jsonl").read_text().splitlines() if x]
    return [r for r in rows if r["event"] == event]


def trade_ids(sink: MemorySink) -> list[str]:
    return [e.trade_id for e in sink.events if e.kind == "trade"]


async def run_monitor(node: HostileNode, tmp: Path, body: Callable[[WalletMonitor, MemorySink],
                                                                  Awaitable[None]],
                      **extra: Any) -> WalletMonitor:
    sink = MemorySink()
    mon = WalletMonitor(settings(node, tmp, **extra), sink=sink)
    await mon.start()
    try:
        await body(mon, sink)
    finally:
        await mon.stop()
    return mon


def replace_block(node: HostileNode, number: int) -> None:
    """From now on the node has block ``number`` with another hash (a reorg)."""
    node.rpc["eth_getBlockByNumber"] = lambda p: dict(
        header(int(p[0], 16)), hash="0x" + "ee" * 32) if int(p[0], 16) == number \
        else header(int(p[0], 16))


async def first_sync(node: HostileNode, mon: WalletMonitor) -> None:
    """Wait for the subscriptions, send head 100, wait for the first sync to be done
    (the cursor at 99: its eth_getLogs answered, so a test that scripts the node's next
    answers does not script that one)."""
    await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
    await node.new_head(100)
    await until(lambda: mon.store is not None and cursor_at_least(mon, 99), "first sync")


def cursor_at_least(mon: WalletMonitor, block: int) -> bool:
    cur = mon.store.cursor(WALLET) if mon.store else None
    return cur is not None and cur.block >= block


async def backfill_block_105(node: HostileNode, mon: WalletMonitor, sink: MemorySink) -> None:
    """First sync at head 100, then a gap to head 110: the backfill delivers block 105."""
    await first_sync(node, mon)
    node.head = 110
    await node.new_head(110)
    await until(lambda: len(sink.events) == 1 and cursor_at_least(mon, 109), "backfilled")


async def first_run_with_a_live_105(node: HostileNode, tmp: Path, live: dict[str, Any], *,
                                    cursor_past: bool = True) -> None:
    """A first run: sync at head 100, ``live`` (block 105) delivered live above the cursor;
    with ``cursor_past``, then head 110: the backfill to 109 moves the cursor past 105,
    storing no hash for it; stopped."""
    node.head = 100
    node.logs.append(live)

    async def first(mon: WalletMonitor, sink: MemorySink) -> None:
        await first_sync(node, mon)
        await node.notify("logs", live)
        await until(lambda: len(sink.events) == 1, "the live trade")
        if not cursor_past:
            cur = mon.store.cursor(WALLET) if mon.store else None
            assert cur is not None and cur.block < 105
            return
        node.head = 110
        await node.new_head(110)
        await until(lambda: cursor_at_least(mon, 109), "cursor past 105")
    await run_monitor(node, tmp, first)


async def drop_and_resubscribe(node: HostileNode) -> None:
    """Close every socket; wait for the monitor's new subscriptions."""
    node.subscribed.clear()
    node.subs.clear()
    for ws in list(node.sockets):
        await ws.close()
    await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)


# -- 1. a task never dies silently -------------------------------------------------------

def test_polling_survives_a_non_hex_block_number_row_and_delivers_the_valid_trade(
        tmp_path: Path) -> None:
    good = order_filled(block=100, tx=1)
    bad = dict(explorer_row(order_filled(block=101, tx=2)), blockNumber="0xZZ")

    async def go() -> None:
        async with HostileNode() as node:
            node.explorer = lambda q: (json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x70"})
                                       if q.get("module") == "proxy"
                                       else explorer_ok([bad, explorer_row(good)]))

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: len(sink.events) == 1, "the valid trade")
                await until(lambda: mon.explorer is not None and mon.explorer.bad_rows >= 1,
                            "the bad row counted")
                assert mon.poller is not None
                polls = mon.poller.polls
                await until(lambda: mon.poller is not None and mon.poller.polls > polls + 1,
                            "polling goes on")
                assert mon.ready()
            await run_monitor(node, tmp_path, body, mode="polling")
    asyncio.run(go())
    assert history_rows(tmp_path, "bad_input")[0]["kind"] == "explorer_bad_row"
    assert history_rows(tmp_path, "tasks")[0]["alive"]["polling"] is True


def test_polling_survives_html_200_deep_json_and_a_huge_number(tmp_path: Path) -> None:
    good = order_filled(block=100, tx=1)
    answers = [("<html><body>502 Bad Gateway</body></html>"), deep(100_000),
               json.dumps({"status": "1", "message": "OK", "result": [
                   dict(explorer_row(good), logIndex="0x" + "f" * 5000)]}),
               "{\"status\": \"1\", \"message\": \"OK\", \"result\": [" + "1" * 5000 + "]}"]

    def explorer(q: dict[str, str]) -> str:
        if q.get("module") == "proxy":
            return json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x70"})
        return answers.pop(0) if answers else explorer_ok([explorer_row(good)])

    async def go() -> None:
        async with HostileNode() as node:
            node.explorer = explorer

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: len(sink.events) == 1, "the trade after the garbage")
                assert mon.ready()
                assert mon.poller is not None and mon.poller.counters["errors"] >= 2
            await run_monitor(node, tmp_path, body, mode="polling")
    asyncio.run(go())
    assert not history_rows(tmp_path, "task_crash")


def test_an_unexpected_exception_in_polling_is_logged_counted_and_the_task_restarts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.explorer_client import ExplorerClient
    good = order_filled(block=100, tx=1)
    real = ExplorerClient.block_number
    raised = []

    async def flaky(self: ExplorerClient) -> int:
        if len(raised) < 2:
            raised.append(1)
            raise OSError(errno.EMFILE, "Too many open files")
        return await real(self)
    monkeypatch.setattr(ExplorerClient, "block_number", flaky)

    async def go() -> None:
        async with HostileNode() as node:
            node.explorer = lambda q: (json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x70"})
                                       if q.get("module") == "proxy"
                                       else explorer_ok([explorer_row(good)]))

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: len(sink.events) == 1, "the trade after two crashes")
                assert mon.supervisor is not None
                assert mon.supervisor.restarts["polling"] == 2
                await until(mon.ready, "ready again")
            await run_monitor(node, tmp_path, body, mode="polling")
    asyncio.run(go())
    crashes = history_rows(tmp_path, "task_crash")
    assert [c["task"] for c in crashes] == ["polling", "polling"]
    assert crashes[0]["error"] == "OSError"


def test_supervisor_restarts_with_backoff_and_says_who_is_alive() -> None:
    assert [crash_delay(n, initial=1, maximum=60) for n in (1, 2, 3, 7, 8)] == \
        [1, 2, 4, 60, 60]

    class Alerts:
        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, kind: str, text: str) -> bool:
            self.sent.append(kind)
            return True

    async def go() -> None:
        alerts = Alerts()
        sup = Supervisor(alerts=alerts, initial=0.01, maximum=0.02)  # type: ignore[arg-type]
        runs = []
        release = asyncio.Event()

        async def task() -> None:
            runs.append(1)
            if len(runs) <= 3:
                raise OverflowError("Python int too large to convert to SQLite INTEGER")
            await release.wait()
        sup.spawn("worker", task)
        await until(lambda: len(runs) == 4, "the fourth run")
        assert sup.alive() == {"worker": True} and sup.restarts["worker"] == 3
        assert sup.snapshot()["worker"]["last_error"].startswith("OverflowError")
        assert alerts.sent and alerts.sent[0] == "task_crash"
        release.set()
        await until(lambda: sup.alive() == {}, "done")
        await sup.stop()
    asyncio.run(go())


# -- 2. state in memory changes only after the durable commit ------------------------------

def test_a_log_with_a_block_number_above_2_63_does_not_lose_the_valid_trade_beside_it(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    sink = MemorySink()
    pipe = Pipeline(store, sink, wallets=[WALLET])
    bad = order_filled(block=100, tx=1)
    bad["blockNumber"] = hex(1 << 64)
    good = order_filled(block=100, tx=2)
    delivered = asyncio.run(pipe.on_logs([bad, good], "ws"))
    assert [t.tx_hash for t in delivered] == [good["transactionHash"]]
    assert pipe.counters["decode_errors"] == 1
    store.close()
    # across a restart: delivered once, known as delivered
    store2 = Store(tmp_path / "s.db")
    pipe2 = Pipeline(store2, MemorySink(), wallets=[WALLET])
    assert asyncio.run(pipe2.on_logs([good], "backfill")) == []


def test_a_failed_commit_leaves_memory_untouched_and_the_trade_is_delivered_later(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store._db.execute("PRAGMA busy_timeout=50")
    sink = MemorySink()
    pipe = Pipeline(store, sink, wallets=[WALLET])
    good = order_filled(block=100, tx=2)
    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database: locked
    with pytest.raises(StoreError):
        asyncio.run(pipe.on_logs([good], "ws"))
    assert pipe.dedup.get(f"{good['transactionHash']}:0") is None
    blocker.execute("ROLLBACK")
    assert len(asyncio.run(pipe.on_logs([good], "backfill"))) == 1
    assert trade_ids(sink) == [f"{good['transactionHash']}:0"]


def test_a_row_the_store_refuses_is_dropped_alone(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "s.db")
    sink = MemorySink()
    pipe = Pipeline(store, sink, wallets=[WALLET])
    a, b = order_filled(block=100, tx=1), order_filled(block=100, tx=2)
    real = store.commit_many

    def picky(rows: Any) -> Any:
        rows = list(rows)
        if any(r[1].startswith(a["transactionHash"]) for r in rows):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(rows)
    monkeypatch.setattr(store, "commit_many", picky)
    delivered = asyncio.run(pipe.on_logs([a, b], "ws"))
    assert [t.tx_hash for t in delivered] == [b["transactionHash"]]
    assert pipe.counters["store_rejected"] == 1
    assert pipe.dedup.get(f"{a['transactionHash']}:0") is None


# -- 3. one malformed frame never kills the WebSocket manager ------------------------------

HOSTILE_FRAMES: list[str | bytes] = [
    json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                "params": {"subscription": ["0x1"], "result": {}}}),  # unhashable id
    deep(100_000),  # 100 KB of nested arrays
    "[" * 500 + "]" * 500,  # nested, parses
    "not json at all",
    b"\xff\xfe\x00binary",
    "{\"jsonrpc\": \"2.0\", \"id\": " + "9" * 5000 + ", \"result\": 1}",
    json.dumps({"jsonrpc": "2.0", "id": [1], "result": "0x1"}),
    json.dumps({"jsonrpc": "2.0", "id": True, "result": "0x1"}),
    json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                "params": {"subscription": {"a": 1}, "result": {}}}),
    json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": [1, 2]}),
    json.dumps([1, "x", None]),
    json.dumps({"jsonrpc": "2.0", "id": 99999, "error": {"code": "x", "message": [1]}}),
]


def test_malformed_frames_are_counted_and_the_feed_goes_on(tmp_path: Path) -> None:
    live = order_filled(block=101, tx=7)

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(100)
                for frame in HOSTILE_FRAMES:
                    await node.push(frame)
                # bad heads: a number of 2^70, hashes of the wrong type
                await node.notify("newHeads", dict(header(101), number=hex(1 << 70)))
                await node.notify("newHeads", dict(header(101), hash=[1]))
                await node.notify("logs", live)
                await until(lambda: len(sink.events) == 1, "the live trade after garbage")
                shard = mon.shards[0]
                assert sink.events[0].source == "ws"
                assert shard.manager.running and shard.manager.state.name == "CONNECTED"
                bad = shard.manager.bad_frames
                assert bad["unknown_subscription"] >= 2 and bad["too_deep"] >= 1
                assert bad["not_json"] >= 2 and bad["binary"] == 1
                assert shard.counters["bad_head"] == 2
                assert mon.ready()
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())
    kinds = {r["kind"] for r in history_rows(tmp_path, "bad_input")}
    assert {"ws_unknown_subscription", "ws_too_deep", "bad_head"} <= kinds
    assert not history_rows(tmp_path, "task_crash")


# -- 4. a head 2^62 ahead costs nothing ----------------------------------------------------

def test_a_head_far_ahead_of_the_chain_is_ignored_and_backfill_stays_bounded(
        tmp_path: Path) -> None:
    live = order_filled(block=102, tx=8)

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(100)
                await node.notify("newHeads", header(1 << 62))
                await node.new_head(101)
                node.logs.append(live)
                await node.new_head(102)
                await node.new_head(103)
                await until(lambda: len(sink.events) == 1, "the trade after the jump")
                assert mon.shards[0].counters["head_jump"] >= 1
                assert mon.shards[0].head == 103
            await run_monitor(node, tmp_path, body)
            calls = [c for r in node.requests for c in (r if isinstance(r, list) else [r])]
            ranges = [r for r in calls if r.get("method") == "eth_getLogs"]
            assert len(ranges) < 20
            assert all(int(r["params"][0]["toBlock"], 16) < 1000 for r in ranges)
    asyncio.run(go())


def test_a_first_head_far_ahead_is_clamped_to_the_node_head(tmp_path: Path) -> None:
    async def go() -> None:
        async with HostileNode() as node:
            node.head = 110

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.notify("newHeads", header(1 << 62))  # the very first head
                await until(lambda: mon.shards[0].counters["head_jump"] >= 1, "clamped")
                await until(lambda: (mon.store is not None and mon.store.cursor(WALLET)
                                     is not None and mon.store.cursor(WALLET).block >= 108),
                            "synced to the node's head")
                assert mon.store is not None
                assert mon.store.cursor(WALLET).block < 1000  # type: ignore[union-attr]
            await run_monitor(node, tmp_path, body, backfill_chunk_blocks=5)
    asyncio.run(go())


# -- 5. secrets never leak -----------------------------------------------------------------

def test_provider_keys_in_urls_never_reach_the_history_and_files_are_private(
        tmp_path: Path) -> None:
    key_path, key_query, explorer_key = ("PathKey0123456789abcdefXYZ", "QueryKey98765zyx",
                                         "ExplorerKey5551234")

    async def go() -> None:
        async with HostileNode() as node:
            s = settings(node, tmp_path, detections_path=str(tmp_path / "det.jsonl"))
            s = load_settings({**s.model_dump(exclude={"explorer_api_key", "telegram_token"}),
                               "websocket_url": f"{node.ws_url}v2/{key_path}",
                               "rpc_url": f"{node.rpc_url}?key={key_query}",
                               "explorer_api_key": explorer_key}, environ={})
            mon = WalletMonitor(s)
            await mon.start()
            await mon.stop()
    asyncio.run(go())
    for name in ("history.jsonl", "state.db", "det.jsonl"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    text = (tmp_path / "history.jsonl").read_text()
    for secret in (key_path, key_query, explorer_key, explorer_key[:4] + "…"):
        assert secret not in text


def test_secrets_can_come_from_files_named_by_the_environment(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("FileKey1234567\n")
    (tmp_path / "ws").write_text("wss://provider.example/v2/UrlKeyFromFile0123456789\n")
    s = load_settings({"wallets": [WALLET]}, environ={
        "EXPLORER_API_KEY_FILE": str(tmp_path / "key"),
        "WEBSOCKET_URL_FILE": str(tmp_path / "ws")})
    assert s.api_key() == "FileKey1234567"
    assert s.websocket_url == "wss://provider.example/v2/UrlKeyFromFile0123456789"
    assert "UrlKeyFromFile" not in json.dumps(s.redacted_dict())
    assert "FileKey" not in json.dumps(s.redacted_dict())


# -- 6/7. a full disk delays delivery only while it lasts; the outbox stays small ---------------

def test_delivery_resumes_without_a_restart_once_the_disk_has_space_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.sinks as sinks
    real_write = os.write
    full = {"on": True}

    def write(fd: int, data: bytes) -> int:
        if full["on"] and data.startswith(b"{\"t_ns\""):
            real_write(fd, data[:7])  # a torn, partial line, as on a real ENOSPC
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)
    monkeypatch.setattr(sinks.os, "write", write)
    trades = [order_filled(block=100, tx=i) for i in range(1, 4)]

    async def go() -> None:
        async with HostileNode() as node:
            s = settings(node, tmp_path, detections_path=str(tmp_path / "det.jsonl"))
            mon = WalletMonitor(s)
            await mon.start()
            try:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(100)
                for t in trades:
                    await node.notify("logs", t)
                assert mon.pipeline is not None and mon.store is not None
                await until(lambda: mon.pipeline is not None
                            and mon.pipeline.counters["sink_errors"] >= 2, "sink failing")
                assert mon.store.stats()["pending"] == 3
                full["on"] = False  # space is back
                await until(lambda: mon.store is not None
                            and mon.store.stats()["pending"] == 0, "redelivered")
                await until(lambda: mon.store is not None and mon.store.outbox_size() == 0,
                            "outbox pruned")
            finally:
                await mon.stop()
    asyncio.run(go())
    lines = (tmp_path / "det.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines]  # no torn line anywhere
    assert sorted(r["trade"]["tx_hash"] for r in rows) == sorted(
        t["transactionHash"] for t in trades)
    assert history_rows(tmp_path, "sink_error") and history_rows(tmp_path, "sink_recovered")


def test_the_outbox_is_pruned_while_running(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    pipe = Pipeline(store, MemorySink(), wallets=[WALLET])
    asyncio.run(pipe.on_logs([order_filled(block=100, tx=i) for i in range(1, 200)], "ws"))
    assert store.outbox_size() == 199
    asyncio.run(pipe.redeliver())
    assert store.outbox_size() == 0 and store.stats()["delivered"] == 199


def test_the_outbox_prune_commits_only_when_due_or_quiet(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A steady feed writes the "sent" marks with its next batch, so the 5-s redeliver
    opens no transaction of its own (it was one fsync'd commit every 5 s, busy or idle);
    the sent rows go once a minute or once 1,000 wait, and marks left by the last batch
    before a quiet spell are written at the next call that finds them still waiting."""
    from monitor.clock import ManualClock
    clock = ManualClock(1000.0)
    store = Store(tmp_path / "s.db", synchronous="NORMAL")
    sink = MemorySink()
    pipe = Pipeline(store, sink, wallets=[WALLET], clock=clock)
    txs = {"n": 0}
    real_tx = store._tx

    def counting_tx() -> Any:
        txs["n"] += 1
        return real_tx()
    monkeypatch.setattr(store, "_tx", counting_tx)
    block = iter(range(100, 10_000))
    tx = iter(range(1, 1_000_000))

    def batch(n: int = 2) -> None:
        b = next(block)
        asyncio.run(pipe.on_logs([order_filled(block=b, tx=next(tx)) for _ in range(n)],
                                 "ws"))

    def redeliver() -> int:
        before = txs["n"]
        asyncio.run(pipe.redeliver())
        return txs["n"] - before

    batch()
    assert redeliver() == 1 and store.outbox_size() == 0  # the first call always prunes
    for _ in range(5):  # a steady feed: a batch between calls, 5 s apart
        batch()
        batch()
        clock.advance(5)
        assert redeliver() == 0  # no commit of its own: the next batch wrote the marks
    assert store.outbox_size() == 20 and store.marks_pending
    # quiet: the marks the last batch left were there at the last call already
    clock.advance(5)
    assert redeliver() == 1 and not store.marks_pending and store.outbox_size() == 0
    # one batch, then quiet: its marks wait one call (a batch may still follow), then go
    batch()
    clock.advance(5)
    assert redeliver() == 0 and store.marks_pending
    clock.advance(5)
    assert redeliver() == 1 and not store.marks_pending and store.outbox_size() == 0
    clock.advance(5)
    assert redeliver() == 0  # nothing to mark or delete: no transaction at all
    # due by time: a minute after the last prune (it writes the waiting marks too)
    batch()
    batch()
    clock.advance(5)
    assert redeliver() == 0
    clock.advance(55)
    batch()
    assert redeliver() == 1 and store.outbox_size() == 0
    # due by rows: 1,000 rows marked sent wait, well inside the minute
    batch(600)
    batch(600)  # writes the first 600 marks: 600 rows wait, fewer than 1,000
    clock.advance(5)
    assert redeliver() == 0 and store.outbox_size() == 1200
    batch(600)  # 1,200 wait
    clock.advance(5)
    assert redeliver() == 1 and store.outbox_size() == 0
    assert len(sink.events) == 2 + 20 + 2 + 6 + 1800  # every event delivered once


# -- 8. corrupt files: one line, exit 2 ----------------------------------------------------

def test_a_detections_file_with_json_that_is_not_a_row_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "det.jsonl"
    good = {"t_ns": 1, "kind": "trade", "source": "ws", "trade": {"id": "0xab:1"}}
    path.write_text("[1,2]\n123\n\"text\"\n{\"kind\": \"trade\", \"trade\": [1]}\n"
                    + json.dumps(good) + "\n" + "[" * 5000 + "\n")
    sink = JsonlSink(path)
    assert sink.skipped_lines == 5 and sink.written("trade", "0xab:1") == 1
    sink.close()


@pytest.mark.parametrize("kind", ["directory", "not_a_database"])
def test_cli_bad_state_db_is_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "state"
    if kind == "directory":
        db.mkdir()
    else:
        db.write_bytes(b"this is not a database, it is a text file\n" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--mode", "polling", "--wallet", WALLET,
         "--explorer-url", "http://127.0.0.1:9/v2/api", "--db", str(db)],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    errors = [x for x in proc.stderr.splitlines() if "error" in x.lower()]
    assert len(errors) == 1 and "state_db" in errors[0] and "Traceback" not in proc.stderr


def test_store_open_errors_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory"):
        Store(tmp_path)
    (tmp_path / "x.db").write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(StoreError, match="not a database"):
        Store(tmp_path / "x.db")
    os.mkfifo(tmp_path / "fifo.db")  # SQLite said "disk I/O error" and left the lock file
    with pytest.raises(StoreError, match=r"fifo\.db: not a regular file"):
        Store(tmp_path / "fifo.db")
    assert not (tmp_path / "fifo.db.lock").exists()


def test_history_never_raises_when_the_disk_is_full(tmp_path: Path) -> None:
    h = History(tmp_path / "h.jsonl")
    assert h._fh is not None
    h._fh.close()  # every write now fails, as on a dead disk
    h.record("x", a=1)
    assert h.dropped == 1
    h.record("y", nested=json.loads("[" * 200 + "]" * 200))  # deep input: bounded copy
    assert h.dropped == 2


def test_rpc_garbage_is_a_bad_response_not_a_crash(tmp_path: Path) -> None:
    """The HTTP JSON-RPC client: HTML with 200, nested JSON, a truncated body."""
    import aiohttp

    from monitor.errors import BadResponse
    from monitor.jsonrpc_client import JsonRpcHttpClient

    async def go() -> None:
        async with HostileNode() as node:
            answers = [Raw("<html>oops</html>"), Raw(deep(50_000)), Raw('{"jsonrpc":"2.0","id'),
                       Raw(json.dumps({"jsonrpc": "2.0", "id": 12345, "result": "0x1"}))]
            node.rpc["eth_blockNumber"] = lambda p: answers.pop(0)
            async with aiohttp.ClientSession() as session:
                client = JsonRpcHttpClient(node.rpc_url, session, max_retries=0)
                for _ in range(4):
                    with pytest.raises(BadResponse):
                        await client.call("eth_blockNumber", [])
    asyncio.run(go())


# -- a reorg whose removals were lost (crash) is retracted after the restart -----------------

def test_trades_reorged_away_while_the_monitor_was_down_are_retracted_on_restart(
        tmp_path: Path) -> None:
    live = order_filled(block=105, tx=9)  # delivered live, above the cursor

    async def go() -> None:
        async with HostileNode() as node:
            await first_run_with_a_live_105(node, tmp_path, live, cursor_past=False)
            # while the monitor is down, block 105 is replaced: the trade is gone
            node.logs.clear()
            replace_block(node, 105)
            node.subscribed.clear()
            node.subs.clear()

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(107)
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted")
                assert mon.shards[0].counters["orphans_retracted"] == 1
            await run_monitor(node, tmp_path, second)
    asyncio.run(go())
    retracted = history_rows(tmp_path, "retracted")
    assert [r["trade_id"] for r in retracted] == [f"{live['transactionHash']}:0"]


def test_a_reorg_below_the_cursor_while_down_is_retracted_on_a_quiet_restart(
        tmp_path: Path) -> None:
    """The crash loop's phantoms: a trade delivered live at 105, the cursor then moved past
    it (backfill to 109, storing no hash for 105), the monitor killed, block 105 replaced.
    The restart sees no ``newHeads`` at all (the chain is quiet, or the subscription dead
    from the start). The monitor must still learn the head over HTTP, check the blocks
    it delivered from - not only the stored cursor block - and retract the orphan."""
    live = order_filled(block=105, tx=9)

    async def go() -> None:
        async with HostileNode() as node:
            await first_run_with_a_live_105(node, tmp_path, live)
            node.logs.clear()
            replace_block(node, 105)
            node.subscribed.clear()
            node.subs.clear()

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                # no new head is ever sent
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted")
            await run_monitor(node, tmp_path, second)
    asyncio.run(go())
    retracted = history_rows(tmp_path, "retracted")
    assert [r["trade_id"] for r in retracted] == [f"{live['transactionHash']}:0"]


def test_a_stale_stored_hash_is_replaced_once_its_range_is_re_checked(
        tmp_path: Path) -> None:
    """The crash loop's cursor rewinds (CI, 20:08Z): the state DB kept block 105's hash from
    before a reorg that the monitor learnt of only at a restart. The restart re-checked
    from 105 and fixed the trades, but kept the stale hash, so every later check (each
    reconnect) found it again and rewound the cursor to 104, with a longer backfill each
    time. Once the range is re-checked, the stored hash is the node's."""
    from monitor.store import Store
    seed = Store(tmp_path / "state.db")
    seed.set_cursors([WALLET], 109, None, "websocket")
    seed.save_blocks({105: "0x" + "dd" * 32})
    seed.close()
    seen: list[int] = []

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 110

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(110)
                await until(lambda: mon.store is not None
                            and mon.store.blocks().get(105) == header(105)["hash"],
                            "the stored hash of 105 is the node's")
                shard = mon.shards[0]
                real = shard._fix_range

                async def spy(fork: int, head: int, **kw: Any) -> bool:
                    seen.append(fork)
                    return await real(fork, head, **kw)
                shard._fix_range = spy  # type: ignore[method-assign]
                await shard._verify_restart_cursor()  # as the next reconnect does
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())
    assert seen == []  # nothing left to re-check


def test_a_reorg_while_the_socket_was_down_is_found_after_the_reconnect(
        tmp_path: Path) -> None:
    """The simulated week's one phantom: a trade delivered by the HTTP backfill, its block
    reorged away while the WebSocket was down (the removal went to nobody), and the new
    heads after the reconnect chain on cleanly. The reconnect re-checks the blocks the
    monitor delivered from, as a restart does, and retracts the orphan."""
    live = order_filled(block=105, tx=9)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(live)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await backfill_block_105(node, mon, sink)
                node.logs.clear()  # block 105 replaced while the socket is down
                replace_block(node, 105)
                await drop_and_resubscribe(node)
                node.head = 111
                await node.new_head(111)
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted")
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())
    retracted = history_rows(tmp_path, "retracted")
    assert [r["trade_id"] for r in retracted] == [f"{live['transactionHash']}:0"]


def test_an_orphan_below_a_later_delivery_is_still_found_at_the_reconnect(
        tmp_path: Path) -> None:
    """The simulated week's two phantoms (seed 1, t = 257,797 s): trades backfilled while
    the subscription lagged, their block reorged away with the removal sent to nobody, and
    the backfill then delivered a trade of the new chain above them before the reconnect
    re-checked. The re-check went from the highest block it had a claim on down and stopped
    at the first that matched the node, so the orphan below was never looked at. A match
    says nothing about a delivery made before the reorg: every block that holds a standing
    delivery is checked."""
    orphan = order_filled(block=105, tx=9)
    later = order_filled(block=112, tx=10)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(orphan)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await backfill_block_105(node, mon, sink)
                node.logs[:] = [later]  # block 105 replaced, its removal lost
                replace_block(node, 105)
                node.head = 115
                await node.new_head(115)  # another gap: the backfill delivers block 112
                await until(lambda: len(sink.events) == 2 and cursor_at_least(mon, 114),
                            "the later trade backfilled")
                await drop_and_resubscribe(node)
                await node.new_head(116)
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted")
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())
    retracted = history_rows(tmp_path, "retracted")
    assert [r["trade_id"] for r in retracted] == [f"{orphan['transactionHash']}:0"]


def _restart_check_after_a_reorg_while_down(tmp: Path, *, refuse_batches: bool = False,
                                            **extra: Any) -> tuple[list[Any], list[str]]:
    """35 trades backfilled in blocks 101..135, the monitor stopped, block 120 replaced
    while it was down; the restart check finds it. The HTTP bodies that asked for blocks
    during the second run, and the trades it retracted."""
    trades = [order_filled(block=n, tx=n) for n in range(101, 136)]
    asked: list[Any] = []

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.extend(trades)

            async def first(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.head = 140
                await node.new_head(140)
                await until(lambda: len(sink.events) == len(trades)
                            and cursor_at_least(mon, 139), "35 trades backfilled")
            await run_monitor(node, tmp, first, **extra)
            node.logs[:] = [t for t in trades if t["blockNumber"] != hex(120)]
            replace_block(node, 120)
            node.subscribed.clear()
            node.subs.clear()
            node.refuse_batches = refuse_batches
            before = len(node.requests)

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted")
            await run_monitor(node, tmp, second, **extra)
            asked.extend(b for b in node.requests[before:] if "eth_getBlockByNumber" in str(b))
    asyncio.run(go())
    return asked, [r["trade_id"] for r in history_rows(tmp, "retracted")]


def _blocks_asked(bodies: list[Any]) -> list[int]:
    calls = [c for b in bodies for c in (b if isinstance(b, list) else [b])]
    return sorted(int(c["params"][0], 16) for c in calls if c["method"] == "eth_getBlockByNumber")


def test_the_restart_check_asks_its_blocks_in_batches_and_finds_the_same_orphan(
        tmp_path: Path) -> None:
    """A restart (and every reconnect) checks each block it delivered from against the
    node: 35 blocks were 35 HTTP round trips one after the other (~50 a reconnect in the
    soak: seconds on a real provider). They go as JSON-RPC batches of up to
    ``rpc_batch_size`` now: the same blocks asked, the same orphan retracted, in 3
    requests (the highest block alone, then the delivered ones below it, 20 a batch).
    With ``rpc_batch_size = 1``, or against a node that refuses batches (one error object
    a batch: halved until one call at a time), the same blocks and the same retraction."""
    orphan = [f"{order_filled(block=120, tx=120)['transactionHash']}:0"]
    batched, retracted = _restart_check_after_a_reorg_while_down(tmp_path / "batched")
    single, retracted_single = _restart_check_after_a_reorg_while_down(
        tmp_path / "single", rpc_batch_size=1)
    refused, retracted_refused = _restart_check_after_a_reorg_while_down(
        tmp_path / "refused", refuse_batches=True)
    assert retracted == retracted_single == retracted_refused == orphan
    assert len(_blocks_asked(single)) >= 35 and len(single) == len(_blocks_asked(single))
    assert _blocks_asked(batched) == _blocks_asked(single)
    assert len(batched) <= 4 and any(isinstance(b, list) and len(b) == 20 for b in batched)
    # each refused batch is asked again in halves, down to one call at a time for good
    assert [len(b) for b in refused if isinstance(b, list)] == [20, 10, 5, 2]
    assert _blocks_asked([b for b in refused if not isinstance(b, list)]) \
        == _blocks_asked(single)


def test_a_trade_delivered_live_during_a_reorg_re_check_is_not_retracted(
        tmp_path: Path) -> None:
    """The bot-integration test's lost trades: a reorg's re-check fetched the logs from the
    fork up to the head it knew, then retracted every standing trade from the fork up,
    including those the live feed delivered from newer blocks while its eth_getLogs was
    in flight. They came back with the next sync, except the last block's, which no sync
    reached once the chain stopped: retracted for good. Trades above the fetched range are
    judged by their block's hash instead."""
    live = order_filled(block=102, tx=7)

    async def go() -> None:
        async with HostileNode() as node:
            release = asyncio.Event()
            asked: list[tuple[int, int]] = []

            get_logs = held_get_logs(node, release, asked, lambda _a, b: b == 101)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                await node.new_head(101)
                replace_block(node, 101)  # a reorg of block 101, seen as a new head 101
                node.rpc["eth_getLogs"] = get_logs
                await node.notify("newHeads", dict(header(101), hash="0x" + "ee" * 32))
                await until(lambda: (100, 101) in asked or (101, 101) in asked,
                            "the re-check's eth_getLogs in flight")
                # meanwhile the chain goes on: head 102 and its trade, delivered live
                node.logs.append(live)
                await node.new_head(102)
                await node.notify("logs", live)
                await until(lambda: trade_ids(sink) == [f"{live['transactionHash']}:0"],
                            "the live trade")
                release.set()
                await until(lambda: mon.shards[0].counters["reorgs"] == 1, "re-checked")
                await node.new_head(103)
                await until(lambda: cursor_at_least(mon, 102), "synced past 102")
            await run_monitor(node, tmp_path, body, speed=1.0)
    asyncio.run(go())
    assert history_rows(tmp_path, "retracted") == []


def test_an_orphan_above_the_new_head_is_retracted_by_its_block_hash(tmp_path: Path) -> None:
    """The other side of the fix above: a reorg to a chain whose new head (101) is below a
    block the monitor delivered from (102). That trade is above the re-check's fetched
    range; the node now has another block 102, so it is retracted by hash."""
    orphan = order_filled(block=102, tx=8)

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                await node.new_head(101)
                await node.new_head(102)
                await node.notify("logs", orphan)
                await until(lambda: len(trade_ids(sink)) == 1, "the live trade")
                other = "0x" + "ee" * 32  # blocks 101 and 102 replaced; the new head is 101
                node.rpc["eth_getBlockByNumber"] = lambda p: dict(
                    header(int(p[0], 16)), hash=other) if int(p[0], 16) in (101, 102) \
                    else header(int(p[0], 16))
                await node.notify("newHeads", dict(header(101), hash=other))
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted")
            await run_monitor(node, tmp_path, body, speed=1.0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [
        f"{orphan['transactionHash']}:0"]


def test_a_halted_chain_s_last_block_is_synced_and_its_lost_trade_delivered(
        tmp_path: Path) -> None:
    """A sync stops at head - 1 (a provider's HTTP node may not have the head's logs yet).
    The last block before a halt (or the end of a replay) then waited for the chain to move
    again when its notification was lost: the bot-integration test's never-copied
    trades. Once the probes see the node's head unmoved for two block intervals, a sync
    covers the head block too."""
    lost = order_filled(block=100, tx=5)  # in the head block; its notification never sent

    async def go() -> None:
        async with HostileNode() as node:
            node.logs.append(lost)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)  # head 100, then nothing: the chain stopped
                await until(lambda: trade_ids(sink) == [f"{lost['transactionHash']}:0"],
                            "the head block's trade synced")
                await until(lambda: cursor_at_least(mon, 100), "the cursor at the head")
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())


def test_a_feed_behind_a_halted_node_is_reconnected_once_not_in_a_loop(
        tmp_path: Path) -> None:
    """The node's head 110, the feed's 100, and the chain stopped: the probe reconnects
    once (a dead subscription), backfills; a new subscription gets no head either, and the
    next probes found the same lag and reconnected again every 1.5 block intervals (an
    outage alert each time, for ever). A reconnect for lag is now made only when the
    node has moved since the last one."""

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.head = 110  # the node is ahead; no head notification ever comes
                await until(lambda: mon.shards[0].counters["head_lag_reconnects"] >= 1,
                            "the lag reconnect")
                await until(lambda: cursor_at_least(mon, 109), "backfilled")
                probes = sum(1 for r in node.requests if isinstance(r, dict)
                             and r.get("method") == "eth_blockNumber")
                await until(lambda: sum(1 for r in node.requests if isinstance(r, dict)
                                        and r.get("method") == "eth_blockNumber")
                            >= probes + 8, "eight more probes")
                assert mon.shards[0].counters["head_lag_reconnects"] == 1
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())


def test_a_node_answering_another_block_retracts_nothing_until_it_answers_right(
        tmp_path: Path) -> None:
    """A proxy that mixes up a batch's answers (block n+1 for block n), or a block without
    a proper hash: the restart check compares no such hash with a stored one (a mismatch
    re-checks and retracts); the check fails, is counted and retried, and finds the real
    orphan once the node answers right."""
    live = order_filled(block=105, tx=9)
    errors: list[int] = []

    async def go() -> None:
        async with HostileNode() as node:
            await first_run_with_a_live_105(node, tmp_path, live)
            node.logs.clear()
            answers = iter([lambda n: header(n + 1), lambda n: dict(header(n), hash="0x12")])
            wrong = next(answers)
            node.rpc["eth_getBlockByNumber"] = lambda p: wrong(int(p[0], 16))
            node.subscribed.clear()
            node.subs.clear()

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                nonlocal wrong
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                shard = mon.shards[0]
                await until(lambda: shard.counters["sync_errors"] >= 1, "a failed check")
                wrong = next(answers)
                await until(lambda: shard.counters["sync_errors"] >= 2, "another failed check")
                errors.append(shard.counters["sync_errors"])
                assert not any(e.kind == "retraction" for e in sink.events)
                replace_block(node, 105)  # the node answers right: 105 was replaced
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted")
            await run_monitor(node, tmp_path, second)
    asyncio.run(go())
    assert errors and errors[0] >= 2
    retracted = history_rows(tmp_path, "retracted")
    assert [r["trade_id"] for r in retracted] == [f"{live['transactionHash']}:0"]


def test_the_stop_row_bills_a_run_only_its_own_cpu(tmp_path: Path) -> None:
    """The harness's virtual-time workers run seed after seed in one process: the stop
    row's ``cpu_s`` is the CPU from this monitor's start to its stop, not the process's
    (seeds 3 and 4 of a 4-seed day were billed ~140 s against ~66 s for seeds 1 and 2)."""
    import resource
    import time

    async def go() -> float:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
            (tmp_path / "a").mkdir()
            (tmp_path / "b").mkdir()
            await run_monitor(node, tmp_path / "a", body)
            t0 = time.process_time()
            while time.process_time() - t0 < 0.5:  # another run's CPU in this process
                pass
            node.subscribed.clear()
            node.subs.clear()
            await run_monitor(node, tmp_path / "b", body)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime
    process = asyncio.run(go())
    first, second = (history_rows(tmp_path / d, "stop")[0]["cpu_s"] for d in ("a", "b"))
    assert first > 0 and 0 < second <= process - first - 0.45


def test_a_batch_that_times_out_is_halved_not_retried_for_ever() -> None:
    """A node too slow for 8 calls in one request: the same batch timed out at every try
    (the restart check of a busy monitor asks for up to 128 blocks at once, and never
    finished: the 20-kill crash loop's phantoms under load). It is halved as a refused
    batch is, until a batch passes; the results are the same, in order."""
    import aiohttp

    from monitor.clock import SystemClock
    from monitor.history import NullHistory
    from monitor.wallet_monitor import _Rpc

    many = [[hex(n), False] for n in range(1, 9)]

    async def go() -> None:
        async with HostileNode() as node, aiohttp.ClientSession() as session:
            slow = asyncio.Event()
            node.batch_hold = (2, slow)  # more than 2 calls in a request: no answer
            rpc = _Rpc(node.rpc_url, session, history=NullHistory(), clock=SystemClock(),
                       timeout=0.3, speed=1.0, rate_per_s=1000.0, batch_size=8)
            try:
                got = await asyncio.wait_for(rpc.call_many("eth_getBlockByNumber", many),
                                             TIMEOUT)
            finally:
                slow.set()
            assert [b["number"] for b in got] == [hex(n) for n in range(1, 9)]
            assert rpc.batch_size == 2 and rpc.calls["eth_getBlockByNumber"] == 8
    asyncio.run(go())


def test_call_many_batches_in_order_and_tells_garbage_from_a_refusal() -> None:
    """``_Rpc.call_many``: results in the order asked, ``batch_size`` calls a request; an
    unreadable answer (HTML with status 200) fails the call as it would a single one and
    keeps the batches; a node that refuses batches is asked one call at a time from then
    on, with the same results."""
    import aiohttp

    from monitor.clock import SystemClock
    from monitor.errors import BadResponse
    from monitor.history import NullHistory
    from monitor.wallet_monitor import _Rpc

    params = [[hex(n), False] for n in range(1, 8)]

    async def go() -> None:
        async with HostileNode() as node, aiohttp.ClientSession() as session:
            rpc = _Rpc(node.rpc_url, session, history=NullHistory(), clock=SystemClock(),
                       timeout=5.0, speed=100.0, rate_per_s=1000.0, batch_size=3)
            got = await rpc.call_many("eth_getBlockByNumber", params)
            assert [b["number"] for b in got] == [hex(n) for n in range(1, 8)]
            assert [len(b) if isinstance(b, list) else 1 for b in node.requests] == [3, 3, 1]
            assert rpc.calls["eth_getBlockByNumber"] == 7
            node.rpc["eth_getBlockByNumber"] = lambda p: Raw("<html>502 Bad Gateway</html>")
            with pytest.raises(BadResponse):
                await rpc.call_many("eth_getBlockByNumber", params)
            assert rpc.batch_size == 3 and rpc.failures == 1
            del node.rpc["eth_getBlockByNumber"]
            node.batch_limit = 2  # a provider's limit below ours: halved until it passes
            node.requests.clear()
            many = [[hex(n), False] for n in range(1, 12)]
            assert [b["number"] for b in await rpc.call_many("eth_getBlockByNumber", many)] \
                == [hex(n) for n in range(1, 12)]
            # 7, then 3 sent in the unreadable batch, then 11
            assert rpc.batch_size == 1 and rpc.calls["eth_getBlockByNumber"] == 7 + 3 + 11
            assert [len(b) if isinstance(b, list) else 1 for b in node.requests] == \
                [3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]  # 3 refused: 3 // 2 = 1
            rpc.batch_size = 8
            node.requests.clear()
            assert await rpc.call_many("eth_getBlockByNumber", many[:8]) == \
                await rpc.call_many("eth_getBlockByNumber", many[:8])
            assert rpc.batch_size == 2  # 8 refused, 4 refused, 2 passes and stays
            assert [len(b) if isinstance(b, list) else 1 for b in node.requests] == \
                [8, 4, 2, 2, 2, 2, 2, 2, 2, 2]
            node.refuse_batches = True
            node.requests.clear()
            assert await rpc.call_many("eth_getBlockByNumber", params) == got
            assert rpc.batch_size == 1
            assert [isinstance(b, list) for b in node.requests] == [True] + [False] * 7
    asyncio.run(go())


def test_a_sync_writes_its_cursor_and_the_tracked_hashes_in_one_transaction(
        tmp_path: Path) -> None:
    """A backfill's last range moved the cursors in one fsync'd transaction and stored the
    feed's block hashes in another (~15 % of a soak's commits). Both go in one now: the
    cursor is never stored without the hashes the restart check reads beside it."""
    writes: list[tuple[int, dict[int, str] | None]] = []
    separate: list[dict[int, str]] = []

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                store = mon.store
                assert store is not None
                set_cursors, save_blocks = store.set_cursors, store.save_blocks

                def spy_cursors(*a: Any, **k: Any) -> None:
                    writes.append((a[1], k.get("blocks")))
                    set_cursors(*a, **k)

                def spy_blocks(hashes: dict[int, str]) -> None:
                    separate.append(hashes)
                    save_blocks(hashes)
                store.set_cursors = spy_cursors  # type: ignore[method-assign]
                store.save_blocks = spy_blocks  # type: ignore[method-assign]
                node.head = 110
                await node.new_head(110)
                await until(lambda: cursor_at_least(mon, 109), "the gap backfilled")
                assert store.blocks().get(100) == header(100)["hash"]
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())
    # the first sync may store its own start cursor (99, nothing tracked yet) after the
    # spies are in: that write has no hashes to carry; the backfill's has them
    assert [w for w in writes if w[0] > 99] == [(109, {100: header(100)["hash"]})]
    assert all(not hashes for block, hashes in writes if block <= 99), writes
    assert separate == []


def test_a_log_range_the_node_cannot_answer_in_time_is_asked_again_in_halves(
        tmp_path: Path) -> None:
    """Busy wallets put thousands of logs in one backfill range; a node under load then
    answers too late for the timeout, every retry alike. The range is split instead (as
    for "range too large"), so the backfill makes progress rather than failing forever."""
    trades = [order_filled(block=n, tx=n) for n in (101, 150, 199)]

    def get_logs(params: list[Any]) -> Any:
        a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        found = [lg for lg in trades if a <= int(lg["blockNumber"], 16) <= b]
        return Slow(1.5, found) if b - a > 60 else found

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 210
            node.rpc["eth_getLogs"] = get_logs

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(210)
                await until(lambda: len(sink.events) == 3, "the three backfilled trades")
                assert mon.shards[0].counters["getlogs_splits"] >= 1
            await run_monitor(node, tmp_path, body, rpc_timeout=2.0, start_block=100)
    asyncio.run(go())


def test_tls_verification_is_on_unless_turned_off_and_turning_it_off_warns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from monitor.websocket_manager import insecure_factory

    async def go(**extra: Any) -> WalletMonitor:
        async with HostileNode() as node:
            mon = WalletMonitor(settings(node, tmp_path, mode="polling", **extra),
                                sink=MemorySink())
            await mon.start()
            await mon.stop()
            return mon
    with caplog.at_level("WARNING", logger="monitor.wallets"):
        asyncio.run(go())
    assert not [r for r in caplog.records if "tls_verify" in r.getMessage()]
    with caplog.at_level("WARNING", logger="monitor.wallets"):
        asyncio.run(go(tls_verify=False))
    assert [r for r in caplog.records if "NOT checked" in r.getMessage()]
    s = settings(HostileNode(), tmp_path)
    assert s.tls_verify is True and callable(insecure_factory)
