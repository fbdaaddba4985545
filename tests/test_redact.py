"""polyvocab.redact: one rule for what in a provider URL is a key."""

from __future__ import annotations

import pytest

from polyvocab.redact import key_like_segment, mask_url, redact, register_url_secrets


@pytest.mark.parametrize("url,masked", [
    ("https://polygon-mainnet.g.alchemy.com/v2/AbCdEf1234567890XyZ",
     "https://polygon-mainnet.g.alchemy.com/v2/***"),
    ("https://polygon-mainnet.infura.io/v3/0123456789abcdef0123456789abcdef",
     "https://polygon-mainnet.infura.io/v3/***"),
    ("https://x.matic.quiknode.pro/0123456789abcdef0123456789abcdef01234567/",
     "https://x.matic.quiknode.pro/***/"),
    ("http://user:pass@127.0.0.1:8545/", "http://***@127.0.0.1:8545/"),
    ("https://rpc.example/?apikey=SECRET&x=1", "https://rpc.example/?apikey=***&x=***"),
    ("http://127.0.0.1:8545/", "http://127.0.0.1:8545/"),
    ("http://[::1:8545/", "<invalid URL>"),
    # short keys: 12+ key characters with a digit, or 20+ without one
    ("https://127.0.0.1:1/v2/SECRETKEY123", "https://127.0.0.1:1/v2/***"),
    ("https://rpc.example/ab12cd34ef56gh7/", "https://rpc.example/***/"),
    ("https://rpc.example/v1/AbCdEfGhIjKlMnOpQrSt", "https://rpc.example/v1/***"),
    # what is not a key stays readable
    ("https://polygon-rpc.com/", "https://polygon-rpc.com/"),
    ("https://rpc.example/ext/bor/polygon-mainnet", "https://rpc.example/ext/bor/polygon-mainnet"),
    ("http://[::1]:8545/v2/SECRETKEY123", "http://[::1]:8545/v2/***"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize("segment,key", [
    ("SECRETKEY123", True), ("ab12cd34ef56gh7", True), ("AbCdEfGhIjKlMnOpQrSt", True),
    ("v2", False), ("polygon-mainnet", False), ("SECRETKEY12", False),
    ("polygon-mainnet-archive", True), ("", False),
])
def test_a_key_is_key_characters_long_enough(segment: str, key: bool) -> None:
    assert key_like_segment(segment) is key


def test_what_mask_url_hides_register_url_secrets_redacts_anywhere() -> None:
    # the one rule: a key shown as *** in the URL is also masked where it appears alone
    url = "https://127.0.0.1:1/v2/K3yOnlyTwelve?token=tok12345678"
    register_url_secrets(url)
    assert redact("failed: K3yOnlyTwelve and tok12345678") == "failed: *** and ***"
    assert "K3yOnlyTwelve" not in mask_url(url)


def test_a_url_urlsplit_refuses_still_has_its_keys_registered() -> None:
    register_url_secrets("https://[broken/v2/Br0kenUrlKey99")
    assert redact("node Br0kenUrlKey99 down") == "node *** down"
