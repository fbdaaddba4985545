"""The pilot asks its --rpc-url node the chain it serves once at start. Before, a node of
another chain ran: the paths watched it beside Polygon's explorer, and nothing said so."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.pilot import check_rpc_chain

W = "0x" + "11" * 20


@pytest.fixture
def node(request: pytest.FixtureRequest) -> Iterator[str]:
    status, reply = request.param

    class Node(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"jsonrpc": "2.0", "id": req["id"], **reply}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/KEY0123456789abcdefXYZ"
    finally:
        server.shutdown()
        server.server_close()


def _check(url: str) -> None:
    settings = load_settings({"websocket_url": "ws://127.0.0.1:9/", "wallets": [W],
                              "rpc_url": url, "explorer_url": "http://127.0.0.1:9/v2/api"},
                             environ={})
    asyncio.run(check_rpc_chain(settings))


@pytest.mark.parametrize("node", [(200, {"result": "0x13882"})], indirect=True)
def test_a_node_of_another_chain_stops_the_start_naming_both(node: str) -> None:
    with pytest.raises(ConfigError) as err:
        _check(node)
    msg = err.value.message
    assert "serves chain 80002" in msg and "chain_id 137" in msg
    assert "KEY0123456789" not in msg


@pytest.mark.parametrize("node", [
    (200, {"result": "0x89"}),
    (200, {"error": {"code": -32601, "message": "the method eth_chainId does not exist"}}),
    (200, {"result": None}),
    (503, {"error": {"code": -32000, "message": "busy"}}),
], indirect=True, ids=["polygon", "no-method", "null", "busy"])
def test_the_same_chain_or_no_answer_starts(node: str) -> None:
    _check(node)


@pytest.mark.parametrize("node", [(401, {"error": {"code": 401, "message": "bad key"}})],
                         indirect=True)
def test_a_refused_key_is_a_setting_to_fix(node: str) -> None:
    with pytest.raises(ConfigError, match=r"--rpc-url .* refuses the request"):
        _check(node)
