"""``python -m monitor run`` without an explorer key where the explorer needs one
(Etherscan V2 refuses every call without it): polling cannot work, so a mode that polls
is refused at once (exit 2, one line); a WebSocket-only run starts, warning that its
fallback cannot deliver."""

from __future__ import annotations

import logging

import pytest
from test_cli import W, run_cli

ETHERSCAN = "https://api.etherscan.io/v2/api"


@pytest.mark.parametrize("extra", [["--mode", "polling"],
                                   ["--ws-url", "ws://127.0.0.1:1/",
                                    "--rpc-url", "http://127.0.0.1:1/",
                                    "--websocket-share", "50"]])
def test_a_polling_run_without_the_etherscan_key_is_refused(extra: list[str]) -> None:
    r = run_cli("run", "--wallet", W, "--explorer-url", ETHERSCAN, *extra)
    assert r.returncode == 2, r.stderr
    assert "needs an API key" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_websocket_run_without_the_key_starts_and_warns(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from monitor import cli

    ran: list[object] = []

    async def fake_run(settings: object) -> int:
        ran.append(settings)
        return 0

    for name in ("EXPLORER_API_KEY", "MONITOR_EXPLORER_API_KEY", "EXPLORER_API_KEY_FILE",
                 "MONITOR_EXPLORER_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli, "_run", fake_run)
    caplog.set_level(logging.WARNING)
    assert cli.main(["run", "--wallet", W, "--ws-url", "ws://127.0.0.1:1/",
                     "--rpc-url", "http://127.0.0.1:1/", "--explorer-url", ETHERSCAN]) == 0
    assert ran
    assert any("no explorer API key" in r.getMessage() for r in caplog.records)


def test_a_loopback_explorer_needs_no_key() -> None:
    from monitor.config import explorer_needs_key

    assert explorer_needs_key(ETHERSCAN) and explorer_needs_key("https://api.etherscan.io./v2")
    assert not explorer_needs_key("http://127.0.0.1:8545/api")
    assert not explorer_needs_key("https://etherscan.io.example.com/api")
    assert not explorer_needs_key(None) and not explorer_needs_key("http://[::1")
