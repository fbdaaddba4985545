"""Durability hunt, the whole monitor in-process against a hostile node: a sink that keeps
failing must reach the operator's alert channel, not only the log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hostile_node import HostileNode, explorer_ok, explorer_row
from monitor_helpers import WALLET, order_filled
from test_durability_hunt import _Alerts
from test_reliability import until

from monitor.config import load_settings
from monitor.sinks import CallbackSink, SinkEvent
from monitor.wallet_monitor import WalletMonitor


def test_a_sink_that_keeps_failing_is_alerted_by_the_running_monitor(
        tmp_path: Path) -> None:
    async def refuse(event: SinkEvent) -> None:
        raise ConnectionError("executor unreachable")

    good = order_filled(block=101, tx=1)

    async def go() -> None:
        async with HostileNode() as node:
            node.explorer = lambda q: (
                json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x70"})
                if q.get("module") == "proxy" else explorer_ok([explorer_row(good)]))
            s = load_settings({
                "explorer_url": node.explorer_url, "wallets": [WALLET], "start_block": 95,
                "state_db": str(tmp_path / "state.db"), "speed": 20.0,
                "polling_interval": 1.0, "block_interval": 2.0, "mode": "polling",
                "outbox_retry_interval": 1.0}, environ={})
            mon = WalletMonitor(s, sink=CallbackSink(refuse))
            alerts = _Alerts()
            mon.alerts = alerts
            await mon.start()
            try:
                pipeline = mon.pipeline
                assert pipeline is not None
                await until(lambda: pipeline.counters["sink_errors"] >= 1, "a sink error")
                await until(lambda: any(k == "sink_failed" for k, _ in alerts.got),
                             "the sink_failed alert", timeout=5.0)
            finally:
                await mon.stop()

    asyncio.run(go())
