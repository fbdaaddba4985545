"""A request whose connection closed while its frame was still being sent: the reader
failed the request's future (ConnectionLost) and the send raised too, so nobody read the
future's exception and asyncio logged "Future exception was never retrieved" with a
traceback at ERROR, at every such close (chaos seed 306, 1800 s, in the restart probe:
a ws_close 1000 during a request). The request still fails with ConnectionLost; nothing
is logged."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

from monitor.clock import SystemClock
from monitor.connection import WsSettings
from monitor.errors import ConnectionLost
from monitor.history import History
from monitor.websocket_manager import WebSocketManager, _Link


class _SendHeld:
    """A connection whose send waits until released, then finds the connection closed."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sending = asyncio.Event()

    async def send(self, frame: str) -> None:
        self.sending.set()
        await self.release.wait()
        raise ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True)


def test_a_close_while_a_request_is_sent_logs_no_unretrieved_future(tmp_path: Path) -> None:
    unhandled: list[dict[str, Any]] = []
    history = History(tmp_path / "history.jsonl")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: unhandled.append(ctx))
        mgr = WebSocketManager("ws://127.0.0.1:9", settings=WsSettings(seed=1),
                               clock=SystemClock(), history=history)
        ws = _SendHeld()
        link = _Link(ws=ws, gen=1)
        call = asyncio.create_task(mgr._rpc(link, "eth_blockNumber", [], 30.0))
        await asyncio.wait_for(ws.sending.wait(), 10)
        # the reader saw the close first: it fails every request of the connection
        mgr._fail_pending(link.gen, ConnectionLost("connection closed: close_1000"))
        ws.release.set()
        with pytest.raises(ConnectionLost):
            await call
        del call
        gc.collect()
        await asyncio.sleep(0)

    try:
        asyncio.run(main())
    finally:
        history.close()
    gc.collect()
    assert not [c for c in unhandled if "never retrieved" in str(c.get("message"))]
