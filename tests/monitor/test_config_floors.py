"""Settings a typo makes absurd are refused at start, naming the setting."""

from __future__ import annotations

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError

W = "0x" + "11" * 20


@pytest.mark.parametrize(("name", "value"), [
    ("HEARTBEAT_INTERVAL", "1e-7"),  # a ping flood
    ("HEARTBEAT_TIMEOUT", "1e-9"), ("EXPLORER_TIMEOUT", "1e-300"),  # every call timed out
    ("RPC_TIMEOUT", "0.000001"), ("POLLING_INTERVAL", "1e-5"),
    ("FALLBACK_POLLING_INTERVAL", "0.0001"), ("BACKOFF_INITIAL", "1e-6"),
    ("OUTBOX_RETRY_INTERVAL", "1e-8"), ("BLOCK_INTERVAL", "0.001"),
    ("BLOCK_INTERVAL", "3600"), ("START_BLOCK", "99999999999999999999999999")])
def test_an_absurd_interval_timeout_or_block_is_refused_naming_it(name: str, value: str
                                                                  ) -> None:
    with pytest.raises(ConfigError, match=f"invalid setting {name.lower()}: "):
        load_settings({}, environ={"MONITOR_WALLETS": W, f"MONITOR_{name}": value})


@pytest.mark.parametrize(("name", "value"), [
    ("HEARTBEAT_INTERVAL", "0.01"), ("BACKOFF_INITIAL", "0.05"), ("BLOCK_INTERVAL", "1.5"),
    ("START_BLOCK", "80000000")])
def test_small_but_sane_values_are_taken(name: str, value: str) -> None:
    s = load_settings({}, environ={"MONITOR_WALLETS": W, f"MONITOR_{name}": value})
    assert float(getattr(s, name.lower())) == float(value)


def test_half_a_telegram_configuration_is_said(caplog: pytest.LogCaptureFixture) -> None:
    """A bot token without a chat id (or the reverse) turned Telegram off silently: the
    operator believed alerts would reach the phone."""
    with caplog.at_level("WARNING", logger="monitor.config"):
        load_settings({}, environ={"MONITOR_WALLETS": W, "TELEGRAM_TOKEN": "1:abc"})
        load_settings({}, environ={"MONITOR_WALLETS": W, "TELEGRAM_CHAT_ID": "42"})
        load_settings({}, environ={"MONITOR_WALLETS": W, "TELEGRAM_CHAT_ID": "42",
                                   "TELEGRAM_TOKEN": "1:abc"})
    said = [r.getMessage() for r in caplog.records if "Telegram alerts are off" in r.getMessage()]
    assert said == [
        "telegram_token is set but telegram_chat_id is not: Telegram alerts are off, alerts "
        "go to the log only",
        "telegram_chat_id is set but telegram_token is not: Telegram alerts are off, alerts "
        "go to the log only"]
    assert all("1:abc" not in r.getMessage() for r in caplog.records)


def test_a_file_variable_for_a_setting_never_read_from_a_file_is_said(
        caplog: pytest.LogCaptureFixture) -> None:
    """MONITOR_EXPLORER_URL_FILE was ignored without a word: the explorer stayed Etherscan."""
    with caplog.at_level("WARNING", logger="monitor.config"):
        s = load_settings({}, environ={"MONITOR_WALLETS": W,
                                       "MONITOR_EXPLORER_URL_FILE": "/nowhere"})
    assert "etherscan" in str(s.explorer_url)
    said = [r.getMessage() for r in caplog.records if "is not read" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("MONITOR_EXPLORER_URL_FILE is not read")
    assert "set MONITOR_EXPLORER_URL itself" in said[0]
