"""The histories' buffered forms (a virtual-time run's: no write(2) a row or a replay turn)
write the very rows of the line-buffered forms, and all of them by close."""

from __future__ import annotations

from pathlib import Path

from monitor.clock import ManualClock
from monitor.history import History
from simulator.history import SimHistory


def _monitor_rows(history: History) -> None:
    history.record("api_call", kind="http", method="eth_blockNumber", ok=True)
    history.record("delivered", trade_id="0xabc:1", url="wss://node/v3/SECRETKEY123456")
    history.record("state", conn="ws-0", to="live", detail={"n": 1, "s": "é"})


def test_a_buffered_monitor_history_writes_the_same_rows_by_close(tmp_path: Path) -> None:
    line, buffered = tmp_path / "line.jsonl", tmp_path / "buffered.jsonl"
    a = History(line, clock=ManualClock(5))
    b = History(buffered, clock=ManualClock(5), line_buffered=False)
    _monitor_rows(a)
    _monitor_rows(b)
    assert line.read_bytes().count(b"\n") == 3  # each row in the file as it is recorded
    assert buffered.read_bytes() == b""  # in the buffer: no write a row
    a.close()
    b.close()
    assert buffered.read_bytes() == line.read_bytes()  # redacted and encoded alike


def test_a_sim_history_that_does_not_flush_writes_every_row_at_close(tmp_path: Path) -> None:
    ticks = iter(range(1_000, 10_000))
    path = tmp_path / "sim.jsonl"
    h = SimHistory(path, clock_ns=lambda: next(ticks), flushes=False)
    for n in range(3):
        h.record("block_published", number=n, hash=f"0x{n:064x}")
        h.flush()  # the replay's flush at every turn: nothing written
    assert path.read_bytes() == b""
    h.record("stop", head=2)
    h.close()
    rows = path.read_text(encoding="utf-8").splitlines()
    assert [r.split('"event":"')[1].split('"')[0] for r in rows] == [
        "block_published", "block_published", "block_published", "stop"]
    flushing = SimHistory(tmp_path / "f.jsonl", clock_ns=lambda: 7)
    flushing.record("stop", head=2)
    flushing.flush()
    assert (tmp_path / "f.jsonl").read_bytes().count(b"\n") == 1
    flushing.close()
