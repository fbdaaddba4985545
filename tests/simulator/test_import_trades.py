"""import-trades: a Data-API /trades CSV becomes a recording whose fills decode back."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.trades import decode_order_filled
from polyvocab import (
    CTF_EXCHANGE_V1,
    CTF_EXCHANGE_V2,
    NEG_RISK_EXCHANGE_V1,
    ORDER_FILLED_TOPICS,
    ORDERS_MATCHED_V1,
    ORDERS_MATCHED_V2,
)
from simulator.cli import main
from simulator.recording import load_recording
from simulator.synth import recording_stats, trades_by_wallet

COLUMNS = ["proxyWallet", "side", "asset", "conditionId", "size", "price", "timestamp",
           "title", "slug", "eventSlug", "outcome", "outcomeIndex", "transactionHash"]
W1 = "0xC9c36d3afb757d75fd54feafab1b1f04419d079f"  # mixed case, as some exports have it
W2 = "0x3701d7f625eb46e91904988ce46299ede44bce16"
W3 = "0x06bc515ac38fe6d9e3ddb3bef18d61d6635d2887"
TOKEN_A = "15283458414931516998030698295018747517040694910027273837492069614153647212656"
TOKEN_B = "2088864207266674340149502142028667622202736588960658504992204073120496411034"
COND = "0x3babdbeccd1b2ff90547d2789e605f8c55067b4a411b1fb47b92b0fbcc8d5696"
TX1 = "0x" + "f6f21160f63cb438eb127277fbfa6fa04bbe4aa66bc63d1ad782790801d64317"
TX2 = "0x" + "7ad87e69801fddf94cb9611d5bc93cc84d91ca9cdf15fb592956c75280f49425"
TX3 = "0x" + "178abfe713326876d536e6be4fb15a80357c261fb9b29df00dd25f4dd6b27b6e"
TX4 = "0x" + "7769af08756fccd893def39b4faf17a50d9d90693dc1ffaa8e3737dfce394a01"
T0 = 1760097956  # 2025-10-10, V1 era

# Modelled on real rows: a one-fill transaction, an 3-leg one (same wallet, two tokens and
# both sides), a fractional price from an averaged fill, and a row after the V2 switch.
ROWS = [
    [W1, "SELL", TOKEN_A, COND, "100.1", "0.999", T0, "Will X win?", "x", "nobel", "No", 1, TX1],
    [W2, "BUY", TOKEN_B, COND, "40.01", "0.031", T0 + 12, "Will Y win?", "y", "nobel", "Yes",
     0, TX2],
    [W2, "BUY", TOKEN_B, COND, "7.511358", "0.5283018867924528", T0 + 12, "Will Y win?", "y",
     "nobel", "Yes", 0, TX2],
    [W2, "SELL", TOKEN_A, COND, "1105.43", "0.001", T0 + 12, "Will X win?", "x", "nobel", "No",
     1, TX2],
    [W3, "BUY", TOKEN_A, COND, "0.02", "0.999", T0 + 40, "Will X win?", "x", "nobel", "No", 1,
     TX3],
]
V2_ROW = [W3, "SELL", TOKEN_B, COND, "12", "0.45", 1777400000, "Will Y win?", "y", "nobel",
          "Yes", 0, TX4]


def write_csv(path: Path, rows: list[list[object]], columns: list[str] = COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(rows)
    return path


def run_import(tmp_path: Path, rows: list[list[object]], **kw: object) -> Path:
    src = write_csv(tmp_path / "trades.csv", rows, **kw)  # type: ignore[arg-type]
    out = tmp_path / "imported.jsonl.gz"
    assert main(["import-trades", str(src), "--out", str(out)]) == 0
    return out


def test_every_row_decodes_back_to_its_wallet_side_size_and_price(tmp_path: Path) -> None:
    rec = load_recording(run_import(tmp_path, ROWS))
    fills = [decode_order_filled(lg) for b in rec.blocks for lg in b.logs
             if lg["topics"][0] in ORDER_FILLED_TOPICS]
    for wallet, side, token, _c, size, price, ts, *_rest, tx in ROWS:
        mine = [f for f in fills if f.wallet == str(wallet).lower() and f.tx_hash == tx
                and f.token_id == token and f.side == side
                and f.shares_raw == round(Decimal(str(size)) * 1_000_000)]
        assert len(mine) == 1, (wallet, tx, size)
        fill = mine[0]
        assert fill.block_timestamp == ts
        assert fill.exchange == CTF_EXCHANGE_V1 and fill.version == 1
        # the price is exact up to what 6-decimal amounts can say
        assert abs(fill.price - float(str(price))) <= 0.5 / fill.shares_raw + 1e-12
        assert fill.taker != fill.exchange  # a maker-order fill: taker is the counterparty


def test_transactions_keep_their_real_hash_and_the_match_structure(tmp_path: Path) -> None:
    rec = load_recording(run_import(tmp_path, ROWS))
    by_tx: dict[str, list[dict]] = {}
    for b in rec.blocks:
        for lg in b.logs:
            by_tx.setdefault(lg["transactionHash"], []).append(lg)
    assert {TX1, TX2, TX3} <= set(by_tx)
    tx2 = by_tx[TX2]
    fills = [decode_order_filled(lg) for lg in tx2 if lg["topics"][0] in ORDER_FILLED_TOPICS]
    # rows of TX2 form two matches: (TOKEN_B, BUY) x 2 makers, (TOKEN_A, SELL) x 1 maker
    assert len(fills) == 3 + 2
    takers = [f for f in fills if f.taker == CTF_EXCHANGE_V1]
    assert len(takers) == 2
    assert {t.side for t in takers} == {"SELL", "BUY"}  # counterparties take the other side
    assert sum(1 for lg in tx2 if lg["topics"][0] == ORDERS_MATCHED_V1) == 2
    tx = next(t for b in rec.blocks for t in b.transactions if t["hash"] == TX2)
    assert tx["to"] == CTF_EXCHANGE_V1 and tx["from"] not in {W2.lower()}


def test_blocks_fill_the_2s_grid_with_background_noise(tmp_path: Path) -> None:
    rec = load_recording(run_import(tmp_path, ROWS))
    assert rec.source["kind"] == "imported" and rec.source["rows"] == len(ROWS)
    assert rec.source["transactions"] == 3
    assert len(rec.blocks) == 40 // 2 + 1
    assert [b.timestamp for b in rec.blocks] == [T0 + 2 * i for i in range(21)]
    assert all(b.logs for b in rec.blocks[1:6])  # empty of trades, not of noise
    s = recording_stats(rec)
    assert s["gaps"] == 0 and s["order_filled"] == 2 + 5 + 2  # each match: makers + the taker fill
    assert {w: n for w, n in rec.extra["wallets"]} == trades_by_wallet(rec)


def test_v2_layout_after_the_switch_and_negrisk_column(tmp_path: Path) -> None:
    rec = load_recording(run_import(tmp_path, [V2_ROW]))
    fills = [decode_order_filled(lg) for b in rec.blocks for lg in b.logs
             if lg["topics"][0] in ORDER_FILLED_TOPICS]
    maker = next(f for f in fills if f.wallet == W3)
    assert maker.version == 2 and maker.exchange == CTF_EXCHANGE_V2
    assert (maker.side, maker.shares, maker.price) == ("SELL", 12.0, 0.45)
    assert any(lg["topics"][0] == ORDERS_MATCHED_V2 for b in rec.blocks for lg in b.logs)

    row = ROWS[0] + ["true"]
    rec = load_recording(run_import(tmp_path, [row], columns=[*COLUMNS, "negRisk"]))
    fills = [decode_order_filled(lg) for b in rec.blocks for lg in b.logs
             if lg["topics"][0] in ORDER_FILLED_TOPICS]
    assert {f.exchange for f in fills} == {NEG_RISK_EXCHANGE_V1}


def test_same_csv_same_file(tmp_path: Path) -> None:
    a = run_import(tmp_path, ROWS).read_bytes()
    assert run_import(tmp_path, ROWS).read_bytes() == a


@pytest.mark.parametrize(("edit", "where", "message"), [
    (lambda rows: rows, None, None),
    (lambda rows: [[*r[:4], "abc", *r[5:]] if i == 1 else r for i, r in enumerate(rows)],
     ":3:", "column size: not a number: 'abc'"),
    (lambda rows: [["0x1234", *r[1:]] if i == 0 else r for i, r in enumerate(rows)],
     ":2:", "column proxyWallet: not a 20-byte hex address"),
    (lambda rows: [[*r[:1], "HOLD", *r[2:]] if i == 2 else r for i, r in enumerate(rows)],
     ":4:", "column side: expected BUY or SELL"),
    (lambda rows: [[*r[:5], "1.5", *r[6:]] if i == 0 else r for i, r in enumerate(rows)],
     ":2:", "column price: must be in (0, 1]"),
    (lambda rows: [[*r[:12], "0xabc"] if i == 3 else r for i, r in enumerate(rows)],
     ":5:", "column transactionHash: not a 32-byte hex hash"),
    (lambda rows: [[*r[:6], "soon", *r[7:]] if i == 0 else r for i, r in enumerate(rows)],
     ":2:", "column timestamp: not a non-negative integer"),
    (lambda rows: [[*r[:4], "nan", *r[5:]] if i == 0 else r for i, r in enumerate(rows)],
     ":2:", "column size: not a finite number"),
    # a Decimal overflow traceback, and an amount that wrapped past uint256 silently
    (lambda rows: [[*r[:4], "1e999999999", *r[5:]] if i == 0 else r
                   for i, r in enumerate(rows)], ":2:", "column size: out of range"),
    (lambda rows: [[*r[:4], "1e100", *r[5:]] if i == 0 else r for i, r in enumerate(rows)],
     ":2:", "column size: out of range"),
])
def test_bad_rows_fail_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          edit, where, message) -> None:
    src = write_csv(tmp_path / "t.csv", edit([list(r) for r in ROWS]))
    out = tmp_path / "o.jsonl.gz"
    code = main(["import-trades", str(src), "--out", str(out)])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0 and out.exists()
        return
    assert code == 2 and not out.exists()
    assert err.startswith("error: ") and err.count("\n") == 1  # one line, no traceback
    assert f"t.csv{where}" in err and message in err


def test_missing_column_and_empty_or_absent_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cols = [c for c in COLUMNS if c != "price"]
    src = write_csv(tmp_path / "t.csv", [r[:5] + r[6:] for r in ROWS], columns=cols)
    assert main(["import-trades", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "t.csv:1: missing column(s) price" in capsys.readouterr().err
    src = write_csv(tmp_path / "empty.csv", [])
    assert main(["import-trades", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "empty.csv: no trades" in capsys.readouterr().err
    assert main(["import-trades", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "none.csv: no such file" in capsys.readouterr().err


def test_a_file_that_is_not_a_regular_file_or_too_large_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # /dev/zero was read as one endless header line: 2.6 GB in 5 s
    out = tmp_path / "o.jsonl.gz"
    assert main(["import-trades", "/dev/zero", "--out", str(out)]) == 2
    assert capsys.readouterr().err == "error: /dev/zero: not a regular file\n"
    monkeypatch.setattr("simulator.import_trades.MAX_TRADE_ROWS", 1)
    src = write_csv(tmp_path / "t.csv", ROWS)
    assert main(["import-trades", str(src), "--out", str(out)]) == 2
    assert "t.csv:3: more than 1 trades" in capsys.readouterr().err and not out.exists()


def test_a_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    plain = load_recording(run_import(tmp_path / "a", ROWS)).blocks
    src = write_csv(tmp_path / "trades.csv", ROWS)
    src.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    out = tmp_path / "bom.jsonl.gz"
    assert main(["import-trades", str(src), "--out", str(out)]) == 0
    assert load_recording(out).blocks == plain
