"""Durations in alert texts read right under a second: a ``backoff_max`` of 0.2 s read
"tried again every 0 s" (``:.0f``), a 40-ms outage "0.0 s down", a polling interval of
0.5 s "asked again every 0 s". Pure (AlertPolicy, time as argument) plus the poller's
refused-key alert with a stub explorer client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from monitor_helpers import WALLET
from test_polling_baseline import Alerts

from monitor.alerts import AlertPolicy, seconds_text
from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerKeyRefused
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store


@pytest.mark.parametrize(("seconds", "places", "text"), [
    (0.2, 0, "0.2"), (0.05, 0, "0.05"), (0.25, 1, "0.25"), (0.04, 1, "0.04"),
    (1.5, 0, "1.5"), (2.0, 0, "2"), (60.0, 0, "60"), (3600.0, 0, "3600"),
    (60.0, 1, "60.0"), (2.5, 1, "2.5"), (0.0, 0, "0"), (0.0, 1, "0.0"),
])
def test_seconds_read_right_at_any_size(seconds: float, places: int, text: str) -> None:
    assert seconds_text(seconds, places=places) == text


def test_the_feed_alerts_say_a_sub_second_retry_and_outage() -> None:
    p = AlertPolicy(conn="ws0", window=300.0)
    quota = p.quota_exhausted(0.0, "Monthly capacity limit exceeded", 0.2)
    assert quota is not None and "tried again every 0.2 s" in quota.text, quota
    assert "every 0.5 s" in p.key_refused(1.0, 401, 0.5).text
    p = AlertPolicy(conn="ws0", window=300.0)
    assert p.disconnected(10.0, "abrupt_close") is not None
    back = p.recovered(10.04, attempts=1)
    assert back is not None and "0.04 s down" in back.text, back


def test_the_pollers_refused_key_alert_says_a_sub_second_interval(tmp_path: Path) -> None:
    class Refusing:
        key_accepted = 0

        async def block_number(self) -> int:
            raise ExplorerKeyRefused("Invalid API Key")

    alerts = Alerts()

    async def go() -> None:
        store = Store(tmp_path / "s.db")
        try:
            pipe = Pipeline(store, MemorySink(), wallets=(WALLET,), clock=ManualClock())
            pipe.alerts = alerts
            poller = PollingMonitor(Refusing(), pipe, store,  # type: ignore[arg-type]
                                    wallets=(WALLET,), interval=0.5, overlap_blocks=16,
                                    start_block=100, clock=ManualClock(), block_interval=2.0)
            await poller.poll_once()
            await pipe.flush_alerts(5.0)
        finally:
            store.close()
    asyncio.run(go())
    texts = [t for k, t in alerts.sent if k == "explorer_key_refused"]
    assert len(texts) == 1 and "asked again every 0.5 s" in texts[0], alerts.sent
