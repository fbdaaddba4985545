"""Data hunt: imports and recordings checked against what the real data looks like.

The rows are modelled on the real Data-API /trades export of the Nobel 2025 event
(shared/data, never read here): 500-row pages, and past the API's offset cap the same page
again and again."""

from __future__ import annotations

import gzip
import json
import math
import statistics
from pathlib import Path

import pytest
from test_import_trades import COLUMNS, COND, T0, TOKEN_A, TOKEN_B, W1, W2, W3, write_csv

from monitor.trades import decode_order_filled
from polyvocab import ORDER_FILLED_TOPICS
from simulator.cli import main
from simulator.profiles import get_profile
from simulator.recording import load_recording
from simulator.synth import build_universe, plan_blocks


def _tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def _page(start: int) -> list[list[object]]:
    """Four distinct one-row transactions, as a taker-only page has them."""
    return [[w, side, tok, COND, size, price, T0 + 2 * (start + i), "t", "s", "nobel", "Yes", 0,
             _tx(start + i)]
            for i, (w, side, tok, size, price) in enumerate([
                (W1, "BUY", TOKEN_A, "18.3", "0.869"),
                (W2, "SELL", TOKEN_B, "25", "0.003"),
                (W3, "BUY", TOKEN_A, "38.461537", "0.1299999789399992"),
                (W1, "SELL", TOKEN_B, "10.54", "0.14")])]


def _fills(path: Path) -> list[tuple[str, str, str, int]]:
    """(tx, maker, side, shares) of every OrderFilled of the recording."""
    rec = load_recording(path)
    out = []
    for b in rec.blocks:
        for lg in b.logs:
            if lg["topics"][0] in ORDER_FILLED_TOPICS:
                t = decode_order_filled(lg)
                out.append((t.tx_hash, t.wallet, t.side, t.shares_raw))
    return out


def test_a_repeated_page_of_an_export_is_not_imported_as_more_fills(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pages 1, 2, then page 3 four times (the API answers offsets past its cap with the
    same page): 12 fills, not 24. Before, each copy became another OrderFilled of the same
    wallet in the same transaction (the real export: 5,000 fills made of 1,500)."""
    rows = _page(0) + _page(4) + _page(8) * 4
    src = write_csv(tmp_path / "trades.csv", rows)
    out = tmp_path / "imported.jsonl.gz"
    assert main(["import-trades", str(src), "--out", str(out)]) == 0
    assert capsys.readouterr().out.split(": ", 1)[1].startswith("12 fills in 12 transactions")
    fills = _fills(out)
    mine = [f for f in fills if f[1] in {W1.lower(), W2, W3}]
    assert len(mine) == 12 and len(set(mine)) == 12
    assert {f[0] for f in mine} == {_tx(i) for i in range(12)}
    assert load_recording(out).source["repeated_rows"] == 12
    assert load_recording(out).source["rows"] == 12


def test_two_fills_that_differ_in_any_column_are_both_kept(tmp_path: Path) -> None:
    """Same wallet, transaction, token and side, another size: two real fills."""
    row = _page(0)[0]
    other = list(row)
    other[COLUMNS.index("size")] = "18.4"
    src = write_csv(tmp_path / "trades.csv", [row, other])
    out = tmp_path / "imported.jsonl.gz"
    assert main(["import-trades", str(src), "--out", str(out)]) == 0
    mine = [f for f in _fills(out) if f[1] == W1.lower()]
    assert sorted(f[3] for f in mine) == [18_300_000, 18_400_000]
    with gzip.open(out, "rt") as fh:
        assert json.loads(fh.readline())["source"]["repeated_rows"] == 0


def test_news_burst_takers_buy_and_size_like_the_distinct_nobel_fills() -> None:
    """The Nobel 2025 export's 1,500 distinct fills (one a match, by its taker): 71.8% BUY,
    log(size) mean 4.53. news-burst was fitted on the 5,000 rows, one page eight times
    (82% BUY, mean 4.14), and said it was the event."""
    profile = get_profile("news-burst")
    universe = build_universe(profile, 3)
    trades = [t for plan in plan_blocks(profile, 3, 12_000, universe) for t in plan.trades]
    assert len(trades) > 1500
    buy = sum(t.taker_side == "BUY" for t in trades) / len(trades)
    log_size = statistics.fmean(math.log(sum(m.shares for m in t.makers) / 1e6)
                                for t in trades)
    assert 0.67 <= buy <= 0.77, buy
    assert 4.35 <= log_size <= 4.75, log_size
