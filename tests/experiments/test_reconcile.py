"""Reconcile's truth from the chain, through the shared JSON-RPC client, against a fake node
on loopback: a range the node refuses is split, a 503 is retried, every log is found."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
from aiohttp import web

from experiments.reconcile import _rpc, chain_truth
from polyvocab import ORDER_FILLED_V2, address_topic

WALLET = "0x" + "ab" * 20
BLOCKS = range(100, 110)


def _log(n: int) -> dict[str, Any]:
    return {"blockNumber": hex(n), "blockHash": "0x" + f"{n:064x}", "logIndex": "0x0",
            "transactionHash": "0x" + f"{n + 1:064x}", "blockTimestamp": hex(1_700_000_000 + n),
            "topics": [ORDER_FILLED_V2, "0x" + "00" * 32, address_topic(WALLET)]}


def test_chain_truth_splits_refused_ranges_and_retries_a_503() -> None:
    seen: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        if len(seen) == 1:
            return web.Response(status=503, text="busy")
        flt = body["params"][0]
        lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        if hi - lo + 1 > 2:  # Infura's code and text: a smaller range would pass
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": {
                "code": -32005, "message": "query returned more than 10000 results"}})
        return web.json_response({"jsonrpc": "2.0", "id": body["id"],
                                  "result": [_log(n) for n in range(lo, hi + 1)]})

    async def main() -> tuple[Any, int]:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        try:
            async with aiohttp.ClientSession() as session:
                rpc = _rpc(url, session, rate_per_s=1000.0)
                rpc._retry_policy = lambda: itertools.repeat(0.001)  # fast retries
                truth, _ = await chain_truth(rpc, [WALLET], BLOCKS[0], BLOCKS[-1],
                                             chunk_blocks=10, offset_s=0.0)
                return truth, rpc.counter.retries
        finally:
            await runner.cleanup()

    truth, retries = asyncio.run(main())
    assert sorted(truth["block_number"]) == list(BLOCKS)
    assert retries == 1  # the 503 only: a refused range is split, not retried
    assert seen[0] == seen[1]  # the same request sent again
