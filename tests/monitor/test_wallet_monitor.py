"""WsShard logic without sockets: backfill chunking and splitting, reorg re-check, cursors,
rollout split. The JSON-RPC HTTP client is replaced by a scripted fake."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from monitor_helpers import OTHER, WALLET, order_filled

from monitor.clock import ManualClock
from monitor.config import load_settings
from monitor.cores import assign_source
from monitor.errors import RpcError
from monitor.history import NullHistory
from monitor.pipeline import Pipeline
from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WsShard, split_wallets


def h(n: int, fork: str = "") -> str:
    return "0x" + (fork + f"{n:x}").rjust(64, "0")


class FakeRpc:
    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []
        self.hashes: dict[int, str] = {}
        self.ranges: list[tuple[int, int]] = []
        self.max_range: int | None = None
        self.node_head = 10**6  # what eth_blockNumber answers

    async def call(self, method: str, params: list[Any]) -> Any:
        if method == "eth_blockNumber":
            return hex(self.node_head)
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            return {"number": params[0], "hash": self.hashes.get(n, h(n))}
        assert method == "eth_getLogs"
        f = params[0]
        a, b = int(f["fromBlock"], 16), int(f["toBlock"], 16)
        if self.max_range is not None and b - a + 1 > self.max_range:
            raise RpcError(-32005, "query returned more than 10000 results")
        self.ranges.append((a, b))
        return [lg for lg in self.logs if a <= int(lg["blockNumber"], 16) <= b]

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """As ``_Rpc.batch``: the calls in order, a node's error in its call's place."""
        out: list[Any] = []
        for method, params in calls:
            try:
                out.append(await self.call(method, params))
            except RpcError as exc:
                out.append(exc)
        return out


def make_shard(tmp: Path, wallets: list[str] | None = None, firehose: bool = False,
               **settings: Any) -> tuple[WsShard, FakeRpc, MemorySink, Store]:
    s = load_settings({"websocket_url": "ws://127.0.0.1:1/", "rpc_url": "http://127.0.0.1:1/",
                       "wallets": wallets or [WALLET, OTHER], **settings}, environ={})
    store = Store(tmp / "s.db")
    sink = MemorySink()
    pipe = Pipeline(store, sink, wallets=s.wallets)
    rpc = FakeRpc()
    shard = WsShard(0, list(s.wallets), settings=s, store=store, pipeline=pipe,
                    rpc=rpc, explorer=None,  # type: ignore[arg-type]
                    history=NullHistory(), clock=ManualClock(), alerts=None,
                    firehose=firehose)
    return shard, rpc, sink, store


def test_filter_covers_both_versions_all_exchanges_and_the_wallets(tmp_path: Path) -> None:
    shard, *_ = make_shard(tmp_path)
    f = shard.log_filter()
    assert len(f["address"]) == 4 and len(f["topics"][0]) == 2 and f["topics"][1] is None
    assert len(f["topics"][2]) == 2 and f["topics"][2][0].endswith(WALLET[2:])


def test_sync_backfills_any_gap_in_chunks_and_splits_oversized_answers(tmp_path: Path) -> None:
    shard, rpc, sink, store = make_shard(tmp_path, backfill_chunk_blocks=100, start_block=1)
    rpc.logs = [order_filled(block=b, tx=b) for b in (1, 150, 250, 349)]
    rpc.max_range = 60  # the node refuses ranges over 60 blocks: split in halves

    async def go() -> None:
        shard.head = 351
        await shard.sync()
    asyncio.run(go())
    assert [e.trade.block_number for e in sink.events if e.trade] == [1, 150, 250, 349]
    assert {e.source for e in sink.events} == {"backfill"}
    assert store.cursor(WALLET).block == 350  # head - 1
    covered = sorted(rpc.ranges)
    assert covered[0][0] == 1 and covered[-1][1] == 350
    assert all(b - a + 1 <= 60 for a, b in covered)
    assert all(covered[i][1] + 1 == covered[i + 1][0] for i in range(len(covered) - 1))


def test_a_wallet_new_to_the_shard_starts_at_start_block_not_at_the_others_cursor(
        tmp_path: Path) -> None:
    """A rollout change moves a wallet the poller never reached (no cursor) into a shard
    whose other wallet is at block 300: the sync starts at start_block for it, so its trade
    in block 120 is not skipped (seen in a loaded test run: its first block was lost)."""
    shard, rpc, sink, store = make_shard(tmp_path, start_block=100)
    store.set_cursors([WALLET], 300, None, "polling")  # OTHER has no cursor
    rpc.logs = [order_filled(block=120, tx=1, wallet=OTHER),
                order_filled(block=310, tx=2, wallet=WALLET)]

    async def go() -> None:
        shard.head = 320
        await shard.sync()
    asyncio.run(go())
    assert sorted(e.trade.block_number for e in sink.events if e.trade) == [120, 310]
    assert min(a for a, _b in rpc.ranges) == 100


def test_reorg_recheck_retracts_vanished_and_keeps_moved_once(tmp_path: Path) -> None:
    shard, rpc, sink, store = make_shard(tmp_path, start_block=100)
    stays = order_filled(block=101, tx=1, block_hash=h(101))
    moves = order_filled(block=102, tx=2, block_hash=h(102))
    vanishes = order_filled(block=102, tx=3, block_hash=h(102))

    async def go() -> None:
        for n in range(99, 104):
            shard._on_head({"number": hex(n), "hash": h(n), "parentHash": h(n - 1)})
        await shard.pipeline.on_logs([stays, moves, vanishes], "ws")
        rpc.logs = [stays, moves, vanishes]
        await shard.sync()
        assert store.cursor(WALLET).block == 102
        # the node replaces 102 and 103: `moves` is re-mined in the new 103, `vanishes` gone
        rpc.hashes = {102: h(102, "f"), 103: h(103, "f"), 104: h(104, "f")}
        rpc.logs = [stays, order_filled(block=103, tx=2, block_hash=h(103, "f"))]
        shard._on_head({"number": hex(104), "hash": h(104, "f"), "parentHash": h(103, "f")})
        assert shard._reorg_from == 103
        start, shard._reorg_from = shard._reorg_from, None
        await shard._recheck(start)
        assert store.cursor(WALLET).block == 101  # rewound below the fork
        await shard.sync()
    asyncio.run(go())
    kinds = [(e.kind, e.trade_id.split(":")[0][-1]) for e in sink.events]
    assert kinds == [("trade", "1"), ("trade", "2"), ("trade", "3"), ("retraction", "3")]
    assert shard.pipeline.dedup.get(moves["transactionHash"] + ":0").block_hash == h(103, "f")
    assert store.cursor(WALLET).block == 103


def test_rollout_split_is_stable_and_polling_mode_takes_everyone() -> None:
    wallets = [f"0x{i:040x}" for i in range(1, 200)]
    ws, poll = split_wallets(wallets, 30, True)
    assert set(ws) | set(poll) == set(wallets) and not set(ws) & set(poll)
    assert all(assign_source(w, 30) == "websocket" for w in ws)
    assert split_wallets(wallets, 30, True) == (ws, poll)
    assert split_wallets(wallets, 100, False) == ([], wallets)


def _big_shard(tmp: Path, n: int, **settings: Any) -> tuple[WsShard, FakeRpc, MemorySink,
                                                            Store]:
    """A firehose shard of ``n`` wallets (WALLET first), cursors not read yet."""
    return make_shard(tmp, [WALLET] + [f"0x{i:040x}" for i in range(1, n)], firehose=True,
                      **settings)


def test_a_sync_reads_the_stored_cursors_once_not_every_wallet_every_time(
        tmp_path: Path) -> None:
    """Issue 11: at 100,000 wallets each sync read every wallet's cursor (0.3-0.6 s, and
    one SELECT per wallet at the first sync) on the event loop, stalling live deliveries
    by more than a second. The shard's cursor is read once, then kept by its own writes."""
    shard, rpc, sink, store = _big_shard(tmp_path, 3000, start_block=100)
    reads = {"cursors": 0, "cursor": 0}
    all_cursors, one_cursor = store.cursors, store.cursor

    def counted_all() -> Any:
        reads["cursors"] += 1
        return all_cursors()

    def counted_one(w: str) -> Any:
        reads["cursor"] += 1
        return one_cursor(w)
    store.cursors, store.cursor = counted_all, counted_one  # type: ignore[method-assign]
    rpc.logs = [order_filled(block=b, tx=b) for b in (100, 120, 140)]

    async def go() -> None:
        for head in (111, 131, 151):
            shard.head = head
            await shard.sync()
            assert shard.cursor() == head - 1
    asyncio.run(go())
    assert reads == {"cursors": 1, "cursor": 0}
    assert [e.trade.block_number for e in sink.events if e.trade] == [100, 120, 140]
    assert {c.block for c in all_cursors().values()} == {150}
    assert len(all_cursors()) == 3000


def test_a_sync_lets_live_deliveries_run_between_its_slices(tmp_path: Path) -> None:
    """A sync of a big shard writes the per-wallet cursors and hands the backfill's logs to
    the pipeline in slices, with the event loop running in between (a live block waits
    for one slice, not for the whole sync); other makers' logs are dropped before
    decoding in firehose mode."""
    shard, rpc, sink, store = _big_shard(tmp_path, 5000, start_block=100)
    other = "0x" + "ab" * 20
    rpc.logs = [order_filled(block=100 + i % 10, tx=i + 1, log_index=i) for i in range(600)]
    rpc.logs += [order_filled(block=101, tx=10_000 + i, wallet=other) for i in range(50)]
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    async def go() -> None:
        shard.cursor()  # as start() does
        shard.head = 111
        t = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = turns
        await shard.sync()
        during = turns - before
        t.cancel()
        # 5000 wallets: 3 cursor slices at start and 3 at the end (2 yields each), 600 of
        # the watched wallet's logs in 3 pipeline slices (2 yields)
        assert during >= 6, during
    asyncio.run(go())
    assert len([e for e in sink.events if e.trade]) == 600
    assert shard.counters["backfill_other_wallet"] == 50
    assert shard.pipeline.counters["logs"] == 600
    assert {c.block for c in store.cursors().values()} == {110}


# -- the health loop: ticks on a grid, run only where one can act -----------------------

def test_next_tick_is_the_first_grid_tick_after_now_and_not_before_the_due_time() -> None:
    from math import inf

    from monitor.wallet_monitor import next_tick

    assert next_tick(10.0, 1.0, -inf, 10.0) == 11.0  # due at once: the next tick
    assert next_tick(10.0, 1.0, 13.2, 10.0) == 14.0  # the first tick at or after 13.2
    assert next_tick(10.0, 1.0, 14.0, 10.0) == 14.0  # a tick exactly at the due time
    assert next_tick(10.0, 1.0, 11.0, 12.5) == 13.0  # an event at 12.5: ticks 11, 12 passed
    assert next_tick(10.0, 1.0, 11.0, 12.0) == 13.0  # ...and the tick at 12 ran before it
    assert next_tick(10.0, 0.5, 10.75, 10.0) == 11.0
    assert next_tick(10.0, 1.0, inf, 10.0) == inf  # nothing due: no timer


def test_fallback_due_is_when_the_decider_would_next_act_and_never_later() -> None:
    """For every decider state and health: before the due time ``update`` changes nothing;
    at it (``-inf``: at once) it does."""
    from math import inf

    from monitor.cores import FallbackAction, FallbackDecider, FallbackState
    from monitor.wallet_monitor import fallback_due

    for state in FallbackState:
        for healthy in (True, False):
            fb = FallbackDecider(20.0)
            fb.state, fb.unhealthy_since = state, (
                100.0 if state is FallbackState.UNHEALTHY else None)
            due = fallback_due(fb, healthy)

            def acts(now: float, fb: FallbackDecider = fb, healthy: bool = healthy) -> bool:
                probe = FallbackDecider(20.0)
                probe.state, probe.unhealthy_since = fb.state, fb.unhealthy_since
                action = probe.update(healthy, now)
                return probe.state is not fb.state or action is not FallbackAction.NONE
            if due == -inf:
                assert acts(100.0), (state, healthy)
            elif due == inf:
                assert not acts(100.0) and not acts(10**9), (state, healthy)
            else:
                assert (state, healthy, due) == (FallbackState.UNHEALTHY, False, 120.0)
                assert not acts(119.99) and acts(120.0)


class _Recorder:
    """A history that keeps (clock time, event, fields)."""

    def __init__(self, clock: Any) -> None:
        self.clock, self.rows = clock, []  # type: ignore[var-annotated]

    def record(self, event: str, **fields: Any) -> None:
        self.rows.append((round(self.clock.now(), 6), event, fields))

    def close(self) -> None:
        pass


class _StubManager:
    """The connection as the health loop sees it: a state, when it opened, the hooks."""

    def __init__(self, clock: Any) -> None:
        from monitor.connection import ConnState

        self.clock, self.state, self.connected_at = clock, ConnState.CONNECTED, 0.0
        self.on_state: list[Any] = []
        self.reconnects: list[float] = []

    def set_state(self, state: Any) -> None:
        from monitor.connection import ConnState

        self.state = state
        if state is ConnState.CONNECTED:
            self.connected_at = self.clock.now()
        for cb in self.on_state:
            cb(None)

    def force_reconnect(self, cause: str) -> None:
        self.reconnects.append(round(self.clock.now(), 6))


def _health_timeline(tmp: Path, reference: bool) -> tuple[list[Any], int]:
    """Drive one shard's health through a script in virtual time: heads, a stall, a
    drop and reconnect, a node running ahead. ``reference``: tick every period, as the
    loop did before it planned its ticks."""
    import looptime

    from monitor.clock import LoopClock
    from monitor.connection import ConnState

    s = load_settings({"websocket_url": "ws://127.0.0.1:1/", "rpc_url": "http://127.0.0.1:1/",
                       "wallets": [WALLET], "fallback_after": 5}, environ={})
    events: list[Any] = []

    async def go() -> int:
        clock = LoopClock()
        hist = _Recorder(clock)
        rpc = FakeRpc()
        store = Store(tmp / f"s{reference}.db")
        shard = WsShard(0, [WALLET], settings=s, store=store,
                        pipeline=Pipeline(store, MemorySink(), wallets=s.wallets),
                        rpc=rpc, explorer=None,  # type: ignore[arg-type]
                        history=hist, clock=clock, alerts=None)  # type: ignore[arg-type]
        mgr = _StubManager(clock)
        shard.manager = mgr  # type: ignore[assignment]
        mgr.on_state.append(lambda _t: shard._health_replan())
        shard._started_at = clock.now()
        shard._start_polling = lambda cause: events.append(  # type: ignore[method-assign]
            (round(clock.now(), 6), "poll", cause))
        real_call = rpc.call

        async def call(method: str, params: list[Any]) -> Any:
            events.append((round(clock.now(), 6), "rpc", method))
            return await real_call(method, params)
        rpc.call = call  # type: ignore[method-assign]
        n = 100

        async def heads(t0: float, t1: float) -> None:
            nonlocal n
            t = t0
            while t <= t1:
                await asyncio.sleep(t - clock.now())
                shard._on_head({"number": hex(n), "hash": h(n), "parentHash": h(n - 1)})
                rpc.node_head = n
                n += 1
                t += 2.0

        async def reference_loop() -> None:
            period = max(s.scaled(s.block_interval) / 2, 0.01)
            while True:
                healthy = shard.healthy_now()
                shard._set_health(healthy, "heads flowing" if healthy else "no new head")
                shard._maybe_probe_head()
                shard.health_ticks += 1
                await asyncio.sleep(period)

        task = asyncio.create_task(reference_loop() if reference else shard._health_loop())
        await heads(0.5, 40.5)        # heads flow: healthy; no tick has anything to do
        # 40.5: heads stop; 46: first probe (5 s late: 2.5 intervals, see
        # test_a_late_slot_costs_no_head_probe), every 2 s; 61: stale (> 20 s);
        # 66: unhealthy for 5 s -> poll the explorer
        await heads(70.5, 78.5)       # 70.5: healthy again at once (an event, not a tick)
        await asyncio.sleep(80.2 - clock.now())
        mgr.set_state(ConnState.RECONNECTING)  # 80.2: dropped
        shard._on_disconnected("drop")
        await asyncio.sleep(83.7 - clock.now())
        mgr.set_state(ConnState.CONNECTED)     # 83.7: reconnected; 84: the tick says healthy
        await heads(85.5, 99.5)
        rpc.node_head = n + 5  # 99.5: the subscription dies, the node 5 ahead: 105 probe
        await asyncio.sleep(120 - clock.now())
        task.cancel()
        events.extend(hist.rows)
        events.extend((t, "reconnect", "") for t in mgr.reconnects)
        return shard.health_ticks

    loop = looptime.new_event_loop(noop_cycles=4, _enabled=True)
    try:
        ticks = loop.run_until_complete(go())
    finally:
        loop.close()
    return sorted(events, key=lambda e: (e[0], e[1], str(e[2]))), ticks


def test_the_health_loop_acts_at_the_same_times_as_one_ticking_every_period(
        tmp_path: Path) -> None:
    """Feed health, fallback, head probes and lag reconnects happen at the same simulated
    times as with a tick every half block interval, but a tick runs only where one can
    act: while heads flow, none."""
    planned, ticks = _health_timeline(tmp_path, reference=False)
    every, ref_ticks = _health_timeline(tmp_path, reference=True)
    assert planned == every
    feed = [(t, f["healthy"]) for t, e, f in planned if e == "feed"]
    assert feed == [(0.5, True), (61.0, False), (70.5, True), (80.2, False), (84.0, True)]
    assert [t for t, e, _ in planned if e == "poll"] == [66.0]
    probes = [t for t, e, m in planned if e == "rpc" and m == "eth_blockNumber"]
    assert probes[:3] == [46.0, 48.0, 50.0] and 105.0 in probes
    assert next(t for t, e, _ in planned if e == "reconnect") == 105.0
    assert ref_ticks == 120 and ticks < 40


def test_a_late_slot_costs_no_head_probe_and_a_dead_feed_is_reconnected_as_soon(
        tmp_path: Path) -> None:
    """On Polygon about one block interval in eight is 4 s, not 2 (a slot that came
    late). The health loop asked the node's head 1.5 intervals after the last head, so
    every late slot cost a provider call whose answer (one block ahead) could change
    nothing: only a node ``head_lag_blocks`` (3) ahead makes it act. While heads flow it
    now asks from 2.5 intervals on - and a subscription that dies while the chain goes on
    is reconnected at the same time as before (the node is 3 ahead only 3 intervals on)."""
    import looptime

    from monitor.clock import LoopClock

    s = load_settings({"websocket_url": "ws://127.0.0.1:1/", "rpc_url": "http://127.0.0.1:1/",
                       "wallets": [WALLET], "fallback_after": 30}, environ={})
    probes: list[float] = []

    async def go() -> list[float]:
        clock = LoopClock()
        rpc = FakeRpc()
        store = Store(tmp_path / "s.db")
        shard = WsShard(0, [WALLET], settings=s, store=store,
                        pipeline=Pipeline(store, MemorySink(), wallets=s.wallets),
                        rpc=rpc, explorer=None,  # type: ignore[arg-type]
                        history=_Recorder(clock), clock=clock,
                        alerts=None)  # type: ignore[arg-type]
        mgr = _StubManager(clock)
        shard.manager = mgr  # type: ignore[assignment]
        shard._started_at = clock.now()
        real_call = rpc.call

        async def call(method: str, params: list[Any]) -> Any:
            if method == "eth_blockNumber":
                probes.append(round(clock.now(), 6))
            return await real_call(method, params)
        rpc.call = call  # type: ignore[method-assign]
        task = asyncio.create_task(shard._health_loop())
        t, n = 0.5, 100
        for gap in [2, 2, 4, 2, 2, 2, 4, 4, 2, 2, 2, 2, 2, 4, 2, 2, 2, 2]:
            await asyncio.sleep(t - clock.now())
            rpc.node_head = n
            shard._on_head({"number": hex(n), "hash": h(n), "parentHash": h(n - 1)})
            t, n = t + gap, n + 1
        assert probes == []  # was one per 4-s slot, 1.5 intervals after its last head
        last = clock.now()
        for _ in range(6):  # the subscription dies; the chain goes on every 2 s
            await asyncio.sleep(t - clock.now())
            rpc.node_head = n
            t, n = t + 2, n + 1
        task.cancel()
        assert mgr.reconnects, "the dead subscription was not reconnected"
        return [round(x - last, 6) for x in [*probes, mgr.reconnects[0]]]

    loop = looptime.new_event_loop(noop_cycles=4, _enabled=True)
    try:
        after_last_head = loop.run_until_complete(go())
    finally:
        loop.close()
    # probes 5.5 and 7.5 s after the last head (2.5 intervals, then the health loop's
    # 1-s grid: the head came half way between two ticks); the second finds the node 3
    # blocks ahead: reconnect at 7.5 s, as with probes at 3.5, 5.5 and 7.5 s
    assert after_last_head[:2] == [5.5, 7.5] and after_last_head[-1] == 7.5


@pytest.mark.parametrize("answer", ["0xzz", ["0x1"], None, "0x" + "f" * 40])
def test_a_head_probe_answer_that_is_no_block_number_is_recorded(
        tmp_path: Path, answer: Any) -> None:
    # it was dropped without a word (as if the node were unreachable)
    s = load_settings({"websocket_url": "ws://127.0.0.1:1/", "rpc_url": "http://127.0.0.1:1/",
                       "wallets": [WALLET]}, environ={})
    clock = ManualClock()
    hist = _Recorder(clock)
    rpc = FakeRpc()

    async def call(method: str, params: list[Any]) -> Any:
        return answer
    rpc.call = call  # type: ignore[method-assign]
    store = Store(tmp_path / "s.db")
    shard = WsShard(0, [WALLET], settings=s, store=store,
                    pipeline=Pipeline(store, MemorySink(), wallets=s.wallets),
                    rpc=rpc, explorer=None,  # type: ignore[arg-type]
                    history=hist, clock=clock, alerts=None)  # type: ignore[arg-type]
    asyncio.run(shard._probe_head())
    assert shard.counters["bad_head"] == 1 and shard.node_head is None
    assert [(e, f["kind"]) for _t, e, f in hist.rows] == [("bad_input", "bad_head")]


def test_the_live_queue_is_bounded_in_bytes_and_refuses_logs_no_trade_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live queue held up to live_queue_max logs whatever their size: a node sending
    logs of ~1 MB each (a frame holds one) could queue 100 GB. A log too large to be an
    OrderFilled is a decode error before it is held; the queue stops at its byte budget
    (the next sync re-fetches what was dropped, as at its item bound)."""
    import monitor.wallet_monitor as wm

    real = order_filled(block=5, tx=1)
    size = wm.live_log_bytes(real)
    assert size is not None and size < 2048
    assert wm.live_log_bytes({**real, "data": "0x" + "00" * 500_000}) is None
    assert wm.live_log_bytes({**real, "topics": real["topics"] * 3}) is None
    assert wm.live_log_bytes({**real, "blockHash": "0x" + "ab" * 10_000}) is None

    shard, _rpc, _sink, _store = make_shard(tmp_path)
    shard._on_log({**real, "data": "0x" + "00" * 500_000})
    assert shard.pipeline.counters["decode_errors"] == 1 and shard._inbox.qsize() == 0
    monkeypatch.setattr(wm, "LIVE_QUEUE_MAX_BYTES", 3 * size)
    for tx in range(1, 6):
        shard._on_log(order_filled(block=5, tx=tx))
    assert shard._inbox.qsize() == 3 and shard._inbox_bytes == 3 * size
    assert shard.counters["live_queue_overflow"] == 2

    async def drain() -> None:
        await shard.drain()

    asyncio.run(drain())
    assert shard._inbox_bytes == 0 and shard._inbox.qsize() == 0
