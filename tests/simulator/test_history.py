"""History before the replay: a fresh `serve` has blocks before "now", so clients that look
back at start-up (web3.py, an ethers-style batch of the last 8 blocks, a confirmation-depth
check) succeed, and the first replayed block's parent is a real block."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from web3 import AsyncWeb3, Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers import HTTPProvider, WebSocketProvider

from simulator.chain import Chain
from simulator.recording import save_recording
from simulator.settings import SimSettings, settings_from_dict
from tests.simulator.node_fixtures import make_recording

FIRST = 1000


@pytest.fixture
def fresh_serve(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`python -m simulator serve` with no history flag or config, paused: exactly what it
    serves before the replay starts."""
    rec = tmp_path / "rec.jsonl.gz"
    save_recording(make_recording(40), rec)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--recording", str(rec), "--port", "0",
         "--speed", "20", "--paused"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line + (proc.stderr.read() if proc.stderr else "")
        yield json.loads(line[6:])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_web3_py_looks_back_eight_blocks_at_start(fresh_serve: dict[str, Any]) -> None:
    w3 = Web3(HTTPProvider(fresh_serve["http"]))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)  # Polygon's extraData
    head = w3.eth.block_number
    assert head == FIRST + 15  # 16 blocks of history by default
    blocks = [w3.eth.get_block(n) for n in range(head - 7, head + 1)]
    assert all(b is not None for b in blocks)
    assert [b["parentHash"] for b in blocks[1:]] == [b["hash"] for b in blocks[:-1]]
    assert w3.eth.get_block("finalized")["number"] == FIRST  # a confirmation-depth check


def test_async_web3_over_websocket_looks_back_at_start(fresh_serve: dict[str, Any]) -> None:
    async def main() -> None:
        async with AsyncWeb3(WebSocketProvider(fresh_serve["ws"])) as w3:
            w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
            head = await w3.eth.block_number
            earlier = await w3.eth.get_block(head - 7)
            assert earlier["number"] == head - 7
            logs = await w3.eth.get_logs({"fromBlock": head - 7, "toBlock": head})
            assert logs and {lg["blockNumber"] for lg in logs} <= set(range(head - 7, head + 1))
    asyncio.run(asyncio.wait_for(main(), 60))


def test_ethers_style_batch_of_the_last_eight_blocks_then_the_replay_continues_it(
        fresh_serve: dict[str, Any]) -> None:
    async def main() -> None:
        url = fresh_serve["http"]
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"jsonrpc": "2.0", "id": 1,
                                            "method": "eth_blockNumber"}) as resp:
                head = int((await resp.json())["result"], 16)
            batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_getBlockByNumber",
                      "params": [hex(head - i), False]} for i in range(8)]
            async with http.post(url, json=batch) as resp:
                answers = sorted(await resp.json(), key=lambda a: a["id"])
            assert all(a["result"] is not None for a in answers)
            history_head = answers[0]["result"]["hash"]
            # the replay's first block is the next height, and its parent is real
            async with http.post(fresh_serve["status"].replace("status", "start")) as resp:
                assert resp.status == 200
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while True:
                async with http.post(url, json={
                        "jsonrpc": "2.0", "id": 2, "method": "eth_getBlockByNumber",
                        "params": [hex(head + 1), False]}) as resp:
                    first = (await resp.json())["result"]
                if first is not None:
                    break
                assert loop.time() < deadline, "the replay did not publish its first block"
                await asyncio.sleep(0.02)
            assert first["parentHash"] == history_head
    asyncio.run(asyncio.wait_for(main(), 60))


def test_history_is_configurable_and_the_library_default_replays_everything() -> None:
    rec = make_recording(10)
    assert Chain(rec, settings=SimSettings()).published == 0  # in-process: no history
    chain = Chain(rec, settings=settings_from_dict({"chain": {"history_blocks": 4}}))
    assert chain.published == 4 and chain.head_number == FIRST + 3
    assert chain.first_replayed == FIRST + 4 and chain.next_publish_ns() == 0
    assert [b.number for b in chain.advance(0)] == [FIRST + 4]  # due at t0, as block 0 was
    assert Chain(rec, settings=SimSettings(history_blocks=99)).published == 9  # one replays
