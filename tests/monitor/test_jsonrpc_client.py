"""The JSON-RPC HTTP client against a scripted aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.clock import ManualClock
from monitor.errors import (
    BadResponse,
    ConnectError,
    RateLimited,
    RpcError,
    ServerError,
    Timeout,
    is_retryable,
)
from monitor.history import History
from monitor.jsonrpc_client import (
    JsonRpcHttpClient,
    TokenBucket,
    classify_http,
    parse_retry_after,
    retry_delays,
    should_retry,
)
from monitor.redact import register_secret

Reply = Callable[[Any], Awaitable[web.StreamResponse]]
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
API_KEY = "alch-KEY-0123456789abcdef"


def ok(req: Any, result: Any = "0x10") -> Any:
    """A success answer to a request or a batch (``r-<method>`` per batch item)."""
    if isinstance(req, list):
        return [{"jsonrpc": "2.0", "id": r["id"], "result": f"r-{r['method']}"} for r in req]
    return {"jsonrpc": "2.0", "id": req["id"], "result": result}


class Scripted:
    """Answers request n with ``script[n]`` (the last one repeats)."""

    def __init__(self, script: list[Reply]) -> None:
        self.script = script
        self.bodies: list[Any] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Scripted:
        app = web.Application()
        app.router.add_post("/v2/{key}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v2/{API_KEY}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        reply = self.script[min(len(self.bodies) - 1, len(self.script) - 1)]
        return await reply(body)


def json_reply(fn: Callable[[Any], Any], status: int = 200,
               headers: dict[str, str] | None = None) -> Reply:
    async def reply(body: Any) -> web.StreamResponse:
        return web.json_response(fn(body), status=status, headers=headers)
    return reply


def text_reply(text: str, status: int, content_type: str = "text/html") -> Reply:
    async def reply(body: Any) -> web.StreamResponse:
        return web.Response(text=text, status=status, content_type=content_type)
    return reply


def run_client(tmp_path: Path, script: list[Reply],
               test: Callable[[JsonRpcHttpClient, Scripted], Awaitable[None]],
               **kw: Any) -> Path:
    history_path = tmp_path / "h.jsonl"

    async def main() -> None:
        history = History(history_path)
        async with Scripted(script) as server, aiohttp.ClientSession() as session:
            register_secret(API_KEY)
            client = JsonRpcHttpClient(server.url, session, history=history,
                                       clock=ManualClock(), max_retries=kw.pop("max_retries", 3),
                                       timeout=kw.pop("timeout", 5.0),
                                       retry_policy=lambda: itertools.repeat(0.001), **kw)
            await asyncio.wait_for(test(client, server), 30)
        history.close()

    asyncio.run(main())
    return history_path


def api_rows(path: Path) -> list[tuple[str, str, bool]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["kind"], r["method"], r["ok"]) for r in rows if r["event"] == "api_call"]


# ---------------------------------------------------------------- over loopback
def test_call_returns_the_result(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        assert await client.call("eth_blockNumber", []) == "0x10"
        assert server.bodies[0]["method"] == "eth_blockNumber"
        assert server.bodies[0]["jsonrpc"] == "2.0"

    path = run_client(tmp_path, [json_reply(ok)], t)
    assert api_rows(path) == [("rpc_http", "eth_blockNumber", True)]


def test_429_then_success_honours_retry_after(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        assert await client.call("eth_getLogs", [{}]) == "0x10"
        assert len(server.bodies) == 2
        assert client.counter.retries == 1
        assert dict(client.counter.failures) == {"RateLimited": 1}

    script = [json_reply(lambda b: {"error": "too many"}, 429, {"Retry-After": "0.01"}),
              json_reply(ok)]
    path = run_client(tmp_path, script, t)
    assert api_rows(path) == [("rpc_http", "eth_getLogs", False),
                              ("rpc_http", "eth_getLogs", True)]


def test_rate_limit_error_code_is_retried_too(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        assert await client.call("eth_getLogs", [{}]) == "0x10"
        assert len(server.bodies) == 2

    # Infura's per-second limit (its "daily request count exceeded" is a spent quota:
    # retried only after the wait it names, test_jsonrpc_quota_texts.py)
    limited = json_reply(lambda b: {"jsonrpc": "2.0", "id": b["id"], "error": {
        "code": -32005, "message": "project ID request rate exceeded"}})
    run_client(tmp_path, [limited, json_reply(ok)], t)


def test_502_html_page_is_a_server_error_retried_then_raised(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        with pytest.raises(ServerError) as err:
            await client.call("eth_blockNumber", [])
        assert err.value.status == 502 and "HTML page" in str(err.value)
        assert len(server.bodies) == 3  # 1 try + 2 retries

    run_client(tmp_path, [text_reply(HTML_502, 502)], t, max_retries=2)


def test_502_then_success(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        assert await client.call("eth_blockNumber", []) == "0x10"

    run_client(tmp_path, [text_reply(HTML_502, 502), json_reply(ok)], t)


def test_html_with_200_is_a_bad_response(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        with pytest.raises(BadResponse, match="HTML"):
            await client.call("eth_blockNumber", [])

    run_client(tmp_path, [text_reply("<html>captcha</html>", 200)], t, max_retries=1)


def test_an_error_raised_for_a_big_answer_does_not_keep_the_answer_alive(
        tmp_path: Path) -> None:
    """The raised error's traceback held the frame that read the answer, its bytes and its
    text with it: a 64 MB garbage answer (a gzip bomb's worth) stayed in memory for as long
    as the error was kept, and each sync added another."""
    big = "<html>" + "x" * (8 << 20) + "</html>"

    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        try:
            await client.call("eth_blockNumber", [])
        except BadResponse as exc:
            held = []
            tb = exc.__traceback__
            while tb is not None:
                for name, value in tb.tb_frame.f_locals.items():
                    if isinstance(value, (bytes, str)) and len(value) > (1 << 20):
                        held.append((tb.tb_frame.f_code.co_name, name))
                tb = tb.tb_next
            assert held == []
        else:
            raise AssertionError("no error")

    run_client(tmp_path, [text_reply(big, 200)], t, max_retries=1)


def test_a_json_rpc_error_is_raised_at_once_without_retry(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        with pytest.raises(RpcError) as err:
            await client.call("eth_getLogs", [{"fromBlock": "0xzz"}])
        assert err.value.code == -32602 and "invalid argument" in err.value.rpc_message
        assert len(server.bodies) == 1

    error = json_reply(lambda b: {"jsonrpc": "2.0", "id": b["id"], "error": {
        "code": -32602, "message": "invalid argument 0: hex string"}})
    path = run_client(tmp_path, [error], t)
    assert api_rows(path) == [("rpc_http", "eth_getLogs", False)]


def test_401_with_a_key_in_the_url_is_not_retried_and_not_leaked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        with pytest.raises(BadResponse) as err:
            await client.call("eth_blockNumber", [])
        assert err.value.status == 401 and len(server.bodies) == 1
        assert API_KEY not in str(err.value) and API_KEY not in repr(client)

    with caplog.at_level(logging.DEBUG):
        path = run_client(tmp_path, [text_reply(f"bad key {API_KEY}", 401, "text/plain")], t)
    assert API_KEY not in path.read_text() and API_KEY not in caplog.text


def test_timeout_is_retried_then_raised(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def hang(body: Any) -> web.StreamResponse:
        await release.wait()  # set only after the client gave up
        return web.json_response(ok(body))

    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        with pytest.raises(Timeout):
            await client.call("eth_blockNumber", [])
        assert len(server.bodies) == 2
        assert isinstance(Timeout(), TimeoutError)
        release.set()  # let the server's handlers finish so it shuts down at once

    run_client(tmp_path, [hang], t, max_retries=1, timeout=0.2)


def test_connection_refused_is_a_connect_error(tmp_path: Path) -> None:
    async def main() -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        async with aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(f"http://127.0.0.1:{port}/", session, max_retries=2,
                                       retry_policy=lambda: itertools.repeat(0.001))
            with pytest.raises(ConnectError):
                await client.call("eth_blockNumber", [])
            assert client.counter.calls["eth_blockNumber"] == 3

    asyncio.run(main())


def test_batch_returns_results_in_order_with_errors_in_place(tmp_path: Path) -> None:
    def answer(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for r in reversed(body):  # any order, like real nodes
            if r["method"] == "bad":
                out.append({"jsonrpc": "2.0", "id": r["id"],
                            "error": {"code": -32601, "message": "no"}})
            else:
                out.append({"jsonrpc": "2.0", "id": r["id"], "result": r["params"][0]})
        return out

    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        res = await client.batch([("a", ["0x1"]), ("bad", ["x"]), ("c", ["0x3"])])
        assert res[0] == "0x1" and res[2] == "0x3"
        assert isinstance(res[1], RpcError) and res[1].code == -32601
        assert await client.batch([]) == []
        assert len(server.bodies) == 1

    path = run_client(tmp_path, [json_reply(answer)], t)
    assert api_rows(path) == [("rpc_http", "a", True), ("rpc_http", "bad", True),
                              ("rpc_http", "c", True)]


def test_batch_missing_an_id_is_retried(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        assert await client.batch([("m", []), ("n", [])]) == ["r-m", "r-n"]
        assert len(server.bodies) == 2

    partial = json_reply(lambda b: ok(b)[:1])
    run_client(tmp_path, [partial, json_reply(ok)], t)


@pytest.mark.parametrize("bad_id", [[1], {"id": 1}, True, 1.0, "1", None])
def test_a_batch_answer_with_a_foreign_id_is_a_bad_response_retried(
        tmp_path: Path, bad_id: Any) -> None:
    """Ids that are lists or objects (unhashable), or look like ours without being our
    integer (true, 1.0, "1"), match no call: the answer is a BadResponse (retried), never
    a TypeError out of the client nor a result given to the wrong call."""
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        assert await client.batch([("m", []), ("n", [])]) == ["r-m", "r-n"]
        assert len(server.bodies) == 2

    def hostile(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = ok(body)
        out[0]["id"] = bad_id
        return out

    path = run_client(tmp_path, [json_reply(hostile), json_reply(ok)], t)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in rows if r["event"] == "bad_input"] == ["rpc_batch_refused"]


@pytest.mark.parametrize("bad_id", [True, 1.0, "1", [1]])
def test_a_single_answer_with_an_id_not_ours_is_a_bad_response(tmp_path: Path,
                                                               bad_id: Any) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        assert await client.call("eth_blockNumber") == "0x10"
        assert len(server.bodies) == 2
        assert server.bodies[0]["id"] == 1  # the id the hostile answer imitates

    def hostile(body: dict[str, Any]) -> dict[str, Any]:
        return {**ok(body), "id": bad_id}

    path = run_client(tmp_path, [json_reply(hostile), json_reply(ok)], t)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in rows].count("bad_input") == 1


def test_client_side_rate_limit_spaces_requests(tmp_path: Path) -> None:
    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(4):
            await client.call("eth_blockNumber", [])
        assert loop.time() - t0 >= 0.3 * 0.95  # 4 calls at 10/s: 3 gaps of 0.1 s

    async def main() -> None:
        async with Scripted([json_reply(ok)]) as server, aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(server.url, session, rate_limit_per_s=10.0)
            await t(client, server)

    asyncio.run(main())


# ---------------------------------------------------------------- pure parts
def test_classify_http_table() -> None:
    assert isinstance(classify_http(429, "x", {"Retry-After": "2"}), RateLimited)
    assert classify_http(429, "x", {"Retry-After": "2"}).retry_after == 2.0
    assert isinstance(classify_http(503, "{}"), ServerError)
    assert isinstance(classify_http(502, HTML_502), ServerError)
    assert isinstance(classify_http(200, "not json"), BadResponse)
    assert isinstance(classify_http(404, "<html>nope</html>"), BadResponse)
    assert isinstance(classify_http(400, json.dumps({"error": {"code": -32600,
                                                                "message": "bad"}})), RpcError)
    assert classify_http(200, '{"id":1,"result":"0x1"}') == {"id": 1, "result": "0x1"}


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT",
                             now_wall=1445412480.0) == pytest.approx(10.0)


def test_retry_policy_and_decision() -> None:
    assert list(itertools.islice(retry_delays(0.25, 2.0), 6)) == [0.25, 0.5, 1, 2, 2, 2]
    assert should_retry(ServerError("x"), 1, 3) and not should_retry(ServerError("x"), 4, 3)
    assert not should_retry(RpcError(-32602, "bad"), 1, 3)
    assert should_retry(RpcError(-32005, "limited"), 1, 3)
    assert not is_retryable(BadResponse("x", status=403))
    assert is_retryable(BadResponse("x", status=None))


def test_token_bucket_spacing_and_burst() -> None:
    tb = TokenBucket(rate=2.0)
    assert [tb.reserve(0.0) for _ in range(3)] == [0.0, 0.5, 1.0]
    burst = TokenBucket(rate=2.0, burst=3)
    assert [burst.reserve(10.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert burst.reserve(100.0) == 0.0  # idle time refills


def test_a_raised_http_error_is_freed_without_the_cyclic_collector(tmp_path: Path) -> None:
    # the error classify_http returned stayed a local of the frame it was raised from,
    # which its own traceback holds: a reference cycle per failed request (the soak's
    # 5xx faults: ~60 an hour), freed only by a full collection (issue #10)
    import gc
    import weakref

    refs: list[weakref.ref[BaseException]] = []

    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        try:
            await client.call("eth_blockNumber", [])
        except ServerError as exc:
            refs.append(weakref.ref(exc))

    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        run_client(tmp_path, [text_reply(HTML_502, 502)], t, max_retries=0)
        assert refs and refs[0]() is None
    finally:
        if was_enabled:
            gc.enable()


def test_a_redirect_is_refused_not_followed_and_names_where_it_pointed_masked(
        tmp_path: Path) -> None:
    """aiohttp follows redirects by default: a provider URL answering 307 sent the
    request (a POST, re-sent with its body) to whatever host the Location named."""
    elsewhere: list[str] = []

    async def t(client: JsonRpcHttpClient, server: Scripted) -> None:
        async def other(request: web.Request) -> web.Response:
            elsewhere.append(request.path)
            return web.json_response(ok({"id": 1}))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", other)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        target = f"http://127.0.0.1:{runner.addresses[0][1]}/v3/{API_KEY}"
        server.script[0] = json_reply(lambda body: {}, status=307,
                                      headers={"Location": target})
        try:
            with pytest.raises(BadResponse) as err:
                await client.call("eth_blockNumber", [])
        finally:
            await runner.cleanup()
        assert err.value.kind == "redirect" and err.value.status == 307
        assert "redirected to http://127.0.0.1:" in str(err.value)
        assert "/v3/***" in str(err.value) and API_KEY not in str(err.value)

    path = run_client(tmp_path, [json_reply(ok)], t)
    assert elsewhere == []
    assert API_KEY not in path.read_text()
