"""The pilot stopped by SIGTERM/SIGINT while it starts (a provider that accepts the
connection and never answers): it stops at once, exit 0, and its store says the session
ended during its start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
KEY = "FAKEKEYabcdef0123456789zz"
WALLET = "0x" + "11" * 20


class _SilentNode:
    """A loopback HTTP server that takes every request and never answers; ``asked`` is
    set at the first request."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def hang(request: web.Request) -> web.StreamResponse:
            self.asked.set()
            await asyncio.sleep(3600)
            return web.Response()

        async def setup() -> web.AppRunner:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", hang)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            return runner

        runner = self._loop.run_until_complete(setup())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> _SilentNode:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@pytest.fixture
def silent_node() -> Iterator[_SilentNode]:
    with _SilentNode() as node:
        yield node


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_node_does_not_answer_the_start_stops_at_once(
        sig: signal.Signals, silent_node: _SilentNode, tmp_path: Path) -> None:
    """Before: the signal was held until the start block's eth_blockNumber gave up (four
    tries of the 10-s rpc_timeout, ~45 s), and the pilot then failed, exit 1."""
    store = tmp_path / "pilot"
    base = f"127.0.0.1:{silent_node.port}/v2/{KEY}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONITOR_", "EXPLORER_", "RPC_", "WEBSOCKET_"))}
    env["MONITOR_WEBSOCKET_URL"] = f"ws://{base}"
    env["MONITOR_RPC_URL"] = f"http://{base}"
    env["MONITOR_EXPLORER_URL"] = f"http://127.0.0.1:{silent_node.port}/v2/api"
    env["EXPLORER_API_KEY"] = "EXPLORERKEY0123456789"
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "pilot", "--store", str(store),
                             "--wallet", WALLET, "--rpc-timeout", "60"],
                            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert silent_node.asked.wait(60), "the pilot never asked the node"
        proc.send_signal(sig)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (proc.returncode, err[-2000:])
    # the rpc_timeout is 60 s: an answer before it means the start did not hold the signal
    assert took < 50, f"the signal was held {took:.0f} s"
    assert "Traceback" not in err and "READY" not in out
    events = [json.loads(line) for line in (store / "events.jsonl").read_text().splitlines()]
    stop = [e for e in events if e["event"] == "session_stop"]
    assert stop and stop[-1]["partial"] is True
    assert stop[-1]["reason"] == "signal during start"
    everything = err + out + "".join(p.read_text(errors="replace")
                                     for p in store.rglob("*") if p.is_file()
                                     and p.suffix in (".jsonl", ""))
    assert KEY not in everything
