"""Every fault visibly happens on the wire (real clients over loopback) and in the history."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from polyvocab import ORDER_FILLED_V1, address_topic
from simulator.faults import FaultError, FaultPlan, make_spec
from simulator.server import Simulator
from simulator.settings import SimSettings
from tests.simulator.node_fixtures import WALLETS, make_recording

TIMEOUT = 20
SUB_HEADS = '{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}'


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 90))


def fault_rows(sim: Simulator, name: str) -> list[str]:
    return [r["event"] for r in sim.history.rows or []
            if r["event"] in ("fault_start", "fault_stop") and r["name"] == name]


async def subscribe_heads(ws: Any) -> str:
    await ws.send(SUB_HEADS)
    return str(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["result"])


async def next_head(ws: Any) -> dict[str, Any]:
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if msg.get("method") == "eth_subscription":
            return dict(msg["params"]["result"])


# -- schedule core (pure) ---------------------------------------------------------------------
def test_plan_at_every_and_random_windows_in_simulated_seconds() -> None:
    plan = FaultPlan.parse([
        {"name": "ws_drop", "at": 30},
        {"name": "ws_stall", "every": 100, "duration": 20},
        {"name": "ws_loss", "random": True, "rate": 2, "seed": 7, "duration": 5,
         "params": {"share": 0.5}},
    ])
    windows = plan.windows(300)
    drops = [(w.start_s, w.stop_s) for w in windows if w.spec.name == "ws_drop"]
    stalls = [(w.start_s, w.stop_s) for w in windows if w.spec.name == "ws_stall"]
    losses = [w for w in windows if w.spec.name == "ws_loss"]
    assert drops == [(30.0, None)]
    assert stalls == [(100.0, 120.0), (200.0, 220.0)]
    assert 3 <= len(losses) <= 20 and all(w.spec.params["share"] == 0.5 for w in losses)
    assert [w.start_s for w in windows] == sorted(w.start_s for w in windows)
    assert plan.windows(300) == windows  # deterministic from the seed


@pytest.mark.parametrize(("entry", "field"), [
    ({"name": "ws_drop"}, "exactly one"),
    ({"name": "ws_drop", "at": 1, "random": True, "rate": 1}, "exactly one"),
    ({"name": "ws_drop", "at": 1, "every": 2, "start": 3}, "not both"),
    ({"name": "nope", "at": 1}, "faults[0].name"),
    ({"name": "ws_close", "at": 1, "params": {"code": 4000}}, "params.code"),
    ({"name": "reorg", "at": 1, "params": {"depth": 65}}, "params.depth"),
    ({"name": "ws_loss", "at": -1}, "faults[0].at"),
    ({"name": "ws_loss", "every": 0}, "every"),
    ({"name": "ws_loss", "random": True}, "rate"),
    ({"name": "ws_loss", "at": 1, "duration": "x"}, "duration"),
    ({"name": "rpc_errors", "at": 1, "target": "explorer"}, "target"),
    ({"name": "rpc_errors", "at": 1, "params": {"statuses": [200]}}, "statuses"),
    ({"name": "ws_loss", "at": 1, "when": 3}, "unknown keys"),
])
def test_plan_errors_name_the_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(FaultError, match=field.replace("[", r"\[").replace("]", r"\]")):
        FaultPlan.parse([entry])


def test_spec_fills_default_target_and_params() -> None:
    spec = make_spec("ws_latency", params={"delay_ms": 50})
    assert spec.target == "ws" and spec.params == {"delay_ms": 50, "jitter_ms": 0.0, "seed": 0}
    assert make_spec("ws_drop", "ws:c3").conn_id == "c3"


# -- WebSocket faults on the wire ----------------------------------------------------------
def test_ws_drop_aborts_tcp_without_a_close_frame_for_the_targeted_connection_only() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=1) as sim, \
                websockets.connect(sim.urls["ws"]) as a, websockets.connect(sim.urls["ws"]) as b:
            await subscribe_heads(a)
            await subscribe_heads(b)
            first = sorted(sim.conns)[0]
            sim.start_fault("ws_drop", target=f"ws:{first}")
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await asyncio.wait_for(a.recv(), TIMEOUT)
            assert info.value.rcvd is None  # no close frame: an abrupt TCP close
            await b.send('{"jsonrpc":"2.0","id":9,"method":"eth_chainId"}')
            reply = json.loads(await asyncio.wait_for(b.recv(), TIMEOUT))
            while reply.get("id") != 9:
                reply = json.loads(await asyncio.wait_for(b.recv(), TIMEOUT))
            assert reply["result"] == "0x89"
            assert fault_rows(sim, "ws_drop") == ["fault_start", "fault_stop"]
    run(main)


@pytest.mark.parametrize("code", [1001, 1011, 1013])
def test_ws_close_sends_a_close_frame_with_the_code(code: int) -> None:
    async def main() -> None:
        async with Simulator(make_recording(3)) as sim, websockets.connect(sim.urls["ws"]) as ws:
            await subscribe_heads(ws)
            sim.start_fault("ws_close", params={"code": code, "reason": "maintenance"})
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == code
            assert info.value.rcvd.reason == "maintenance"
            assert fault_rows(sim, "ws_close") == ["fault_start", "fault_stop"]
    run(main)


def test_ws_refuse_rejects_upgrades_with_503_and_drops_existing_until_stopped() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3)) as sim:
            ws = await websockets.connect(sim.urls["ws"])
            async with sim.fault("ws_refuse"):
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                with pytest.raises(InvalidStatus) as info:
                    await websockets.connect(sim.urls["ws"])
                assert info.value.response.status_code == 503
            async with websockets.connect(sim.urls["ws"]) as again:
                await again.send('{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
                assert json.loads(await asyncio.wait_for(again.recv(), TIMEOUT))["id"] == 1
            assert fault_rows(sim, "ws_refuse") == ["fault_start", "fault_stop"]
    run(main)


def test_ws_refuse_reset_mode_kills_the_tcp_connection_before_the_upgrade() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3)) as sim:
            async with sim.fault("ws_refuse", params={"mode": "reset"}):
                with pytest.raises((OSError, EOFError, websockets.exceptions.InvalidMessage)):
                    await websockets.connect(sim.urls["ws"], open_timeout=TIMEOUT)
            async with websockets.connect(sim.urls["ws"]) as ws:
                await ws.send('{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
                assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["id"] == 1
            assert fault_rows(sim, "ws_refuse") == ["fault_start", "fault_stop"]
    run(main)


def test_ws_stall_sends_nothing_and_leaves_pings_unanswered_then_recovers() -> None:
    async def main() -> None:
        async with Simulator(make_recording(40), speed=20) as sim, \
                websockets.connect(sim.urls["ws"], ping_interval=None) as ws:
            await subscribe_heads(ws)
            async with sim.fault("ws_stall"):
                await ws.send('{"jsonrpc":"2.0","id":5,"method":"eth_chainId"}')
                pong = asyncio.ensure_future(await ws.ping())
                before = sim.chain.published
                await sim.wait_published(before + 3)  # 3 blocks pass during the stall
                assert not pong.done()
                # drain whatever was in flight before the stall began, then expect silence
                with pytest.raises(TimeoutError):
                    while True:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 0.3))
                        number = int(msg["params"]["result"]["number"], 16)
                        assert number < sim.chain.first_number + before
                assert ws.state.name == "OPEN"  # the socket is left open
            pong2 = await ws.ping()
            await asyncio.wait_for(pong2, TIMEOUT)
            head = await next_head(ws)
            assert int(head["number"], 16) > sim.chain.first_number + before
            assert fault_rows(sim, "ws_stall") == ["fault_start", "fault_stop"]
    run(main)


def test_ws_silent_answers_pings_and_calls_but_drops_notifications() -> None:
    async def main() -> None:
        async with Simulator(make_recording(40), speed=20) as sim, \
                websockets.connect(sim.urls["ws"], ping_interval=None) as ws:
            await subscribe_heads(ws)
            await next_head(ws)
            async with sim.fault("ws_silent"):
                before = sim.chain.published
                await asyncio.wait_for(await ws.ping(), TIMEOUT)
                await ws.send('{"jsonrpc":"2.0","id":5,"method":"eth_blockNumber"}')
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    if msg.get("id") == 5:
                        break
                    assert int(msg["params"]["result"]["number"], 16) < \
                        sim.chain.first_number + before  # only pre-fault heads in flight
                await sim.wait_published(before + 3)
                await asyncio.wait_for(await ws.ping(), TIMEOUT)  # all sent before the pong
                got = []
                with pytest.raises(TimeoutError):
                    while True:
                        got.append(await asyncio.wait_for(ws.recv(), 0.2))
                assert got == []
            head = await next_head(ws)
            assert int(head["number"], 16) >= sim.chain.first_number + before + 3
            assert fault_rows(sim, "ws_silent") == ["fault_start", "fault_stop"]
    run(main)


def test_ws_latency_delays_notifications_and_keeps_their_order() -> None:
    async def main() -> None:
        # speed 10: 400 simulated ms of delay = 40 real ms
        async with Simulator(make_recording(30), speed=10) as sim, \
                websockets.connect(sim.urls["ws"]) as ws:
            await subscribe_heads(ws)
            await next_head(ws)
            async with sim.fault("ws_latency", params={"delay_ms": 400, "jitter_ms": 100}):
                numbers = []
                lags = []
                for _ in range(4):
                    head = await next_head(ws)
                    got = time.monotonic_ns()
                    row = next(r for r in reversed(sim.history.rows or [])
                               if r["event"] == "block_published" and r["hash"] == head["hash"])
                    numbers.append(int(head["number"], 16))
                    lags.append((got - row["t_ns"]) / 1e6)
            assert numbers == sorted(numbers) and len(set(numbers)) == 4
            assert min(lags[1:]) >= 40  # the first may have been queued before the fault
            assert fault_rows(sim, "ws_latency") == ["fault_start", "fault_stop"]
    run(main)


@pytest.mark.parametrize(("name", "share"), [("ws_loss", 1.0), ("ws_dup", 1.0)])
def test_ws_loss_drops_and_ws_dup_duplicates_notifications(name: str, share: float) -> None:
    async def main() -> None:
        async with Simulator(make_recording(6), speed=50, autostart=False) as sim, \
                websockets.connect(sim.urls["ws"]) as ws:
            await subscribe_heads(ws)
            await ws.send('{"jsonrpc":"2.0","id":2,"method":"eth_subscribe",'
                          '"params":["logs",{}]}')
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            sim.start_fault(name, params={"share": share})
            sim.begin()
            await sim.wait_published(6)
            total = 6 + sum(len(b.logs) for b in sim.recording.blocks)
            expected = 0 if name == "ws_loss" else 2 * total
            got = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                   for _ in range(expected)]
            if name == "ws_loss":
                await asyncio.wait_for(await ws.ping(), TIMEOUT)  # all sent is here now
            with pytest.raises(TimeoutError):  # and nothing more comes
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 0.3)))
            assert len(got) == expected
            if name == "ws_dup":
                assert all(a == b for a, b in zip(got[::2], got[1::2], strict=True))
            assert fault_rows(sim, name) == ["fault_start"]
    run(main)


def test_ws_loss_share_is_partial_and_seeded() -> None:
    async def main() -> int:
        async with Simulator(make_recording(10), speed=100, autostart=False) as sim, \
                websockets.connect(sim.urls["ws"]) as ws:
            await subscribe_heads(ws)
            sim.start_fault("ws_loss", params={"share": 0.5, "seed": 3})
            sim.begin()
            await sim.wait_published(10)
            await asyncio.wait_for(await ws.ping(), TIMEOUT)
            got = []
            with pytest.raises(TimeoutError):
                while True:
                    got.append(await asyncio.wait_for(ws.recv(), 0.3))
            return len(got)

    counts = [asyncio.run(main()) for _ in range(2)]
    assert counts[0] == counts[1] and 0 < counts[0] < 10


def test_max_subscriptions_refuses_past_n_per_connection() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3)) as sim, websockets.connect(sim.urls["ws"]) as ws:
            async with sim.fault("max_subscriptions", params={"n": 1}):
                await subscribe_heads(ws)
                await ws.send(SUB_HEADS.replace('"id":1', '"id":2'))
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    if msg.get("id") == 2:
                        break
                assert msg["error"]["code"] == -32005 and "limit" in msg["error"]["message"]
            assert fault_rows(sim, "max_subscriptions") == ["fault_start", "fault_stop"]
    run(main)


# -- reorg ------------------------------------------------------------------------------------
def test_reorg_resends_removed_logs_repeats_heights_and_records_the_fork() -> None:
    async def main() -> None:
        rec = make_recording(10, trades_per_block=5)
        makers = [address_topic(w) for w in WALLETS]
        async with Simulator(rec, speed=5, autostart=False) as sim, \
                websockets.connect(sim.urls["ws"]) as ws:
            heads = await subscribe_heads(ws)
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe",
                                      "params": ["logs", {"topics": [ORDER_FILLED_V1, None,
                                                                    makers]}]}))
            json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            sim.begin()
            await sim.wait_published(4)
            seen_heads: list[dict[str, Any]] = []
            seen_logs: list[dict[str, Any]] = []

            async def drain_until(pred: Callable[[], bool]) -> None:
                while not pred():
                    msg = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    p = msg["params"]
                    (seen_heads if p["subscription"] == heads else seen_logs).append(p["result"])

            head_before = sim.chain.head_number
            old_hashes = {b.number: b.hash for b in sim.chain.blocks[:sim.chain.published]}
            sim.start_fault("reorg", params={"depth": 2, "seed": 4})
            reorg = sim.history.events("reorg")[0]
            new_hashes = reorg["new_hashes"]
            await drain_until(lambda: sum(h["hash"] in new_hashes for h in seen_heads) == 2
                              and sum(1 for lg in seen_logs if lg["removed"]) >= 10)
            removed = [lg for lg in seen_logs if lg["removed"]]
            assert len(removed) == 10  # 2 blocks x 5 OrderFilled
            assert {lg["blockHash"] for lg in removed} == {old_hashes[head_before - 1],
                                                           old_hashes[head_before]}
            repeated = [h for h in seen_heads if h["hash"] in new_hashes]
            assert [int(h["number"], 16) for h in repeated] == [head_before - 1, head_before]
            earlier = [h["hash"] for h in seen_heads[:seen_heads.index(repeated[0])]
                       if int(h["number"], 16) >= head_before - 1]
            assert earlier == [old_hashes[head_before - 1], old_hashes[head_before]]
            assert reorg["depth"] == 2 and reorg["from_number"] == head_before - 1
            assert reorg["old_hashes"] == earlier
            fork_rows = [r for r in sim.history.events("block_published")
                         if r["hash"] in new_hashes]
            fork_fills = sum(len(r["order_filled"]) for r in fork_rows)
            assert fork_fills == sum(len(b.order_filled()) for b in sim.chain.blocks
                                     if b.hash in new_hashes)
            await drain_until(lambda: sum(1 for lg in seen_logs if not lg["removed"]
                                          and lg["blockHash"] in new_hashes) == fork_fills)
            assert fault_rows(sim, "reorg") == ["fault_start", "fault_stop"]
    run(main)


# -- HTTP JSON-RPC and explorer faults ---------------------------------------------------------
def test_rpc_errors_answer_429_5xx_and_timeouts_on_http() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=10) as sim, aiohttp.ClientSession() as h:
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}
            for status in (429, 503):
                async with sim.fault("rpc_errors", params={"share": 1.0,
                                                           "statuses": [status]}), \
                        h.post(sim.urls["http"], json=body) as resp:
                    assert resp.status == status
            async with sim.fault("rpc_errors", params={"share": 1.0, "statuses": ["timeout"],
                                                       "timeout_s": 60}):
                with pytest.raises(asyncio.TimeoutError):
                    async with h.post(sim.urls["http"], json=body,
                                      timeout=aiohttp.ClientTimeout(total=0.5)):
                        pass
            async with h.post(sim.urls["http"], json=body) as resp:
                assert resp.status == 200
            assert fault_rows(sim, "rpc_errors") == ["fault_start", "fault_stop"] * 3
    run(main)


def test_explorer_faults_reach_the_explorer_and_lag_spikes_the_index() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=1) as sim, aiohttp.ClientSession() as h:
            q = "?chainid=137&module=proxy&action=eth_blockNumber&apikey=KEYKEYKEY1"
            async with sim.fault("explorer_down", params={"mode": "html502"}), \
                    h.get(sim.urls["explorer"] + q) as resp:
                assert resp.status == 502 and "502 Bad Gateway" in await resp.text()
            async with h.get(sim.urls["explorer"] + q) as resp:
                assert resp.status == 200
            async with sim.fault("explorer_rate_limit", params={"rate": 0.01}):
                texts = []
                for _ in range(3):
                    async with h.get(sim.urls["explorer"] + q) as resp:
                        texts.append(await resp.text())
                assert any("rate limit reached" in t for t in texts)
            assert sim.explorer.faults.rate_limit is None
            async with sim.fault("explorer_lag", params={"extra_s": 45}):
                assert sim.chain.lag_extra_s == 45
            assert sim.chain.lag_extra_s == 0
            explorer = [r for r in sim.history.events("request") if r["api"] == "explorer"]
            assert explorer[0]["key"].startswith("key#") and "KEYKEYKEY1" not in json.dumps(
                sim.history.rows)
            assert {r["status"] for r in explorer} >= {"ok", "error", "rate_limited"}
            names = [r["name"] for r in sim.history.events("fault_start")]
            assert names == ["explorer_down", "explorer_rate_limit", "explorer_lag"]
    run(main)


def test_faults_over_the_control_api_and_from_a_schedule() -> None:
    async def main() -> None:
        settings = SimSettings(faults=({"name": "ws_silent", "at": 2, "duration": 2},))
        async with Simulator(make_recording(6), settings=settings, speed=20) as sim, \
                aiohttp.ClientSession() as h:
            async with h.post(sim.urls["faults"], json={"name": "ws_dup", "duration": 1000,
                                                        "params": {"share": 0.5}}) as resp:
                fault_id = (await resp.json())["id"]
            async with h.delete(f"{sim.urls['faults']}/{fault_id}") as resp:
                assert resp.status == 200
            await sim.wait_published(6)
            # scheduled: 2 simulated s = 0.1 s in, for 0.1 s; wait for its stop row
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while fault_rows(sim, "ws_silent") != ["fault_start", "fault_stop"] \
                    and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            assert fault_rows(sim, "ws_silent") == ["fault_start", "fault_stop"]
            assert fault_rows(sim, "ws_dup") == ["fault_start", "fault_stop"]
    run(main)


def test_a_connection_whose_notification_buffer_overflows_is_dropped_like_geth() -> None:
    async def main() -> None:
        from simulator.settings import NodeSettings

        settings = SimSettings(node=NodeSettings(notify_buffer=5))
        async with Simulator(make_recording(4), settings=settings, speed=50,
                             autostart=False) as sim, websockets.connect(sim.urls["ws"]) as ws:
            await ws.send('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe",'
                          '"params":["logs",{}]}')
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            # a long delay keeps notifications queued: 4 logs a block, the 2nd overflows 5
            sim.start_fault("ws_latency", params={"delay_ms": 600_000})
            sim.begin()
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is None  # dropped, not closed politely
    run(main)


def test_plan_takes_the_contract_vocabulary_rate_per_hour_and_at_with_every() -> None:
    plan = FaultPlan.parse([
        {"name": "ws_stall", "at": 50, "every": 100, "duration": 10},
        {"name": "ws_loss", "rate_per_hour": 120, "seed": 9, "duration": 5},
    ])
    windows = plan.windows(400)
    assert [w.start_s for w in windows if w.spec.name == "ws_stall"] == [50, 150, 250, 350]
    losses = [w for w in windows if w.spec.name == "ws_loss"]
    assert 3 <= len(losses) <= 30  # 2 a minute for 400 s on average ~13
    assert all(w.spec.params["seed"] == 9 for w in losses)  # the seed reaches the params
    with pytest.raises(FaultError, match="rate_per_hour"):
        FaultPlan.parse([{"name": "ws_loss", "rate_per_hour": -1}])


def test_a_schedule_that_would_open_too_many_windows_is_refused_while_counting() -> None:
    """A fault every 0.1 s over a week was 12 million windows (2.4 GB, 26 s) made when the
    replay started; the count stops at the bound and says what to change."""
    from simulator.faults import MAX_WINDOWS, FaultError, FaultPlan

    plan = FaultPlan.parse([{"name": "ws_drop", "every": 0.1, "at": 0}])
    with pytest.raises(FaultError, match=r"more than 200,000 fault windows .*ws_drop"):
        plan.windows(7 * 86_400.0)
    every_s = FaultPlan.parse([{"name": "ws_drop", "every": 1, "at": 0}])
    assert len(every_s.windows(MAX_WINDOWS - 0.5)) == MAX_WINDOWS  # up to it: made
    rnd = FaultPlan.parse([{"name": "ws_stall", "random": True, "rate": 600,
                            "duration": 0.001}])
    with pytest.raises(FaultError, match="more than 200,000"):
        rnd.windows(7 * 86_400.0)


def test_serve_refuses_such_a_schedule_in_one_line_before_listening(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simulator.cli import main

    cfg = tmp_path / "f.toml"
    cfg.write_text('[[faults]]\nname = "ws_drop"\nat = 0\nevery = 0.1\n')
    assert main(["serve", "--profile", "default", "--port", "0", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "more than 200,000 fault windows" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["ws_stall", "ws_silent", "explorer_down", "rpc_errors",
                                  "ws_refuse", "rpc_lag"])
def test_a_lasting_fault_without_a_duration_is_refused_not_run_for_0_s(name: str) -> None:
    """``{name = "ws_stall", at = 30}`` made a 0-s window: started and stopped at once, a
    scenario that read as a stall that never happened. One-shot faults need none."""
    with pytest.raises(FaultError, match=rf"faults\[0\]: {name} lasts its duration"):
        FaultPlan.parse([{"name": name, "at": 30}])
    with pytest.raises(FaultError, match="lasts its duration"):
        FaultPlan.parse([{"name": name, "every": 60, "duration": 0}])
    assert FaultPlan.parse([{"name": name, "at": 30, "duration": 5}]).windows(60)
    for one_shot in ("ws_drop", "ws_close", "reorg"):
        assert FaultPlan.parse([{"name": one_shot, "at": 30}]).windows(60)
