"""import-trades on files as users download them: a time in milliseconds or before the
chain, an HTML error page saved as .csv; the API's JSON answer read as its CSV. One error
naming file and line (or item), never a recording silently wrong."""

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


def _trades(rows: list) -> list[tuple]:
    return [(r.wallet, r.side, r.token_id, r.shares, r.usdc, r.timestamp, r.tx_hash,
             r.negrisk) for r in rows]


def test_the_data_apis_json_answer_reads_as_its_csv(tmp_path: Path) -> None:
    """The /trades answer saved as it comes (numbers as JSON numbers, a null title, a
    repeated page): was 'missing column(s) proxyWallet, ...' at line 1."""
    items = [{"proxyWallet": W.upper().replace("0X", "0x"), "side": "BUY", "asset": "123",
              "conditionId": C, "size": 10.5, "price": 0.53, "timestamp": 1760097956,
              "outcomeIndex": 0, "transactionHash": f"0x{1:064x}", "title": None},
             {"proxyWallet": W, "side": "SELL", "asset": "123", "conditionId": C,
              "size": 1e-1, "price": 1, "timestamp": 1760097958, "outcomeIndex": 1,
              "transactionHash": f"0x{2:064x}", "negRisk": True}]
    f = tmp_path / "trades.json"
    f.write_text(json.dumps(items + items[:1], indent=1))
    csv_file = _csv(tmp_path, f"{W},BUY,123,{C},10.5,0.53,1760097956,0,0x{1:064x}",
                    f"{W},SELL,123,{C},0.1,1,1760097958,1,0x{2:064x}")
    got = read_trades_csv(f)
    want = _trades(read_trades_csv(csv_file))
    want[1] = (*want[1][:-1], True)  # negRisk, which the CSV lacks
    assert _trades(got) == want and got.repeated_lines == (3,)


@pytest.mark.parametrize(("items", "needle"), [
    ([{"proxyWallet": W, "side": "BUY"}], "item 1: missing or not a text or number: asset"),
    ([1], "item 1: a int, not a trade object"),
    ({"data": []}, "a JSON dict, not a list of trades"),
    ("[" * 100_000, "not a JSON list of trades"),
])
def test_a_json_file_that_is_no_list_of_trades_names_the_item(tmp_path: Path, items: object,
                                                                needle: str) -> None:
    f = tmp_path / "t.json"
    f.write_text(items if isinstance(items, str) else json.dumps(items))
    with pytest.raises(TradesCsvError, match=needle):
        read_trades_csv(f)


def test_a_json_trades_bad_field_names_its_item(tmp_path: Path) -> None:
    item = {"proxyWallet": W, "side": "BUY", "asset": "123", "conditionId": C, "size": 1,
            "price": 0.5, "timestamp": 1760097956000, "outcomeIndex": 0,
            "transactionHash": f"0x{1:064x}"}
    f = tmp_path / "t.json"
    f.write_text(json.dumps([dict(item, timestamp=1760097956), item]))
    with pytest.raises(TradesCsvError, match=r"t\.json: item 2: column timestamp: .* looks "
                                             "like milliseconds"):
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


@pytest.mark.parametrize(("column", "value"), [("asset", "1.52835E+76"),
                                               ("timestamp", "1.76E+09")])
def test_a_number_a_spreadsheet_wrote_in_scientific_notation_says_so(
        tmp_path: Path, column: str, value: str) -> None:
    """Excel writes a 77-digit token id as 1.52835E+76 when it saves the file: it was
    'not a non-negative integer', which sent its owner looking for a bad row."""
    row = _row("1760097956", 1).split(",")
    row[HEADER.split(",").index(column)] = value
    f = _csv(tmp_path, ",".join(row))
    with pytest.raises(TradesCsvError, match=rf"t.csv:2: column {column}: .* scientific "
                                             "notation, its digits lost"):
        read_trades_csv(f)


def test_exports_joined_with_cat_read_as_one(tmp_path: Path) -> None:
    """Pages joined with `cat`, each with its header (and a spreadsheet's BOM): was
    'column proxyWallet: not a 20-byte hex address: 'proxyWallet'' at the second header."""
    f = tmp_path / "all.csv"
    f.write_text("\ufeff" + HEADER + "\n" + _row("1760097956", 1) + "\n" + HEADER + "\n"
                 + _row("1760097958", 2) + "\n\ufeff" + HEADER + "\n"
                 + _row("1760097960", 3) + "\n")
    got = read_trades_csv(f)
    assert [r.timestamp for r in got] == [1760097956, 1760097958, 1760097960]


def test_an_old_mac_spreadsheets_lone_cr_lines_are_read(tmp_path: Path) -> None:
    """A file whose lines end in a lone CR (an old Mac 'CSV (Macintosh)'): read as the
    plain file is (the streaming reader of a5f5023 read it as one line)."""
    f = _csv(tmp_path, _row("1760097956", 1), _row("1760097958", 2), eol="\r")
    assert [r.timestamp for r in read_trades_csv(f)] == [1760097956, 1760097958]


def test_a_utf16_spreadsheet_file_says_so(tmp_path: Path) -> None:
    """Excel's 'Unicode text' is UTF-16: was 'not UTF-8 text (... byte 0xff)'."""
    f = tmp_path / "u16.csv"
    f.write_bytes((HEADER + "\n" + _row("1760097956", 1) + "\n").encode("utf-16"))
    with pytest.raises(TradesCsvError, match=r"u16\.csv:1: UTF-16 text, not UTF-8"):
        read_trades_csv(f)
