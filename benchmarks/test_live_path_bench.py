"""What a delivered trade costs the monitor on the live path, piece by piece (issue 11:
at 100,000 wallets the firehose brings ~210 trades a block, and the last trade of a
block waits for the whole block's processing).

- ``Trade.to_json`` (the outbox payload and the detections row's trade, once a trade);
- ``History.record`` of a ``delivered`` row (one a trade), and ``History.delivered``,
  which writes the same row without the generic field loop;
- the four records a trade makes on its way (a dedup entry and decision, an outbox item,
  a sink event), made through the pipeline's fast constructors;
- ``monitor.trades._plain_text`` (may a trade's texts go in plain quotes) and
  ``_millionths`` (shares, USDC, fee from their integers), three a trade;
- ``Store.commit_many`` of a batch of 210 new trades (dedup rows and outbox events, one
  transaction; the events' seqs counted out, not read back);
- ``Pipeline.on_logs`` in batches of 210 with the state DB (``FULL``), the detections
  file and the history, as the monitor runs it: CPU us a trade (process time).

Run: ``.venv/bin/python -m pytest benchmarks/test_live_path_bench.py -s
-p no:cacheprovider --benchmark-enable``.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.cores import decision, dedup_entry
from monitor.history import History
from monitor.pipeline import Pipeline
from monitor.sinks import JsonlSink, sink_event
from monitor.store import Store, _outbox_item
from monitor.trades import _millionths, _plain_text, decode_order_filled

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_decode_bench import _logs

TRADES = [decode_order_filled(lg) for lg in _logs(420, seed=5)]


def _to_json_all() -> int:
    for t in TRADES:
        t.to_json()
    return len(TRADES)


def test_to_json(benchmark: Any) -> None:
    assert benchmark(_to_json_all) == len(TRADES)


def test_history_delivered_row(benchmark: Any, tmp_path: Path) -> None:
    h = History(tmp_path / "h.jsonl")

    def rows() -> int:
        for t in TRADES:
            h.record("delivered", trade_id=t.id, source="ws", block_number=t.block_number,
                     block_hash=t.block_hash)
        return len(TRADES)
    assert benchmark(rows) == len(TRADES)
    h.close()


def test_plain_text_of_a_trade_s_texts(benchmark: Any) -> None:
    texts = ["".join((t.id, t.tx_hash, t.wallet, t.side, t.token_id, t.block_hash,
                      t.exchange, t.taker, t.order_hash)) for t in TRADES]

    def check() -> int:
        return sum(map(_plain_text, texts))
    assert benchmark(check) == len(TRADES)


def test_millionths_of_a_trade_s_amounts(benchmark: Any) -> None:
    amounts = [n for t in TRADES for n in (t.shares_raw, t.usdc_raw, t.fee_raw)]

    def write() -> int:
        for n in amounts:
            _millionths(n)
        return len(amounts)
    assert benchmark(write) == 3 * len(TRADES)


def test_commit_many_a_batch_of_210(benchmark: Any, tmp_path: Path) -> None:
    """Dedup rows and outbox events of 210 new trades, one transaction (synchronous OFF:
    the statements, not the disk); a new id each round."""
    store = Store(tmp_path / "c.db", synchronous="OFF")
    rounds = iter(range(1_000_000))

    def batch() -> int:
        r = next(rounds)
        rows = []
        for t in TRADES[:210]:
            tid = f"{t.id}:{r}"
            entry = dedup_entry(t.block_hash, False, 1, 0, t.wallet)
            rows.append((decision(True, "trade", 1, entry), tid, "ws", t))
        return len(store.commit_many(rows))
    assert benchmark(batch) == 210
    store.close()


def test_history_delivered_row_by_its_own_writer(benchmark: Any, tmp_path: Path) -> None:
    """The same rows as ``test_history_delivered_row``, by ``History.delivered`` (the
    pipeline's way since stop 32)."""
    h = History(tmp_path / "h.jsonl")

    def rows() -> int:
        for t in TRADES:
            h.delivered(t.id, "ws", t.block_number, t.block_hash)
        return len(TRADES)
    assert benchmark(rows) == len(TRADES)
    h.close()


def test_a_trade_s_records(benchmark: Any) -> None:
    def make() -> int:
        for i, t in enumerate(TRADES):
            entry = dedup_entry(t.block_hash, False, 1, 0, t.wallet)
            decision(True, "trade", 1, entry)
            item = _outbox_item(i, "trade", t.id, 1, "ws", t.block_hash, t, None)
            sink_event(item.kind, item.trade_id, 1, "ws", item.block_hash, t, None, None, False)
        return len(TRADES)
    assert benchmark(make) == len(TRADES)


def test_pipeline_cpu_a_trade_in_blocks_of_210(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """100,000 watched wallets, batches of 210 (a busy block), the monitor's files; after
    ``gc.freeze()`` as the monitor does once started."""
    logs = _logs(21_000, seed=11)
    wallets = {"0x" + lg["topics"][2][-40:] for lg in logs}
    rng = random.Random(7)
    while len(wallets) < 100_000:
        wallets.add("0x" + rng.getrandbits(160).to_bytes(20, "big").hex())
    p = Pipeline(Store(tmp_path / "s.db"), JsonlSink(tmp_path / "d.jsonl"), wallets=wallets,
                 history=History(tmp_path / "h.jsonl"))
    gc.collect()
    gc.freeze()

    async def go() -> None:
        for i in range(0, len(logs), 210):
            await p.on_logs(logs[i:i + 210], "ws")
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        asyncio.run(go())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        gc.unfreeze()
    assert p.counters["delivered"] == len(logs)
    with capsys.disabled():
        print(f"\npipeline, 100,000 wallets, batches of 210 (state DB FULL, detections, "
              f"history): CPU {cpu / len(logs) * 1e6:.0f} us a trade, "
              f"{wall / (len(logs) / 210) * 1e3:.1f} ms a batch (wall)")
