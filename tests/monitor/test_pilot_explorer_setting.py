"""The pilot's explorer check at start reads a refused setting as the explorer client
does (:class:`monitor.explorer_client.ExplorerSettingRefused`), one reading of its texts.

Before, it matched its own list ("deprecated v1 endpoint", "unsupported chainid"): a
chain id refused in other words ("Missing chainid parameter") was a warning, and the pilot
ran with its polling shadow refused every call; the message named no setting."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.pilot import check_explorer_key

W = "0x" + "11" * 20


@pytest.fixture
def explorer(request: pytest.FixtureRequest) -> Iterator[str]:
    text = request.param

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "0", "message": "NOTOK", "result": text}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/api"
    finally:
        server.shutdown()
        server.server_close()


def _check(url: str) -> None:
    settings = load_settings({"websocket_url": "ws://127.0.0.1:9/", "wallets": [W],
                              "rpc_url": "http://127.0.0.1:9/", "explorer_url": url,
                              "chain_id": 80002}, environ={})
    asyncio.run(check_explorer_key(settings))


@pytest.mark.parametrize("explorer", [
    "Missing or unsupported chainid parameter (required for v2 api), please see chainlist",
    "Error! Missing chainid parameter",
    "Invalid chainid",
], indirect=True, ids=["etherscan", "missing", "invalid"])
def test_a_chain_id_refused_in_any_words_names_the_setting(explorer: str) -> None:
    with pytest.raises(ConfigError) as info:
        _check(explorer)
    msg = info.value.message
    assert "chain_id" in msg and "now 80002" in msg and "MONITOR_CHAIN_ID" in msg
    assert "137 for Polygon PoS" in msg


@pytest.mark.parametrize("explorer", ["You are using a deprecated V1 endpoint, switch to "
                                      "Etherscan API V2."], indirect=True)
def test_a_v1_url_names_the_explorer_url_setting(explorer: str) -> None:
    with pytest.raises(ConfigError) as info:
        _check(explorer)
    msg = info.value.message
    assert "explorer_url" in msg and "--explorer-url" in msg and "Etherscan V2" in msg


@pytest.mark.parametrize("explorer", ["Invalid API Key"], indirect=True)
def test_a_refused_key_still_says_the_key_file(explorer: str) -> None:
    with pytest.raises(ConfigError) as info:
        _check(explorer)
    assert "refuses the API key" in info.value.message
    assert "EXPLORER_API_KEY_FILE" in info.value.message


@pytest.mark.parametrize("explorer", ["Error! Missing Or invalid Action name"], indirect=True)
def test_another_refusal_is_a_warning_and_the_pilot_starts(explorer: str) -> None:
    _check(explorer)  # no error: the paths ride it out
