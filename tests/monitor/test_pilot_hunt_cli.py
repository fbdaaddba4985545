"""The pilot's command line as a user gets it wrong: a flag it does not have, an
explorer key missing or refused. One line, no traceback, exit 2 (the unit does not
restart), no key shown."""

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

ROOT = Path(__file__).resolve().parents[2]
WALLET = "0x" + "11" * 20
PATH_KEY = "PathKey0123456789abcdefXYZ"
EXPLORER_KEY = "EXPLORERKEY0123456789TYPO"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONITOR_", "EXPLORER_", "RPC_", "WEBSOCKET_"))}
    env.update(extra)
    return env


def _pilot(args: list[str], env: dict[str, str], store: Path
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", "pilot", "--store", str(store),
                           "--wallet", WALLET, *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120)


def _one_line_exit_2(res: subprocess.CompletedProcess[str]) -> str:
    err = [line for line in res.stderr.splitlines() if "error" in line]
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and len(err) == 1, res.stderr[-2000:]
    return err[0]


URLS = ["--ws-url", f"wss://127.0.0.1:9/v2/{PATH_KEY}", "--rpc-url",
        f"https://127.0.0.1:9/v2/{PATH_KEY}"]


@pytest.mark.parametrize("flag", [["--duration", "-1"], ["--duration", "5"]])
def test_a_flag_the_pilot_does_not_have_is_named(flag: list[str], tmp_path: Path) -> None:
    """Before: 'argument action: invalid choice: '-1' (choose from 'run', 'status')'."""
    line = _one_line_exit_2(_pilot([*URLS, *flag], _env(EXPLORER_API_KEY=EXPLORER_KEY),
                                   tmp_path / "s"))
    assert "unrecognized arguments: --duration" in line and "invalid choice" not in line


def test_a_missing_etherscan_key_is_refused_before_the_start(tmp_path: Path) -> None:
    """Before: the pilot started, and its polling shadow was refused ('Missing/Invalid API
    Key') every call for as long as it ran."""
    store = tmp_path / "s"
    line = _one_line_exit_2(_pilot(
        [*URLS, "--explorer-url", "https://api.etherscan.io/v2/api"], _env(), store))
    assert "EXPLORER_API_KEY_FILE" in line and PATH_KEY not in line
    assert not store.exists()


V1_TEXT = "You are using a deprecated V1 endpoint, switch to Etherscan API V2."
CHAIN_TEXT = ("Missing or unsupported chainid parameter (required for v2 api), please see "
              "chainlist for the list of supported chainids")


@pytest.fixture
def refusing_explorer(request: pytest.FixtureRequest) -> Iterator[str]:
    """An Etherscan-like explorer on loopback refusing every call, as Etherscan does (by
    default the key; ``indirect`` parametrisation picks the text)."""
    text = getattr(request, "param", "Invalid API Key")

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "0", "message": "NOTOK",
                               "result": text}).encode()
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


def test_a_key_the_explorer_refuses_stops_the_start(refusing_explorer: str,
                                                    tmp_path: Path) -> None:
    """Before: the pilot ran on, its polling shadow failing every call (a warning a
    second in the log); the node was never reached (its URLs are a closed port)."""
    line = _one_line_exit_2(_pilot([*URLS, "--explorer-url", refusing_explorer],
                                   _env(EXPLORER_API_KEY=EXPLORER_KEY), tmp_path / "s"))
    assert "refuses the API key" in line and "Invalid API Key" in line
    assert EXPLORER_KEY not in line and PATH_KEY not in line


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_a_store_folder_that_cannot_be_made_is_a_setting_exit_2(where: str,
                                                                tmp_path: Path) -> None:
    """Before: exit 1 ('failed'), which the unit restarts every 5 s into the same error."""
    afile = tmp_path / "a-file"
    afile.write_text("x")
    store = afile / "store" if where == "under a file" else Path("/proc/pilot-hunt-store")
    res = _pilot([*URLS, "--explorer-url", "http://127.0.0.1:9/v2/api"],
                 _env(EXPLORER_API_KEY=EXPLORER_KEY), store)
    line = _one_line_exit_2(res)
    assert "cannot write the pilot's store" in line and PATH_KEY not in res.stderr


@pytest.mark.parametrize("refusing_explorer", [V1_TEXT, CHAIN_TEXT], indirect=True,
                         ids=["v1-endpoint", "chainid"])
def test_an_explorer_url_refused_for_good_stops_the_start(refusing_explorer: str,
                                                          tmp_path: Path) -> None:
    """Before: the pilot ran on, every poll of its shadow refused the same way."""
    line = _one_line_exit_2(_pilot([*URLS, "--explorer-url", refusing_explorer],
                                   _env(EXPLORER_API_KEY=EXPLORER_KEY), tmp_path / "s"))
    assert "refuses the request" in line
    if "V1" in line:
        assert "explorer_url" in line and "Etherscan V2" in line
    else:
        assert "chain_id" in line and "now 137" in line
    assert EXPLORER_KEY not in line
