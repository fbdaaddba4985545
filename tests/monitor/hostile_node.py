"""A hostile node for tests: a real aiohttp server on loopback whose answers the test
scripts byte for byte (JSON-RPC over HTTP and WebSocket, and the explorer API).

Unlike the simulator, it sends whatever the test says: garbage frames, HTML with status
200, nested arrays 100 KB deep, numbers of 5,000 digits. The monitor only gets URLs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

Answer = str | bytes | tuple[int, str | bytes]


class HostileNode:
    """``async with HostileNode() as node: node.ws_url, node.rpc_url, node.explorer_url``.

    - ``rpc``: method -> callable(params) -> result (JSON-able) or a raw :data:`Answer`
      wrapped in :class:`Raw`; default ``eth_blockNumber`` = :attr:`head`, ``eth_getLogs`` =
      :attr:`logs` in range.
    - ``explorer``: callable(query) -> raw :data:`Answer` (status 200 unless a tuple).
    - ``push(frame)``: send a raw text frame to every open WebSocket.
    """

    def __init__(self) -> None:
        self.head = 100
        self.logs: list[dict[str, Any]] = []
        self.rpc: dict[str, Callable[[list[Any]], Any]] = {}
        self.explorer: Callable[[dict[str, str]], Answer] | None = None
        self.sockets: list[web.WebSocketResponse] = []
        self.subs: dict[str, str] = {}  # kind ("logs"/"newHeads") -> subscription id
        self.requests: list[dict[str, Any]] = []
        self.refuse_batches = False  # a batch gets one error object, as some providers do
        self.batch_limit: int | None = None  # ... only a batch of more than this many
        # a batch of more than n calls is answered only once the event is set (a slow node)
        self.batch_hold: tuple[int, asyncio.Event] | None = None
        self.explorer_queries: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.subscribed = asyncio.Event()
        #: (kind, new subscription id) -> raw frames sent BEFORE the eth_subscribe answer
        #: (a provider whose notifications can overtake the answer)
        self.before_answer: Callable[[str, str], list[str]] | None = None
        #: kind -> the error answered to eth_subscribe of that kind instead of an id
        self.refuse_subscribe: dict[str, RpcErr] = {}

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def explorer_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/api"

    async def __aenter__(self) -> HostileNode:
        app = web.Application(client_max_size=1 << 22)
        app.router.add_get("/", self._ws)
        app.router.add_post("/", self._http)
        app.router.add_get("/v2/api", self._explorer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- scripted JSON-RPC ---------------------------------------------------------------

    def answer(self, method: str, params: list[Any]) -> Any:
        fn = self.rpc.get(method)
        if fn is not None:
            return fn(params)
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getLogs":
            f = params[0]
            a, b = int(f["fromBlock"], 16), int(f["toBlock"], 16)
            return [lg for lg in self.logs if a <= int(lg["blockNumber"], 16) <= b]
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16) if params[0] != "latest" else self.head
            return header(n)
        if method == "eth_chainId":
            return "0x89"
        return None

    async def _http(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if isinstance(body, list) and (self.refuse_batches or (
                self.batch_limit is not None and len(body) > self.batch_limit)):
            return web.json_response({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32600, "message": "batch requests are not supported"}})
        if isinstance(body, list) and self.batch_hold is not None \
                and len(body) > self.batch_hold[0]:
            await self.batch_hold[1].wait()
        items = body if isinstance(body, list) else [body]
        out = []
        for item in items:
            result = self.answer(item["method"], item.get("params") or [])
            if isinstance(result, Slow):  # a node busy with a heavy query
                await asyncio.sleep(result.delay)
                result = result.result
            if isinstance(result, Held):  # ... busy until the test says
                await result.release.wait()
                result = result.result
            if isinstance(result, Raw):
                return _raw(result.answer)
            if isinstance(result, RpcErr):
                out.append({"jsonrpc": "2.0", "id": item["id"],
                            "error": {"code": result.code, "message": result.message}})
                continue
            out.append({"jsonrpc": "2.0", "id": item["id"], "result": result})
        return web.json_response(out if isinstance(body, list) else out[0])

    async def _explorer(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.explorer_queries.append(query)
        if self.explorer is not None:
            return _raw(self.explorer(query))
        if query.get("module") == "proxy":
            return web.json_response({"jsonrpc": "2.0", "id": 1, "result": hex(self.head)})
        return web.json_response({"status": "0", "message": "No records found", "result": []})

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 22)
        await ws.prepare(request)
        self.sockets.append(ws)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                item = json.loads(msg.data)
                method, params = item.get("method"), item.get("params") or []
                if method == "eth_subscribe":
                    refused = self.refuse_subscribe.get(params[0])
                    if refused is not None:
                        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": item["id"],
                                                      "error": {"code": refused.code,
                                                                "message": refused.message}}))
                        continue
                    sid = f"0x{next(self._ids):032x}"
                    self.subs[params[0]] = sid
                    for frame in (self.before_answer(params[0], sid)
                                  if self.before_answer is not None else []):
                        await ws.send_str(frame)
                    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": item["id"],
                                                  "result": sid}))
                    if {"logs", "newHeads"} <= set(self.subs):
                        self.subscribed.set()
                else:
                    result = self.answer(method, params)
                    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": item["id"],
                                                  "result": result}))
        finally:
            self.sockets.remove(ws)
        return ws

    async def push(self, frame: str | bytes) -> None:
        for ws in list(self.sockets):
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)

    async def notify(self, kind: str, result: Any) -> None:
        await self.push(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                    "params": {"subscription": self.subs[kind],
                                               "result": result}}))

    async def new_head(self, n: int) -> None:
        self.head = max(self.head, n)
        await self.notify("newHeads", header(n))


class HeldExplorer(HostileNode):
    """A node whose explorer reports ``explorer_head`` and holds its getLogs answers
    while ``hold`` is set (computed when asked: the explorer's view at that moment)."""

    def __init__(self) -> None:
        super().__init__()
        self.explorer_head = 0
        self.hold: asyncio.Event | None = None
        self.held_queries = 0

    async def _explorer(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        if query.get("module") == "proxy":
            return web.json_response({"jsonrpc": "2.0", "id": 1,
                                      "result": hex(self.explorer_head)})
        answer = await super()._explorer(request)
        if query.get("module") == "logs" and self.hold is not None:
            self.held_queries += 1
            await self.hold.wait()
        return answer


class Slow:
    """A JSON-RPC result the node sends only after ``delay`` seconds."""

    def __init__(self, delay: float, result: Any) -> None:
        self.delay, self.result = delay, result


class Held:
    """A JSON-RPC result the node sends only once ``release`` is set (a test races the
    answer against what it sends meanwhile, without a timed sleep)."""

    def __init__(self, release: asyncio.Event, result: Any) -> None:
        self.release, self.result = release, result


def held_get_logs(node: HostileNode, release: asyncio.Event, asked: list[tuple[int, int]],
                  hold: Callable[[int, int], bool] = lambda a, b: True,
                  ) -> Callable[[list[Any]], Any]:
    """An ``eth_getLogs`` answer (the node's logs in the range) held until ``release`` for
    the ranges ``hold`` picks; every range asked is appended to ``asked``."""
    def get_logs(params: list[Any]) -> Any:
        a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        asked.append((a, b))
        found = [lg for lg in node.logs if a <= int(lg["blockNumber"], 16) <= b]
        return Held(release, found) if hold(a, b) and not release.is_set() else found
    return get_logs


class RpcErr:
    """A JSON-RPC error object as the answer of a scripted method (the request's id)."""

    def __init__(self, code: int, message: str) -> None:
        self.code, self.message = code, message


class Raw:
    """A raw HTTP answer from a scripted JSON-RPC method (HTML, truncated JSON, ...)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer


def _raw(answer: Answer) -> web.Response:
    status, body = answer if isinstance(answer, tuple) else (200, answer)
    if isinstance(body, str):
        body = body.encode()
    ctype = "text/html" if body.lstrip()[:1] == b"<" else "application/json"
    return web.Response(status=status, body=body, content_type=ctype)


def block_hash(n: int) -> str:
    return "0x" + f"{n:x}".rjust(64, "0")


def header(n: int) -> dict[str, Any]:
    return {"number": hex(n), "hash": block_hash(n), "parentHash": block_hash(n - 1),
            "timestamp": hex(1_700_000_000 + 2 * n)}


def deep(n: int) -> str:
    """A JSON text nested ``n`` arrays deep."""
    return "[" * n + "]" * n


def explorer_ok(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"status": "1", "message": "OK", "result": rows})


def explorer_row(log: dict[str, Any]) -> dict[str, Any]:
    """An eth_getLogs-shaped log as an Etherscan getLogs row (hex strings, timeStamp)."""
    return {"address": log["address"], "topics": log["topics"], "data": log["data"],
            "blockNumber": log["blockNumber"], "blockHash": log["blockHash"],
            "timeStamp": log["blockTimestamp"], "gasPrice": "0x1", "gasUsed": "0x1",
            "logIndex": log["logIndex"], "transactionHash": log["transactionHash"],
            "transactionIndex": log["transactionIndex"]}


#: Alchemy's answer (HTTP 429) once a month's compute units are used up
QUOTA_SPENT = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {
    "code": 429, "message": "Monthly capacity limit exceeded. Visit "
    "https://dashboard.alchemy.com/settings/billing to upgrade your scale policy"}})
#: Etherscan's getLogs answer for a range without a log
NO_RECORDS = json.dumps({"status": "0", "message": "No records found", "result": []})


def explorer_from_logs(node: HostileNode, polls: list[dict[str, str]] | None = None) -> None:
    """``node``'s explorer answers from ``node.logs``: its head for the proxy's
    eth_blockNumber, the logs in the range a getLogs asks (its queries kept in ``polls``),
    "No records found" for anything else."""
    def explorer(q: dict[str, str]) -> str:
        if q.get("module") == "proxy":
            return json.dumps({"jsonrpc": "2.0", "id": 1, "result": hex(node.head)})
        if q.get("action") != "getLogs":
            return NO_RECORDS
        if polls is not None:
            polls.append(q)
        lo, hi = int(q.get("fromBlock", "0")), int(q.get("toBlock", "99999999"))
        rows = [explorer_row(x) for x in node.logs if lo <= int(x["blockNumber"], 16) <= hi]
        return explorer_ok(rows) if rows else NO_RECORDS
    node.explorer = explorer


def fail_get_logs(node: HostileNode, broken: dict[str, bool]) -> None:
    """``node`` answers eth_getLogs with an internal error (-32603) while ``broken["on"]``
    (its HTTP side failing while its feed stays healthy); else as before."""
    plain = node.answer

    def answer(method: str, params: list[Any]) -> Any:
        if method == "eth_getLogs" and broken["on"]:
            return RpcErr(-32603, "internal error")
        return plain(method, params)
    node.answer = answer  # type: ignore[method-assign]


def spend_quota(node: HostileNode, spent: dict[str, bool], *,
                refused: list[int] | None = None,
                asked: list[tuple[int, int]] | None = None) -> None:
    """``node`` refuses eth_getLogs with :data:`QUOTA_SPENT` while ``spent["on"]`` (each
    refusal counted in ``refused``; the ranges it answers kept in ``asked``)."""
    plain = node.answer

    def answer(method: str, params: list[Any]) -> Any:
        if method == "eth_getLogs":
            if spent["on"]:
                if refused is not None:
                    refused.append(1)
                return Raw((429, QUOTA_SPENT))
            if asked is not None:
                f = params[0]
                asked.append((int(f["fromBlock"], 16), int(f["toBlock"], 16)))
        return plain(method, params)
    node.answer = answer  # type: ignore[method-assign]
