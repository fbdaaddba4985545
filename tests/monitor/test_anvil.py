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
        return str(_rpc(self.port, "eth_sendTransaction", [trade_request(
            version=version, maker=maker, side=side, token=token, usdc=usdc, shares=shares,
            order=order)]))

    def head(self) -> int:
        return int(_rpc(self.port, "eth_blockNumber", []), 16)

    def reorg(self, depth: int, txs: list[tuple[dict[str, Any], int]] | None = None) -> None:
        """``anvil_reorg``: the last ``depth`` blocks replaced by new ones holding ``txs``
        (each at its offset into the new blocks). Anvil notifies the new heads, never a
        ``removed`` log: the monitor must see the reorg from the heads and the node."""
        _rpc(self.port, "anvil_reorg", [depth, [[tx, offset] for tx, offset in txs or []]])


def trade_request(*, version: int, maker: str, side: str, token: int, usdc: int, shares: int,
                  order: int) -> dict[str, Any]:
    """The transaction that makes the emitter at the exchange log one OrderFilled."""
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
    return {"from": SENDER, "to": exchange, "data": "0x" + payload.hex(), "gas": "0x100000"}


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


def _start_monitor(anvil: Anvil, tmp_path: Path, *extra: str,
                   wallets: tuple[str, ...] = (WATCHED,)) -> subprocess.Popen[bytes]:
    """``monitor run`` in WebSocket mode against ``anvil``, as a user starts it; READY read."""
    cmd = [sys.executable, "-m", "monitor", "run", "--mode", "websocket",
           "--ws-url", f"ws://127.0.0.1:{anvil.port}", "--rpc-url", f"http://127.0.0.1:{anvil.port}",
           "--explorer-url", "http://127.0.0.1:9/v2/api", "--api-key", "anvil-test-key",
           *(a for w in wallets for a in ("--wallet", w)),
           "--db", str(tmp_path / "state.sqlite"),
           "--detections", str(tmp_path / "detections.jsonl"),
           "--history", str(tmp_path / "history.jsonl"),
           "--block-interval", "1", "--fallback-after", "600", *extra]
    monitor = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert monitor.stdout is not None
    line = monitor.stdout.readline().decode()
    if not line.startswith("READY"):
        monitor.kill()
        _, err = monitor.communicate(timeout=30)
        raise AssertionError(f"monitor did not start: {line!r} {err.decode()[-2000:]}")
    return monitor


def _stop_monitor(monitor: subprocess.Popen[bytes]) -> str:
    """SIGTERM, as a service manager stops it; its stderr."""
    monitor.send_signal(signal.SIGTERM)
    try:
        _, err = monitor.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        monitor.kill()
        raise
    return err.decode()


def test_monitor_detects_trades_from_anvil_across_a_restart(anvil: Anvil, tmp_path: Path) -> None:
    detections = tmp_path / "detections.jsonl"
    history = tmp_path / "history.jsonl"
    monitor = _start_monitor(anvil, tmp_path)
    try:

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
        err = _stop_monitor(monitor)
    assert monitor.returncode == 0, err[-2000:]
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


def _rows(path: Path) -> list[dict[str, Any]]:
    """The detections file's rows (trades and retractions); a line being written skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _wait_for_trade(detections: Path, tx: str, what: str) -> None:
    _wait_until(lambda: any(r.get("trade", {}).get("tx_hash") == tx
                            for r in _rows(detections)), what)


def _receipt_block(anvil: Anvil, tx: str) -> tuple[int, str]:
    receipt = _rpc(anvil.port, "eth_getTransactionReceipt", [tx])
    return int(receipt["blockNumber"], 16), str(receipt["blockHash"])


@pytest.mark.parametrize("mode", ["filtered", "firehose"])
def test_monitor_retracts_what_an_anvil_reorg_took_away(anvil: Anvil, tmp_path: Path,
                                                        mode: str) -> None:
    """A real reorg (``anvil_reorg``), told as a real node tells it: new heads only, no
    ``removed`` log. Of the trades in the replaced blocks, the one the new chain dropped is
    retracted, the one it re-included (the same signed transaction, in another block) stands,
    and the new chain's own trade is delivered; a trade below the fork is left alone. The
    same with a maker filter on the node and with the firehose (every OrderFilled, makers
    filtered here), another maker trading in the replaced blocks."""
    detections = tmp_path / "detections.jsonl"
    monitor = _start_monitor(anvil, tmp_path, "--subscription-mode", mode)
    try:
        kept = anvil.trade(version=2, maker=WATCHED, side="BUY", token=7, usdc=450_000,
                           shares=1_000_000, order=1)
        _wait_for_trade(detections, kept, "the first trade")
        kept_block, _ = _receipt_block(anvil, kept)
        _wait_until(lambda: anvil.head() > kept_block, "a block above the first trade's")
        # two trades of the next block(s): the first to be re-included, the second dropped
        moved = anvil.trade(version=1, maker=WATCHED, side="SELL", token=8, usdc=2_970_000,
                            shares=3_000_000, order=2)
        gone = anvil.trade(version=2, maker=WATCHED, side="SELL", token=9, usdc=100_000,
                           shares=200_000, order=3)
        anvil.trade(version=2, maker=OTHER, side="BUY", token=9, usdc=1, shares=2, order=5)
        _wait_until(lambda: {moved, gone} <= {r.get("trade", {}).get("tx_hash")
                                              for r in _rows(detections)}, "the two trades")
        moved_block, moved_hash = _receipt_block(anvil, moved)
        gone_block, gone_hash = _receipt_block(anvil, gone)
        raw_moved = _rpc(anvil.port, "eth_getRawTransactionByHash", [moved])
        low = min(moved_block, gone_block)
        assert low > kept_block
        _wait_until(lambda: anvil.head() > max(moved_block, gone_block) + 1,
                    "two blocks above the trades")
        depth = anvil.head() - low + 1
        fresh = trade_request(version=2, maker=WATCHED, side="BUY", token=10, usdc=10_000,
                              shares=20_000, order=4)
        # the sender's next nonce in the new chain (after the re-included one), not anvil's
        # pending one of the replaced chain (a transaction it then leaves out)
        fresh["nonce"] = hex(int(_rpc(anvil.port, "eth_getTransactionByHash", [moved])["nonce"],
                                 16) + 1)
        anvil.reorg(depth, [(raw_moved, 1), (fresh, 2)])
        assert _rpc(anvil.port, "eth_getTransactionReceipt", [gone]) is None
        _, new_moved_hash = _receipt_block(anvil, moved)
        assert new_moved_hash != moved_hash
        logs_now = _rpc(anvil.port, "eth_getLogs", [{"fromBlock": hex(low), "toBlock": "latest"}])
        fresh_hash = next(lg["transactionHash"] for lg in logs_now
                          if lg["transactionHash"] != moved)

        def retracted() -> set[str]:
            return {r["trade_id"].split(":")[0] for r in _rows(detections)
                    if r.get("kind") == "retraction"}

        def delivered() -> set[str]:
            return {r["trade"]["tx_hash"] for r in _rows(detections) if r.get("kind") == "trade"}

        _wait_until(lambda: gone in retracted() and fresh_hash in delivered(),
                    "the dropped trade retracted and the new chain's trade delivered")
        rows = _rows(detections)
        gone_retraction = [r for r in rows if r.get("kind") == "retraction"
                           and r["trade_id"].startswith(gone)]
        assert [r["block_hash"] for r in gone_retraction] == [gone_hash]
        assert kept not in retracted()
        # the re-included trade is the same trade (the same transaction and log): it stands
        assert moved not in retracted()
        trades = [r["trade"]["tx_hash"] for r in rows if r.get("kind") == "trade"]
        assert sorted(trades) == sorted([kept, moved, gone, fresh_hash]), "a trade twice"
    finally:
        err = _stop_monitor(monitor)
    assert monitor.returncode == 0, err[-2000:]


def test_monitor_retracts_after_a_restart_what_an_anvil_reorg_took_while_it_was_down(
        anvil: Anvil, tmp_path: Path) -> None:
    """The monitor stopped, the chain reorganised under its stored cursor, the monitor
    started again: its restart check finds the block it delivered from replaced, retracts
    the trade the new chain dropped, and delivers the new chain's trade, once each."""
    detections = tmp_path / "detections.jsonl"
    monitor = _start_monitor(anvil, tmp_path)
    try:
        gone = anvil.trade(version=2, maker=WATCHED, side="BUY", token=7, usdc=450_000,
                           shares=1_000_000, order=1)
        _wait_for_trade(detections, gone, "the trade")
        gone_block, gone_hash = _receipt_block(anvil, gone)
        _wait_until(lambda: anvil.head() > gone_block + 1, "two blocks above the trade")
    finally:
        err = _stop_monitor(monitor)
    assert monitor.returncode == 0, err[-2000:]
    fresh = trade_request(version=1, maker=WATCHED, side="SELL", token=8, usdc=2_970_000,
                          shares=3_000_000, order=2)
    fresh["nonce"] = _rpc(anvil.port, "eth_getTransactionByHash", [gone])["nonce"]
    anvil.reorg(anvil.head() - gone_block + 1, [(fresh, 0)])
    assert _rpc(anvil.port, "eth_getTransactionReceipt", [gone]) is None
    fresh_hash = _rpc(anvil.port, "eth_getLogs", [{"fromBlock": hex(gone_block),
                                                   "toBlock": "latest"}])[0]["transactionHash"]
    monitor = _start_monitor(anvil, tmp_path)
    try:
        def done() -> bool:
            rows = _rows(detections)
            return any(r.get("kind") == "retraction" and r["trade_id"].startswith(gone)
                       for r in rows) and any(r.get("trade", {}).get("tx_hash") == fresh_hash
                                              for r in rows)
        _wait_until(done, "the dropped trade retracted and the new one delivered")
        rows = _rows(detections)
        assert [r["block_hash"] for r in rows if r.get("kind") == "retraction"] == [gone_hash]
        assert sorted(r["trade"]["tx_hash"] for r in rows if r.get("kind") == "trade") == \
            sorted([gone, fresh_hash])
    finally:
        err = _stop_monitor(monitor)
    assert monitor.returncode == 0, err[-2000:]


def test_monitor_rides_out_a_frozen_anvil(anvil: Anvil, tmp_path: Path) -> None:
    """The node process frozen (SIGSTOP): its sockets stay open and say nothing, as a hung
    provider's do. The heartbeat finds the connection dead and the manager reconnects; once
    the node runs again (SIGCONT) the trade mined meanwhile is delivered, and none twice."""
    detections = tmp_path / "detections.jsonl"
    history = tmp_path / "history.jsonl"
    monitor = _start_monitor(anvil, tmp_path, "--heartbeat-interval", "1",
                             "--heartbeat-timeout", "1", "--backoff-max", "2")
    assert anvil.proc is not None
    try:
        first = anvil.trade(version=2, maker=WATCHED, side="BUY", token=7, usdc=450_000,
                            shares=1_000_000, order=1)
        _wait_for_trade(detections, first, "the first trade")

        def reconnecting() -> int:
            return sum(1 for line in history.read_text().splitlines()
                       if '"RECONNECTING"' in line)

        before = reconnecting()
        anvil.proc.send_signal(signal.SIGSTOP)
        try:
            _wait_until(lambda: reconnecting() > before, "the heartbeat to find the node dead")
        finally:
            anvil.proc.send_signal(signal.SIGCONT)
        second = anvil.trade(version=1, maker=WATCHED, side="SELL", token=8, usdc=2_970_000,
                             shares=3_000_000, order=2)
        _wait_for_trade(detections, second, "the trade after the freeze")
        ids = [r["trade"]["id"] for r in _rows(detections) if r.get("kind") == "trade"]
        assert len(ids) == len(set(ids)) == 2
    finally:
        err = _stop_monitor(monitor)
    assert monitor.returncode == 0, err[-2000:]
    assert any(json.loads(line).get("to") == "CONNECTED"
               for line in history.read_text().splitlines()[-200:]
               if '"state"' in line), "never connected again"


def test_a_wallet_taken_off_the_list_keeps_its_reorged_trade_judged(
        anvil: Anvil, tmp_path: Path) -> None:
    """A wallet's trade delivered, the monitor stopped, the wallet taken off the list and the
    trade's block replaced by anvil (the transaction dropped) before the monitor starts
    again: the bot copied a trade that no longer exists, so it is retracted, though no one
    watches that wallet any more; the watched wallet's trade below stands."""
    detections = tmp_path / "detections.jsonl"
    monitor = _start_monitor(anvil, tmp_path, wallets=(WATCHED, OTHER))
    try:
        kept = anvil.trade(version=2, maker=WATCHED, side="BUY", token=7, usdc=450_000,
                           shares=1_000_000, order=1)
        _wait_for_trade(detections, kept, "the watched wallet's trade")
        kept_block, _ = _receipt_block(anvil, kept)
        _wait_until(lambda: anvil.head() > kept_block, "a block above it")
        gone = anvil.trade(version=1, maker=OTHER, side="SELL", token=8, usdc=2_970_000,
                           shares=3_000_000, order=2)
        _wait_for_trade(detections, gone, "the other wallet's trade")
        gone_block, gone_hash = _receipt_block(anvil, gone)
        assert gone_block > kept_block
        _wait_until(lambda: anvil.head() > gone_block + 1, "two blocks above it")
    finally:
        err = _stop_monitor(monitor)
    assert monitor.returncode == 0, err[-2000:]
    anvil.reorg(anvil.head() - gone_block + 1)
    assert _rpc(anvil.port, "eth_getTransactionReceipt", [gone]) is None
    monitor = _start_monitor(anvil, tmp_path, wallets=(WATCHED,))
    try:
        _wait_until(lambda: any(r.get("kind") == "retraction" for r in _rows(detections)),
                    "the dropped trade of the wallet off the list retracted")
        rows = _rows(detections)
        assert [(r["trade_id"].split(":")[0], r["block_hash"]) for r in rows
                if r.get("kind") == "retraction"] == [(gone, gone_hash)]
        assert sorted(r["trade"]["tx_hash"] for r in rows if r.get("kind") == "trade") == \
            sorted([kept, gone])
    finally:
        err = _stop_monitor(monitor)
    assert monitor.returncode == 0, err[-2000:]
