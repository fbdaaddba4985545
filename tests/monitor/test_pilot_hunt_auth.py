"""The provider refusing the key in its URL (HTTP 401: Alchemy's JSON-RPC error object
"Must be authenticated!", Infura's plain "invalid project id"): a setting to fix, so the
pilot stops with one line and exit 2 (the unit does not restart), the key not shown."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyvocab.errors import BadResponse
from polyvocab.jsonrpc_http import classify_http

ROOT = Path(__file__).resolve().parents[2]
KEY = "AlchemyKey0123456789abcdefXYZ"
ALCHEMY_401 = json.dumps({"jsonrpc": "2.0", "id": 1,
                          "error": {"code": -32600, "message": "Must be authenticated!"}})
INFURA_401 = "invalid project id\n"


def test_a_401_with_a_json_rpc_error_keeps_its_status() -> None:
    """Before: an RpcError -32600, the 401 lost (nothing could tell a refused key)."""
    err = classify_http(401, ALCHEMY_401)
    assert isinstance(err, BadResponse) and err.status == 401
    assert "Must be authenticated!" in err.message


@pytest.fixture(params=[ALCHEMY_401, INFURA_401], ids=["alchemy", "infura"])
def refusing_node(request: pytest.FixtureRequest) -> Iterator[str]:
    body = request.param.encode()

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # the explorer's proxy: a head
            answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x100"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_provider_refusing_its_key_stops_the_pilot_with_exit_2(refusing_node: str,
                                                                  tmp_path: Path) -> None:
    """Before: exit 1 ('failed'), which the unit restarts every 5 s for good."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONITOR_", "EXPLORER_", "RPC_", "WEBSOCKET_"))}
    env.update(MONITOR_WEBSOCKET_URL=f"ws://{refusing_node}/v2/{KEY}",
               MONITOR_RPC_URL=f"http://{refusing_node}/v2/{KEY}",
               MONITOR_EXPLORER_URL=f"http://{refusing_node}/v2/api",
               EXPLORER_API_KEY="EXPLORERKEY0123456789")
    res = subprocess.run([sys.executable, "-m", "monitor", "pilot", "--store",
                          str(tmp_path / "s"), "--wallet", "0x" + "11" * 20], cwd=ROOT,
                         env=env, text=True, capture_output=True, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and KEY not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m monitor pilot: error: --rpc-url http://127.0.0.1:")
    assert "refuses the request" in last and "HTTP 401" in last
