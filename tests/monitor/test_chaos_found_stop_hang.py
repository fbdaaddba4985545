"""``WebSocketManager.stop`` while a connection is being opened: the cancel it sends can be
lost (Python 3.11's ``asyncio.wait_for`` returns the result of an awaitable that finished
in the same loop turn as the cancel: a handshake or a subscription answered just then),
and the manager's loop went on to serve the new connection: ``stop`` waited for it until
the connection ended, for ever on a healthy node (the chaos restart probe, seed 318,
1800 s: a monitor stopped right after its start hung 941 simulated seconds, 1,700
trades missed). Now ``stop`` returns, and the connection opened meanwhile is closed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_websocket_manager import Env, run, settings

from monitor.clock import SystemClock
from monitor.websocket_manager import WebSocketManager, _default_factory


def test_a_stop_as_the_handshake_completes_returns_and_closes_the_connection(
        tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        connected, gate = asyncio.Event(), asyncio.Event()

        async def factory(url: str, **kw: Any) -> Any:
            ws = await _default_factory(url, **kw)  # the handshake done...
            connected.set()
            await gate.wait()  # ...and its answer handed over in the turn stop() cancels
            return ws

        mgr = WebSocketManager(env.node.url, settings=settings(), clock=SystemClock(),
                               history=env.history, session_factory=factory)
        await mgr.start()
        await asyncio.wait_for(connected.wait(), 10)
        gate.set()
        stopping = asyncio.get_running_loop().create_task(mgr.stop())
        done, _ = await asyncio.wait({stopping}, timeout=10)
        assert done, "stop() did not return: the manager serves the connection it opened"
        await stopping
        assert not mgr.running
        assert env.node.conns and await _closed(env.node.conns)

    run(body, tmp_path)


async def _closed(conns: list[Any]) -> bool:
    for _ in range(500):
        if all(c.state.name == "CLOSED" for c in conns):
            return True
        await asyncio.sleep(0.01)
    return False
