"""The pilot's monitors expect the chain's own block interval unless one is set."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_settings
from monitor.pilot import Pilot, PilotStore
from tests.monitor.hostile_node import HostileNode, header

W = "0x" + "11" * 20


def _chain_of(interval: float) -> Any:
    def block(params: list[Any]) -> dict[str, Any]:
        n = int(params[0], 16)
        return dict(header(n), timestamp=hex(1_700_000_000 + int(interval * n)))
    return block


async def _pilot_interval(tmp_path: Path, node: HostileNode, environ: dict[str, str]
                          ) -> tuple[list[float], dict[str, Any]]:
    settings = load_settings({"websocket_url": node.ws_url, "rpc_url": node.rpc_url,
                              "explorer_url": node.explorer_url, "wallets": [W],
                              "backoff_initial": 0.1}, environ=environ)
    pilot = Pilot(settings, tmp_path / "store", beat_s=0.5)
    try:
        await asyncio.wait_for(pilot.start(), 30)
        seen = [m.s.block_interval for m in pilot.monitors.values()]
    finally:
        await asyncio.wait_for(pilot.stop(), 30)
    store = PilotStore(tmp_path / "store", readonly=True)
    try:
        return seen, store.meta()["block_interval"]
    finally:
        store.close()


def test_the_pilot_measures_a_175_s_chain_instead_of_assuming_2_s(tmp_path: Path) -> None:
    """On today's Polygon (1.75-s blocks since PIP-86) both monitors used the 2.0-s default:
    their staleness watchdogs and head probes waited 14 % longer than the chain needs."""
    async def main() -> tuple[list[float], dict[str, Any]]:
        async with HostileNode() as node:
            node.head = 80_000_000
            node.rpc["eth_getBlockByNumber"] = _chain_of(1.75)
            return await _pilot_interval(tmp_path, node, {})
    seen, meta = asyncio.run(main())
    assert seen == [1.75, 1.75]
    assert meta == {"seconds": 1.75, "source": "measured over 200 blocks"}


def test_a_set_block_interval_is_kept_and_not_measured(tmp_path: Path) -> None:
    async def main() -> tuple[list[float], dict[str, Any]]:
        async with HostileNode() as node:
            node.head = 80_000_000
            node.rpc["eth_getBlockByNumber"] = _chain_of(1.75)
            out = await _pilot_interval(tmp_path, node, {"MONITOR_BLOCK_INTERVAL": "1.5"})
            asked = [r for r in node.requests if isinstance(r, dict)
                     and r.get("method") == "eth_getBlockByNumber"]
            assert asked == []  # the monitors themselves ask nothing of blocks here
            return out
    seen, meta = asyncio.run(main())
    assert seen == [1.5, 1.5] and meta == {"seconds": 1.5, "source": "setting"}


@pytest.mark.parametrize("answer", ["null", "short chain", "bad clock"])
def test_a_node_that_cannot_say_its_interval_keeps_the_setting_with_a_warning(
        answer: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[list[float], dict[str, Any]]:
        async with HostileNode() as node:
            node.head = 80_000_000
            if answer == "null":
                node.rpc["eth_getBlockByNumber"] = lambda _p: None
            elif answer == "short chain":
                node.head = 50
            else:  # every block at the same second: no chain's interval
                node.rpc["eth_getBlockByNumber"] = _chain_of(0.0)
            return await _pilot_interval(tmp_path, node, {})
    with caplog.at_level(logging.WARNING, logger="monitor.pilot"):
        seen, meta = asyncio.run(main())
    assert seen == [2.0, 2.0]
    assert meta == {"seconds": 2.0, "source": "setting (the chain's could not be measured)"}
    said = [r.getMessage() for r in caplog.records
            if "block interval: the node could not say" in r.getMessage()]
    assert said and {"null": "are not both served", "short chain": "has 51 blocks, fewer than 200",
                     "bad clock": "is no chain's interval"}[answer] in said[0], said


# -- the WebSocket path's uptime with several shards ---------------------------------------

class _Shard:
    def __init__(self, healthy: bool) -> None:
        from types import SimpleNamespace

        from monitor.connection import ConnState
        self.healthy = healthy
        self.fallback = SimpleNamespace(polling=False)
        self.manager = SimpleNamespace(
            state=ConnState.CONNECTED if healthy else ConnState.RECONNECTING)
        self.head = 100

    def healthy_now(self) -> bool:
        return self.healthy

    def cursor(self) -> int:
        return 100


def test_the_websocket_path_is_up_only_while_every_shard_is(tmp_path: Path) -> None:
    """With more wallets than a filter holds the path has several connections; the beat
    counted it healthy while ANY shard was, so a pilot whose second shard was down (its
    wallets unwatched) reported full uptime, where the experiment checker says down."""
    from types import SimpleNamespace

    from monitor.clock import ManualClock
    settings = load_settings({"websocket_url": "ws://127.0.0.1:9/", "wallets": [W],
                              "rpc_url": "http://127.0.0.1:9/",
                              "explorer_url": "http://127.0.0.1:9/v2/api"}, environ={})
    clock = ManualClock(1000.0)
    pilot = Pilot(settings, tmp_path / "store", beat_s=1.0, clock=clock)
    pilot.store = PilotStore(tmp_path / "store")
    try:
        pilot.session = pilot.store.new_session(1, clock.now_ns())
        pilot.monitors = {  # type: ignore[dict-item]
            "websocket": SimpleNamespace(shards=[_Shard(True), _Shard(False)]),
            "polling": SimpleNamespace(poller=None)}
        pilot.beat()
        clock.advance(1.0)
        pilot.beat()
        row = next(r for r in pilot.store.paths() if r["path"] == "websocket")
        assert row["observed_s"] == 1.0 and row["healthy_s"] == 0.0
        assert row["healthy"] == 0 and row["state"] == "RECONNECTING"
        pilot.monitors["websocket"].shards[1].healthy = True  # type: ignore[attr-defined]
        pilot.monitors["websocket"].shards[1].manager.state = \
            pilot.monitors["websocket"].shards[0].manager.state  # type: ignore[attr-defined]
        clock.advance(1.0)
        pilot.beat()
        row = next(r for r in pilot.store.paths() if r["path"] == "websocket")
        assert row["healthy_s"] == 1.0 and row["state"] == "CONNECTED"
    finally:
        pilot.store.close()
