"""What the durability promise costs: one trade through the pipeline (decode, dedup,
SQLite commit, detections file, marked sent) with ``state_synchronous = FULL`` (the
default: the WAL is fsynced at every commit, a delivered trade survives power loss) and
``NORMAL`` (survives a process crash, may lose the last commits on power loss)."""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.pipeline import Pipeline
from monitor.sinks import JsonlSink
from monitor.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_decode_bench import _logs


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_one_trade_durably_delivered(benchmark: Any, tmp_path: Path, synchronous: str) -> None:
    logs = _logs(5000, seed=4)
    wallets = {"0x" + lg["topics"][2][-40:] for lg in logs}
    pipe = Pipeline(Store(tmp_path / "s.db", synchronous=synchronous),
                    JsonlSink(tmp_path / "d.jsonl"), wallets=wallets)
    feed = itertools.cycle(logs)
    loop = asyncio.new_event_loop()

    def one() -> None:
        loop.run_until_complete(pipe.on_log(next(feed), "ws"))

    benchmark.extra_info["synchronous"] = synchronous
    benchmark.pedantic(one, rounds=2000, iterations=1, warmup_rounds=50)
    loop.close()
    assert pipe.counters["delivered"] > 0
