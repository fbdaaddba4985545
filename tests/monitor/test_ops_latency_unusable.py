"""The detection-latency histogram holds latencies only: a trade whose block timestamp is 0,
absent or in the future, or a sample that is no number (negative, NaN, infinite), is
counted as unusable instead of being observed (it made p99 a latency of decades)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import monitor.ops_server as ops
from monitor.config import load_settings
from monitor.ops_server import LatencyHistogram, ObservedSink, OpsServer
from monitor.sinks import SinkEvent
from monitor.trades import Trade
from monitor.wallet_monitor import WalletMonitor

NOW = 1_780_000_000.0  # 2026-05-28, the sink's wall clock
WALLET = "0x" + "11" * 20
_TRADE = Trade(id="0x" + "ab" * 32 + ":3", tx_hash="0x" + "ab" * 32, log_index=3,
               wallet=WALLET, side="BUY", token_id="7", maker_amount=5_000_000,
               taker_amount=10_000_000, fee_raw=0, block_number=80_000_000,
               block_hash="0x" + "cd" * 32, block_timestamp=int(NOW) - 2,
               exchange="0x" + "22" * 20, version=2, taker="0x" + "33" * 20,
               order_hash="0x" + "ef" * 32)


class _Null:
    async def emit(self, event: SinkEvent) -> None:
        pass

    def close(self) -> None:
        pass


def _deliver(sink: ObservedSink, block_timestamp: int | None, source: str = "ws") -> None:
    trade = dataclasses.replace(_TRADE, block_timestamp=block_timestamp)
    asyncio.run(sink.emit(SinkEvent("trade", trade.id, 0, source, trade.block_hash, trade)))


def test_a_trade_without_a_true_block_timestamp_is_not_a_latency() -> None:
    """Block timestamp 0 was observed as ~56 years (the +Inf bucket, a sum of 1.78e9 s),
    one an hour ahead as a latency of 0; absent was skipped without a trace."""
    h = LatencyHistogram()
    sink = ObservedSink(_Null(), h, clock=lambda: NOW)
    _deliver(sink, int(NOW) - 2)  # a true latency: 2 s
    _deliver(sink, int(NOW) + 1)  # a second ahead: clock skew, a latency of 0
    _deliver(sink, 0)  # a node that wrote 0x0
    _deliver(sink, 1_000)  # 1970
    _deliver(sink, None, source="poll")  # absent
    _deliver(sink, int(NOW) + 3600)  # an hour in the future
    assert h.count() == 2
    ((source, buckets, total),) = list(h.series())
    assert source == "ws" and total == 2.0 and buckets[-1] == ("+Inf", 2.0)
    assert h.unusable == {("ws", "before_chain"): 2, ("poll", "no_timestamp"): 1,
                          ("ws", "future"): 1}


def test_a_sample_that_is_no_latency_is_not_observed() -> None:
    h = LatencyHistogram(buckets=(1.0, 5.0))
    said = [h.observe("ws", s) for s in (0.5, -1.0, math.nan, math.inf, -math.inf)]
    ((_, buckets, total),) = list(h.series())
    # before: NaN and -inf in the first bucket, inf in +Inf, the sum NaN for good
    assert buckets == [("1.0", 1.0), ("5.0", 1.0), ("+Inf", 1.0)] and total == 0.5
    assert said == [True, False, False, False, False]
    assert h.unusable == {("ws", "negative"): 1, ("ws", "not_finite"): 3}


def test_the_reasons() -> None:
    detection_latency = ops.detection_latency
    TIMESTAMP_FLOOR, FUTURE_TOLERANCE_S = ops.TIMESTAMP_FLOOR, ops.FUTURE_TOLERANCE_S
    assert detection_latency(None, NOW) == "no_timestamp"
    assert detection_latency("1780000000", NOW) == "no_timestamp"
    assert detection_latency(True, NOW) == "no_timestamp"
    assert detection_latency(math.nan, NOW) == "not_finite"
    assert detection_latency(NOW, math.inf) == "not_finite"
    assert detection_latency(TIMESTAMP_FLOOR - 1, NOW) == "before_chain"
    assert detection_latency(NOW + FUTURE_TOLERANCE_S + 1, NOW) == "future"
    assert detection_latency(NOW + FUTURE_TOLERANCE_S, NOW) == 0.0
    assert detection_latency(NOW - 30, NOW) == 30.0


def test_metrics_count_the_unusable_trades(tmp_path: Path) -> None:
    settings = load_settings({"websocket_url": "ws://127.0.0.1:9/", "wallets": [WALLET],
                              "state_db": str(tmp_path / "state.db")}, environ={})
    mon = WalletMonitor(settings)
    mon.latency.observe("ws", 1.5)
    mon.latency.unusable_sample("ws", "before_chain")
    text = OpsServer([({}, mon)]).scrape().decode()
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for fam in text_string_to_metric_families(text) for s in fam.samples}
    key = ("monitor_detection_latency_unusable_total",
           (("reason", "before_chain"), ("source", "ws")))
    assert found[key] == 1.0
    assert found[("monitor_detection_latency_seconds_count", (("source", "ws"),))] == 1.0


def test_a_round_trip_that_is_no_duration_is_not_kept() -> None:
    """monitor/metrics.py: a pong's round trip negative (a clock that went back) or NaN
    became rtt_last_s, and NaN rtt_max_s for good (max(nan, x) is nan)."""
    from monitor.metrics import WsMetrics

    m = WsMetrics()
    for rtt in (math.nan, 0.2, -5.0, math.inf, None, 0.1):
        m.pong(rtt)
    assert m.pings == 6 and m.rtt_max_s == 0.2 and m.rtt_last_s == 0.1
