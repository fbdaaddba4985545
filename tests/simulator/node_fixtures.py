"""Tiny hand-built recordings for the node tests (independent of simulator.synth)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from polyvocab import CTF_EXCHANGE_V1, ORDER_FILLED_V1, TRANSFER, USDC_E, address_topic
from simulator.recording import RecordedBlock, Recording

if TYPE_CHECKING:
    from simulator.server import Simulator

WALLETS = ["0x" + f"{i:040x}" for i in (0xA1, 0xA2, 0xA3)]
OTHER = "0x" + "b" * 40
EXTRA_DATA = "0x" + "d8" * 97  # Polygon-like: longer than 32 bytes


def h32(*parts: Any) -> str:
    return "0x" + hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=32).hexdigest()


def order_filled_log(*, maker: str, tx_hash: str, block: dict[str, Any], tx_index: int,
                     log_index: int) -> dict[str, Any]:
    words = [0, 1234, 5_000_000, 10_000_000, 0]  # BUY token 1234, 5 USDC for 10 shares
    return {
        "address": CTF_EXCHANGE_V1,
        "topics": [ORDER_FILLED_V1, h32("order", tx_hash, log_index), address_topic(maker),
                   address_topic(OTHER)],
        "data": "0x" + "".join(f"{w:064x}" for w in words),
        "blockNumber": block["number"], "blockHash": block["hash"],
        "blockTimestamp": block["timestamp"], "transactionHash": tx_hash,
        "transactionIndex": hex(tx_index), "logIndex": hex(log_index), "removed": False,
    }


def make_recording(n_blocks: int = 10, *, trades_per_block: int = 2, interval: int = 2,
                   first: int = 1000, seed: int = 0, noise: bool = True,
                   with_txs: bool = True) -> Recording:
    blocks: list[RecordedBlock] = []
    parent = h32("genesis", seed)
    for k in range(n_blocks):
        number = first + k
        block: dict[str, Any] = {
            "number": hex(number), "hash": h32("block", seed, number), "parentHash": parent,
            "timestamp": hex(1_700_000_000 + k * interval), "extraData": EXTRA_DATA,
            "miner": "0x" + "0" * 40, "gasLimit": hex(30_000_000), "gasUsed": hex(21000),
            "baseFeePerGas": "0x1e", "difficulty": "0x1", "logsBloom": "0x" + "00" * 256,
            "nonce": "0x0000000000000000", "mixHash": "0x" + "00" * 32,
            "sha3Uncles": h32("uncles"), "stateRoot": h32("state", number),
            "receiptsRoot": h32("receipts", number), "transactionsRoot": h32("txs", number),
            "size": "0x400", "totalDifficulty": hex(number), "uncles": [],
        }
        logs: list[dict[str, Any]] = []
        txs: list[dict[str, Any]] = []
        hashes: list[str] = []
        for t in range(trades_per_block):
            tx_hash = h32("tx", seed, number, t)
            hashes.append(tx_hash)
            maker = WALLETS[(number + t) % len(WALLETS)]
            logs.append(order_filled_log(maker=maker, tx_hash=tx_hash, block=block, tx_index=t,
                                         log_index=len(logs)))
            if noise:
                logs.append({
                    "address": USDC_E, "topics": [TRANSFER, address_topic(OTHER),
                                                  address_topic(maker)],
                    "data": "0x" + f"{5_000_000:064x}", "blockNumber": block["number"],
                    "blockHash": block["hash"], "blockTimestamp": block["timestamp"],
                    "transactionHash": tx_hash, "transactionIndex": hex(t),
                    "logIndex": hex(len(logs)), "removed": False})
            txs.append({
                "hash": tx_hash, "blockHash": block["hash"], "blockNumber": block["number"],
                "transactionIndex": hex(t), "from": OTHER, "to": CTF_EXCHANGE_V1,
                "input": "0x", "value": "0x0", "gas": hex(200_000), "gasPrice": "0x1e",
                "nonce": hex(number * 10 + t), "type": "0x0", "chainId": "0x89",
                "v": "0x135", "r": "0x1", "s": "0x1"})
        block["transactions"] = hashes
        blocks.append(RecordedBlock(block=block, logs=logs, transactions=txs if with_txs else []))
        parent = block["hash"]
    return Recording(source={"kind": "synthetic", "profile": "test", "seed": seed},
                     blocks=blocks)


@contextlib.contextmanager
def serving_in_thread(sim: Simulator, timeout: float = 20.0
                      ) -> Iterator[asyncio.AbstractEventLoop]:
    """``sim`` started on an event loop of its own thread (for synchronous clients: web3.py's
    HTTPProvider), stopped on leaving; yields that loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sim.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(timeout)
    try:
        yield loop
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
