"""The nemesis core: one answer per hook from the active faults (synchronous, no I/O)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

import pytest
import websockets

from simulator.faults import FaultPlan, make_spec
from simulator.nemesis import (
    KINDS,
    Abort,
    Close,
    ExplorerEffects,
    FaultBoard,
    FaultError,
    FaultKind,
    Nemesis,
    Notify,
    NotifyCtx,
    Refusal,
    Reorg,
)
from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording


def board_with(*faults: tuple[str, dict[str, Any]] | str, target: str | None = None
               ) -> tuple[FaultBoard, Nemesis]:
    board = FaultBoard()
    for item in faults:
        name, params = (item, {}) if isinstance(item, str) else item
        board.start(make_spec(name, target, params), now_ns=0, duration_ns=None)
    return board, Nemesis(board)


def ctx(conn_id: str = "c1", kind: str = "newHeads") -> NotifyCtx:
    return NotifyCtx(conn_id, kind, '{"params":{"result":', '{"number":"0x1"}')


def test_nothing_active_means_every_hook_passes_through() -> None:
    _, nem = board_with()
    assert nem.notify(ctx()) == Notify()
    assert nem.http() is None and nem.upgrade() is None and not nem.mute("c1")
    assert nem.subscribe("c1", 7) == 7 and nem.explorer() == ExplorerEffects()


@pytest.mark.parametrize("name", ["ws_stall", "ws_silent"])
def test_stall_and_silent_drop_notifications_only_stall_mutes(name: str) -> None:
    _, nem = board_with(name)
    assert nem.notify(ctx()).copies == 0
    assert nem.mute("c1") is (name == "ws_stall")


def test_a_silent_logs_subscription_keeps_the_heads_flowing() -> None:
    """A provider's failover can drop the logs subscription on its side while heads,
    pings and calls go on (the monitor must find it by what its sweeps find, not by a
    stale head): ``subscription = "logs"`` silences only that kind."""
    _, nem = board_with(("ws_silent", {"subscription": "logs"}))
    assert nem.notify(ctx(kind="logs")).copies == 0
    assert nem.notify(ctx(kind="newHeads")).copies == 1 and not nem.mute("c1")
    _, heads_only = board_with(("ws_silent", {"subscription": "newHeads"}))
    assert heads_only.notify(ctx(kind="newHeads")).copies == 0
    assert heads_only.notify(ctx(kind="logs")).copies == 1


def test_a_silent_subscription_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(FaultError, match="subscription must be one of all, logs, newHeads"):
        board_with(("ws_silent", {"subscription": "pendingTransactions"}))


def test_a_fault_aimed_at_one_connection_spares_the_others() -> None:
    _, nem = board_with("ws_stall", target="ws:c2")
    assert nem.notify(ctx("c1")).copies == 1 and nem.notify(ctx("c2")).copies == 0


def test_loss_dup_and_latency_fold_in_table_order_with_seeded_draws() -> None:
    _, nem = board_with(("ws_latency", {"delay_ms": 100, "jitter_ms": 50, "seed": 1}),
                        ("ws_dup", {"share": 1.0}), ("ws_loss", {"share": 0.5, "seed": 3}))
    plans = [nem.notify(ctx()) for _ in range(200)]
    dropped = [p for p in plans if p.copies == 0]
    assert 60 < len(dropped) < 140 and all(p == Notify(copies=0) for p in dropped)
    kept = [p for p in plans if p.copies]
    assert all(p.copies == 2 and p.delay_ms is not None and 100 <= p.delay_ms <= 150
               for p in kept)
    _, again = board_with(("ws_latency", {"delay_ms": 100, "jitter_ms": 50, "seed": 1}),
                          ("ws_dup", {"share": 1.0}), ("ws_loss", {"share": 0.5, "seed": 3}))
    assert [again.notify(ctx()) for _ in range(200)] == plans  # the same seeds, the same run


def test_start_commands_for_one_shot_faults() -> None:
    board, nem = board_with()
    drop = board.start(make_spec("ws_drop"), 0, 0)
    close = board.start(make_spec("ws_close", params={"code": 1012, "reason": "bye"}), 0, 0)
    reorg = board.start(make_spec("reorg", params={"depth": 3, "seed": 5}), 0, 0)
    keep = board.start(make_spec("ws_refuse", params={"drop_existing": False}), 0, None)
    assert nem.start(drop) == (Abort(),)
    assert nem.start(close) == (Close(1012, "bye"),)
    assert nem.start(reorg) == (Reorg(3, 5, 0.3, 0.2),)
    assert nem.start(keep) == ()
    assert nem.upgrade() == Refusal("503")


def test_rpc_errors_answer_instead_of_the_node_for_a_share_of_requests() -> None:
    _, nem = board_with(("rpc_errors", {"share": 1.0, "statuses": [429, "timeout", 502]}))
    answers = [nem.http() for _ in range(30)]
    assert all(a is not None for a in answers)
    statuses = {a.status for a in answers if a is not None}
    assert statuses == {429, 504, 502}
    assert all(a.hold_s == 10.0 for a in answers if a is not None and a.status == 504)


def test_explorer_effects_take_the_largest_lag_the_tightest_rate_and_the_last_mode() -> None:
    _, nem = board_with(("explorer_lag", {"extra_s": 5}), ("explorer_lag", {"extra_s": 9}),
                        ("explorer_rate_limit", {"rate": 2}),
                        ("explorer_rate_limit", {"rate": 0.5}),
                        ("explorer_down", {"mode": "html502"}),
                        ("explorer_down", {"mode": "timeout"}))
    assert nem.explorer() == ExplorerEffects(lag_extra_s=9.0, rate_limit=0.5, down="timeout")


def test_max_subscriptions_tightens_the_node_limit() -> None:
    _, nem = board_with(("max_subscriptions", {"n": 2}))
    assert nem.subscribe("c1", None) == 2 and nem.subscribe("c1", 1) == 1


# -- adding a fault: one table entry + one pure function ---------------------------------
def _notify_slow(faults: Any, ctx: NotifyCtx, plan: Notify) -> Notify:
    """A made-up fault: every notification ``ms`` late."""
    return replace(plan, delay_ms=(plan.delay_ms or 0.0) + faults[0].spec.params["ms"])


def test_adding_a_fault_is_one_table_entry_and_one_pure_function(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, "ws_slow", FaultKind("ws", {"ms": 300.0}, notify=_notify_slow))
    # the request checks, the schedule and the core know it at once
    assert make_spec("ws_slow").params == {"ms": 300.0}
    plan = FaultPlan.parse([{"name": "ws_slow", "at": 1, "duration": 1}])
    assert [w.spec.name for w in plan.windows(9)] == ["ws_slow"]
    _, nem = board_with("ws_slow")
    assert nem.notify(ctx()).delay_ms == 300.0

    # ... and the running node applies it: a head arrives >= 300 ms (simulated) late
    async def main() -> None:
        async with Simulator(make_recording(4), speed=1, autostart=False) as sim, \
                websockets.connect(sim.urls["ws"]) as ws:
            await ws.send('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe",'
                          '"params":["newHeads"]}')
            await asyncio.wait_for(ws.recv(), 20)
            sim.start_fault("ws_slow")
            sim.begin()
            t0 = time.monotonic()  # block 0 is due now
            msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert msg["method"] == "eth_subscription"
            assert time.monotonic() - t0 >= 0.3
            assert [r["name"] for r in sim.history.events("fault_start")] == ["ws_slow"]
    asyncio.run(asyncio.wait_for(main(), 60))
