"""The pilot's first start against a provider whose quota is spent: a setting to fix
(exit 2: the unit does not restart into it every few seconds), said clearly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.pilot import Pilot, PilotStore

W = "0x" + "11" * 20
KEY = "k3yQuotaSpent0123456789abcdef"

QUOTA_ANSWERS = [
    # Alchemy: a month's compute units spent
    (429, {"jsonrpc": "2.0", "id": 1, "error": {"code": 429, "message": "Monthly capacity "
                                                 "limit exceeded. Visit https://dashboard."
                                                 "alchemy.com/settings/billing to upgrade "
                                                 "your scale policy for continued service."}}),
    # dRPC's free tier: HTTP 402 whatever the body
    (402, {"jsonrpc": "2.0", "id": 1, "error": {"code": 402, "message": "payment required"}}),
]


async def _node(status: int, body: dict[str, Any]) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v2/{KEY}"


@pytest.mark.parametrize("status,body", QUOTA_ANSWERS)
def test_a_spent_quota_at_the_first_start_is_a_setting_to_fix(
        tmp_path: Path, status: int, body: dict[str, Any]) -> None:
    """eth_blockNumber for the start block answered with a spent quota was a MonitorError
    (exit 1): systemd restarted the pilot into the same refusal every few seconds, the
    operator told only the provider's text. A ConfigError (exit 2) saying the quota is
    spent and what to do, naming the endpoint without its key."""
    async def main() -> str:
        runner, url = await _node(status, body)
        try:
            settings = load_settings({"websocket_url": "ws://127.0.0.1:9/", "wallets": [W],
                                      "rpc_url": url, "rpc_timeout": 2.0,
                                      "explorer_url": "http://127.0.0.1:9/v2/api"},
                                     environ={})
            pilot = Pilot(settings, tmp_path / "store", beat_s=1.0)
            pilot.store = PilotStore(tmp_path / "store")
            try:
                with pytest.raises(ConfigError) as err:
                    await asyncio.wait_for(pilot._start_block(), 30)
            finally:
                pilot.store.close()
            return err.value.message
        finally:
            await runner.cleanup()

    message = asyncio.run(main())
    assert "quota" in message and "--rpc-url" in message and KEY not in message
