"""ethers.js v6 (npm ``ethers``, pinned in the Makefile), unmodified, against a real
``python -m simulator serve``: the Node script ``ethers_client.mjs`` reads the chain id, the
head and the 7 blocks before it, an OrderFilled log range over HTTP (JsonRpcProvider, which
batches), then live blocks and logs over WebSocket subscriptions (WebSocketProvider), and
prints what it saw as one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polyvocab import ORDER_FILLED_TOPICS, V1_EXCHANGES, V2_EXCHANGES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ethers_client.mjs")
DEFAULT_MODULES = ROOT / ".tools/node_modules"
EXCHANGES = [*V1_EXCHANGES, *V2_EXCHANGES]
TIMEOUT_S = 60


def _ethers_modules() -> str:
    path = os.environ.get("ETHERS_MODULES") or str(DEFAULT_MODULES)
    if not (Path(path) / "ethers/package.json").exists():
        pytest.fail(f"ethers is not installed in {path}: run `make ethers` (npm ethers@6)")
    return path


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (ethers.js needs it; `make test` needs node/npm)")
    return node


@pytest.fixture
def serve() -> Iterator[dict[str, Any]]:
    """``python -m simulator serve`` on a free loopback port: the steady profile (trades in
    nearly every block, V1 and V2 exchanges) at 10x, 16 blocks of history."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--profile", "steady", "--seed", "5",
         "--host", "127.0.0.1", "--port", "0", "--speed", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line + (proc.stderr.read() if proc.stderr else "")
        yield json.loads(line[6:])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.loads(resp.read())
    assert "error" not in answer, answer
    return answer["result"]


def _is_address(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 42 and value.startswith("0x") \
        and int(value, 16) >= 0


def test_ethers_v6_reads_history_and_follows_blocks_and_logs(serve: dict[str, Any]) -> None:
    config = {"http": serve["http"], "ws": serve["ws"], "addresses": EXCHANGES,
              "topics": list(ORDER_FILLED_TOPICS), "timeout_s": TIMEOUT_S}
    done = subprocess.run(
        [_node(), str(SCRIPT), json.dumps(config)], capture_output=True, text=True,
        timeout=TIMEOUT_S + 30, env={**os.environ, "ETHERS_MODULES": _ethers_modules()})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    seen = json.loads(lines[0])

    assert seen["ethers"].startswith("6.")
    assert seen["chainId"] == 137 and seen["wsChainId"] == 137
    # the look-back at start: 8 blocks, head - 7 .. head, each the child of the one before
    head = seen["head"]
    blocks = seen["blocks"]
    assert [b["number"] for b in blocks] == list(range(head - 7, head + 1))
    assert [b["parentHash"] for b in blocks[1:]] == [b["hash"] for b in blocks[:-1]]
    assert seen["headBlock"] == blocks[-1] and seen["earliest"] == blocks[0]
    assert all(b["transactions"] > 0 and b["baseFeePerGas"] is not None for b in blocks)
    truth = [_rpc(serve["http"], "eth_getBlockByNumber", [hex(b["number"]), False])["hash"]
             for b in blocks]
    assert [b["hash"] for b in blocks] == truth

    # eth_getLogs through ethers = the node's own answer for the same filter and range
    got = seen["getLogs"]
    assert (got["fromBlock"], got["toBlock"]) == (head - 7, head)
    own = _rpc(serve["http"], "eth_getLogs", [{
        "fromBlock": hex(head - 7), "toBlock": hex(head), "address": EXCHANGES,
        "topics": [list(ORDER_FILLED_TOPICS)]}])
    assert got["count"] == got["decoded"] == len(own) > 0
    first = got["first"]
    assert (first["transactionHash"], first["index"]) == (
        own[0]["transactionHash"], int(own[0]["logIndex"], 16))
    assert first["name"] == "OrderFilled" and first["topic0"] in ORDER_FILLED_TOPICS
    assert _is_address(first["maker"]) and _is_address(first["taker"])

    # live: at least 3 new blocks, in order, after the head it read; at least one log
    live = seen["liveBlocks"]
    assert len(live) >= 3 and live == sorted(set(live)) and live[0] > head
    assert seen["liveLogCount"] >= 1
    for log in seen["liveLogs"]:
        assert log["topic0"] in ORDER_FILLED_TOPICS and log["removed"] is False
        assert log["address"].lower() in EXCHANGES and log["blockNumber"] > head
        assert _is_address(log["maker"]) and _is_address(log["taker"])
