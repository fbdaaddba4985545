"""Reconcile against a provider that times out on ranges, or refuses a block past the
pilot's end even alone: a range too heavy to answer in time is split as a refused range
is (it was asked again whole, five tries, then the reconcile lost), and a block past the
end that nothing judged needs (it is read only for trades a reorg moved past the end) does
not make the pilot INCONCLUSIVE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_reconcile_hunt import S, chain_log, make_store, node, opts, outcomes, sight, tid_of, ts

from experiments.reconcile import reconcile

__all__ = ["node"]  # the fixture, imported


def _seen_by_both(store: Path, *logs: dict[str, Any]) -> None:
    for p in ("websocket", "polling"):
        for lg in logs:
            n = int(lg["blockNumber"], 16)
            sight(store, p, "trade", lg, wall_ns=(ts(n) + 1) * S, mono_ns=(ts(n) + 1) * S)


def _span(f: dict[str, Any]) -> tuple[int, int]:
    return int(f["fromBlock"], 16), int(f["toBlock"], 16)


def test_a_range_the_provider_times_out_on_is_split(node: Any, tmp_path: Path) -> None:
    """geth's -32002 'request timed out' (dRPC's free tier says the like) on every range
    of more than 10 blocks: each was tried 5 times whole (1 + 2 + 4 + 8 s of backoff a
    range) and the reconcile ended in an error; now each is asked once and split."""
    state, url = node
    logs = [chain_log(n, tx=n) for n in (100, 125, 150)]
    state.head, state.logs = 300, logs

    def slow(req: dict[str, Any]) -> dict[str, Any] | None:
        a, b = _span(req["params"][0])
        return {"code": -32002, "message": "request timed out"} if b - a + 1 > 10 else None

    state.refuse_logs = slow
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, *logs)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert outcomes(run, "websocket") == {tid_of(lg): "detected" for lg in logs}
    spans = [_span(r["params"][0]) for r in state.requests if r["method"] == "eth_getLogs"]
    timed_out = [s for s in spans if s[1] - s[0] + 1 > 10]
    assert len(timed_out) == len(set(timed_out)), "a range that timed out was asked again"
    summary = json.loads((run / "pilot_websocket" / "summary.json").read_text())
    assert summary["status"] == "ok"


def _refuse_block(n: int) -> Any:
    def limited(req: dict[str, Any]) -> dict[str, Any] | None:
        a, b = _span(req["params"][0])
        if a <= n <= b:
            return {"code": -32005, "message": "query returned more than 10000 results"}
        return None
    return limited


def test_a_block_past_the_end_not_needed_leaves_the_pilot_judged(node: Any,
                                                                  tmp_path: Path) -> None:
    """Block 160 (past the pilot's end, 150) refused even alone: read only for a trade a
    reorg moved out of the range, and every trade the paths saw is in the range's truth.
    It made the pilot INCONCLUSIVE."""
    state, url = node
    logs = [chain_log(n, tx=n) for n in (110, 140)]
    state.head, state.logs = 300, logs
    state.refuse_logs = _refuse_block(160)
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, *logs)
    lines: list[str] = []
    run = reconcile(store, opts(url, tmp_path / "out"), log=lines.append)
    for p in ("websocket", "polling"):
        summary = json.loads((run / f"pilot_{p}" / "summary.json").read_text())
        assert summary["status"] == "ok", summary["error"]
        assert outcomes(run, p) == {tid_of(lg): "detected" for lg in logs}
    pilot = json.loads((run / "manifest.json").read_text())["pilot"]
    assert pilot["unchecked_blocks"] == []
    assert pilot["unchecked_past_end_not_needed"] == [160]
    assert any("block 160 past the pilot's end" in line and "not needed" in line
               for line in lines), lines


def test_a_block_past_the_end_a_missing_trade_may_be_in_is_inconclusive(
        node: Any, tmp_path: Path) -> None:
    """A trade the paths saw at the end (150) that the range's truth lacks may have been
    moved past the end by a reorg: with block 160 refused, that cannot be told."""
    state, url = node
    real, moved = chain_log(110, tx=1), chain_log(150, tx=2)
    state.head, state.logs = 300, [real]
    state.refuse_logs = _refuse_block(160)
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, real, moved)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    summary = json.loads((run / "pilot_websocket" / "summary.json").read_text())
    assert summary["status"] == "inconclusive" and "block 160" in summary["error"]
    assert json.loads((run / "manifest.json").read_text())["pilot"]["unchecked_blocks"] \
        == [160]
