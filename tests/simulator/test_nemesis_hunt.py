"""The nemesis hunt: faults as the history (the ground truth) and the clock must see them."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from experiments.truth import build_truth
from simulator.faults import FaultError, FaultPlan, make_spec
from simulator.history import SimHistory
from simulator.nemesis import FaultBoard, Nemesis
from simulator.recording import Recording
from simulator.server import Simulator
from simulator.settings import SimSettings
from simulator.source import SynthSource
from tests.simulator.node_fixtures import WALLETS, make_recording

TIMEOUT = 20


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


def published(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(r["number"], r["hash"]) for r in rows if r["event"] == "block_published"]


@pytest.mark.parametrize("streamed", [False, True], ids=["in_memory", "streamed"])
def test_a_reorg_before_the_replay_starts_is_in_the_history_once_and_in_order(
        streamed: bool) -> None:
    """``serve --paused`` then a reorg over ``POST /_sim/faults`` before ``/_sim/start``:
    it replaces history blocks the node already serves. The history wrote the fork's
    blocks before the ``start`` row and then again as history blocks (each new block
    published twice, the replaced ones never: their trades missing from the truth); for a
    streamed chain the replaced blocks came after the fork, so the truth took the orphans
    for the canonical chain. Now: the history blocks as they were, the reorg, the fork,
    each once, and the final chain is the node's."""
    settings = SimSettings(history_blocks=4, window_blocks=3)
    blocks = 8

    def source() -> Recording | SynthSource:
        if streamed:
            return SynthSource("default", seed=2, blocks=blocks)
        return make_recording(blocks)

    async def main() -> None:
        sim = Simulator(source(), settings=settings, speed=50, autostart=False)
        async with sim:
            await asyncio.sleep(0)  # a streamed chain primes its history first
            before = {n: sim.chain.block(n) for n in range(sim.chain.first_number,
                                                           sim.chain.head_number + 1)}
            sim.start_fault("reorg", params={"depth": 2, "seed": 3, "move_share": 0.0,
                                             "vanish_share": 0.5})
            sim.begin()
            await sim.wait_published(blocks, TIMEOUT)
            final = {n: sim.chain.block(n) for n in range(sim.chain.first_number,
                                                          sim.chain.head_number + 1)}
        rows = sim.history.rows or []
        pubs = published(rows)
        assert not [k for k, c in Counter(pubs).items() if c > 1], "a block published twice"
        events = [r["event"] for r in rows if r["event"] in ("start", "reorg")]
        assert events == ["start", "reorg"]
        reorg = next(r for r in rows if r["event"] == "reorg")
        at = rows.index(reorg)
        seen_before = {h for _, h in published(rows[:at])}
        # the replaced blocks were published (as history) before the reorg row
        assert set(reorg["old_hashes"]) <= seen_before
        assert [b.hash for b in before.values() if b is not None][-2:] == reorg["old_hashes"]
        # the last block_published of each height is the node's final chain
        last: dict[int, str] = {}
        for number, h in pubs:
            last[number] = h
        assert last == {n: b.hash for n, b in final.items() if b is not None}
        truth = build_truth(rows, WALLETS if not streamed else _makers(rows))
        assert len(truth) > 0
    run(main)


def _makers(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({fill[1] for r in rows if r["event"] == "block_published"
                   for fill in r.get("order_filled") or []})



class StepClock:
    """A clock that moves only when told (the replay's turn can then be late by design)."""

    def __init__(self) -> None:
        self.t = 10**12

    def __call__(self) -> int:
        return self.t


def test_a_late_replay_turn_keeps_blocks_and_scheduled_faults_in_time_order() -> None:
    """When the replay's turn comes late (a busy fan-out, the writers paced, a slow
    machine) past both a block's due time and a scheduled fault's, it started every due
    fault first and only then published the blocks due before it: a reorg scheduled at 3 s
    replaced block 0 instead of block 1 (another chain under the same seed), and a stall of
    [1 s, 3 s] took effect after the block due at 2 s and ended at (late + 2 s). Now the
    events go in the order of their scheduled times, and a scheduled fault's window is its
    scheduled window."""
    s = 1_000_000_000
    clock = StepClock()
    settings = SimSettings(faults=(
        {"name": "ws_stall", "at": 1, "duration": 2},
        {"name": "reorg", "at": 3, "params": {"depth": 1, "move_share": 0.0,
                                              "vanish_share": 0.0}},
    ))

    async def main() -> None:
        sim = Simulator(make_recording(6, interval=2), settings=settings, speed=1,
                        autostart=False, clock_ns=clock)
        async with sim:
            original = [b.hash for b in sim.chain.blocks]
            sim.begin()
            t0 = clock.t
            await sim.wait_published(1, TIMEOUT)
            clock.t = t0 + 5 * s  # the next turn comes 3 s after block 1 was due
            sim._wake.set()
            await sim.wait_published(3, TIMEOUT)
            rows = [r for r in sim.history.rows or [] if r["event"] in (
                "block_published", "fault_start", "fault_stop", "reorg")]
        order = [(r["event"], r.get("number", r.get("name"))) for r in rows]
        first = sim.chain.first_number
        assert order[:7] == [
            ("block_published", first), ("fault_start", "ws_stall"),
            ("block_published", first + 1), ("fault_stop", "ws_stall"),
            ("fault_start", "reorg"), ("reorg", None), ("block_published", first + 1)]
        reorg = next(r for r in rows if r["event"] == "reorg")
        assert reorg["old_hashes"] == [original[1]]
        stall = [r["t_ns"] - t0 for r in rows if r.get("name") == "ws_stall"]
        assert stall == [1 * s, 3 * s]  # the scheduled window, not the late turn's
    run(main)


@pytest.mark.parametrize(("name", "params", "message"), [
    ("reorg", {"depth": 1.5}, "params.depth: expected a whole number of blocks in [1, 64], "
                              "got 1.5"),
    ("max_subscriptions", {"n": 0.5}, "params.n: expected a whole number of subscriptions"),
    ("ws_garbage", {"max_items": 2.7}, "params.max_items: expected a whole number of items"),
    ("bad_log", {"max_items": 0.5}, "params.max_items: expected a whole number of items"),
])
def test_a_fractional_count_is_refused_not_cut_down(name: str, params: dict[str, Any],
                                                    message: str) -> None:
    """A reorg of depth 1.5 was a reorg of depth 1, ``max_subscriptions`` n = 0.5 refused
    every subscription (n = 0) and ``max_items`` 2.7 sent 2, each answered 200 with the
    cut value: a typo ran another experiment than the one asked for. Now a clear 400
    naming the field, and nothing starts; 2.0 is still 2."""
    async def main() -> None:
        async with Simulator(make_recording(4), speed=50) as sim, \
                aiohttp.ClientSession() as http:
            async with http.post(sim.urls["faults"], json={"name": name,
                                                           "params": params}) as resp:
                assert resp.status == 400
                assert message in (await resp.json())["error"]
            assert not sim.board.active and not sim.history.events("fault_start")
            whole = {k: 2.0 for k in params}
            async with http.post(sim.urls["faults"], json={"name": name, "params": whole,
                                                           "duration": 1}) as resp:
                assert resp.status == 200
                got = (await resp.json())["fault"]["params"]
                assert all(got[k] == 2 and isinstance(got[k], int) for k in params)
    run(main)
    with pytest.raises(FaultError, match=re.escape(message)):
        FaultPlan.parse([{"name": name, "at": 1, "params": params}])


def test_a_stall_holds_the_frames_already_queued_until_it_ends() -> None:
    """``ws_stall`` is half-open: nothing reaches the client. A notification queued before
    it began and due during it (``ws_latency``) was still written in the middle of the
    stall, so a client's staleness watchdog saw a live feed. Now the stalled connection's
    queue waits; when the stall ends it is delivered (as TCP delivers what it held)."""
    async def main() -> None:
        async with Simulator(make_recording(3, interval=100), speed=1,
                             autostart=False) as sim, \
                websockets.connect(sim.urls["ws"], ping_interval=None) as ws:
            await ws.send('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe",'
                          '"params":["newHeads"]}')
            assert "result" in json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            sim.start_fault("ws_latency", params={"delay_ms": 300.0})
            sim.begin()
            await sim.wait_published(1, TIMEOUT)
            stall = sim.start_fault("ws_stall")
            with pytest.raises(TimeoutError):  # 0.3 s due, 0.8 s waited: nothing
                await asyncio.wait_for(ws.recv(), 0.8)
            sim.stop_fault(stall.id)
            head = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert head["params"]["result"]["number"] == hex(sim.chain.first_number)
    run(main)


def test_a_replay_that_dies_says_so_in_the_history_and_the_node_still_stops_cleanly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A defect that ended the replay loop left the node answering with a chain that no
    longer moved, silently; stop() then raised it, skipping the connections' close, the
    active faults' stop rows and the history's ``stop`` row (and ``serve`` died with a
    traceback). Now: one error line, a ``recording_error`` row (the run replayed less than
    planned), and a clean stop with its rows."""
    path = tmp_path / "sim.jsonl"

    async def main() -> None:
        history = SimHistory(path)
        sim = Simulator(make_recording(6, interval=2), speed=20, history=history)
        await sim.start()
        await sim.wait_published(2, TIMEOUT)
        sim.start_fault("ws_silent")

        def broken(*args: Any, **kwargs: Any) -> list[Any]:
            raise RuntimeError("a defect in the replay")

        sim.chain.advance = broken  # type: ignore[method-assign]
        sim._wake.set()
        assert sim._loop_task is not None
        await asyncio.wait([sim._loop_task], timeout=TIMEOUT)
        await sim.stop()  # no error
        history.close()

    with caplog.at_level(logging.ERROR, logger="simulator.server"):
        run(main)
    assert any("the replay stopped: RuntimeError: a defect in the replay" in r.getMessage()
               for r in caplog.records)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    events = [r["event"] for r in rows]
    error = next(r for r in rows if r["event"] == "recording_error")
    assert error["error"] == "the replay stopped: RuntimeError: a defect in the replay"
    assert error["blocks"] >= 2
    assert events[-2:] == ["fault_stop", "stop"]


def test_two_subscription_limits_at_once_the_tightest_holds() -> None:
    """Two ``max_subscriptions`` faults on a connection (a schedule's window over another,
    or one over the API while one is scheduled): only the first started counted, so
    n = 1 started second let a client hold five subscriptions. The tightest holds, as
    for the explorer's rate limit."""
    board = FaultBoard()
    nem = Nemesis(board)
    board.start(make_spec("max_subscriptions", None, {"n": 5}), now_ns=0, duration_ns=None)
    tight = board.start(make_spec("max_subscriptions", "ws:c1", {"n": 1}), now_ns=0,
                        duration_ns=None)
    assert nem.subscribe("c1", None) == 1 and nem.subscribe("c2", None) == 5
    assert nem.subscribe("c1", 0) == 0
    board.stop(tight.id)
    assert nem.subscribe("c1", None) == 5
