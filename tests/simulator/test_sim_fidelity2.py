"""The simulator against a real node (REFERENCE.md; geth where it is silent), second
sim-fidelity hunt: fault seeds, fault timing on a paused node, concurrent WebSocket calls,
a batch's eth_subscribe answered before its notifications, eth_getLogs "pending". Each test
failed before its fix."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import looptime

from polyvocab import ORDER_FILLED_TOPICS
from simulator.faults import FaultPlan, fault_seed
from simulator.server import Simulator
from simulator.settings import LagSettings, NodeSettings, SimSettings
from simulator.source import SynthSource
from tests.simulator.node_fixtures import make_recording
from tests.simulator.test_jsonrpc import call, make_rpc

NS = 1_000_000_000
TIMEOUT = 30.0


def _virtual(coro: Any) -> Any:
    """Run ``coro`` on a virtual-time loop (the clock jumps whenever nothing is ready)."""
    loop = looptime.new_event_loop(noop_cycles=0, _enabled=True)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# -- 1. unseeded faults ---------------------------------------------------------------------
_UNSEEDED = [{"name": "ws_loss", "random": True, "rate": 1.0, "duration": 5},
             {"name": "ws_loss", "random": True, "rate": 1.0, "duration": 5},
             {"name": "ws_latency", "every": 60, "duration": 5,
              "params": {"jitter_ms": 100.0}},
             {"name": "ws_latency", "every": 60, "duration": 5,
              "params": {"jitter_ms": 100.0}}]


def _schedule(faults: list[dict[str, Any]], chain_seed: int = 0
              ) -> list[tuple[str, float, int]]:
    """(name, start, params.seed) of each window the server lays out for ``faults``."""
    sim = Simulator(make_recording(400), settings=SimSettings(
        faults=tuple(faults), lag=LagSettings(seed=chain_seed)), autostart=False)
    return [(w.spec.name, w.start_s, w.spec.params["seed"]) for w in sim._windows]


def test_unseeded_faults_draw_apart_by_index_and_run_seed_and_the_same_config_repeats() -> None:
    """Issue: every fault without a seed drew from seed 0, so two random faults of one rate
    started at the same moments (one window where two were asked for) and two faults of
    one kind drew the same jitter and shares; another run seed changed none of it. Now
    each gets fault_seed([chain] seed, its index); the same config gives the same run."""
    windows = _schedule(_UNSEEDED)
    starts = {i: [t for _, t, seed in windows if seed == fault_seed(0, i)] for i in (0, 1)}
    assert starts[0] and starts[1] and starts[0] != starts[1]
    assert {seed for *_, seed in windows} == {fault_seed(0, i) for i in range(4)}
    assert windows == _schedule(_UNSEEDED)  # deterministic
    other = _schedule(_UNSEEDED, chain_seed=7)
    assert {seed for *_, seed in other} == {fault_seed(7, i) for i in range(4)}
    assert [t for n, t, _ in other if n == "ws_loss"] != [t for n, t, _ in windows
                                                          if n == "ws_loss"]


def test_an_explicit_seed_wins_over_the_derived_one() -> None:
    entry = {"name": "ws_loss", "random": True, "rate": 1.0, "duration": 5, "seed": 11}
    got = _schedule([entry], chain_seed=5)
    want = FaultPlan.parse([entry]).windows(got[-1][1] + 1)
    assert [(w.spec.name, w.start_s, w.spec.params["seed"]) for w in want] == got
    assert {seed for *_, seed in got} == {11}
    in_params = _schedule([{"name": "ws_dup", "at": 3, "duration": 1,
                            "params": {"seed": 0}}], chain_seed=5)
    assert in_params == [("ws_dup", 3.0, 0)]  # an explicit 0 is a seed too


def test_seeds_runs_vary_unseeded_faults_and_repeat_per_seed() -> None:
    """``--seeds N`` (experiments.seeds.reseed) gives every fault a seed of its own per
    run seed: the runs differ, and one run seed repeats."""
    from experiments.scenario import Scenario
    from experiments.seeds import reseed
    from simulator.settings import settings_from_dict

    scenario = Scenario.model_validate({
        "name": "s", "profile": "default", "sim_duration_s": 600,
        "wallets": {"count": 5},
        "faults": [{"name": "ws_loss", "rate_per_hour": 60, "duration": 5},
                   {"name": "ws_loss", "rate_per_hour": 60, "duration": 5}]})

    def layout(k: int) -> list[tuple[float, int]]:
        settings = settings_from_dict(reseed(scenario, k).simulator_config())
        sim = Simulator(make_recording(300), settings=settings, autostart=False)
        return [(w.start_s, w.spec.params["seed"]) for w in sim._windows]

    assert layout(1) != layout(2)
    assert layout(1) == layout(1)


# -- 2. a fault's duration on a paused node ------------------------------------------------
def test_a_fault_posted_to_a_paused_node_ends_when_its_duration_is_up() -> None:
    """Issue: a fault with a duration posted before ``/_sim/start`` stayed active for as
    long as the node stayed paused (only the replay loop ended faults): a 10-s ws_stall
    held every connection for the minutes the runner waited, then ended at once at the
    start. A duration counts from the fault's start on the node's clock, paused or not."""
    async def run() -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()

        def clock() -> int:
            return int(loop.time() * NS)

        sim = Simulator(make_recording(20), autostart=False, clock_ns=clock)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(sim.urls["faults"], json={
                        "name": "ws_stall", "duration": 10}) as resp:
                    assert resp.status == 200, await resp.text()
                async with http.post(sim.urls["faults"], json={
                        "name": "rpc_errors", "duration": 30}) as resp:
                    assert resp.status == 200, await resp.text()
                await asyncio.sleep(15)
                async with http.get(sim.urls["faults"]) as resp:
                    after_15 = [f["name"] for f in (await resp.json())["faults"]]
                await asyncio.sleep(20)
                async with http.get(sim.urls["faults"]) as resp:
                    after_35 = (await resp.json())["faults"]
                async with http.post(sim.urls["http"].rstrip("/") + "/_sim/start") as resp:
                    assert resp.status == 200
        finally:
            await sim.stop()
        return after_15, after_35, [r for r in sim.history.rows
                                     if r["event"] in ("fault_start", "fault_stop")]

    after_15, after_35, rows = _virtual(run())
    assert after_15 == ["rpc_errors"]
    assert after_35 == []
    started = {r["fault_id"]: r["t_ns"] for r in rows if r["event"] == "fault_start"}
    stopped = {r["fault_id"]: r["t_ns"] for r in rows if r["event"] == "fault_stop"}
    assert {k: stopped[k] - started[k] for k in started} == {"f1": 10 * NS, "f2": 30 * NS}


# -- 3. and 4. WebSocket calls -------------------------------------------------------------
def _streamed_sim(**kw: Any) -> Simulator:
    """A streamed chain with 400 history blocks and a window of 8: an eth_getLogs of the
    first 300 rebuilds them, yielding to the loop after each."""
    return Simulator(SynthSource("default", seed=3, blocks=5000, checkpoint_every=16),
                     settings=SimSettings(history_blocks=400, window_blocks=8,
                                          node=NodeSettings(profile="geth")), **kw)


def _old_logs(req_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "method": "eth_getLogs", "params": [{
        "fromBlock": hex(0), "toBlock": hex(300), "topics": [list(ORDER_FILLED_TOPICS)]}]}


async def _first_block(sim: Simulator) -> int:
    await sim.wait_published(1)
    head = sim.chain.head
    assert head is not None
    return head.number - sim.chain.published + 1


def test_a_slow_eth_get_logs_does_not_hold_the_calls_behind_it_on_its_socket() -> None:
    """Issue: the calls of one WebSocket were answered strictly in turn, so an
    eth_getLogs of old blocks (rebuilt, seconds for a wide range) held the
    eth_blockNumber heartbeat behind it, where geth answers calls concurrently: a monitor
    took its own node for dead. Now the heartbeat is answered first."""
    async def run() -> list[Any]:
        sim = _streamed_sim(autostart=False)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
                base = await _first_block(sim)
                req = _old_logs(1)
                req["params"][0].update(fromBlock=hex(base), toBlock=hex(base + 300))
                await ws.send_str(json.dumps(req))
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 2,
                                              "method": "eth_blockNumber"}))
                got = []
                for _ in range(2):
                    got.append(json.loads((await ws.receive(timeout=TIMEOUT)).data))
        finally:
            await sim.stop()
        return got

    got = asyncio.run(run())
    assert [m["id"] for m in got] == [2, 1]
    assert "error" not in got[1] and len(got[1]["result"]) > 0


def test_a_batch_with_eth_subscribe_is_answered_before_the_new_subscription_notifies() -> None:
    """Issue: a batch ``[eth_subscribe newHeads, eth_getLogs of old blocks]`` let a newHeads
    notification of the new subscription out before the batch's answer (blocks were
    published while the old ones were rebuilt), where geth writes the answer first and
    activates the subscription after it: a client saw a subscription id it did not know
    yet. Now the answer comes first and no notification is lost."""
    async def run() -> list[Any]:
        sim = _streamed_sim(speed=200.0)  # a block every 10 ms
        await sim.start()
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
                base = await _first_block(sim)
                req = _old_logs(2)
                req["params"][0].update(fromBlock=hex(base), toBlock=hex(base + 300))
                published = sim.chain.published
                await ws.send_str(json.dumps([{"jsonrpc": "2.0", "id": 1,
                                               "method": "eth_subscribe",
                                               "params": ["newHeads"]}, req]))
                frames = [json.loads((await ws.receive(timeout=TIMEOUT)).data)]
                assert sim.chain.published > published + 1, "no block during the batch"
                for _ in range(3):
                    frames.append(json.loads((await ws.receive(timeout=TIMEOUT)).data))
        finally:
            await sim.stop()
        return frames

    frames = asyncio.run(run())
    assert isinstance(frames[0], list), frames[0]
    sub_id = frames[0][0]["result"]
    heads = [int(f["params"]["result"]["number"], 16) for f in frames[1:]]
    assert all(f["params"]["subscription"] == sub_id for f in frames[1:])
    assert heads == list(range(heads[0], heads[0] + 3))  # held, then sent in order


# -- 5. eth_getLogs "pending" ----------------------------------------------------------------
def test_eth_get_logs_refuses_pending_as_geth() -> None:
    """Issue: eth_getLogs took "pending" as the head (the logs of the latest block),
    where geth has refused pending logs since v1.14 (eth/filters filter.go Logs:
    errPendingLogsUnsupported, -32602 since v1.17): a client passing toBlock "pending"
    worked here and failed on a node."""
    rpc = make_rpc()
    refused = {"code": -32602, "message": "pending logs are not supported"}
    for crit in ({"fromBlock": "pending"}, {"toBlock": "pending"},
                 {"fromBlock": "latest", "toBlock": "pending"},
                 {"fromBlock": "0x3e8", "toBlock": "pending"},
                 {"fromBlock": "pending", "toBlock": "pending"}):
        assert call(rpc, "eth_getLogs", crit)["error"] == refused, crit
    # the other bound is decoded first, as geth's FilterCriteria
    bad = call(rpc, "eth_getLogs", {"fromBlock": "0xZZ", "toBlock": "pending"})["error"]
    assert bad["code"] == -32602 and bad["message"].startswith("invalid argument 0"), bad
    # latest and explicit ranges unchanged
    assert call(rpc, "eth_getLogs", {"fromBlock": "0x3e8", "toBlock": "latest"})["result"]
