"""The pilot's fallback alerts while the WebSocket feed flaps: paced, counted, none of
the changes lost from the events file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from monitor.clock import ManualClock
from monitor.config import load_settings
from monitor.connection import ConnState
from monitor.pilot import Pilot, PilotStore, RotatingJsonl

W = "0x" + "11" * 20


class _Shard:
    def __init__(self) -> None:
        self.fallback = SimpleNamespace(polling=False)
        self.manager = SimpleNamespace(state=ConnState.CONNECTED, key_refused=None)
        self.head = None

    def healthy_now(self) -> bool:
        return not self.fallback.polling

    def cursor(self) -> int:
        return 100


def test_a_flapping_feed_is_not_an_alert_at_every_beat(tmp_path: Path) -> None:
    """The feed on and off the explorer fallback every other beat (5 s), for 10 minutes:
    each change was an alert, 120 of them (60 starts, 60 ends) through Telegram. One
    start alert (and its end) every FALLBACK_ALERT_EVERY_S, the next one counting the
    episodes kept quiet; the events file has every change."""
    sent: list[tuple[str, str]] = []

    async def send(kind: str, text: str) -> None:
        sent.append((kind, text))

    async def main() -> None:
        settings = load_settings({"websocket_url": "ws://127.0.0.1:9/", "wallets": [W],
                                  "rpc_url": "http://127.0.0.1:9/",
                                  "explorer_url": "http://127.0.0.1:9/v2/api"}, environ={})
        clock = ManualClock(1000.0)
        pilot = Pilot(settings, tmp_path / "store", beat_s=5.0, clock=clock)
        pilot.store = PilotStore(tmp_path / "store")
        pilot.events = RotatingJsonl(tmp_path / "store" / "events.jsonl", max_bytes=1 << 20,
                                     keep=1)
        shard = _Shard()
        try:
            pilot.session = pilot.store.new_session(1, clock.now_ns())
            monitors: dict[str, Any] = {
                "websocket": SimpleNamespace(shards=[shard],
                                             alerts=SimpleNamespace(send=send)),
                "polling": SimpleNamespace(poller=None)}
            pilot.monitors = monitors
            for beat in range(121):  # 10 minutes of 5-s beats
                shard.fallback.polling = beat % 2 == 1
                pilot.beat()
                clock.advance(5.0)
                await asyncio.sleep(0)
            await asyncio.sleep(0)
        finally:
            pilot.events.close()
            pilot.store.close()

    asyncio.run(main())
    kinds = [k for k, _ in sent]
    assert kinds == ["fallback_start", "fallback_end", "fallback_start", "fallback_end"], sent
    assert "29 more fallback episodes" in sent[2][1]
    events = [json.loads(line) for line in
              (tmp_path / "store" / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "fallback" for e in events) == 120
    assert sum(e["event"] == "alert" for e in events) == 4
