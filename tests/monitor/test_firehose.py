"""Filters or firehose: the monitor picks by provider profile and wallet count, says which,
and the firehose delivers exactly the watched wallets' trades.

The integration tests run the simulator and the real monitor on one looptime loop over
loopback (virtual time, as ``experiments run --clock virtual`` does): a short busy
recording, deterministic by seed, no sleeps as synchronisation.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import looptime
import pytest

from monitor.clock import LoopClock
from monitor.config import Settings
from monitor.history import History
from monitor.providers import plan_subscriptions
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor
from polyvocab import ORDER_FILLED_TOPICS
from simulator.history import SimHistory
from simulator.recording import Recording
from simulator.server import Simulator
from simulator.synth import synthesise

# -- the choice (no I/O) ---------------------------------------------------------------


def plan(setting: str, wallets: int, profile: str | None = None, per: int = 500,
         above: int = 2000) -> Any:
    return plan_subscriptions(setting, wallets, max_wallets_per_filter=per,  # type: ignore[arg-type]
                              firehose_above_wallets=above, profile=profile)


def test_auto_keeps_server_side_filters_up_to_the_threshold() -> None:
    p = plan("auto", 2000)
    assert (p.mode, p.connections, p.subscriptions, p.wallets_per_filter) == (
        "filtered", 4, 8, 500)
    assert "2000 wallets <= firehose_above_wallets 2000" in p.reason


def test_auto_takes_the_firehose_past_the_threshold_on_one_connection() -> None:
    p = plan("auto", 2001)
    assert (p.mode, p.connections, p.subscriptions) == ("firehose", 1, 2)
    assert "would need 5 connections" in p.reason


def test_the_profile_sets_the_threshold_and_caps_the_filter_size() -> None:
    public = Settings(provider_profile="public")
    assert (public.firehose_above_wallets, public.max_wallets_per_filter) == (400, 100)
    assert plan("auto", 401, above=public.firehose_above_wallets, per=100).mode == "firehose"
    # geth refuses more than 1,000 values in one topic position: 5,000 asked -> 1,000 used
    geth = plan("filtered", 5000, profile="geth", per=5000)
    assert (geth.wallets_per_filter, geth.connections) == (1000, 5)
    assert plan("filtered", 5000, profile="alchemy", per=5000).connections == 1


def test_a_forced_mode_is_obeyed_whatever_the_count() -> None:
    assert plan("firehose", 1).mode == "firehose"
    assert plan("filtered", 100_000).connections == 200
    assert plan("auto", 0).connections == 0


# -- over loopback, in virtual time ----------------------------------------------------

BLOCKS = 40
LATE_START = 12  # blocks published before the monitor starts: its first sync backfills them


@pytest.fixture(scope="module")
def recording() -> Recording:
    return synthesise("busy", seed=5, blocks=BLOCKS)


def makers(rec: Recording) -> Counter[str]:
    c: Counter[str] = Counter()
    for b in rec.blocks:
        for lg in b.logs:
            t = lg.get("topics") or []
            if t and t[0] in ORDER_FILLED_TOPICS:
                c["0x" + t[2][-40:]] += 1
    return c


def truth(rows: list[dict[str, Any]], wallets: set[str]) -> set[str]:
    by_height = {r["number"]: r.get("order_filled") or [] for r in rows
                 if r.get("event") == "block_published"}
    return {tid for fills in by_height.values() for tid, maker in fills
            if maker.lower() in wallets}


def run(rec: Recording, wallets: list[str], tmp: Path, **extra: Any
        ) -> tuple[MemorySink, list[dict[str, Any]], dict[str, Any], list[dict[str, Any]],
                   list[dict[str, Any]]]:
    """Replay ``rec`` at speed 1 in virtual time; the monitor starts after LATE_START blocks
    from the first block. Returns (sink, sim history, metrics, monitor history,
    eth_getLogs / eth_subscribe params the node received)."""
    seen: list[dict[str, Any]] = []

    async def go() -> dict[str, Any]:
        clock = LoopClock()
        sim_hist = SimHistory(keep=True, clock_ns=clock.now_ns)
        sim = Simulator(rec, speed=1.0, history=sim_hist, autostart=False,
                        clock_ns=clock.now_ns)
        steps = sim.rpc.steps  # what the server calls for every body, HTTP and WebSocket

        def spy(body: str | bytes, host: Any = None, read: Any = None) -> Any:
            msg = json.loads(body)
            for m in msg if isinstance(msg, list) else [msg]:
                if isinstance(m, dict) and m.get("method") in ("eth_getLogs", "eth_subscribe"):
                    seen.append({"method": m["method"], "params": m["params"]})
            return steps(body, host, read)
        sim.rpc.steps = spy  # type: ignore[method-assign]
        await sim.start()
        sim.begin()
        await sim.wait_published(LATE_START, timeout=3600)
        settings = Settings(websocket_url=sim.urls["ws"], rpc_url=sim.urls["http"],
                            explorer_url=sim.urls["explorer"], wallets=wallets,
                            state_db=str(tmp / "state.db"), start_block=rec.first_block,
                            state_synchronous="NORMAL", **extra)
        sink = MemorySink()
        mon = WalletMonitor(settings, sink=sink, clock=clock,
                            history=History(tmp / "mon.jsonl", clock=clock))
        await mon.start()
        await sim.wait_published(BLOCKS, timeout=3600)
        await asyncio.sleep(40.0)  # timeline: a reconcile sweep (30 s) after the last block
        metrics = mon.metrics()
        await mon.stop()
        await sim.stop()
        return {"sink": sink, "sim": sim_hist.rows or [], "metrics": metrics}

    loop = looptime.new_event_loop(noop_cycles=4, _enabled=True)
    try:
        out = loop.run_until_complete(go())
    finally:
        loop.close()
    mon_rows = [json.loads(line) for line in (tmp / "mon.jsonl").read_text().splitlines()]
    return out["sink"], out["sim"], out["metrics"], mon_rows, seen


def delivered(sink: MemorySink) -> Counter[str]:
    return Counter(e.trade_id for e in sink.events if e.kind == "trade")


def test_firehose_delivers_exactly_the_watched_wallets_trades(
        recording: Recording, tmp_path: Path) -> None:
    counts = makers(recording)
    wallets = [w for w, _ in counts.most_common(30)][::3]  # 10 wallets, busy and quiet
    sink, sim_rows, metrics, mon_rows, seen = run(
        recording, wallets, tmp_path, subscription_mode="firehose", firehose_chunk_blocks=4)
    want = truth(sim_rows, set(wallets))
    got = delivered(sink)
    assert want and set(got) == want, (len(want - set(got)), len(set(got) - want))
    assert max(got.values()) == 1  # once each
    # one connection; its logs filter and every backfill query carry no maker topics
    assert next(r for r in mon_rows if r["event"] == "subscription_mode")["mode"] == "firehose"
    assert metrics["subscriptions"]["connections"] == 1 and len(metrics["shards"]) == 1
    logs_subs = [s["params"][1] for s in seen if s["method"] == "eth_subscribe"
                 and s["params"][0] == "logs"]
    assert logs_subs and all(f["topics"] == [list(ORDER_FILLED_TOPICS)] for f in logs_subs)
    queries = [s["params"][0] for s in seen if s["method"] == "eth_getLogs"]
    assert len(queries) >= LATE_START // 4  # the late start was backfilled in small chunks
    assert all(len(q["topics"]) == 1 for q in queries)
    assert all(int(q["toBlock"], 16) - int(q["fromBlock"], 16) < 4 for q in queries)
    # the other makers' fills arrived and were dropped locally
    shard = metrics["shards"]["ws0"]
    assert shard["other_wallet"] > shard["notifications"] - shard["other_wallet"] > 0
    assert metrics["pipeline"].get("delivered_backfill", 0) > 0


def test_auto_picks_by_wallet_count_and_says_so(recording: Recording, tmp_path: Path) -> None:
    wallets = [w for w, _ in makers(recording).most_common(12)]
    filtered = tmp_path / "f"
    filtered.mkdir()
    sink_f, sim_rows, _m_f, rows_f, seen_f = run(
        recording, wallets, filtered, max_wallets_per_filter=5, firehose_above_wallets=12)
    choice = next(r for r in rows_f if r["event"] == "subscription_mode")
    assert (choice["mode"], choice["connections"], choice["subscriptions"]) == (
        "filtered", 3, 6)
    assert all(len(s["params"][1]["topics"][2]) <= 5 for s in seen_f
               if s["method"] == "eth_subscribe" and s["params"][0] == "logs")
    firehose = tmp_path / "h"
    firehose.mkdir()
    sink_h, _, _m_h, rows_h, _ = run(
        recording, wallets, firehose, max_wallets_per_filter=5, firehose_above_wallets=11)
    assert next(r for r in rows_h if r["event"] == "subscription_mode")["mode"] == "firehose"
    # both ways: the same trades, each once
    want = truth(sim_rows, set(wallets))
    assert set(delivered(sink_f)) == set(delivered(sink_h)) == want
