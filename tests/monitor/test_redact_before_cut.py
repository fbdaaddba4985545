"""A provider's key in a text cut short for an error message or a log line: masked whole
*before* the cut. Cut first, a key the cut halved kept its first characters in the clear
(a registered key no longer matched its half, and the key-shaped pattern needs 16
characters): up to 15 of an Alchemy key's 32 in the error of a 503 page that echoed the
URL, in its log line and its history row."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from monitor.clock import SystemClock
from monitor.connection import WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager
from polyvocab.bounds import brief
from polyvocab.jsonrpc_http import classify_http, error_of
from polyvocab.redact import register_url_secrets

KEY = "AlchemyKey0123456789abcdefABCDEF"
URL = f"https://polygon-mainnet.g.alchemy.com/v2/{KEY}"
register_url_secrets(URL)


def leaked(text: str) -> str | None:
    """The longest head of KEY (3+ characters) in ``text``, if any."""
    for k in range(len(KEY), 2, -1):
        if KEY[:k] in text:
            return KEY[:k]
    return None


def straddling(cut: int, head: int, before: str = "<html><body>upstream ") -> str:
    """A text with URL placed so that ``head`` characters of KEY come before ``cut``."""
    pad = "x" * (cut - len(before) - len(URL) + len(KEY) - head)
    return before + pad + URL + " is down</body></html>"


@pytest.mark.parametrize("head", [3, 8, 15])
def test_a_503_page_that_echoes_the_url_shows_no_part_of_the_key(head: int) -> None:
    err = classify_http(503, straddling(120, head))
    assert leaked(err.message) is None, err.message


@pytest.mark.parametrize("head", [3, 15])
def test_a_json_rpc_error_message_past_its_bound_shows_no_part_of_the_key(head: int) -> None:
    message = straddling(500, head, before="no route for ")
    for method in (None, "eth_getLogs"):
        err = error_of({"code": -32000, "message": message}, method)
        assert leaked(err.message) is None, err.message
        assert leaked(getattr(err, "rpc_message", "")) is None


@pytest.mark.parametrize("head", [3, 15])
def test_brief_shows_no_part_of_the_key(head: int) -> None:
    text = straddling(120, head)
    assert leaked(brief(text)) is None
    # reprlib keeps a long string's head and tail: the key at either end of the cut
    for value in ({"error": text}, [text + "y" * 300], {"message": "z" * 300 + text}):
        assert leaked(brief(value)) is None, brief(value)


def test_a_malformed_frame_that_echoes_the_url_shows_no_part_of_the_key(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A node (a proxy in front of it) sends a text frame that is no JSON, echoing the
    URL: the log line and the ``bad_input`` row said its first 80 characters, the key's
    head among them."""
    frame = straddling(80, 12, before="error: ")

    async def handler(ws: ServerConnection) -> None:
        await ws.send(frame)
        await ws.send(frame.replace("<html>", "{[") + "}")  # bad JSON too
        async for _raw in ws:
            pass

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            history = History(tmp_path / "h.jsonl", clock=SystemClock())
            mgr = WebSocketManager(f"ws://127.0.0.1:{port}/", settings=WsSettings(
                staleness_blocks=0, heartbeat_interval=30.0), clock=SystemClock(),
                history=history)
            await mgr.start()
            try:
                assert await mgr.wait_until(lambda: sum(mgr.bad_frames.values()) >= 2, 15.0)
            finally:
                await mgr.stop()
                history.close()

    with caplog.at_level(logging.WARNING, logger="monitor.ws"):
        asyncio.run(main())
    rows: list[dict[str, Any]] = [json.loads(x) for x in
                                  (tmp_path / "h.jsonl").read_text().splitlines()]
    reasons = [r["reason"] for r in rows if r.get("event") == "bad_input"]
    assert len(reasons) >= 2
    for text in [*reasons, caplog.text]:
        assert leaked(text) is None, text


@pytest.mark.parametrize("status", [502, 404])
def test_an_explorer_page_that_echoes_the_url_shows_no_part_of_the_key(status: int) -> None:
    """The explorer client's error for a page that is no JSON said its first 60
    characters (a gateway's page echoing a URL with the key in its path)."""
    import aiohttp
    from aiohttp import web

    from monitor.errors import MonitorError
    from monitor.explorer_client import ExplorerClient

    async def page(_request: web.Request) -> web.Response:
        return web.Response(status=status, text=straddling(60, 10, before="<p>"),
                            content_type="text/html")

    async def main() -> str:
        app = web.Application()
        app.router.add_get("/v2/api", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as session:
                client = ExplorerClient(f"http://127.0.0.1:{port}/v2/api", session)
                with pytest.raises(MonitorError) as err:
                    await client.block_number()
                return err.value.message
        finally:
            await runner.cleanup()
    message = asyncio.run(main())
    assert "HTTP" in message and leaked(message) is None, message
