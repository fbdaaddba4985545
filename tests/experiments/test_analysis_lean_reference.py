"""The analysis's truth and classification, made leaner for a simulated week's memory
(434e181 and after: only the columns read, few-valued text columns one object a value, the
truth's per-block state only for blocks that list a watched trade), give exactly what
they gave: the functions as they were (9af5672) are kept here as the reference, and both
run on random histories with reorgs, republished blocks, repeated and retracted
deliveries, missing values and frames of either string storage."""

from __future__ import annotations

import collections
import random
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd
import pytest

from experiments.checker import (
    OUTCOME_COLUMNS,
    CheckerError,
    CheckParams,
    FaultWindow,
    _FaultLookup,
    classify,
    detections_frame,
)
from experiments.truth import TRUTH_COLUMNS, TruthError, build_truth

_NS = 1_000_000_000

# -- the reference: 9af5672's build_truth and classify, unchanged --------------------------


def reference_truth(sim_rows: Iterable[Mapping[str, Any]], wallets: Iterable[str], *,
                window: tuple[int, int] | None = None) -> pd.DataFrame:
    """One row per trade of a watched wallet that any published block held.

    ``window`` = ``(start_ns, end_ns)``: trades first visible outside it get
    ``in_window = False``. Raises :class:`TruthError` on a malformed history.
    """
    watched = {w.lower() for w in wallets}
    final_block: dict[int, str] = {}          # height -> hash of the last published block
    block_trades: dict[str, list[tuple[str, str]]] = {}
    block_number: dict[str, int] = {}
    first_seen: dict[str, int] = {}           # trade id -> first t_ns visible
    last_block: dict[str, str] = {}           # trade id -> last block hash that held it
    wallet_of: dict[str, str] = {}
    published = 0
    for i, row in enumerate(sim_rows):
        if row.get("event") != "block_published":
            continue
        try:
            t_ns = int(row["t_ns"])
            number = int(row["number"])
            bhash = str(row["hash"]).lower()
            fills = row.get("order_filled") or []
        except (KeyError, TypeError, ValueError) as exc:
            raise TruthError(f"simulator history row {i + 1}: bad block_published ({exc})") \
                from None
        published += 1
        final_block[number] = bhash
        block_number[bhash] = number
        mine: list[tuple[str, str]] = []
        for fill in fills:
            if not isinstance(fill, (list, tuple)) or len(fill) != 2:
                raise TruthError(f"simulator history row {i + 1}: order_filled entry "
                                 f"{fill!r} is not [trade_id, maker]")
            tid, maker = str(fill[0]).lower(), str(fill[1]).lower()
            if maker not in watched:
                continue
            mine.append((tid, maker))
            if tid not in first_seen:
                first_seen[tid] = t_ns
            last_block[tid] = bhash
            wallet_of[tid] = maker
        block_trades[bhash] = mine
    if published == 0:
        raise TruthError("simulator history has no block_published rows")
    canonical_block: dict[str, str] = {}
    for _number, bhash in sorted(final_block.items()):
        for tid, _maker in block_trades.get(bhash, []):
            canonical_block[tid] = bhash
    records = []
    for tid, t_ns in first_seen.items():
        bhash = canonical_block.get(tid, last_block[tid])
        in_window = window is None or window[0] <= t_ns <= window[1]
        records.append((tid, wallet_of[tid], block_number[bhash], bhash, t_ns,
                        tid in canonical_block, in_window))
    frame = pd.DataFrame.from_records(records, columns=TRUTH_COLUMNS)
    return frame.astype({"trade_id": "string", "wallet": "string", "block_number": "int64",
                         "block_hash": "string", "visible_t_ns": "int64", "canonical": "bool",
                         "in_window": "bool"}).sort_values(
        ["visible_t_ns", "trade_id"], kind="stable").reset_index(drop=True)


def _tuples(frame: pd.DataFrame) -> Iterator[Any]:
    """``frame.itertuples(index=False)``, built from each column's ``tolist()``: the same
    values in the same order (nullable integers as ``int`` rather than ``numpy.int64``),
    without iterating the string columns' Arrow arrays an element at a time (a day's
    truth and detections, ~127,000 rows: ~0.45 -> ~0.2 s)."""
    row = collections.namedtuple("Row", list(frame.columns), rename=True)  # type: ignore[misc]
    return map(row._make, zip(*(frame[c].tolist() for c in frame.columns), strict=True))


def reference_classify(truth: pd.DataFrame, detections: pd.DataFrame, windows: list[FaultWindow],
             params: CheckParams) -> pd.DataFrame:
    """One row per trade id (``OUTCOME_COLUMNS``)."""
    for col in ("trade_id", "visible_t_ns", "canonical", "in_window"):
        if col not in truth.columns:
            raise CheckerError(f"truth has no column {col!r}")
    for col in ("t_ns", "kind", "trade_id"):
        if col not in detections.columns:
            raise CheckerError(f"detections have no column {col!r}")
    tail_ns = int(params.actionable_window_s * _NS / params.speed)
    fault_of = _FaultLookup(windows, tail_ns)
    by_id = {str(r.trade_id): r for r in _tuples(truth)}
    events: dict[str, list[tuple[int, str, str | None, str | None]]] = {}
    det = detections.sort_values("t_ns", kind="stable")
    for r in _tuples(det):
        src = None if pd.isna(r.source) else str(r.source)
        wallet = None if pd.isna(r.wallet) else str(r.wallet)
        events.setdefault(str(r.trade_id), []).append((int(r.t_ns), str(r.kind), src, wallet))

    ids = [t for t, r in by_id.items() if r.in_window and r.canonical]
    seen = set(ids)
    ids += [t for t in events if t not in seen]
    records = []
    for tid in dict.fromkeys(ids):
        t = by_id.get(tid)
        if t is not None and not t.in_window:
            continue  # visible before the monitor was up or after the measured span
        evs = events.get(tid, [])
        deliveries = sum(1 for e in evs if e[1] == "trade")
        if deliveries == 0 and (t is None or not t.canonical):
            continue  # retracted, never delivered: nothing reached the bot to take back
        duplicate = False  # some delivery came while another stood
        standing: int | None = None   # t_ns of the first delivery of the standing sequence
        source: str | None = None
        held = 0  # deliveries no retraction took back (one that found none took nothing)
        wallet = str(t.wallet) if t is not None else None
        for t_ns, kind, src, w in evs:
            if kind == "trade":
                if held > 0:
                    duplicate = True
                else:
                    standing, source = t_ns, src
                held += 1
                wallet = wallet or w
            elif held > 0:
                held -= 1
                if held == 0:
                    standing = None
        canonical = t is not None and bool(t.canonical)
        visible = int(t.visible_t_ns) if t is not None else None
        delivered_t = standing
        if delivered_t is None and evs and any(e[1] == "trade" for e in evs):
            delivered_t = next(e[0] for e in evs if e[1] == "trade")
        latency = None
        if canonical and standing is not None and visible is not None:
            latency = max(0.0, params.sim_s(standing - visible))
        if canonical:
            if held == 0:
                outcome = "missed"
            elif duplicate:
                outcome = "duplicate"
            elif latency is not None and latency > params.actionable_window_s:
                outcome = "late"
            else:
                outcome = "detected"
        else:  # a delivery the retractions did not cover still stands in the sink
            outcome = "phantom" if held > 0 else "retracted"
        fault = None
        if visible is not None:  # the detection span [visible, standing delivery]
            fault = fault_of(visible, standing if held > 0 and standing is not None
                             else visible + tail_ns)
        records.append((tid, wallet, int(t.block_number) if t is not None else None, visible,
                        delivered_t, latency, outcome, deliveries, source, fault is not None,
                        fault))
    frame = pd.DataFrame.from_records(records, columns=OUTCOME_COLUMNS)
    return frame.astype({"trade_id": "string", "wallet": "string", "block_number": "Int64",
                         "visible_t_ns": "Int64", "delivered_t_ns": "Int64",
                         "latency_s": "Float64", "outcome": "string", "deliveries": "int64",
                         "source": "string", "in_fault": "bool", "fault": "string"})



# -- random histories -----------------------------------------------------------------------

WALLETS = ["0xAa01", "0xbb02", "0xcc03"]
OTHERS = ["0xdd04", "0xee05"]


def _history(rng: random.Random) -> list[dict[str, Any]]:
    """Blocks published at heights that go back (reorgs), some republished under a hash
    seen before (at the same or another height), their fills of watched and other makers
    in either case, a trade listed by several blocks."""
    rows: list[dict[str, Any]] = [{"t_ns": 0, "event": "start", "speed": 1.0}]
    hashes: list[str] = []
    trades = [f"0xT{i:03x}:{i % 3}" for i in range(40)]
    height, t = 100, 0
    for _ in range(rng.randrange(5, 60)):
        t += rng.randrange(1, 3 * _NS)
        height = max(100, height + rng.choice([1, 1, 1, 0, -1, -2]))
        if hashes and rng.random() < 0.15:
            bhash = rng.choice(hashes)
        else:
            bhash = f"0xH{len(hashes):04x}"
            hashes.append(bhash)
        fills = []
        for _ in range(rng.randrange(0, 5)):
            maker = rng.choice(WALLETS + OTHERS)
            maker = maker.upper() if rng.random() < 0.2 else maker
            tid = rng.choice(trades)
            fills.append([tid.upper() if rng.random() < 0.1 else tid, maker])
        row: dict[str, Any] = {"t_ns": t, "event": "block_published", "number": height,
                               "hash": bhash if rng.random() < 0.8 else bhash.upper()}
        if fills or rng.random() < 0.5:
            row["order_filled"] = fills
        rows.append(row)
        if rng.random() < 0.1:
            rows.append({"t_ns": t, "event": "request"})
    return rows


def _detections(rng: random.Random, truth: pd.DataFrame) -> list[dict[str, Any]]:
    ids = [str(x) for x in truth["trade_id"]] + ["0xunknown:1", "0xunknown:2"]
    rows: list[dict[str, Any]] = []
    for _ in range(rng.randrange(0, 80)):
        t = rng.randrange(0, 200 * _NS)
        tid = rng.choice(ids)
        if rng.random() < 0.75:
            trade: dict[str, Any] = {"id": tid, "block_number": rng.choice([None, 101, 102]),
                                     "block_hash": rng.choice([None, "0xh"])}
            if rng.random() < 0.8:
                trade["wallet"] = rng.choice([*WALLETS, ""])
            row: dict[str, Any] = {"t_ns": t, "kind": "trade", "trade": trade}
            if rng.random() < 0.8:
                row["source"] = rng.choice(["ws", "explorer", "sweep"])
            rows.append(row)
        else:
            rows.append({"t_ns": t, "kind": "retraction", "trade_id": tid})
    return rows


def _windows(rng: random.Random) -> list[FaultWindow]:
    out = []
    for i in range(rng.randrange(0, 4)):
        start = rng.randrange(0, 150 * _NS)
        out.append(FaultWindow(f"f{i}", start, start + rng.randrange(0, 20 * _NS)))
    if rng.random() < 0.5:
        out.sort(key=lambda w: (w.start_ns, w.name))
    return out


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(a.dtypes) == list(b.dtypes)


@pytest.mark.parametrize("seed", range(60))
def test_the_truth_is_the_reference_truth(seed: int) -> None:
    rng = random.Random(seed)
    rows = _history(rng)
    window = (rng.randrange(0, 20 * _NS), rng.randrange(40 * _NS, 200 * _NS))
    _same(build_truth(rows, WALLETS, window=window),
          reference_truth(rows, WALLETS, window=window))


@pytest.mark.parametrize("bad", [{"t_ns": 1, "event": "block_published", "hash": "0x1"},
                                 {"t_ns": 1, "event": "block_published", "number": 5,
                                  "hash": "0x1", "order_filled": [["0xa:1"]]}])
def test_a_bad_row_is_refused_as_before(bad: dict[str, Any]) -> None:
    rows = [{"t_ns": 0, "event": "start"}, bad]
    with pytest.raises(TruthError) as new:
        build_truth(rows, WALLETS)
    with pytest.raises(TruthError) as old:
        reference_truth(rows, WALLETS)
    assert str(new.value) == str(old.value)


@pytest.mark.parametrize("storage", ["pyarrow", "python", "object"])
@pytest.mark.parametrize("seed", range(40))
def test_the_outcomes_are_the_reference_outcomes(seed: int, storage: str) -> None:
    rng = random.Random(1000 + seed)
    truth = reference_truth(_history(rng), WALLETS, window=(0, 150 * _NS))
    detections = detections_frame(_detections(rng, truth))
    if storage != "pyarrow":
        text = "object" if storage == "object" else pd.StringDtype("python")
        truth = truth.astype({c: text for c in ("trade_id", "wallet", "block_hash")})
        detections = detections.astype({c: text for c in ("kind", "source", "trade_id",
                                                          "wallet", "block_hash")})
    params = CheckParams(speed=rng.choice([1.0, 2.0]), window_start_ns=0,
                         window_end_ns=150 * _NS, actionable_window_s=rng.choice([1.0, 5.0]))
    windows = _windows(rng)
    _same(classify(truth, detections, windows, params),
          reference_classify(truth, detections, windows, params))


def test_a_truth_without_a_wallet_column_fails_as_before() -> None:
    truth = reference_truth(_history(random.Random(7)), WALLETS).drop(columns="wallet")
    assert len(truth)
    detections = detections_frame([])
    params = CheckParams(speed=1.0, window_start_ns=0, window_end_ns=10**12)
    with pytest.raises(AttributeError) as new:
        classify(truth, detections, [], params)
    with pytest.raises(AttributeError) as old:
        reference_classify(truth, detections, [], params)
    assert str(new.value) == str(old.value)
