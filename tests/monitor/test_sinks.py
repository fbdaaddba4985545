"""The detections file: rows are the contract's bytes, and a trade is encoded once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from monitor_helpers import WALLET, order_filled

from monitor.clock import ManualClock
from monitor.pipeline import Pipeline
from monitor.sinks import JsonlSink, SinkEvent
from monitor.store import Store
from monitor.trades import Trade, decode_order_filled


class _Clock(ManualClock):
    def wall_ns(self) -> int:
        return 1_764_000_000_000_000_000 + self.now_ns()


def _contract_row(event: SinkEvent, t_ns: int, wall: int) -> bytes:
    """The row as the contract defines it (and as the sink built it before): one
    ``json.dumps`` of the whole object."""
    assert event.trade is not None
    row: dict[str, Any] = {"t_ns": t_ns, "wall_ns": wall, "kind": "trade",
                           "source": event.source, "trade": event.trade.to_dict()}
    if event.stages is not None:
        row["stages"] = {**event.stages, "deliver": t_ns - event.stages["recv_ns"]}
    return (json.dumps(row, separators=(",", ":")) + "\n").encode("utf-8")


@pytest.mark.parametrize("stages", [None, {"recv_ns": 5, "parse": 1, "queue": 2,
                                           "decode": 3, "dedup": 4, "persist": 6}])
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("source", ["ws", "backfill", "poll", 'odd "source"\u00e9'])
def test_trade_rows_are_the_bytes_json_dumps_gives(tmp_path: Path, stages: Any,
                                                   version: int, source: str) -> None:
    clock = _Clock(12.5)
    trade = decode_order_filled(order_filled(version=version, side=1, tx=3, fee=7))
    event = SinkEvent("trade", trade.id, 1, source, trade.block_hash, trade, stages)
    expected = _contract_row(event, clock.now_ns(), clock.wall_ns())
    for i, ev in enumerate([event, SinkEvent("trade", trade.id, 2, source, trade.block_hash,
                                             trade, stages, trade.to_json())]):
        sink = JsonlSink(tmp_path / f"d{i}.jsonl", clock=clock)
        assert sink.write(ev)
        sink.close()
        assert (tmp_path / f"d{i}.jsonl").read_bytes() == expected


def test_a_trade_with_its_json_is_not_encoded_again(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    trade = decode_order_filled(order_filled(tx=4))
    payload = trade.to_json()

    def boom(self: Trade) -> Any:
        raise AssertionError("encoded again")
    monkeypatch.setattr(Trade, "to_json", boom)
    monkeypatch.setattr(Trade, "to_dict", boom)
    sink = JsonlSink(tmp_path / "d.jsonl", clock=_Clock(1.0))
    assert sink.write(SinkEvent("trade", trade.id, 1, "ws", trade.block_hash, trade,
                                trade_json=payload))
    sink.close()
    row = json.loads((tmp_path / "d.jsonl").read_text())
    assert json.dumps(row["trade"], separators=(",", ":")) == payload


def test_the_pipeline_encodes_each_trade_once(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Outbox payload and detections row from one encoding of a trade."""
    calls: list[str] = []
    to_json = Trade.to_json

    def counted(self: Trade) -> str:
        calls.append(self.id)
        return to_json(self)
    monkeypatch.setattr(Trade, "to_json", counted)
    monkeypatch.setattr(Trade, "to_dict", lambda self: pytest.fail("encoded again"))
    logs = [order_filled(tx=n) for n in range(1, 6)]
    p = Pipeline(Store(tmp_path / "s.db"), JsonlSink(tmp_path / "d.jsonl"), wallets=[WALLET])
    delivered = asyncio.run(p.on_logs(logs, "ws"))
    assert len(delivered) == 5
    assert sorted(calls) == sorted(t.id for t in delivered)
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [r["trade"]["id"] for r in rows] == [t.id for t in delivered]
