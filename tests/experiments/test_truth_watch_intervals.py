"""The truth counts a wallet's trades only while it was watched: a restart's ``fault_stop``
row that adds wallets (from after its ``launch_block``) or removes them (up to its
``removed_block``) bounds them, by the block that holds each trade (its canonical one, a
reorged-out one's last). A tiny synthetic history, no run."""

from __future__ import annotations

from typing import Any

import pytest

from experiments.checker import CheckParams, classify, detections_frame, fault_windows
from experiments.truth import TruthError, WatchInterval, build_truth

A, B, C = ("0x" + c * 40 for c in "abc")
S = 1_000_000_000


def _block(number: int, fills: list[tuple[str, str]], t_s: float,
           bhash: str | None = None) -> dict[str, Any]:
    return {"event": "block_published", "t_ns": int(t_s * S), "number": number,
            "hash": bhash or f"0x{number:064x}", "order_filled": [list(f) for f in fills]}


def _restart(t_s: float, added: list[str], removed: list[str], launch: int,
             stopped: int) -> dict[str, Any]:
    return {"event": "fault_stop", "t_ns": int(t_s * S), "fault_id": "restart1",
            "name": "monitor_stop", "added_wallets": added, "removed_wallets": removed,
            "launch_block": launch, "removed_block": stopped}


# 10-13 s: blocks 10-13, A and B watched, C not yet
# 13.5 s:  restarted: B removed (watched up to block 13), C added (launch point 13)
# 14-15 s: blocks 14-15; block 15 reorged out for a 15' holding C's trade again
HISTORY = [
    {"event": "start", "t_ns": 0, "speed": 1.0},
    _block(10, [("0x10a", A), ("0x10b", B), ("0x10c", C)], 10),
    _block(11, [("0x11c", C)], 11),
    _block(12, [("0x12b", B)], 12),
    {"event": "fault_start", "t_ns": int(13.2 * S), "fault_id": "restart1",
     "name": "monitor_stop", "target": "monitor"},
    _block(13, [("0x13b", B), ("0x13c", C)], 13),
    _restart(13.5, [C], [B], launch=13, stopped=13),
    _block(14, [("0x14a", A), ("0x14b", B), ("0x14c", C)], 14),
    _block(15, [("0x15c", C), ("0x15b", B)], 15, bhash="0x" + "f5" * 32),
    _block(15, [("0x15c", C), ("0x15b", B)], 16),
]


def test_a_wallet_counts_only_in_the_blocks_it_was_watched_in() -> None:
    truth = build_truth(HISTORY, [A, B, C], window=(0, 20 * S))
    assert sorted(truth["trade_id"]) == ["0x10a", "0x10b", "0x12b", "0x13b", "0x14a",
                                         "0x14c", "0x15c"]
    # C's trades at or before its launch point (block 13) are none of the truth; B's after
    # its stop's head (13) neither
    assert truth.set_index("trade_id").loc["0x15c", "block_number"] == 15


def test_an_added_wallet_not_given_is_watched_from_its_restart_row_on() -> None:
    truth = build_truth(HISTORY, [A, B], window=(0, 20 * S))
    assert {"0x14c", "0x15c"} <= set(truth["trade_id"])
    assert "0x13c" not in set(truth["trade_id"])


def test_without_changes_every_trade_of_the_wallets_counts_as_before() -> None:
    rows = [r for r in HISTORY if "added_wallets" not in r]
    truth = build_truth(rows, [A, B, C], window=(0, 20 * S))
    assert len(truth) == 12


def test_a_delivery_outside_the_watch_interval_is_a_phantom_and_its_absence_no_miss() -> None:
    """C's trade mined before its launch point delivered (the bug of 1065d49) is a
    phantom; B's trade mined after it was removed, delivered, too; neither missed when
    not delivered."""
    truth = build_truth(HISTORY, [A, B, C], window=(0, 20 * S))
    params = CheckParams(speed=1.0, window_start_ns=0, window_end_ns=20 * S,
                         actionable_window_s=60, wallets=(A, B, C))
    delivered = ["0x10a", "0x10b", "0x12b", "0x13b", "0x14a", "0x14c", "0x15c"]
    rows = [{"t_ns": int(16.5 * S), "kind": "trade", "source": "websocket",
             "trade": {"id": t, "wallet": A}} for t in delivered]
    out = classify(truth, detections_frame(rows), fault_windows(HISTORY, 20 * S), params)
    assert set(out["outcome"]) == {"detected"}
    extra = [{"t_ns": int(16.6 * S), "kind": "trade", "source": "websocket",
              "trade": {"id": t, "wallet": w}} for t, w in (("0x11c", C), ("0x14b", B))]
    out = classify(truth, detections_frame(rows + extra), fault_windows(HISTORY, 20 * S),
                   params).set_index("trade_id")
    assert out.loc["0x11c", "outcome"] == out.loc["0x14b", "outcome"] == "phantom"


def test_the_interval_bounds_are_exclusive_below_and_inclusive_above() -> None:
    iv = WatchInterval(after_block=13, until_block=20)
    assert [n for n in range(12, 23) if iv.holds(n)] == list(range(14, 21))
    assert WatchInterval().holds(0)


def test_blocks_published_while_a_monitor_started_or_stopped_are_not_judged() -> None:
    """C added with its launch point at 12 while the new monitor read its own at 13 (block
    13 published during its start); B's monitor took down as block 12 was the head, block
    13 published before it was down: the trades of block 13 are neither expected nor,
    delivered, phantoms (in_window False); those beyond still are."""
    rows = [*HISTORY[:6], {**_restart(13.5, [C], [B], launch=12, stopped=13),
                           "started_block": 13, "stop_block": 12}, *HISTORY[7:]]
    truth = build_truth(rows, [A, B, C], window=(0, 20 * S)).set_index("trade_id")
    assert not truth.loc["0x13b", "in_window"] and not truth.loc["0x13c", "in_window"]
    assert truth.loc[["0x12b", "0x14c", "0x15c"], "in_window"].all()
    assert "0x11c" not in truth.index and "0x14b" not in truth.index
    params = CheckParams(speed=1.0, window_start_ns=0, window_end_ns=20 * S,
                         actionable_window_s=60, wallets=(A, B, C))
    rows_det = [{"t_ns": int(16.5 * S), "kind": "trade", "source": "websocket",
                 "trade": {"id": t, "wallet": A}}
                for t in ("0x10a", "0x10b", "0x12b", "0x13c", "0x14a", "0x14c", "0x15c")]
    out = classify(truth.reset_index(), detections_frame(rows_det),
                   fault_windows(rows, 20 * S), params)
    assert set(out["outcome"]) == {"detected"}  # 0x13b not missed, 0x13c no phantom
    assert "0x13b" not in set(out["trade_id"]) and "0x13c" not in set(out["trade_id"])


@pytest.mark.parametrize(("field", "value", "said"), [
    ("added_wallets", "0xabc", "added_wallets is not a list of wallets"),
    ("removed_wallets", [1], "removed_wallets is not a list of wallets"),
    ("launch_block", None, "launch_block is not a block number"),
    ("removed_block", True, "removed_block is not a block number"),
    ("started_block", "13", "started_block is not a block number"),
])
def test_a_malformed_restart_row_is_a_truth_error_naming_the_field(
        field: str, value: Any, said: str) -> None:
    row = {**_restart(13.5, [C], [B], 13, 13), field: value}
    with pytest.raises(TruthError, match=f"row 3: {said}"):
        build_truth([HISTORY[0], HISTORY[1], row], [A], window=(0, 20 * S))
