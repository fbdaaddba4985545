"""Reconcile against a provider that is not the honest node of the other tests: another
chain, a range it does not keep to, the same log twice, a trade on two forks, the
provider's range and result limits. A trade is never counted missed or phantom because of
the provider: it is split, or it is one clear error naming what could not be checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_reconcile_hunt import S, chain_log, make_store, node, opts, outcomes, sight, tid_of, ts

from experiments.reconcile import ReconcileError, reconcile

__all__ = ["node"]  # the fixture, imported


def _seen_by_both(store: Path, *logs: dict[str, Any]) -> None:
    for p in ("websocket", "polling"):
        for lg in logs:
            n = int(lg["blockNumber"], 16)
            sight(store, p, "trade", lg, wall_ns=(ts(n) + 1) * S, mono_ns=(ts(n) + 1) * S)


def test_a_provider_of_another_chain_is_refused_not_a_run_of_phantoms(
        node: Any, tmp_path: Path) -> None:
    """Before: an Amoy (80002) URL had none of the trades: both paths' trades were all
    judged phantoms, a run written as a result."""
    state, url = node
    state.chain_id, state.head = 80002, 300
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, chain_log(120, tx=1))
    out = tmp_path / "out"
    with pytest.raises(ReconcileError, match="serves chain 80002, the pilot watched chain 137"):
        reconcile(store, opts(url, out), log=lambda _m: None)
    assert not out.exists() or not any(out.iterdir())


def test_a_store_kept_its_chain_and_the_same_chain_is_judged(node: Any,
                                                             tmp_path: Path) -> None:
    state, url = node
    lg = chain_log(120, tx=1)
    state.chain_id, state.head, state.logs = 80002, 300, [lg]
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S,
                       meta={"chain_id": 80002})
    _seen_by_both(store, lg)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert outcomes(run, "websocket") == {tid_of(lg): "detected"}


def test_a_provider_not_keeping_to_the_range_is_an_error_not_a_phantom(
        node: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache or proxy answering every range with all it has: a trade of block 160 (past
    the judged end 150) was in the truth of 100..150 and judged missed by both paths."""
    state, url = node
    state.head = 300
    inside, outside = chain_log(120, tx=1), chain_log(160, tx=2)
    state.logs = [inside, outside]
    honest = state.answer

    def sloppy(req: dict[str, Any]) -> Any:
        if req["method"] == "eth_getLogs":
            state.requests.append(req)
            return [inside, outside]
        return honest(req)

    monkeypatch.setattr(state, "answer", sloppy)
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, inside)
    with pytest.raises(ReconcileError, match="answered a log of block 160"):
        reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)


def test_the_same_log_in_two_split_ranges_is_one_trade_in_one_block_row(
        node: Any, tmp_path: Path) -> None:
    """A provider answering a log twice (its retry, ranges split around a refusal): the
    truth kept one, but the chain rows listed the trade twice in its block."""
    state, url = node
    lg = chain_log(120, tx=1)
    state.head, state.logs = 300, [lg, dict(lg)]
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, lg)
    run = reconcile(store, opts(url, tmp_path / "out", chunk_blocks=10), log=lambda _m: None)
    assert outcomes(run, "websocket") == {tid_of(lg): "detected"}
    rows = [json.loads(x) for x in
            (run / "pilot_websocket" / "sim_history.jsonl").read_text().splitlines()]
    blocks = [r for r in rows if r.get("event") == "block_published"]
    assert [len(b["order_filled"]) for b in blocks] == [1]


def test_a_trade_answered_on_two_forks_is_an_error_naming_it(node: Any,
                                                              tmp_path: Path) -> None:
    """A load balancer with one node not yet reorged: the same transaction in two blocks,
    neither removed. Before: the first kept at random, and the pilot's sighting in the
    other block judged by it; now one error: run again later."""
    state, url = node
    a = chain_log(120, tx=1)
    b = chain_log(121, tx=1, block_hash="0x" + "ee" * 32)
    state.head, state.logs = 300, [a, b]
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, b)
    with pytest.raises(ReconcileError, match="two forks") as err:
        reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert tid_of(a) in str(err.value) and "block 120" in str(err.value)


def test_a_removed_log_beside_its_replacement_is_the_replacement(node: Any,
                                                                  tmp_path: Path) -> None:
    state, url = node
    old = dict(chain_log(120, tx=1, block_hash="0x" + "ee" * 32), removed=True)
    new = chain_log(121, tx=1)
    state.head, state.logs = 300, [old, new]
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, new)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert outcomes(run, "polling") == {tid_of(new): "detected"}


ALCHEMY = ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K "
           "block range and no limit on the response size, or you can request any block "
           "range with a cap of 10K logs in the response. Based on your parameters, this "
           "block range should work: [0x64, 0x78]")


@pytest.mark.parametrize("error", [
    {"code": -32602, "message": ALCHEMY},
    {"code": -32005, "message": "query returned more than 10000 results"},
    {"code": -32614, "message": "eth_getLogs is limited to a 10,000 range"},
    {"code": 35, "message": "ranges over 10000 blocks are not supported on freetier"},
], ids=["alchemy", "infura", "quicknode", "drpc"])
def test_a_range_or_result_limit_is_split_and_the_truth_whole(
        node: Any, tmp_path: Path, error: dict[str, Any]) -> None:
    state, url = node
    logs = [chain_log(n, tx=n) for n in (100, 125, 150)]
    state.head, state.logs = 300, logs
    state.log_errors = [error] * 3
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, *logs)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert outcomes(run, "websocket") == {tid_of(lg): "detected" for lg in logs}


def test_a_block_the_provider_refuses_even_alone_is_an_inconclusive_run_naming_it(
        node: Any, tmp_path: Path) -> None:
    """Block 130 refused even alone (a result limit it cannot meet): there was no run at
    all ('eth_getLogs refuses even one block (130)'), the other blocks' trades unjudged.
    Now a run whose scenarios are INCONCLUSIVE naming the block, the trade the paths saw
    in it left unjudged (no truth there: it would be a phantom), the others judged."""
    state, url = node
    good, lost = chain_log(120, tx=1), chain_log(130, tx=2)
    state.head, state.logs = 300, [good, lost]

    def limited(req: dict[str, Any]) -> dict[str, Any] | None:
        f = req["params"][0]
        if int(f["fromBlock"], 16) <= 130 <= int(f["toBlock"], 16):
            return {"code": -32005, "message": "query returned more than 10000 results"}
        return None

    state.refuse_logs = limited
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, good, lost)
    lines: list[str] = []
    run = reconcile(store, opts(url, tmp_path / "out"), log=lines.append)
    for p in ("websocket", "polling"):
        summary = json.loads((run / f"pilot_{p}" / "summary.json").read_text())
        assert summary["status"] == "inconclusive" and "block 130" in summary["error"]
        assert outcomes(run, p) == {tid_of(good): "detected"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["pilot"]["unchecked_blocks"] == [130]
    assert any("block 130" in line and "INCONCLUSIVE" in line for line in lines)


def test_a_provider_truncating_its_answers_silently_is_an_error_not_phantoms(
        node: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A result limit that cuts the answer without an error (at most 2 logs an answer):
    the trades left out, which both paths saw, were judged phantoms on both paths."""
    state, url = node
    logs = [chain_log(n, tx=n) for n in (110, 120, 130, 140)]
    state.head, state.logs = 300, logs
    honest = state.answer

    def capped(req: dict[str, Any]) -> Any:
        res = honest(req)
        return res[:2] if req["method"] == "eth_getLogs" else res

    monkeypatch.setattr(state, "answer", capped)
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, *logs)
    with pytest.raises(ReconcileError, match=r"left trade .* of block 130 out of its answer"):
        reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)


def test_a_true_phantom_is_asked_again_and_stays_a_phantom(node: Any,
                                                            tmp_path: Path) -> None:
    state, url = node
    real, ghost = chain_log(120, tx=1), chain_log(130, tx=2)
    state.head, state.logs = 300, [real]
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, real, ghost)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert outcomes(run, "websocket") == {tid_of(real): "detected", tid_of(ghost): "phantom"}
    alone = [r for r in state.requests if r["method"] == "eth_getLogs"
             and r["params"][0]["fromBlock"] == r["params"][0]["toBlock"] == hex(130)]
    assert len(alone) == 1


def test_a_node_behind_the_pilots_end_is_said_and_judged_up_to_its_head(
        node: Any, tmp_path: Path) -> None:
    """The node's head 140 (finality 2): the judged range ended at 138 with only the
    manifest's end_clamped_from to say so."""
    state, url = node
    early, late = chain_log(120, tx=1), chain_log(145, tx=2)
    state.head, state.logs = 140, [early]
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, early, late)
    lines: list[str] = []
    run = reconcile(store, opts(url, tmp_path / "out"), log=lines.append)
    assert outcomes(run, "websocket") == {tid_of(early): "detected"}
    assert any("judging blocks up to 138 only" in line for line in lines), lines


def test_a_range_limit_met_once_sizes_the_next_ranges(node: Any, tmp_path: Path) -> None:
    """QuickNode's free tier takes 5 blocks: each 50-block chunk was refused and halved
    again (5 refusals a chunk); now only the first chunk is, and the truth is whole."""
    state, url = node
    logs = [chain_log(n, tx=n) for n in range(100, 300, 7)]
    state.head, state.logs = 400, logs

    def quicknode(req: dict[str, Any]) -> dict[str, Any] | None:
        f = req["params"][0]
        if int(f["toBlock"], 16) - int(f["fromBlock"], 16) + 1 > 5:
            return {"code": -32614, "message": "eth_getLogs is limited to a 5 range"}
        return None

    state.refuse_logs = quicknode
    store = make_store(tmp_path, start=100, head=299, wall0=ts(99) * S)
    run = reconcile(store, opts(url, tmp_path / "out", chunk_blocks=50), log=lambda _m: None)
    assert set(outcomes(run, "websocket")) == {tid_of(lg) for lg in logs}
    asked = [r["params"][0] for r in state.requests if r["method"] == "eth_getLogs"]
    refused = [f for f in asked if int(f["toBlock"], 16) - int(f["fromBlock"], 16) + 1 > 5]
    assert len(refused) <= 8, len(refused)  # 50, 25, 13, 7 twice: the range and past its end


def test_many_phantoms_are_asked_again_by_a_sample_and_stay_phantoms(
        node: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitor that makes phantoms in many blocks: its NO-GO evidence is kept (a sample
    of the blocks asked again, said in the log), not lost to an error."""
    import experiments.reconcile as rec_mod

    monkeypatch.setattr(rec_mod, "MAX_PHANTOM_BLOCKS", 4)
    state, url = node
    state.head = 300
    ghosts = [chain_log(n, tx=n) for n in range(101, 141, 2)]
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    _seen_by_both(store, *ghosts)
    lines: list[str] = []
    run = reconcile(store, opts(url, tmp_path / "out"), log=lines.append)
    assert set(outcomes(run, "websocket").values()) == {"phantom"}
    alone = [r for r in state.requests if r["method"] == "eth_getLogs"
             and r["params"][0]["fromBlock"] == r["params"][0]["toBlock"]]
    assert len(alone) == 4
    assert any("20 blocks" in line and "4 of those blocks" in line for line in lines)


@pytest.mark.parametrize(("meta", "needle"), [
    ({"wallets": ["nope"]}, "meta 'wallets'"),      # was a ValueError traceback
    ({"wallets": []}, "meta 'wallets'"),            # was a query for every maker
    ({"exchanges": ["zz"]}, "meta 'exchanges'"),    # was the node's error, or a run
    ({"start_block": -5}, "meta 'start_block' is -5"),
])
def test_a_store_whose_meta_is_no_pilots_is_refused_before_the_node(
        node: Any, tmp_path: Path, meta: dict[str, Any], needle: str) -> None:
    state, url = node
    state.head = 300
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S, meta=meta)
    with pytest.raises(ReconcileError, match=needle):
        reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert state.requests == []
