"""Latency stages: with ``latency_stages`` on, every live trade's detection row carries the
stamps of its path, never decreasing, and after its block was published and fanned out.

The simulator and the real monitor share one event loop in real time over loopback (the
stamps need a clock that moves while code runs; virtual time would make them all equal).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from monitor_helpers import WALLET, order_filled

from monitor.config import Settings
from monitor.history import History
from monitor.pipeline import Pipeline
from monitor.sinks import JsonlSink, MemorySink
from monitor.stages import MONITOR_STAGES
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor
from polyvocab import ORDER_FILLED_TOPICS
from simulator.history import SimHistory
from simulator.server import Simulator
from simulator.synth import synthesise

BLOCKS = 10
SPEED = 20.0  # a block every 0.1 s


def _makers(rec: Any, n: int) -> list[str]:
    counts: dict[str, int] = {}
    for b in rec.blocks:
        for lg in b.logs:
            t = lg.get("topics") or []
            if t and t[0] in ORDER_FILLED_TOPICS:
                counts["0x" + t[2][-40:]] = counts.get("0x" + t[2][-40:], 0) + 1
    return sorted(counts, key=lambda w: -counts[w])[:n]


def _run(tmp: Path, *, stages: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                               list[dict[str, Any]]]:
    rec = synthesise("busy", seed=3, blocks=BLOCKS)
    wallets = _makers(rec, 20)

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        sim_hist = SimHistory(keep=True)
        async with Simulator(rec, speed=SPEED, history=sim_hist, autostart=False) as sim:
            settings = Settings(websocket_url=sim.urls["ws"], rpc_url=sim.urls["http"],
                                explorer_url=sim.urls["explorer"], wallets=wallets,
                                state_db=str(tmp / "state.db"), speed=SPEED,
                                state_synchronous="NORMAL", latency_stages=stages,
                                detections_path=str(tmp / "det.jsonl"))
            mon = WalletMonitor(settings, history=History(tmp / "mon.jsonl"))
            await mon.start()
            assert await mon.wait_connected(10.0)
            sim.begin()  # the replay starts once the feed is up: every trade comes live
            await sim.wait_published(BLOCKS, timeout=30)
            await asyncio.sleep(0.5)  # timeline: the last block's frames reach the sink
            await mon.stop()
        mon_rows = [json.loads(x) for x in (tmp / "mon.jsonl").read_text().splitlines()]
        return sim_hist.rows or [], mon_rows

    sim_rows, mon_rows = asyncio.run(go())
    det = [json.loads(x) for x in (tmp / "det.jsonl").read_text().splitlines()]
    return sim_rows, mon_rows, det


def test_live_trades_carry_monotone_stage_stamps_after_their_block(tmp_path: Path) -> None:
    sim_rows, mon_rows, det = _run(tmp_path, stages=True)
    live = [r for r in det if r["kind"] == "trade" and r["source"] == "ws"]
    assert len(live) > 20
    published = {r["hash"]: r for r in sim_rows if r["event"] == "block_published"}
    for r in live:
        st = r["stages"]
        offsets = [st[k] for k in MONITOR_STAGES]
        assert offsets == sorted(offsets) and offsets[0] >= 0, st
        assert r["t_ns"] - st["recv_ns"] == st["deliver"]
        block = published[r["trade"]["block_hash"]]
        assert block["fanout_ns"] >= 0
        assert st["recv_ns"] >= block["t_ns"] + block["fanout_ns"]  # sent after fan-out
    # backfilled trades (none expected here) never carry stamps
    assert all("stages" not in r for r in det if r["source"] != "ws")
    # what the histories cost is measured: the simulator per block, the monitor per row
    stop = next(r for r in sim_rows if r["event"] == "stop")
    assert stop["history_write_ns"]["blocks"] == BLOCKS
    pipe = next(r for r in mon_rows if r["event"] == "stop")["metrics"]["pipeline"]
    assert pipe["history_writes"] == len(live) and pipe["history_write_ns"] > 0


def test_without_the_setting_rows_carry_no_stages(tmp_path: Path) -> None:
    _sim, mon_rows, det = _run(tmp_path, stages=False)
    assert det and all("stages" not in r for r in det)
    pipe = next(r for r in mon_rows if r["event"] == "stop")["metrics"]["pipeline"]
    assert "history_writes" not in pipe


def test_pipeline_passes_a_frames_stamps_to_the_sink_event(tmp_path: Path) -> None:
    sink = MemorySink()
    p = Pipeline(Store(tmp_path / "s.db"), sink, wallets=[WALLET])  # type: ignore[arg-type]
    logs = [order_filled(tx=1), order_filled(tx=2), order_filled(tx=1)]  # 3rd: a duplicate
    asyncio.run(p.on_logs(logs, "ws", stamps=[(100, 150), None, (200, 260)]))
    first, second = sink.events
    assert second.stages is None  # no frame stamps: nothing to say
    assert first.stages is not None and first.stages["recv_ns"] == 100
    assert first.stages["parse"] == 50
    assert 50 < first.stages["queue"] <= first.stages["decode"] <= first.stages["dedup"] \
        <= first.stages["persist"]


@pytest.mark.parametrize("stages", [None, {"recv_ns": 5, "parse": 1}])
def test_jsonl_sink_adds_deliver_only_to_stamped_rows(tmp_path: Path,
                                                      stages: dict[str, int] | None) -> None:
    sink = MemorySink()
    p = Pipeline(Store(tmp_path / "s.db"), sink, wallets=[WALLET])  # type: ignore[arg-type]
    asyncio.run(p.on_logs([order_filled()], "ws"))
    from dataclasses import replace
    event = replace(sink.events[0], stages=stages)
    js = JsonlSink(tmp_path / "d.jsonl")
    js.write(event)
    row = json.loads((tmp_path / "d.jsonl").read_text())
    if stages is None:
        assert "stages" not in row
    else:
        assert row["stages"]["deliver"] == row["t_ns"] - 5 and row["stages"]["parse"] == 1
