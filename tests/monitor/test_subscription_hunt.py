"""The subscription lifecycle against real providers' behaviours, each defect found as a
regression test (a hostile node on loopback, or a scripted connection).

The monitor runs in-process against :class:`hostile_node.HostileNode` as in
test_reliability.py; the manager alone runs against a scripted connection or a small
``websockets`` server. No fixed sleeps as synchronisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from http import HTTPStatus
from pathlib import Path
from typing import Any

from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedOK

from monitor.clock import SystemClock
from monitor.config import load_settings
from monitor.connection import ConnState, ReconnectPolicy, WsSettings
from monitor.history import History, NullHistory
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor, WsShard
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 30.0


def notification(sid: str, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                       "params": {"subscription": sid, "result": result}})


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
                await node.new_head(101)  # first head: the sync goes to 100
                await until(lambda: cursor_at_least(mon, 100), "first sync")
                for n in (102, 103):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 102), "cursor moved by heads")
                await until(lambda: len(sink.events) == 1, "the early trade", timeout=5.0)
                assert mon.shards[0].manager.bad_frames["unknown_subscription"] == 0
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())


# -- a handshake refused with 429 and Retry-After ----------------------------------------

class RateLimitedNode:
    """A ``websockets`` node that answers its first ``refuse`` handshakes with 429 and a
    ``Retry-After``, then accepts and answers ``eth_subscribe``; records handshake times."""

    def __init__(self, refuse: int, retry_after: str) -> None:
        self.refuse = refuse
        self.retry_after = retry_after
        self.handshakes: list[float] = []
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    def _process_request(self, conn: Any, request: Any) -> Any:
        self.handshakes.append(asyncio.get_running_loop().time())
        if len(self.handshakes) <= self.refuse:
            response = conn.respond(HTTPStatus.TOO_MANY_REQUESTS, "rate limited\n")
            response.headers["Retry-After"] = self.retry_after
            return response
        return None

    async def _handler(self, ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x1"}))

    async def __aenter__(self) -> RateLimitedNode:
        self.server = await serve(self._handler, "127.0.0.1", 0,
                                  process_request=self._process_request)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_a_429_handshake_waits_the_retry_after_the_provider_asked(tmp_path: Path) -> None:
    """A provider refusing the WebSocket upgrade with 429 says when to come back
    (``Retry-After``); the manager retried on its own backoff (here 0.05 s, 0.1 s, ...),
    each early attempt another refused request that can extend the provider's ban (the
    HTTP and explorer clients honour the header). The wait is now at least what was asked
    (capped at ``backoff_max``)."""

    async def go() -> None:
        async with RateLimitedNode(refuse=2, retry_after="1") as node:
            history = History(tmp_path / "history.jsonl")
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05,
                backoff_max=5.0, min_timeout=1.0), clock=SystemClock(), history=history)
            await mgr.subscribe(["newHeads"], lambda _r: None)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            gaps = [b - a for a, b in zip(node.handshakes, node.handshakes[1:], strict=False)]
            assert len(node.handshakes) == 3
            assert all(g >= 0.95 for g in gaps), f"retried after {gaps} s, 1 s was asked"
            assert mgr.transitions[1].cause == "handshake_429"
    asyncio.run(go())


def test_a_retry_after_lengthens_the_backoff_up_to_its_maximum() -> None:
    policy = ReconnectPolicy(WsSettings(backoff_initial=1.0, backoff_max=60.0,
                                        backoff_jitter=0.0, speed=2.0))
    assert policy.next_delay() == 0.5  # 1 s simulated at speed 2
    assert policy.next_delay(30.0) == 15.0  # asked 30 s: more than the backoff's 2 s
    assert policy.next_delay(1.0) == 2.0  # asked less than the backoff's 4 s
    assert policy.next_delay(3600.0) == 30.0  # never past backoff_max


# -- a subscribe on a live connection that is never answered -----------------------------

class ScriptedWs:
    """An in-memory connection for ``session_factory``: answers ``eth_subscribe`` with
    ids ``0x1``, ``0x2``, ... except the ones ``unanswered`` says (by call number, counted
    over every connection of the factory)."""

    def __init__(self, calls: list[list[Any]], unanswered: set[int]) -> None:
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.calls = calls
        self.unanswered = unanswered
        self.closed = asyncio.Event()

    async def send(self, frame: str) -> None:
        req = json.loads(frame)
        if req["method"] != "eth_subscribe":
            return
        self.calls.append(req["params"])
        n = len(self.calls)
        if n not in self.unanswered:
            self.frames.put_nowait(json.dumps({"jsonrpc": "2.0", "id": req["id"],
                                               "result": hex(n)}))

    async def recv(self) -> str:
        get = asyncio.ensure_future(self.frames.get())
        closed = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if get.done():
            return get.result()
        get.cancel()
        raise ConnectionClosedOK(None, None)

    async def ping(self) -> asyncio.Future[float]:
        pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        pong.set_result(0.0)
        return pong

    async def close(self) -> None:
        self.closed.set()

    def push(self, node_id: str, result: Any) -> None:
        self.frames.put_nowait(notification(node_id, result))


def test_a_subscribe_unanswered_on_a_live_connection_is_made_on_a_new_one(
        tmp_path: Path) -> None:
    """``subscribe`` while CONNECTED whose answer never comes raised nothing and said the
    subscription "will be made on reconnect" - but nothing reconnected: the connection
    stayed up (heads flowing, pings answered) and the subscription never existed while
    ``subscriptions`` listed it. Now the connection is re-made, and the subscription with
    it."""

    async def go() -> None:
        calls: list[list[Any]] = []
        conns: list[ScriptedWs] = []

        async def factory(url: str, **_kw: Any) -> ScriptedWs:
            conns.append(ScriptedWs(calls, unanswered={2}))
            return conns[-1]

        history = History(tmp_path / "history.jsonl")
        mgr = WebSocketManager("ws://scripted/", settings=WsSettings(
            speed=100.0, staleness_blocks=0, seed=1, min_timeout=0.3, open_timeout=10.0),
            clock=SystemClock(), history=history, session_factory=factory)
        got: list[Any] = []
        await mgr.subscribe(["newHeads"], lambda _r: None)
        await mgr.start()
        try:
            assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
            stable = await mgr.subscribe(["logs", {}], got.append)  # call 2: no answer
            assert stable in mgr.subscriptions
            assert await mgr.wait_until(lambda: len(conns) == 2 and len(calls) >= 4
                                        and mgr.state is ConnState.CONNECTED, 5.0), \
                f"no new connection made the subscription: {len(conns)} connection(s)"
            conns[-1].push(hex(4), {"logIndex": "0x0"})
            assert await mgr.wait_until(lambda: got == [{"logIndex": "0x0"}], TIMEOUT)
        finally:
            await mgr.stop()
            history.close()
    asyncio.run(go())


# -- a logs subscription that went silent while heads flow -------------------------------

def test_a_logs_subscription_that_misses_trades_while_heads_flow_is_re_made(
        tmp_path: Path) -> None:
    """The logs subscription stopped delivering (a provider's failover, a subscription
    dropped server-side) while heads and pings went on: the feed looked healthy, the
    reconcile sweep found each trade ``reconcile_interval`` late - and nothing ever re-made
    the subscription, so every later trade came that late too, for as long as the socket
    stayed up, with no alert. A sweep that finds a trade the feed should have sent (a block
    of this connection, two blocks behind its head, nothing queued or dropped live) now
    re-makes the connection."""
    missed = order_filled(block=102, tx=7)
    later = order_filled(block=107, tx=8)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs.append(missed)  # on the chain; the subscription says nothing
                for n in range(101, 106):
                    await node.new_head(n)
                await until(lambda: len(sink.events) == 1, "the missed trade, by a sweep")
                assert sink.events[0].source == "backfill"
                manager = mon.shards[0].manager
                await until(lambda: manager.metrics.connects >= 2
                            and manager.state is ConnState.CONNECTED,
                            "the subscription re-made", timeout=5.0)
                assert mon.shards[0].counters["live_missed"] == 1
                await node.new_head(106)
                await node.notify("logs", later)
                await until(lambda: len(sink.events) == 2, "a later trade, live")
                assert sink.events[1].source == "ws"
            # no other cause of a reconnect within the test: heads stale only after 200 s
            await run_monitor(node, tmp_path, body, reconcile_interval=4.0,
                              staleness_blocks=100)
    asyncio.run(go())


def test_a_lossy_logs_subscription_that_still_delivers_is_kept(tmp_path: Path) -> None:
    """A subscription that lost one trade but delivers later ones is alive: the sweep
    fetches what it lost, and no reconnect (a backoff, an alert, a re-check) is made for
    it."""
    lost = order_filled(block=102, tx=7)
    later = order_filled(block=103, tx=8)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs += [lost, later]
                for n in range(101, 107):
                    node.head = n
                    if n == 103:
                        await node.notify("logs", later)
                    await node.new_head(n)
                await until(lambda: len(sink.events) == 2, "the lost trade, by a sweep")
                await until(lambda: cursor_at_least(mon, 105), "a sweep past both")
                assert [e.source for e in sink.events] == ["ws", "backfill"]
                shard = mon.shards[0]
                assert shard.manager.metrics.connects == 1
                assert shard.counters["live_missed"] == 0
            await run_monitor(node, tmp_path, body, reconcile_interval=4.0,
                              staleness_blocks=100)
    asyncio.run(go())


# -- the reconnect jitter of one user's monitor is not every user's -----------------------

def _shard_delays(url: str, index: int = 0) -> list[float]:
    s = load_settings({"websocket_url": url, "rpc_url": "https://rpc.example/v2/k",
                       "wallets": [WALLET]}, environ={})
    shard = WsShard(index, [WALLET], settings=s, store=None, pipeline=None,  # type: ignore[arg-type]
                    rpc=None, explorer=None, history=NullHistory(),  # type: ignore[arg-type]
                    clock=SystemClock(), alerts=None, committed={})
    return [shard.manager._policy.next_delay() for _ in range(6)]


def test_two_users_monitors_do_not_reconnect_in_lockstep() -> None:
    """The jitter is there so clients dropped together (a provider's outage drops every
    socket at once) do not come back together. It was seeded by the shard's index only:
    every user's shard 0 drew the same delays, so every monitor on that provider retried
    at the same instants. It is seeded by the endpoint (host and path: a provider's key is
    in the path) and the index, as the HTTP client's is: still the same for one endpoint
    run after run (virtual runs stay byte-identical)."""
    one = _shard_delays("wss://polygon-mainnet.g.alchemy.com/v2/key-of-one-user")
    other = _shard_delays("wss://polygon-mainnet.g.alchemy.com/v2/key-of-another")
    assert one != other
    assert one == _shard_delays("wss://polygon-mainnet.g.alchemy.com/v2/key-of-one-user")
    assert _shard_delays("wss://h.example/", 0) != _shard_delays("wss://h.example/", 1)


def test_after_a_silent_logs_subscription_every_head_fetches_its_block(
        tmp_path: Path) -> None:
    """A provider whose logs pipeline is down (not one subscription dropped): the re-made
    subscription is silent too. Each trade then waited for the next sweep,
    ``reconcile_interval`` (30 s by default) late, for as long as it lasted (soak day with
    a logs-only silence of 3 minutes an hour: p95 5.1 -> 14.8 s). Once a sweep has found
    trades the subscription should have sent, every head now fetches its block by
    eth_getLogs until a notification comes (at most LOGS_DISTRUST_BLOCKS)."""
    missed = order_filled(block=101, tx=7)
    later = order_filled(block=108, tx=8)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.logs.append(missed)  # on the chain; the subscription says nothing
                for n in range(101, 104):
                    await node.new_head(n)
                await node.new_head(106)  # a gap: its sync finds the missed trade
                await until(lambda: len(sink.events) == 1, "the missed trade, by a sync")
                manager = shard.manager
                await until(lambda: manager.metrics.connects >= 2
                            and manager.state is ConnState.CONNECTED,
                            "the subscription re-made", timeout=5.0)
                assert shard.counters["live_missed"] == 1
                await node.new_head(107)  # the new connection's first head: its sync
                await until(lambda: cursor_at_least(mon, 106) and shard._verified_restart,
                            "synced to 106, the reconnect's check done")
                syncs = shard.counters["synced_blocks"]
                node.logs.append(later)  # the new subscription is silent as well
                # the chain goes on at its pace (a block interval: 0.1 s at speed 20), so no
                # stalled-chain check fetches the last block either
                for n in range(108, 160):
                    await node.new_head(n)
                    if len(sink.events) == 2:
                        break
                    await asyncio.sleep(0.1)  # the chain's pace, not a wait for the monitor
                assert len(sink.events) == 2, "the later trade never came (no sweep for an hour)"
                assert sink.events[1].source == "backfill"
                assert shard.counters["logs_distrust_syncs"] >= 1
                assert shard.counters["synced_blocks"] > syncs
            # no sweep within the test; heads stale only after 200 s
            await run_monitor(node, tmp_path, body, reconcile_interval=3600.0,
                              staleness_blocks=100)
    asyncio.run(go())
