"""A WebSocket whose provider's quota stays spent (Alchemy's monthly capacity: days) is
said once, as a refused key is and as the HTTP client says its spent quota: the
``quota_exhausted`` alert came again every ``alert_window`` (5 minutes by default: ~290
alerts a day on the operator's phone) while the attempts went on every ``backoff_max``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_ws_quota_exhausted import QuotaNode

from monitor.alerts import LogAlerter
from monitor.clock import SystemClock
from monitor.connection import WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0


def test_a_quota_that_stays_spent_is_alerted_once_an_episode(tmp_path: Path) -> None:
    async def go() -> None:
        async with QuotaNode() as node:
            history = History(tmp_path / "history.jsonl")
            alerts = LogAlerter()
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05,
                backoff_max=0.1, alert_window=0.05, min_timeout=5.0),
                clock=SystemClock(), history=history, alerts=alerts)
            await mgr.subscribe(["newHeads"], lambda result: None)
            await mgr.start()
            try:
                assert await mgr.wait_until(lambda: len(node.opened) >= 5, TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            kinds = [a.kind for a in alerts.sent]
            assert kinds.count("quota_exhausted") == 1, kinds
    asyncio.run(go())
