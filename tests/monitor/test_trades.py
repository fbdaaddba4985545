"""The hand-sliced decoder equals the eth-abi reference on random V1/V2 logs; bad input is a
DecodeError, never anything else."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitor_helpers import WALLET, order_filled, word

from monitor.trades import DecodeError, decode_order_filled, decode_order_filled_reference
from polyvocab import (
    DEFAULT_EXCHANGES,
    ORDER_FILLED_V1,
    ORDER_FILLED_V2,
    SIGNATURES,
)

U256 = st.integers(min_value=0, max_value=2**256 - 1)
TOKEN = st.integers(min_value=1, max_value=2**256 - 1)  # 0 is the collateral, no token
H32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
ADDR = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + "00" * 12 + b.hex())


def test_topics_are_the_keccak_of_the_signatures() -> None:
    for t0 in (ORDER_FILLED_V1, ORDER_FILLED_V2):
        assert "0x" + keccak(text=SIGNATURES[t0]).hex() == t0


@st.composite
def v1_logs(draw: st.DrawFn) -> dict[str, Any]:
    token = draw(TOKEN)
    buy = draw(st.booleans())
    assets = (0, token) if buy else (token, 0)
    words = [*assets, draw(U256), draw(U256), draw(U256)]
    return _log(draw, ORDER_FILLED_V1, words)


@st.composite
def v2_logs(draw: st.DrawFn) -> dict[str, Any]:
    words = [draw(st.integers(0, 1)), draw(TOKEN), draw(U256), draw(U256), draw(U256),
             int(draw(H32), 16), int(draw(H32), 16)]
    return _log(draw, ORDER_FILLED_V2, words)


def _log(draw: st.DrawFn, t0: str, words: list[int]) -> dict[str, Any]:
    return {
        "address": draw(st.sampled_from(DEFAULT_EXCHANGES)),
        "topics": [t0, draw(H32), draw(ADDR), draw(ADDR)],
        "data": "0x" + "".join(word(w) for w in words),
        "blockNumber": hex(draw(st.integers(0, 2**40))),
        "blockHash": draw(H32),
        "blockTimestamp": draw(st.one_of(st.none(), st.integers(0, 2**40).map(hex))),
        "transactionHash": draw(H32),
        "logIndex": hex(draw(st.integers(0, 10_000))),
        "removed": False,
    }


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(v1_logs(), v2_logs()))
def test_fast_decoder_equals_eth_abi_reference(log: dict[str, Any]) -> None:
    assert decode_order_filled(log) == decode_order_filled_reference(log)


@settings(max_examples=200, deadline=None)
@given(st.one_of(v1_logs(), v2_logs()), st.integers(0, 200), st.text(max_size=4))
def test_corrupted_data_fails_the_same_way_in_both(log: dict[str, Any], cut: int,
                                                    junk: str) -> None:
    bad = dict(log, data=log["data"][: 2 + cut] + junk)
    outcomes = []
    for decoder in (decode_order_filled, decode_order_filled_reference):
        try:
            outcomes.append(decoder(bad))
        except DecodeError:
            outcomes.append("error")
    assert outcomes[0] == outcomes[1]


def test_fields_of_a_v2_buy() -> None:
    t = decode_order_filled(order_filled(version=2, side=0, maker_amount=5_000_000,
                                         taker_amount=10_000_000, fee=1000, block=42))
    assert (t.side, t.wallet, t.version, t.block_number) == ("BUY", WALLET, 2, 42)
    assert t.price == 0.5 and t.shares == 10 and t.usdc == 5 and t.fee == 0.001
    assert t.id == f"{t.tx_hash}:0"


def test_fields_of_a_v1_sell() -> None:
    t = decode_order_filled(order_filled(version=1, side=1, token=77, maker_amount=4_000_000,
                                         taker_amount=2_000_000))
    assert (t.side, t.token_id, t.version) == ("SELL", "77", 1)
    assert t.shares == 4 and t.usdc == 2 and t.price == 0.5


@pytest.mark.parametrize("mutate", [
    lambda g: g.update(topics=g["topics"][:3]),
    lambda g: g.update(topics="nope"),
    lambda g: g.update(address="0x" + "99" * 20),
    lambda g: g.update(data="0x1234"),
    lambda g: g.update(data="zz"),
    lambda g: g.update(data="0x" + "g" * 448),
    lambda g: g.update(transactionHash="0x12"),
    lambda g: g.update(logIndex="12"),
    lambda g: g.update(blockNumber=None),
    lambda g: g.update(blockHash="0x" + "zz" * 32),
    lambda g: g["topics"].__setitem__(0, "0x" + "00" * 32),
    lambda g: g["topics"].__setitem__(2, "0x1234"),
    lambda g: g.update(data="0x" + word(2) + g["data"][66:]),  # V2 side 2
])
def test_bad_input_is_a_decode_error(mutate: Any) -> None:
    log = order_filled(version=2)
    log["topics"] = list(log["topics"])
    mutate(log)
    for decoder in (decode_order_filled, decode_order_filled_reference):
        with pytest.raises(DecodeError):
            decoder(log)


def test_v1_with_no_zero_asset_is_not_a_usdc_trade() -> None:
    log = order_filled(version=1)
    log["data"] = "0x" + word(1) + word(2) + word(3) + word(4) + word(5)
    for decoder in (decode_order_filled, decode_order_filled_reference):
        with pytest.raises(DecodeError, match="neither asset"):
            decoder(log)


def test_not_a_dict_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_order_filled(["not", "a", "log"])  # type: ignore[arg-type]
