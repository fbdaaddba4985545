"""The order of a block's notifications: geth gives a block's logs and its header in either
order (its filter system's event loop selects between the two events, and each subscription
writes from its own goroutine), so ``logs_before_heads`` makes the mock node send the logs
first, while by default they go in the order the subscriptions were made."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from simulator.server import Simulator
from simulator.settings import NodeSettings, SettingsError, SimSettings
from tests.simulator.node_fixtures import make_recording
from tests.simulator.test_server import recv_json, rpc, run

BLOCKS = 5


def _order(logs_before_heads: bool) -> list[tuple[str, int]]:
    """(kind, block number) of each notification, heads subscribed before logs."""
    got: list[tuple[str, int]] = []

    async def main() -> None:
        settings = SimSettings(node=NodeSettings(logs_before_heads=logs_before_heads))
        async with Simulator(make_recording(BLOCKS), speed=50, autostart=False,
                             settings=settings) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            heads = (await rpc(ws, "eth_subscribe", "newHeads"))["result"]
            await rpc(ws, "eth_subscribe", "logs", {}, req_id=2)
            sim.begin()
            while sum(1 for kind, _n in got if kind == "head") < BLOCKS:
                msg: dict[str, Any] = await recv_json(ws)
                result = msg["params"]["result"]
                if msg["params"]["subscription"] == heads:
                    got.append(("head", int(result["number"], 16)))
                else:
                    got.append(("log", int(result["blockNumber"], 16)))
    run(main)
    return got


def _firsts(order: list[tuple[str, int]]) -> list[str]:
    """The kind of each block's first notification."""
    seen: dict[int, str] = {}
    for kind, n in order:
        seen.setdefault(n, kind)
    return [seen[n] for n in sorted(seen)]


def test_by_default_a_blocks_header_goes_first_as_subscribed() -> None:
    assert _firsts(_order(False)) == ["head"] * BLOCKS


def test_logs_before_heads_sends_each_blocks_logs_first() -> None:
    order = _order(True)
    assert _firsts(order) == ["log"] * BLOCKS
    for n in range(min(b for _k, b in order), max(b for _k, b in order) + 1):
        kinds = [k for k, b in order if b == n]
        assert kinds[-1] == "head" and kinds.count("head") == 1  # all the logs, then it


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_logs_before_heads_is_a_boolean(bad: Any) -> None:
    with pytest.raises(SettingsError, match="logs_before_heads"):
        NodeSettings(logs_before_heads=bad)


def test_an_rpc_table_sets_it() -> None:
    from simulator.settings import settings_from_dict
    assert settings_from_dict({"rpc": {"logs_before_heads": True}}).node.logs_before_heads
