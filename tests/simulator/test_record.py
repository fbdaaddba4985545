"""``python -m simulator record`` against a small fake JSON-RPC node on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from simulator.cli import main
from simulator.errors import RecordError
from simulator.record import (
    RecordSettings,
    RecordStats,
    RpcError,
    is_range_error,
    is_rate_limit_error,
    record_range,
)
from simulator.recording import RecordedBlock, Recording, load_recording

FIRST = 5000
N = 12
EXTRA = "0x" + "d8" * 97  # Polygon's long extraData
FAST = RecordSettings(rate_per_s=1000.0, backoff_base_s=0.01, logs_chunk=5, batch_blocks=3,
                      progress=False)


def _h(kind: int, n: int, i: int = 0) -> str:
    return "0x" + f"{kind:08x}{n:016x}{i:08x}".rjust(64, "0")


def hand_built_chain() -> list[RecordedBlock]:
    """12 blocks; block i has i % 3 transactions, each with one log."""
    out = []
    for k in range(N):
        n = FIRST + k
        bhash, ts = _h(0xB, n), hex(1_700_000_000 + 2 * k)
        txs = [{"hash": _h(0x7, n, i), "blockHash": bhash, "blockNumber": hex(n),
                "from": "0x" + f"{i + 1:040x}", "to": "0x" + f"{i + 100:040x}", "gas": "0x5208",
                "gasPrice": "0x1", "input": "0x", "nonce": hex(i), "transactionIndex": hex(i),
                "value": "0x0", "type": "0x0", "v": "0x1b", "r": "0x1", "s": "0x2"}
               for i in range(k % 3)]
        logs = [{"address": "0x" + "11" * 20, "topics": [_h(0xE, n, i)], "data": "0x",
                 "blockNumber": hex(n), "blockHash": bhash, "blockTimestamp": ts,
                 "transactionHash": t["hash"], "transactionIndex": hex(i), "logIndex": hex(i),
                 "removed": False} for i, t in enumerate(txs)]
        block = {"number": hex(n), "hash": bhash, "parentHash": _h(0xB, n - 1),
                 "timestamp": ts, "extraData": EXTRA, "gasLimit": "0x1c9c380",
                 "gasUsed": "0x0", "miner": "0x" + "00" * 20,
                 "transactions": [t["hash"] for t in txs]}
        out.append(RecordedBlock(block=block, logs=logs, transactions=txs))
    return out


class FakeNode:
    """A JSON-RPC HTTP node serving hand-built blocks, with scripted misbehaviour."""

    def __init__(self, blocks: list[RecordedBlock], *, batches: bool = True,
                 max_log_range: int = 1000) -> None:
        self.blocks = {b.number: b for b in blocks}
        self.batches = batches
        self.max_log_range = max_log_range
        self.script: list[Callable[[], web.Response]] = []  # one per request, first first
        self.log: list[tuple[float, int, Any]] = []  # (time, status, payload)

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        method, params = req.get("method"), req.get("params", [])

        def ok(result: Any) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": req.get("id"), "result": result}

        def err(code: int, message: str) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": req.get("id"),
                    "error": {"code": code, "message": message}}

        if method == "eth_chainId":
            return ok("0x89")
        if method == "eth_blockNumber":
            return ok(hex(max(self.blocks)))
        if method == "eth_getBlockByNumber":
            rb = self.blocks.get(int(params[0], 16))
            if rb is None:
                return ok(None)
            return ok({**rb.block, "transactions": rb.transactions} if params[1] else rb.block)
        if method == "eth_getLogs":
            flt = params[0]
            if "blockHash" in flt:
                return ok([lg for b in self.blocks.values() if b.hash == flt["blockHash"]
                           for lg in b.logs])
            lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
            if hi - lo + 1 > self.max_log_range:
                return err(-32005, "query returned more than 10000 results")
            return ok([lg for n in range(lo, hi + 1) if n in self.blocks
                       for lg in self.blocks[n].logs])
        return err(-32601, f"the method {method} does not exist/is not available")

    async def handle(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        if self.script:
            resp = self.script.pop(0)()
            self.log.append((time.monotonic(), resp.status, payload))
            return resp
        self.log.append((time.monotonic(), 200, payload))
        if isinstance(payload, list):
            if not self.batches:
                return web.json_response({"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32600, "message": "batch requests are not supported"}})
            return web.json_response([self.answer(r) for r in payload])
        return web.json_response(self.answer(payload))


async def serve(node: FakeNode, body: Callable[[str], Awaitable[Any]]) -> Any:
    app = web.Application()
    app.router.add_post("/v2/{key}", node.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        return await body(str(server.make_url("/v2/SECRETKEY0123456789abcdef")))
    finally:
        await server.close()


def record(node: FakeNode, first: int = FIRST, last: int = FIRST + N - 1,
           settings: RecordSettings = FAST) -> tuple[Recording, RecordStats, str]:
    stats = RecordStats()
    seen: dict[str, str] = {}

    async def body(url: str) -> Recording:
        seen["url"] = url
        return await record_range(url, first, last, settings, stats=stats)

    return asyncio.run(serve(node, body)), stats, seen["url"]


def rows(blocks: list[RecordedBlock]) -> list[tuple[Any, Any, Any]]:
    return [(b.block, b.logs, b.transactions) for b in blocks]


def test_records_the_exact_blocks_logs_and_transactions() -> None:
    chain = hand_built_chain()
    recording, stats, url = record(FakeNode(chain))
    assert "SECRETKEY" in url  # the node URL did carry a key
    assert rows(recording.blocks) == rows(chain)
    assert recording.chain_id == 137
    assert recording.source["kind"] == "recorded"
    assert recording.source["rpc"].endswith("/v2/***")
    assert "SECRETKEY" not in json.dumps(recording.header())
    assert stats.batched is True and stats.retries == 0


def test_a_sub_range_is_recorded_exactly() -> None:
    chain = hand_built_chain()
    recording, _, _ = record(FakeNode(chain), FIRST + 3, FIRST + 7)
    assert rows(recording.blocks) == rows(chain[3:8])


def test_retries_a_429_and_a_500_then_records_everything() -> None:
    chain = hand_built_chain()
    node = FakeNode(chain)
    node.script = [
        lambda: web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "1"}),
        lambda: web.Response(status=500, text="<html><body>500</body></html>",
                             content_type="text/html"),
    ]
    recording, stats, _ = record(node)
    assert rows(recording.blocks) == rows(chain)
    assert stats.retries == 2
    assert [status for _, status, _ in node.log[:3]] == [429, 500, 200]
    # the same request was sent again each time, and Retry-After was honoured
    assert node.log[0][2] == node.log[1][2] == node.log[2][2]
    assert node.log[1][0] - node.log[0][0] >= 0.95


def test_splits_log_ranges_the_node_refuses() -> None:
    chain = hand_built_chain()
    node = FakeNode(chain, max_log_range=2)
    recording, stats, _ = record(node)
    assert rows(recording.blocks) == rows(chain)
    assert stats.splits > 0
    ranges = [json.dumps(p) for _, _, p in node.log
              if isinstance(p, dict) and p["method"] == "eth_getLogs"]
    assert ranges  # logs were asked for one (sub)range at a time


def test_works_without_batch_support() -> None:
    chain = hand_built_chain()
    recording, stats, _ = record(FakeNode(chain, batches=False))
    assert rows(recording.blocks) == rows(chain)
    assert stats.batched is False


def test_client_side_rate_limit_is_respected() -> None:
    chain = hand_built_chain()[:3]
    node = FakeNode(chain)
    settings = RecordSettings(rate_per_s=20.0, batch_blocks=1, logs_chunk=1, progress=False)
    record(node, FIRST, FIRST + 2, settings)
    assert len(node.log) == 8  # eth_chainId, eth_blockNumber, 3 x (blocks batch, logs)
    settings = RecordSettings(rate_per_s=4.0, batch_blocks=1, logs_chunk=1, progress=False)
    node = FakeNode(chain)
    started = time.monotonic()
    record(node, FIRST, FIRST + 2, settings)
    # 8 requests, a bucket of 4 refilled at 4/s: the 8th cannot be sent before 1 s
    assert len(node.log) == 8
    assert node.log[-1][0] - started >= 0.95


def test_gives_up_with_a_clear_message_and_no_key() -> None:
    node = FakeNode(hand_built_chain())
    node.script = [lambda: web.Response(status=503, text="busy")] * 10
    settings = RecordSettings(rate_per_s=1000.0, backoff_base_s=0.001, max_attempts=3,
                              progress=False)
    with pytest.raises(RecordError) as exc:
        record(node, settings=settings)
    text = str(exc.value)
    assert "gave up after 3 attempts" in text and "HTTP 503" in text
    assert "SECRETKEY" not in text and "/v2/***" in text


def test_html_page_is_a_clear_error() -> None:
    node = FakeNode(hand_built_chain())
    node.script = [lambda: web.Response(status=200, text="<!DOCTYPE html><html>login</html>",
                                        content_type="text/html")]
    with pytest.raises(RecordError, match="HTML page, not JSON-RPC"):
        record(node)


def test_jsonrpc_error_is_a_clear_error() -> None:
    node = FakeNode(hand_built_chain())
    node.script = [lambda: web.json_response(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "must be authenticated"}})]
    with pytest.raises(RecordError, match="must be authenticated"):
        record(node)


def test_range_beyond_head_is_refused() -> None:
    with pytest.raises(RecordError, match="beyond the node's head"):
        record(FakeNode(hand_built_chain()), FIRST, FIRST + N + 5)


def test_missing_block_is_a_clear_error() -> None:
    with pytest.raises(RecordError, match="has no block 4999"):
        record(FakeNode(hand_built_chain()), FIRST - 1, FIRST + 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_node_is_a_clear_error() -> None:
    port = _free_port()
    url = f"http://user:hunter2@127.0.0.1:{port}/v3/abcdef0123456789abcdef0123456789"
    settings = RecordSettings(backoff_base_s=0.001, max_attempts=2, progress=False)
    stats = RecordStats()
    with pytest.raises(RecordError) as exc:
        asyncio.run(record_range(url, 1, 2, settings, stats=stats))
    text = str(exc.value)
    assert "cannot connect" in text and f"127.0.0.1:{port}" in text
    assert "hunter2" not in text and "abcdef0123456789" not in text
    assert stats.retries == 1


def test_cli_writes_the_recording(tmp_path: Path) -> None:
    chain = hand_built_chain()
    out = tmp_path / "rec.jsonl.gz"

    async def body(url: str) -> int:
        # main_record runs its own event loop: run it in a thread
        return await asyncio.to_thread(main, ["record", "--rpc", url, "--from", str(FIRST),
                                              "--to", str(FIRST + N - 1), "--out", str(out),
                                              "--rate", "500"])

    assert asyncio.run(serve(FakeNode(chain), body)) == 0
    loaded = load_recording(out)
    assert rows(loaded.blocks) == rows(chain)
    assert "SECRETKEY" not in out.read_bytes().decode("latin-1")
    assert loaded.source["rpc"].endswith("/v2/***")


def test_cli_reads_the_url_from_rpc_url_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The node's URL (with its key) from a file named in the environment: not in argv."""
    chain = hand_built_chain()
    out = tmp_path / "rec.jsonl.gz"
    url_file = tmp_path / "rpc_url"

    async def body(url: str) -> int:
        url_file.write_text(url + "\n", encoding="utf-8")
        monkeypatch.setenv("RPC_URL_FILE", str(url_file))
        return await asyncio.to_thread(main, ["record", "--from", str(FIRST),
                                              "--to", str(FIRST + N - 1), "--out", str(out),
                                              "--rate", "500"])

    assert asyncio.run(serve(FakeNode(chain), body)) == 0
    loaded = load_recording(out)
    assert rows(loaded.blocks) == rows(chain)
    assert loaded.source["rpc"].endswith("/v2/***")


def test_cli_without_any_url_says_where_to_put_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RPC_URL_FILE", raising=False)
    monkeypatch.delenv("RPC_URL", raising=False)
    code = main(["record", "--from", "1", "--to", "2", "--out", "/nonexistent/x"])
    err = capsys.readouterr().err
    assert code == 2 and "--rpc" in err and "RPC_URL_FILE" in err


def test_cli_never_prints_a_short_key_of_the_url(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    # a 12-character key in the path: the error line (node unreachable) names the node
    # masked, whether the URL came from --rpc or from RPC_URL (it once printed it whole)
    monkeypatch.setattr("simulator.record.retry_delays", lambda _b, _m: iter(lambda: 0.0, 1))
    for argv, env in ((["--rpc", "https://127.0.0.1:1/v2/SECRETKEY123"], None),
                      ([], "https://127.0.0.1:1/v2/ab12cd34ef56gh7")):
        monkeypatch.delenv("RPC_URL_FILE", raising=False)
        if env:
            monkeypatch.setenv("RPC_URL", env)
        code = main(["record", *argv, "--from", "1", "--to", "2", "--rate", "1000",
                     "--out", str(tmp_path / "x.jsonl.gz")])
        err = capsys.readouterr().err
        assert code == 2 and "127.0.0.1:1/v2/***" in err, err
        assert "SECRETKEY123" not in err and "ab12cd34ef56gh7" not in err


def test_cli_refuses_a_non_http_url(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["record", "--rpc", "ws://127.0.0.1:1/KEYKEYKEYKEYKEYKEYKEY", "--from", "1",
                 "--to", "2", "--out", "/nonexistent/x"])
    err = capsys.readouterr().err
    assert code == 2 and "http://" in err and "KEYKEYKEY" not in err


def test_error_classification() -> None:
    assert is_range_error(RpcError(-32005, "query returned more than 10000 results"))
    assert is_range_error(RpcError(-32602, "Log response size exceeded."))
    assert is_range_error(RpcError(-32000, "block range is too wide"))
    assert not is_range_error(RpcError(-32005, "project ID request rate exceeded"))
    assert is_rate_limit_error(RpcError(429, "Too Many Requests"))
    assert is_rate_limit_error(RpcError(-32005, "daily request count exceeded"))
    assert not is_rate_limit_error(RpcError(-32000, "must be authenticated"))
