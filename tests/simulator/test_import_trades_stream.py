"""import-trades streams its export: memory follows the trades kept, not the file's size.
A 2-GB export was refused ('larger than 268,435,456 bytes: not a file of this kind')
after 256 MB had been read into memory, and a 200-MB one took about four times its size;
a bad byte named no line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import simulator.import_trades as imp
from simulator.import_trades import TradesCsvError, read_trades_csv

HEADER = ("proxyWallet,side,asset,conditionId,size,price,timestamp,outcomeIndex,"
          "transactionHash\n")
ROW = "0x" + "ab" * 20 + ",BUY,123,0x" + "11" * 32 + ",10,0.5,{ts},0,0x{tx:064x}\n"


@pytest.mark.slow
def test_an_export_past_the_old_byte_cap_of_repeated_pages_is_read_in_bounded_memory(
        tmp_path: Path) -> None:
    """300 MB: 20 distinct rows, then the same page again and again (a paged export past
    the API's cap). Read in a child process whose peak memory is measured."""
    f = tmp_path / "pages.csv"
    page = "".join(ROW.format(ts=1760097956 + i, tx=i) for i in range(20)).encode()
    with open(f, "wb") as fh:
        fh.write(HEADER.encode())
        for _ in range(300_000_000 // len(page)):
            fh.write(page)
    # the child's own peak (monitor.metrics.peak_rss_bytes: VmHWM). Not ru_maxrss: Linux
    # keeps that across exec, so it counted the pytest worker that forked it (686 MB in
    # a CI run whose worker had grown)
    code = ("import sys; from simulator.import_trades import read_trades_csv; "
            "from monitor.metrics import peak_rss_bytes; "
            "r = read_trades_csv(sys.argv[1]); "
            "print(len(r), len(r.repeated_lines), peak_rss_bytes() // 1024)")
    res = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True,
                         timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    kept, repeated, peak_kb = map(int, res.stdout.split())
    assert kept == 20 and repeated > 1_000_000
    assert peak_kb < 400_000  # well below the file's 300 MB, plus the interpreter's


def test_a_2_gb_line_is_one_error_naming_the_line(tmp_path: Path) -> None:
    f = tmp_path / "sparse.csv"
    with open(f, "wb") as fh:
        fh.write(HEADER.encode() + ROW.format(ts=1760097956, tx=1).encode())
        fh.truncate(2 << 30)  # the rest NUL bytes, one line, stored sparse
    with pytest.raises(TradesCsvError, match=r"sparse\.csv:3: a line longer than"):
        read_trades_csv(f)


def test_more_trades_than_kept_is_one_error_naming_the_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imp, "MAX_TRADE_ROWS", 3)
    f = tmp_path / "t.csv"
    f.write_text(HEADER + "".join(ROW.format(ts=1760097956 + i, tx=i) for i in range(5)))
    with pytest.raises(TradesCsvError, match=r"t\.csv:5: more than 3 trades"):
        read_trades_csv(f)


def test_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    f = tmp_path / "latin1.csv"
    body = HEADER + "".join(ROW.format(ts=1760097956 + i, tx=i) for i in range(400))
    f.write_bytes(body.encode() + b"0x" + b"ab" * 20 + b",BUY,\xe9\n")
    with pytest.raises(TradesCsvError, match=r"latin1\.csv:402: not UTF-8 text"):
        read_trades_csv(f)
