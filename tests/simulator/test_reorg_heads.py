"""The reorg fault's ``heads`` and ``removed_logs`` params on the wire (real clients over
loopback): ``heads = "top"`` announces a multi-block reorg as geth does a side chain that
overtakes in one import - the removed logs, the new branch's logs, then ONE newHeads
header, the new top's; ``removed_logs = false`` sends no ``removed: true`` logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets

from polyvocab import ORDER_FILLED_V1, address_topic
from simulator.faults import FaultError, make_spec
from simulator.server import Simulator
from tests.simulator.node_fixtures import WALLETS, make_recording

TIMEOUT = 20
SUB_HEADS = '{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}'


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 90))


async def _reorg_on_the_wire(params: dict[str, Any]) -> tuple[list[tuple[str, Any]],
                                                                dict[str, Any], int]:
    """Every notification (kind, result) until the new chain's next block's header (those
    of the blocks before the reorg too: a test picks the reorg's by hash), the reorg row,
    and the head before the reorg."""
    rec = make_recording(12, trades_per_block=5)
    makers = [address_topic(w) for w in WALLETS]
    async with Simulator(rec, speed=5, autostart=False) as sim, \
            websockets.connect(sim.urls["ws"]) as ws:
        await ws.send(SUB_HEADS)
        heads = str(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["result"])
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe",
                                  "params": ["logs", {"topics": [ORDER_FILLED_V1, None,
                                                                 makers]}]}))
        json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        sim.begin()
        await sim.wait_published(5)
        head_before = sim.chain.head_number  # no await between: the reorg's head
        sim.start_fault("reorg", params=params)
        reorg = sim.history.events("reorg")[0]
        seen: list[tuple[str, Any]] = []
        while True:  # until the first header above the reorg's top
            p = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["params"]
            kind = "head" if p["subscription"] == heads else "log"
            seen.append((kind, p["result"]))
            if kind == "head" and int(p["result"]["number"], 16) > head_before:
                break
        return seen, reorg, head_before


@pytest.mark.parametrize("depth", [1, 3])
def test_heads_top_sends_removed_then_new_logs_then_only_the_new_top_header(
        depth: int) -> None:
    async def main() -> None:
        seen, reorg, head_before = await _reorg_on_the_wire(
            {"depth": depth, "seed": 4, "heads": "top"})
        new_hashes, old_hashes = reorg["new_hashes"], reorg["old_hashes"]
        reorg_part = [(k, r) for k, r in seen
                      if (k == "head" and r["hash"] in new_hashes)
                      or (k == "log" and (r["removed"] or r["blockHash"] in new_hashes))]
        assert all(r["blockHash"] in old_hashes for k, r in reorg_part
                   if k == "log" and r["removed"])
        kinds = [("removed" if r.get("removed") else k) for k, r in reorg_part]
        # removed logs first, then the new branch's logs, then ONE header: the new top's
        assert kinds == sorted(kinds, key=["removed", "log", "head"].index)
        assert kinds.count("head") == 1 and kinds[-1] == "head"
        top = reorg_part[-1][1]
        assert top["hash"] == new_hashes[-1] and int(top["number"], 16) == head_before
        assert kinds.count("removed") == 5 * depth  # every orphan's logs, 5 a block
        removed = [r for k, r in reorg_part if r.get("removed")]
        # the oldest orphan's logs first (geth's forward order)
        assert [r["blockHash"] for r in removed] == sorted(
            (r["blockHash"] for r in removed), key=old_hashes.index)
        new_logs = [r for k, r in reorg_part if k == "log" and not r.get("removed")]
        assert all(r["blockHash"] in new_hashes for r in new_logs)
        assert [r["blockHash"] for r in new_logs] == sorted(
            (r["blockHash"] for r in new_logs), key=new_hashes.index)
        # the next block's header builds on the new top
        nxt = seen[-1][1]
        assert nxt["parentHash"] == new_hashes[-1]
    run(main)


def test_heads_each_still_sends_a_header_for_every_new_block() -> None:
    async def main() -> None:
        seen, reorg, _head = await _reorg_on_the_wire({"depth": 3, "seed": 4})
        heads = [r["hash"] for k, r in seen if k == "head" and r["hash"] in reorg["new_hashes"]]
        assert heads == reorg["new_hashes"]
    run(main)


def test_removed_logs_false_sends_no_removed_logs_only_the_heads_show_the_reorg() -> None:
    async def main() -> None:
        seen, reorg, head_before = await _reorg_on_the_wire(
            {"depth": 3, "seed": 4, "heads": "top", "removed_logs": False})
        assert not [r for k, r in seen if k == "log" and r.get("removed")]
        heads = [r for k, r in seen if k == "head" and r["hash"] in reorg["new_hashes"]]
        assert [h["hash"] for h in heads] == [reorg["new_hashes"][-1]]
        assert int(heads[0]["number"], 16) == head_before
    run(main)


@pytest.mark.parametrize("params", [{"heads": "all"}, {"heads": 1},
                                    {"removed_logs": "no"}])
def test_bad_reorg_params_are_a_clear_error(params: dict[str, Any]) -> None:
    with pytest.raises(FaultError, match="params"):
        make_spec("reorg", None, params)


def test_reorg_defaults_keep_every_head_and_the_removed_logs() -> None:
    spec = make_spec("reorg", None, {"depth": 2})
    assert spec.params["heads"] == "each" and spec.params["removed_logs"] is True
