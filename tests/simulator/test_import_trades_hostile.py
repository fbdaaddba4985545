"""import-trades on files as users download them: a time in milliseconds or before the
chain, an HTML error page or a JSON answer saved as .csv. One error naming file and line,
never a recording silently wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.import_trades import TradesCsvError, read_trades_csv

HEADER = ("proxyWallet,side,asset,conditionId,size,price,timestamp,outcomeIndex,"
          "transactionHash")
W = "0x" + "ab" * 20
C = "0x" + "11" * 32


def _row(ts: str, tx: int = 2, size: str = "10") -> str:
    return f"{W},BUY,123,{C},{size},0.5,{ts},0,0x{tx:064x}"


def _csv(tmp_path: Path, *rows: str, name: str = "t.csv", eol: str = "\n") -> Path:
    f = tmp_path / name
    f.write_bytes(eol.join([HEADER, *rows, ""]).encode())
    return f


@pytest.mark.parametrize(("ts", "needle"), [
    ("1000000000000", "looks like milliseconds"),  # 2001-09-09 in ms: was block 445e9
    ("1760097956000", "looks like milliseconds"),
    ("5", "not a time of the chain"),              # was block 1, a 1970 V1 trade
    ("1500000000", "not a time of the chain"),     # 2017: before Polygon
    ("99999999999", "not a time of the chain"),    # the year 5138
])
def test_a_timestamp_no_trade_can_have_is_an_error_naming_the_line(
        tmp_path: Path, ts: str, needle: str) -> None:
    f = _csv(tmp_path, _row("1760097956", 1), _row(ts, 2))
    with pytest.raises(TradesCsvError) as err:
        read_trades_csv(f)
    assert str(err.value).startswith(f"{f}:3: column timestamp") and needle in str(err.value)


def test_an_html_error_page_saved_as_csv_says_so(tmp_path: Path) -> None:
    f = tmp_path / "trades.csv"
    f.write_text("\n\n<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
                 "<body><h1>502</h1></body></html>\n")
    with pytest.raises(TradesCsvError, match=r"trades.csv:1: an HTML page, not a CSV"):
        read_trades_csv(f)


def test_a_json_answer_saved_as_csv_says_so(tmp_path: Path) -> None:
    f = tmp_path / "trades.csv"
    f.write_text(json.dumps([{"proxyWallet": W, "side": "BUY"}]))
    with pytest.raises(TradesCsvError, match=r"trades.csv:1: JSON, not a CSV"):
        read_trades_csv(f)


def test_a_spreadsheets_file_is_read_right(tmp_path: Path) -> None:
    """BOM, CRLF, a quoted field with a newline, a repeated row, a mixed-case wallet and
    a size in scientific notation: read as the plain file is."""
    mixed = W.replace("ab", "Ab", 3)
    rows = [_row("1760097956", 1, "1e1"), _row("1760097956", 1, "1e1"),
            f'{mixed},SELL,123,{C},"2.5",0.5,1760097958,0,0x{3:064x}']
    f = tmp_path / "s.csv"
    f.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join([HEADER + ",title", *(r + ',"two\r\nlines"'
                                                                        for r in rows)]))
                  .encode() + b"\r\n")
    got = read_trades_csv(f)
    assert [(r.wallet, r.side, r.shares, r.timestamp) for r in got] == [
        (W, "BUY", 10_000_000, 1760097956), (W, "SELL", 2_500_000, 1760097958)]
    assert len(got.repeated_lines) == 1


@pytest.mark.parametrize(("size", "needle"), [("-1", "must be positive"),
                                              ("1e-9", "rounds to zero"),
                                              ("NaN", "not a finite number"),
                                              ("1e400", "out of range")])
def test_a_size_no_fill_can_have_is_an_error_naming_the_line(tmp_path: Path, size: str,
                                                             needle: str) -> None:
    f = _csv(tmp_path, _row("1760097956", 1, size))
    with pytest.raises(TradesCsvError, match=f"t.csv:2: .*{needle}"):
        read_trades_csv(f)
