"""Configuring the monitor as a user does: addresses as people paste them, files saved by
Windows editors, provider URLs whose key is the user part."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import argv_secrets, load_settings, normalise_address
from monitor.errors import ConfigError
from polyvocab import address_topic
from polyvocab.redact import redact

W = "0x" + "11" * 20
#: an EIP-55 address (the CTF exchange) and the same with one letter's case flipped
CHECKSUMMED = "0x4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982E"
BAD_CHECKSUM = "0x4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982e"


def _run_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, wallet: str) -> str:
    """``python -m monitor run --wallet wallet`` refusing it: the one line. The settings
    are refused first without ``main`` (which would watch an accepted wallet for ever)."""
    with pytest.raises(ConfigError):
        load_settings({"wallets": [wallet]}, environ={})
    code = main(["run", "--mode", "polling", "--explorer-url", "http://127.0.0.1:9/api",
                 "--db", str(tmp_path / "m.db"), "--wallet", wallet])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("wallet", [
    "0x" + "a" * 19 + "_" + "b" * 20,   # int(body, 16) takes an underscore
    "0x-" + "a" * 39,                   # ... a sign
    "0x " + "a" * 39,                   # ... a space
    "0x" + "\u0663" * 40,               # ... Arabic-Indic digits
])
def test_a_wallet_with_other_than_hex_digits_is_refused(
        wallet: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Before: each was watched as it was (``0xaaaa_bbbb...``): a topic no node knows,
    an explorer query for nobody, no error."""
    line = _run_line(capsys, tmp_path, wallet)
    assert "wallet" in line and "not hex" in line, line
    with pytest.raises(ValueError):
        address_topic(wallet)


def test_a_mixed_case_wallet_must_carry_its_checksum(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """web3.py and ethers refuse a mixed-case address whose EIP-55 checksum is wrong (a
    mistyped character); the monitor watched it."""
    line = _run_line(capsys, tmp_path, BAD_CHECKSUM)
    assert "wallet" in line and "checksum" in line, line
    lower = CHECKSUMMED.lower()
    assert normalise_address(CHECKSUMMED) == lower
    assert normalise_address(lower) == lower
    assert normalise_address("0x" + lower[2:].upper()) == lower  # no checksum in one case


def test_a_wallets_file_saved_with_a_bom_and_crlf_is_read(tmp_path: Path) -> None:
    """Before: the first wallet of a Notepad file was '\\ufeff0x...', "not a 20-byte hex
    address"."""
    from monitor.cli import _cli_settings, build_parser

    f = tmp_path / "wallets.txt"
    f.write_bytes(b"\xef\xbb\xbf" + f"{W}\r\n# a comment\r\n{CHECKSUMMED}\r\n".encode())
    ns = build_parser().parse_args(["run", "--wallets-file", str(f)])
    values, _ = _cli_settings(ns)
    assert values["wallets"] == [W, CHECKSUMMED.lower()]


def test_a_key_file_with_a_bom_gives_the_key_alone(tmp_path: Path) -> None:
    """Before: the key went to the explorer with the mark in front of it (an invalid key,
    found only at the first poll)."""
    key = tmp_path / "key"
    key.write_bytes(b"\xef\xbb\xbfK3yFr0mAF1le\r\n")
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"\xef\xbb\xbf" + f'wallets = ["{W}"]\n'.encode())
    s = load_settings({"explorer_api_key_file": str(key)}, config_file=cfg, environ={})
    assert s.api_key() == "K3yFr0mAF1le"
    assert s.wallets == [W]


@pytest.mark.parametrize("userinfo", ["0123456789abcdef0123456789abcdef@",
                                      "0123456789abcdef0123456789abcdeg:@"])
def test_a_key_in_the_user_part_of_a_url_is_masked(userinfo: str) -> None:
    """``wss://KEY@host`` (the user part alone is the credential, sent as Basic auth):
    the history's start row showed the URL as it was, ``redact`` left it, and the
    command line gave no warning."""
    key = userinfo.rstrip(":@")
    ws = f"wss://{userinfo}polygon.example.com/ws"
    # an unregistered URL is masked by its shape
    assert key not in redact(f"connect to {ws} failed")
    s = load_settings({"websocket_url": ws, "rpc_url": f"https://{userinfo}rpc.example.com/",
                       "wallets": [W]}, environ={})
    row = s.redacted_dict()
    assert key not in row["websocket_url"] and key not in row["rpc_url"], row
    assert key not in redact(f"node said: bad key {key}")  # registered alone too
    found = argv_secrets({"ws_url": ws}, [])
    assert [f.flag for f in found] == ["--ws-url"]
    # what is no key stays readable
    assert redact("https://user:pass@h/x") == "https://user:***@h/x"
    assert redact("see https://polygon-rpc.com/ for docs") == \
        "see https://polygon-rpc.com/ for docs"


@pytest.mark.parametrize(("setting", "url"), [
    ("websocket_url", "wss://polygon\tmainnet.example.com/ws"),  # connected to polygonmainnet
    ("rpc_url", "https://rpc.example.com/v2/\nK3yAfterANewline1"),
    ("rpc_url", "https://rpc example.com/"),                    # a DNS failure each retry
    ("explorer_url", "https://api.etherscan.io/v2/api\x00"),
])
def test_a_url_with_a_space_or_a_control_character_inside_is_refused(
        setting: str, url: str) -> None:
    """urlsplit and yarl dropped a tab or a newline without a word and took a space or a
    NUL in the host; the monitor started against another URL than the one written."""
    with pytest.raises(ConfigError) as err:
        load_settings({setting: url, "wallets": [W]}, environ={})
    assert setting in err.value.message and "control character" in err.value.message
    assert "K3yAfterANewline1" not in err.value.message


def test_whitespace_around_a_url_is_dropped() -> None:
    """A CRLF env file leaves ``\\r`` at the end of the value: still the same URL."""
    s = load_settings({"rpc_url": " https://rpc.example.com/\r\n", "wallets": [W]},
                      environ={})
    assert s.rpc_url == "https://rpc.example.com/"


def test_a_filter_larger_than_a_node_takes_is_refused_at_start() -> None:
    """max_wallets_per_filter = 1100 (provider_profile alchemy): every subscribe was
    rejected and every sync failed with 'exceed max topics', 0 of 2,386 trades of a busy
    replay came from the feed, and nothing said why at start."""
    with pytest.raises(ConfigError) as err:
        load_settings({"max_wallets_per_filter": "1100", "provider_profile": "alchemy",
                       "wallets": [W]}, environ={})
    assert "max_wallets_per_filter" in err.value.message
    assert "exceed max topics" in err.value.message
    assert load_settings({"max_wallets_per_filter": "1000", "wallets": [W]},
                         environ={}).max_wallets_per_filter == 1000
    many = ["0x%040x" % (i + 1) for i in range(1001)]
    with pytest.raises(ConfigError, match="exchanges"):
        load_settings({"exchanges": many, "wallets": [W]}, environ={})
