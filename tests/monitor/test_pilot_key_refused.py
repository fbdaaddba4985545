"""The pilot's beat while the provider refuses the WebSocket key (HTTP 401/403).

The manager goes FAILED and retries every ``backoff_max`` through CONNECTING
(:meth:`monitor.websocket_manager.WebSocketManager._key_refused`). The beat sampled the
state alone: each retry's CONNECTING ended the episode and the next FAILED alerted again,
and the alert said "reconnects exhausted", which is not what a refused key is."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from monitor.clock import ManualClock
from monitor.config import load_settings
from monitor.connection import ConnState
from monitor.pilot import Pilot, PilotStore

W = "0x" + "11" * 20


class _Shard:
    def __init__(self) -> None:
        self.fallback = SimpleNamespace(polling=True)
        self.manager = SimpleNamespace(state=ConnState.FAILED, key_refused=401)
        self.head = None

    def healthy_now(self) -> bool:
        return self.manager.state is ConnState.CONNECTED

    def cursor(self) -> int:
        return 100


def test_a_refused_key_is_one_failed_alert_naming_it_across_the_retries(
        tmp_path: Path) -> None:
    sent: list[tuple[str, str]] = []

    async def send(kind: str, text: str) -> None:
        sent.append((kind, text))

    async def main() -> None:
        settings = load_settings({"websocket_url": "ws://127.0.0.1:9/", "wallets": [W],
                                  "rpc_url": "http://127.0.0.1:9/",
                                  "explorer_url": "http://127.0.0.1:9/v2/api"}, environ={})
        clock = ManualClock(1000.0)
        pilot = Pilot(settings, tmp_path / "store", beat_s=1.0, clock=clock)
        pilot.store = PilotStore(tmp_path / "store")
        shard = _Shard()
        try:
            pilot.session = pilot.store.new_session(1, clock.now_ns())
            monitors: dict[str, Any] = {
                "websocket": SimpleNamespace(shards=[shard],
                                             alerts=SimpleNamespace(send=send)),
                "polling": SimpleNamespace(poller=None)}
            pilot.monitors = monitors
            # FAILED, a retry's CONNECTING, refused again, ... three episodes' worth of beats
            for state in [ConnState.FAILED, ConnState.CONNECTING] * 3:
                shard.manager.state = state
                pilot.beat()
                clock.advance(1.0)
                await asyncio.sleep(0)
            shard.manager.state, shard.manager.key_refused = ConnState.CONNECTED, None
            pilot.beat()  # the key restored: the episode ends
            shard.manager.state, shard.manager.key_refused = ConnState.FAILED, 403
            pilot.beat()  # refused again later: a new episode
            await asyncio.sleep(0)
        finally:
            pilot.store.close()

    asyncio.run(main())
    failed = [text for kind, text in sent if kind == "failed"]
    assert len(failed) == 2, sent  # before: one at every retry
    assert "refused the key (HTTP 401)" in failed[0], failed
    assert "refused the key (HTTP 403)" in failed[1], failed
    assert "reconnects exhausted" not in failed[0]
