"""eth_gasPrice and eth_maxPriorityFeePerGas, which this node answered -32601 ("does not
exist"), as geth v1.17 answers them (eth/gasprice Oracle.SuggestTipCap with the full node
defaults; internal/ethapi GasPrice adds the head's base fee), read by web3.py 8 unmodified:
each block's lowest tips of at least 2 wei from senders other than its miner, a block
giving one value making the oracle read one block more, the 60th percentile."""

from __future__ import annotations

import asyncio

from web3 import Web3

from simulator.server import Simulator
from tests.simulator.node_fixtures import OTHER, make_recording, serving_in_thread

GWEI = 10**9
MINER = "0x" + "0" * 40
BASE_FEE = 30


def test_web3_reads_geths_gas_price_and_priority_fee_from_the_recent_blocks() -> None:
    rec = make_recording(30, trades_per_block=3)
    for k, rb in enumerate(rec.blocks):
        assert rb.block["miner"] == MINER and int(rb.block["baseFeePerGas"], 16) == BASE_FEE
        paid, own, cheap = rb.transactions
        # a dynamic fee transaction: its tip, (k + 1) gwei, is under its fee cap's room
        paid.update({"type": "0x2", "maxPriorityFeePerGas": hex((k + 1) * GWEI),
                     "maxFeePerGas": hex(1000 * GWEI), "gasPrice": hex(BASE_FEE + (k + 1) * GWEI)})
        own.update({"from": MINER, "gasPrice": hex(BASE_FEE + 999 * GWEI)})  # the miner's own
        cheap.update({"from": OTHER, "gasPrice": hex(BASE_FEE + 1)})  # a tip of 1 wei: ignored
    sim = Simulator(rec, speed=1000)
    with serving_in_thread(sim) as loop:
        asyncio.run_coroutine_threadsafe(sim.wait_published(30), loop).result(20)
        w3 = Web3(Web3.HTTPProvider(sim.urls["http"]))
        # each block gives one tip, so the 20 blocks read become all 30 held (up to 40):
        # tips 1..30 gwei, the 60th percentile is sorted[(30 - 1) * 60 // 100] = 18 gwei
        assert w3.eth.max_priority_fee == 18 * GWEI
        assert w3.eth.gas_price == 18 * GWEI + BASE_FEE
