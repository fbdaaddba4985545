"""The monitor against a real Ethereum node: anvil (npm @foundry-rs/anvil-linux-amd64, pinned).

A minimal contract, put at the real exchange addresses with ``anvil_setCode``, emits each
call's payload as a LOG4, so the monitor sees genuine ``OrderFilled`` logs from a real
node's ``eth_subscribe`` and ``eth_getLogs`` - including across an anvil restart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode

from polyvocab import (
    CTF_EXCHANGE_V1,
    CTF_EXCHANGE_V2,
    ORDER_FILLED_V1,
    ORDER_FILLED_V2,
    address_topic,
)

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ANVIL = ROOT / ".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
# CALLDATACOPY(0, 0x80, size-0x80); LOG4(0, size-0x80, cd[0], cd[0x20], cd[0x40], cd[0x60])
EMITTER = "0x608036036080600037606035604035602035600035608036036000a400"
SENDER = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # anvil's first unlocked account
WATCHED = "0x" + "a1" * 20
OTHER = "0x" + "b2" * 20
TIMEOUT = 60.0


def _anvil_binary() -> str:
    path = os.environ.get("ANVIL_BIN") or (str(DEFAULT_ANVIL) if DEFAULT_ANVIL.exists() else "")
    path = path or shutil.which("anvil") or ""
    if not path or not Path(path).exists():
        pytest.fail("anvil is not installed: run `make anvil` (npm @foundry-rs/anvil-linux-amd64)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rpc(port: int, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.loads(resp.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def _wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)  # polling interval of a condition wait, not a synchronisation sleep
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Anvil:
    def __init__(self, port: int, state: Path) -> None:
        self.port, self.state = port, state
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_anvil_binary(), "--port", str(self.port), "--chain-id", "137", "--block-time", "1",
             "--state", str(self.state), "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            try:
                _rpc(self.port, "eth_blockNumber", [])
                return True
            except OSError:
                return False

        _wait_until(up, "anvil to answer")
        for exchange in (CTF_EXCHANGE_V1, CTF_EXCHANGE_V2):
            _rpc(self.port, "anvil_setCode", [exchange, EMITTER])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)  # anvil dumps --state on SIGTERM
            self.proc.wait(timeout=30)
            self.proc = None

    def trade(self, *, version: int, maker: str, side: str, token: int, usdc: int,
              shares: int, order: int) -> str:
        """Emit one OrderFilled (maker's view) and return the transaction hash."""
        if version == 1:
            maker_asset, taker_asset = (0, token) if side == "BUY" else (token, 0)
            maker_amt, taker_amt = (usdc, shares) if side == "BUY" else (shares, usdc)
            data = encode(["uint256"] * 5, [maker_asset, taker_asset, maker_amt, taker_amt, 0])
            topic0, exchange = ORDER_FILLED_V1, CTF_EXCHANGE_V1
        else:
            maker_amt, taker_amt = (usdc, shares) if side == "BUY" else (shares, usdc)
            data = encode(
                ["uint8", "uint256", "uint256", "uint256", "uint256", "bytes32", "bytes32"],
                [0 if side == "BUY" else 1, token, maker_amt, taker_amt, 1000, b"\0" * 32,
                 b"\0" * 32])
            topic0, exchange = ORDER_FILLED_V2, CTF_EXCHANGE_V2
        payload = (bytes.fromhex(topic0[2:]) + order.to_bytes(32, "big")
                   + bytes.fromhex(address_topic(maker)[2:])
                   + bytes.fromhex(address_topic(OTHER)[2:]) + data)
        return str(_rpc(self.port, "eth_sendTransaction", [
            {"from": SENDER, "to": exchange, "data": "0x" + payload.hex(), "gas": "0x100000"}]))


def _detections(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written
    return [r for r in rows if r.get("kind") == "trade"]


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    node = Anvil(_free_port(), tmp_path / "anvil-state.json")
    node.start()
    yield node
    node.stop()


def test_monitor_detects_trades_from_anvil_across_a_restart(anvil: Anvil, tmp_path: Path) -> None:
    detections = tmp_path / "detections.jsonl"
    history = tmp_path / "history.jsonl"
    cmd = [sys.executable, "-m", "monitor", "run", "--mode", "websocket",
           "--ws-url", f"ws://127.0.0.1:{anvil.port}", "--rpc-url", f"http://127.0.0.1:{anvil.port}",
           "--explorer-url", "http://127.0.0.1:9/v2/api", "--api-key", "anvil-test-key",
           "--wallet", WATCHED, "--db", str(tmp_path / "state.sqlite"),
           "--detections", str(detections), "--history", str(history),
           "--block-interval", "1", "--fallback-after", "600"]
    monitor = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        assert monitor.stdout is not None
        line = monitor.stdout.readline().decode()
        assert line.startswith("READY"), f"monitor did not start: {line!r}"

        # Three trades of the watched wallet (V2 buy, V1 sell, V2 sell) and one of another.
        sent = [
            anvil.trade(version=2, maker=WATCHED, side="BUY", token=7, usdc=450_000,
                        shares=1_000_000, order=1),
            anvil.trade(version=1, maker=WATCHED, side="SELL", token=8, usdc=2_970_000,
                        shares=3_000_000, order=2),
            anvil.trade(version=2, maker=OTHER, side="BUY", token=7, usdc=1, shares=2, order=3),
            anvil.trade(version=2, maker=WATCHED, side="SELL", token=9, usdc=100_000,
                        shares=200_000, order=4),
        ]
        _wait_until(lambda: len(_detections(detections)) >= 3, "three trades before the restart")
        got = {d["trade"]["tx_hash"]: d["trade"] for d in _detections(detections)}
        assert set(got) == {sent[0], sent[1], sent[3]}
        buy = got[sent[0]]
        assert (buy["wallet"], buy["side"], buy["version"]) == (WATCHED, "BUY", 2)
        assert buy["price"] == pytest.approx(0.45) and buy["shares"] == pytest.approx(1.0)
        sell = got[sent[1]]
        assert (sell["side"], sell["version"], sell["token_id"]) == ("SELL", 1, "8")
        assert sell["price"] == pytest.approx(0.99) and sell["usdc"] == pytest.approx(2.97)

        # The node goes away and comes back on the same port with its chain.
        anvil.stop()
        anvil.start()
        after = [
            anvil.trade(version=2, maker=WATCHED, side="BUY", token=10, usdc=10_000,
                        shares=20_000, order=5),
            anvil.trade(version=1, maker=WATCHED, side="BUY", token=11, usdc=30_000,
                        shares=60_000, order=6),
        ]
        _wait_until(lambda: len(_detections(detections)) >= 5, "two trades after the restart")
        ids = [d["trade"]["id"] for d in _detections(detections)]
        assert len(ids) == len(set(ids)) == 5, "a trade was delivered twice"
        assert {d["trade"]["tx_hash"] for d in _detections(detections)} >= set(after)
    finally:
        monitor.send_signal(signal.SIGTERM)
        try:
            _, err = monitor.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            monitor.kill()
            raise
    assert monitor.returncode == 0, err.decode()[-2000:]
    states = [json.loads(x) for x in history.read_text().splitlines()]
    assert any(r["event"] == "state" and r.get("to") == "RECONNECTING" for r in states)
    assert "anvil-test-key" not in history.read_text()


def test_block_hashes_in_json_rpc_batches_from_anvil(anvil: Anvil) -> None:
    """The reconnect and restart checks' batches (``_Rpc.call_many``) against a real node:
    anvil answers them as batches (none refused), with each block's own hash, the same as
    one call at a time."""
    import asyncio

    import aiohttp

    from monitor.clock import SystemClock
    from monitor.history import NullHistory
    from monitor.wallet_monitor import _block_hash, _Rpc

    anvil.trade(version=2, maker=WATCHED, side="BUY", token=7, usdc=1, shares=2, order=1)
    _wait_until(lambda: int(_rpc(anvil.port, "eth_blockNumber", []), 16) >= 3,
                "three blocks (one a second)")
    head = int(_rpc(anvil.port, "eth_blockNumber", []), 16)
    numbers = list(range(head + 1))

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            rpc = _Rpc(f"http://127.0.0.1:{anvil.port}", session, history=NullHistory(),
                       clock=SystemClock(), timeout=10.0, speed=1.0, rate_per_s=1000.0,
                       batch_size=2)
            blocks = await rpc.call_many("eth_getBlockByNumber",
                                         [[hex(n), False] for n in numbers])
            assert rpc.batch_size == 2  # not refused
            single = [_rpc(anvil.port, "eth_getBlockByNumber", [hex(n), False])["hash"]
                      for n in numbers]
            assert [_block_hash(b, n) for n, b in zip(numbers, blocks, strict=True)] == single
    asyncio.run(go())
