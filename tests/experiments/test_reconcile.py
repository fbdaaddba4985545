"""Reconcile's truth from the chain, through the shared JSON-RPC client, against a fake node
on loopback: a range the node refuses is split, a 503 is retried, every log is found."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import os
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from exp_helpers import send_json

from experiments.reconcile import ReconcileError, ReconcileOptions, _rpc, chain_truth, reconcile
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


# -- a node answering garbage: one clear error naming the method, never an "ok" run ---------

_T0 = ORDER_FILLED_V2
_MAKER = address_topic(WALLET)
_GOOD = {"topics": [_T0, "0x" + "00" * 32, _MAKER], "blockNumber": "0x64",
         "blockHash": "0x" + "01" * 32, "transactionHash": "0x" + "02" * 32, "logIndex": "0x1"}
ANSWERS: dict[str, dict[str, Any]] = {
    "head_bad": {"eth_blockNumber": "0xZZ"},
    "head_null": {"eth_blockNumber": None},
    "head_int": {"eth_blockNumber": 99999999999},
    "logs_not_objects": {"eth_getLogs": [1, 2, "x"]},
    "logs_not_a_list": {"eth_getLogs": {"a": 1}},
    "log_without_fields": {"eth_getLogs": [{"topics": _GOOD["topics"]}]},
    "log_bad_number": {"eth_getLogs": [dict(_GOOD, blockNumber="zz")]},
    "log_int_number": {"eth_getLogs": [dict(_GOOD, blockNumber=100)]},
    "log_bad_topics": {"eth_getLogs": [dict(_GOOD, topics=[_T0, 5, 7])]},
    "log_bad_timestamp": {"eth_getLogs": [dict(_GOOD, blockTimestamp="nothex")]},
    "block_without_timestamp": {"eth_getLogs": [_GOOD],
                                "eth_getBlockByNumber": {"number": "0x64"}},
}
SANE: dict[str, dict[str, Any]] = {
    "ok": {"eth_getLogs": [dict(_GOOD, blockTimestamp=hex(1_700_000_000))]}}
NEEDLES = {
    "head_bad": "eth_blockNumber", "head_null": "eth_blockNumber",
    "head_int": "eth_blockNumber", "logs_not_objects": "eth_getLogs of blocks 100..200: "
    "entry 0 is int", "logs_not_a_list": "not a list of logs",
    "log_without_fields": "eth_getLogs: a log of wallet", "log_bad_number": "blockNumber",
    "log_int_number": "blockNumber", "log_bad_topics": "eth_getLogs: a log's topics",
    "log_bad_timestamp": "blockTimestamp", "block_without_timestamp": "eth_getBlockByNumber",
}


class _GarbageNode(http.server.BaseHTTPRequestHandler):
    """A JSON-RPC node whose answers come from ``ANSWERS[path]``; the rest are sane."""

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mine = {**ANSWERS, **SANE}[self.path.strip("/")]
        default = {"eth_chainId": "0x89", "eth_blockNumber": hex(10**6), "eth_getLogs": [],
                   "eth_getBlockByNumber": None}[req["method"]]
        result = mine.get(req["method"], default)
        if self.path.strip("/") in SANE and req["method"] == "eth_getLogs":
            flt = req["params"][0]  # a sane node keeps to the range asked
            lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
            result = [lg for lg in result if lo <= int(lg["blockNumber"], 16) <= hi]
        send_json(self, {"jsonrpc": "2.0", "id": req["id"], "result": result})

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def garbage_node() -> Any:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GarbageNode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _pilot_store(tmp_path: Path) -> Path:
    """A pilot store of one session over blocks 100..200, watching ``WALLET``."""
    from monitor.pilot import PilotStore

    store = tmp_path / "pilot"
    s = PilotStore(store)
    s.set_meta("start_block", 100)
    s.set_meta("wallets", [WALLET])
    sid = s.new_session(10**9, 1)
    s.beat(sid, "websocket", dt_s=1, healthy=True, fallback=False, state="CONNECTED",
           head=200, cursor=199, wall_ns=2 * 10**9, mono_ns=2)
    s.close()
    return store


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_garbage_from_the_node_is_one_error_naming_the_method_and_no_run(
        case: str, garbage_node: str, tmp_path: Path) -> None:
    """A head of "0xZZ" or null, logs without fields or with a bad number: ValueError and
    KeyError tracebacks; logs that were not objects were dropped and the run written
    "ok" with 0 truth trades; a JSON integer head was read as hex."""
    store = _pilot_store(tmp_path)
    out = tmp_path / "out"
    opts = ReconcileOptions(rpc_url=f"{garbage_node}/{case}", out=out, finality_depth=0,
                            wait_s=1, grace_s=0, rate_per_s=1000.0)
    with pytest.raises(ReconcileError) as err:
        reconcile(store, opts, log=lambda _line: None)
    message = str(err.value)
    assert NEEDLES[case] in message and "\n" not in message, message
    assert not out.exists() or not any(out.iterdir())  # no run written


def test_a_reconciled_run_is_private_like_the_pilot_files_it_copies(
        garbage_node: str, tmp_path: Path) -> None:
    """detections.jsonl, monitor_history.jsonl, the parquet files, summary.json and
    manifest.json (the wallets watched and their trades) were 0644 under umask 022."""
    store = _pilot_store(tmp_path)
    out = tmp_path / "out"
    opts = ReconcileOptions(rpc_url=f"{garbage_node}/ok", out=out, finality_depth=0,
                            wait_s=1, grace_s=0, rate_per_s=1000.0)
    old = os.umask(0o022)
    try:
        run = reconcile(store, opts, log=lambda _line: None)
    finally:
        os.umask(old)
    files = [p for p in run.rglob("*") if p.is_file()]
    assert {"detections.jsonl", "monitor_history.jsonl", "truth.parquet", "summary.json",
            "manifest.json"} <= {p.name for p in files}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o600)}
    assert {oct(p.stat().st_mode & 0o777) for p in [run, *run.iterdir()] if p.is_dir()} \
        == {oct(0o700)}
    assert out.stat().st_mode & 0o777 == 0o755  # the results folder, shared: as before
