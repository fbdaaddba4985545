"""The node's JSON-RPC HTTP answers are gzip exactly when geth's would be (geth v1.17
node/rpcstack.go newGzipHandler around the HTTP handler stack): for a request whose first
Accept-Encoding header holds ``gzip``, every answer with a body, small ones too, JSON-RPC
errors and http.Error refusals among them; never an error of the body as a whole (a parse
error, an empty or too large batch: rpc/http.go httpWrite's ``isError``). Go's net/http
gives a compressed answer of at most 2048 bytes a Content-Length and chunks a longer one.
Real clients read them: the monitor's JSON-RPC client (aiohttp), aiohttp and requests as
web3.py uses them, web3.py's HTTPProvider itself."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests
from web3 import AsyncWeb3, Web3
from web3.providers import AsyncHTTPProvider

from polyvocab.jsonrpc_http import JsonRpcHttpClient
from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording, serving_in_thread

TIMEOUT = 30.0
CHAIN_ID = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
ANSWER = {"jsonrpc": "2.0", "id": 1, "result": "0x89"}


class Answer:
    def __init__(self, status: int, headers: list[tuple[str, str]], raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(found) <= 1, found
        return found[0] if found else None

    @property
    def body(self) -> bytes:
        """The body as sent (chunks joined), not decoded."""
        if (self.header("Transfer-Encoding") or "").lower() != "chunked":
            return self.raw
        out, rest = b"", self.raw
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return out
            out, rest = out + rest[:size], rest[size + 2:]

    @property
    def gzipped(self) -> bool:
        return self.header("Content-Encoding") == "gzip"

    def text(self) -> bytes:
        return gzip.decompress(self.body) if self.gzipped else self.body


async def send(url: str, body: bytes = b"", *, method: str = "POST",
               headers: tuple[str, ...] = ("Accept-Encoding: gzip",),
               content_type: str = "application/json") -> Answer:
    """One request over a raw socket (no client that would ask or decode on its own)."""
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    head = [f"{method} / HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    if content_type:
        head.append(f"Content-Type: {content_type}")
    if body or method == "POST":
        head.append(f"Content-Length: {len(body)}")
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    top, _, raw = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    pairs = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    return Answer(int(lines[0].split()[1]), pairs, raw)  # type: ignore[arg-type]


def call(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_an_answer_is_gzip_exactly_when_geth_would_send_it_so() -> None:
    """Small answers too (geth has no minimum size); the first Accept-Encoding header
    decides, by a case-sensitive ``contains "gzip"`` (q-values not read)."""
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim:
            url = sim.urls["http"]
            a = await send(url, call(CHAIN_ID))
            assert a.status == 200 and a.gzipped, a.headers
            assert a.header("Content-Type") == "application/json"
            assert a.header("Content-Length") == str(len(a.body))  # small: not chunked
            assert a.body[:2] == b"\x1f\x8b" and json.loads(a.text()) == ANSWER
            for asked, gz in ((("Accept-Encoding: gzip, deflate, br",), True),
                              (("Accept-Encoding: br;q=1, gzip;q=0",), True),
                              (("Accept-Encoding: x-gzip",), True),
                              ((), False),
                              (("Accept-Encoding: identity",), False),
                              (("Accept-Encoding: deflate, br",), False),
                              (("Accept-Encoding: GZIP",), False),
                              (("Accept-Encoding: deflate", "Accept-Encoding: gzip"), False)):
                a = await send(url, call(CHAIN_ID), headers=asked)
                assert a.gzipped is gz, asked
                assert json.loads(a.text()) == ANSWER, asked
                if not gz:
                    assert a.header("Content-Length") == str(len(a.body))

    asyncio.run(asyncio.wait_for(main(), 60))


def test_errors_of_calls_and_refusals_are_gzip_errors_of_the_body_are_not() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim:
            url = sim.urls["http"]
            # a call's error is an answer as any other (httpWrite isError false)
            a = await send(url, call({"jsonrpc": "2.0", "id": 7, "method": "eth_nothing"}))
            assert a.gzipped and json.loads(a.text())["error"]["code"] == -32601
            # a batch of answers
            a = await send(url, call([CHAIN_ID, {**CHAIN_ID, "id": 2}]))
            assert a.gzipped and [r["id"] for r in json.loads(a.text())] == [1, 2]
            # http.Error inside the handler stack (validateRequest): compressed too
            a = await send(url, call(CHAIN_ID), content_type="text/plain")
            assert a.status == 415 and a.gzipped
            assert a.header("Content-Type") == "text/plain; charset=utf-8"
            assert a.text() == b"invalid content type, only application/json is supported\n"
            a = await send(url, call(CHAIN_ID), method="PUT")
            assert a.status == 405 and a.gzipped and a.text() == b"method not allowed\n"
            # errors of the body as a whole: Transfer-Encoding identity, never compressed
            for body, code in ((b"{", -32700), (b"[]", -32600), (b"nonsense", -32700)):
                a = await send(url, body)
                assert a.status == 200 and not a.gzipped, body
                assert a.header("Content-Length") == str(len(a.body))
                assert json.loads(a.body)["error"]["code"] == code, body
            # nothing written (a notification): no gzip stream either
            a = await send(url, call({"jsonrpc": "2.0", "method": "eth_chainId"}))
            assert a.status == 200 and not a.gzipped and a.body == b""
            # the "dumb empty" GET of a health check: WriteHeader made the gzip writer, its
            # close wrote an empty stream
            a = await send(url, method="GET", content_type="")
            assert a.status == 200 and a.gzipped and a.text() == b""
            a = await send(url, method="GET", content_type="", headers=())
            assert a.status == 200 and not a.gzipped and a.body == b""

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_batch_past_the_batch_limit_is_not_gzip() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim:
            limit = sim.settings.node.max_batch
            assert limit is not None
            batch = [{**CHAIN_ID, "id": i} for i in range(limit + 1)]
            a = await send(sim.urls["http"], call(batch))
            assert not a.gzipped
            assert json.loads(a.body)[0]["error"]["message"] == "batch too large"

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_long_compressed_answer_is_chunked_as_go_sends_it() -> None:
    """Past 2048 compressed bytes Go's net/http no longer holds the answer: it is sent
    chunked, without a Content-Length (a plain answer keeps geth's Content-Length)."""
    rec = make_recording(20, trades_per_block=5)
    query = {"jsonrpc": "2.0", "id": 3, "method": "eth_getLogs",
             "params": [{"fromBlock": hex(rec.blocks[0].number),
                         "toBlock": hex(rec.blocks[-1].number)}]}

    async def main() -> None:
        async with Simulator(rec, speed=1e6) as sim:
            await sim.wait_published(20)
            a = await send(sim.urls["http"], call(query))
            assert a.gzipped and a.header("Transfer-Encoding") == "chunked"
            assert a.header("Content-Length") is None and len(a.body) > 2048
            logs = json.loads(a.text())["result"]
            assert len(logs) == sum(len(b.logs) for b in rec.blocks) >= 100
            plain = await send(sim.urls["http"], call(query), headers=())
            assert not plain.gzipped and plain.header("Content-Length") == str(len(plain.body))
            assert json.loads(plain.body)["result"] == logs
            # HEAD (a body, a JSON type: served): its answer has no body, gzip or not (a
            # chunked body after it desynchronised a connection kept alive)
            for asked in (("Accept-Encoding: gzip",), ()):
                head = await send(sim.urls["http"], call(query), method="HEAD", headers=asked)
                assert head.status == 200 and head.raw == b"" and head.gzipped is bool(asked)

    asyncio.run(asyncio.wait_for(main(), 60))


def _encodings() -> tuple[aiohttp.TraceConfig, list[str | None]]:
    """A trace config recording each answer's Content-Encoding (the client decodes it)."""
    seen: list[str | None] = []
    trace = aiohttp.TraceConfig()

    async def on_end(session: Any, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        seen.append(params.response.headers.get("Content-Encoding"))

    trace.on_request_end.append(on_end)
    return trace, seen


def test_the_monitors_client_and_aiohttp_read_gzip_answers() -> None:
    rec = make_recording(20, trades_per_block=5)

    async def main() -> None:
        async with Simulator(rec, speed=1e6) as sim:
            await sim.wait_published(20)
            trace, seen = _encodings()
            async with aiohttp.ClientSession(trace_configs=[trace]) as session:
                client = JsonRpcHttpClient(sim.urls["http"], session, max_retries=0)
                assert await client.call("eth_chainId") == "0x89"
                logs = await client.call("eth_getLogs", [{
                    "fromBlock": hex(rec.blocks[0].number),
                    "toBlock": hex(rec.blocks[-1].number)}])  # chunked gzip
                assert len(logs) == sum(len(b.logs) for b in rec.blocks)
                answers = await client.batch([("eth_chainId", []), ("eth_blockNumber", [])])
                assert answers[0] == "0x89" and int(answers[1], 16) == rec.blocks[-1].number
                # aiohttp as web3.py's AsyncHTTPProvider uses it (its default session)
                async with session.post(sim.urls["http"], json=CHAIN_ID) as resp:
                    assert resp.headers["Content-Encoding"] == "gzip"
                    assert await resp.json() == ANSWER
            assert seen == ["gzip"] * 4

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.fixture
def node_in_thread() -> Iterator[Simulator]:
    """A node on its own event loop thread, for the synchronous clients."""
    sim = Simulator(make_recording(6), speed=1000)
    with serving_in_thread(sim) as loop:
        asyncio.run_coroutine_threadsafe(sim.wait_published(6), loop).result(20)
        yield sim


def test_requests_and_web3_read_gzip_answers(node_in_thread: Simulator) -> None:
    """requests (web3.py's HTTPProvider) asks ``gzip, deflate`` by default and decodes."""
    sim = node_in_thread
    resp = requests.post(sim.urls["http"], json=CHAIN_ID, timeout=TIMEOUT)
    assert resp.headers["Content-Encoding"] == "gzip" and resp.json() == ANSWER
    w3 = Web3(Web3.HTTPProvider(sim.urls["http"]))
    assert w3.eth.chain_id == 137 and w3.eth.block_number == 1005

    async def main() -> int:
        w3a = AsyncWeb3(AsyncHTTPProvider(sim.urls["http"]))
        try:
            return await w3a.eth.chain_id
        finally:
            await w3a.provider.disconnect()

    assert asyncio.run(asyncio.wait_for(main(), 60)) == 137
