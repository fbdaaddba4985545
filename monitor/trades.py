"""Decode Polymarket ``OrderFilled`` logs (V1 and V2) into frozen :class:`Trade` records.

Two decoders give the same answer: :func:`decode_order_filled` slices the hex by hand (the
hot path, see ``benchmarks/test_decode_bench.py``) and :func:`decode_order_filled_reference` uses
eth-abi. A property test proves them equal. A log that does not decode raises
:class:`DecodeError`; the caller counts it and carries on.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from eth_abi import decode as abi_decode

from monitor.bounds import MAX_QUANTITY
from polyvocab import DEFAULT_EXCHANGES, ORDER_FILLED_V1, ORDER_FILLED_V2, trade_id

__all__ = [
    "DecodeError",
    "Trade",
    "decode_order_filled",
    "decode_order_filled_reference",
]

Side = Literal["BUY", "SELL"]
_WORD_MASK = (1 << 256) - 1
_UNIT = 1_000_000  # USDC.e, pUSD and CTF outcome tokens all have 6 decimals


class DecodeError(ValueError):
    """A log that is not a well-formed Polymarket ``OrderFilled``. Count it, skip it."""


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill of a watched wallet's order. Amounts are raw 6-decimal integers."""

    id: str
    tx_hash: str
    log_index: int
    wallet: str
    side: Side
    token_id: str  # uint256 as a decimal string (too big for JSON numbers)
    maker_amount: int
    taker_amount: int
    fee_raw: int
    block_number: int
    block_hash: str
    block_timestamp: int | None
    exchange: str
    version: int
    taker: str
    order_hash: str

    @property
    def shares_raw(self) -> int:
        return self.taker_amount if self.side == "BUY" else self.maker_amount

    @property
    def usdc_raw(self) -> int:
        return self.maker_amount if self.side == "BUY" else self.taker_amount

    @property
    def shares(self) -> float:
        return self.shares_raw / _UNIT

    @property
    def usdc(self) -> float:
        return self.usdc_raw / _UNIT

    @property
    def fee(self) -> float:
        return self.fee_raw / _UNIT

    @property
    def price(self) -> float:
        """USDC per share; 0.0 for a degenerate zero-share fill."""
        return self.usdc_raw / self.shares_raw if self.shares_raw else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _FIELD_NAMES}  # all flat: no deep copy
        d.update(price=self.price, shares=self.shares, usdc=self.usdc, fee=self.fee)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trade:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Trade))


def _quantity(value: Any, what: str) -> int:
    if type(value) is str and 2 < len(value) <= 18 and value[:2] == "0x":
        try:
            n = int(value, 16)
        except ValueError:
            pass
        else:
            if n <= MAX_QUANTITY:
                return n
            raise DecodeError(f"{what} out of range: {value}")
    if type(value) is int and 0 <= value <= MAX_QUANTITY:
        return value
    if not isinstance(value, str) or not value.startswith("0x"):
        raise DecodeError(f"{what} is not a hex quantity: {str(value)[:40]!r}")
    if value == "0x":
        return 0
    raise DecodeError(f"{what} is not a hex quantity in range: {value[:40]!r}")


_HEX = re.compile(r"0x[0-9a-fA-F]*\Z")
_WORD = re.compile(r"0x[0-9a-fA-F]{64}\Z")
_TOPICS4 = re.compile(r"(?:0x[0-9a-fA-F]{64}){4}\Z")


def _hex_body(value: Any, what: str, nbytes: int | None = None) -> str:
    # Fast path (the hot loop): one regex match instead of int() on every field.
    if type(value) is str and _HEX.match(value) is not None and (
            nbytes is None or len(value) == 2 + 2 * nbytes):
        return value[2:].lower()
    if not isinstance(value, str) or not value.startswith("0x"):
        raise DecodeError(f"{what} is not hex: {value!r}")
    body = value[2:].lower()
    if nbytes is not None and len(body) != 2 * nbytes:
        raise DecodeError(f"{what} has {len(body) // 2} bytes, expected {nbytes}")
    raise DecodeError(f"{what} is not hex: {value!r}")


def _envelope(log: dict[str, Any], exchanges: tuple[str, ...]) -> tuple[int, list[str], str]:
    """Check the fields common to both layouts; return (version, topic bodies, data body)."""
    if not isinstance(log, dict):
        raise DecodeError(f"log is not an object: {type(log).__name__}")
    topics = log.get("topics")
    if not isinstance(topics, list) or len(topics) != 4:
        raise DecodeError("OrderFilled needs 4 topics")
    t0 = str(topics[0]).lower()
    if t0 == ORDER_FILLED_V1:
        version, words = 1, 5
    elif t0 == ORDER_FILLED_V2:
        version, words = 2, 7
    else:
        raise DecodeError(f"topic0 {t0[:18]}... is not OrderFilled")
    address = str(log.get("address", "")).lower()
    if address not in exchanges:
        raise DecodeError(f"log from {address} which is not a configured exchange")
    try:
        joined = "".join(topics)
    except TypeError:
        joined = ""
    if _TOPICS4.match(joined) is not None:
        bodies = [t[2:].lower() for t in topics]
    else:  # slow path, for the error message
        bodies = [_hex_body(t, f"topic{i}", 32) for i, t in enumerate(topics)]
    data = _hex_body(log.get("data"), "data")
    if len(data) != 64 * words:
        raise DecodeError(f"V{version} OrderFilled data has {len(data) // 2} bytes, "
                          f"expected {32 * words}")
    return version, bodies, data


def _word_hex(value: Any, what: str) -> str:
    """A 32-byte hex string, lower-case with ``0x``."""
    if type(value) is str and _WORD.match(value) is not None:
        return value.lower()
    return "0x" + _hex_body(value, what, 32)


def _build(log: dict[str, Any], version: int, topics: list[str], side: Side, token_id: int,
           maker_amount: int, taker_amount: int, fee: int) -> Trade:
    tx_hash = _word_hex(log.get("transactionHash"), "transactionHash")
    log_index = _quantity(log.get("logIndex"), "logIndex")
    ts = log.get("blockTimestamp")
    return Trade(
        id=trade_id(tx_hash, log_index),
        tx_hash=tx_hash,
        log_index=log_index,
        wallet="0x" + topics[2][24:],
        side=side,
        token_id=str(token_id),
        maker_amount=maker_amount,
        taker_amount=taker_amount,
        fee_raw=fee,
        block_number=_quantity(log.get("blockNumber"), "blockNumber"),
        block_hash=_word_hex(log.get("blockHash"), "blockHash"),
        block_timestamp=None if ts is None else _quantity(ts, "blockTimestamp"),
        exchange=str(log["address"]).lower(),
        version=version,
        taker="0x" + topics[3][24:],
        order_hash="0x" + topics[1],
    )


def _v1_side(maker_asset: int, taker_asset: int) -> tuple[Side, int]:
    """V1: the USDC side has asset id 0. Maker gives USDC -> BUY the taker asset."""
    if maker_asset == 0:
        return "BUY", taker_asset
    if taker_asset == 0:
        return "SELL", maker_asset
    raise DecodeError("V1 OrderFilled with neither asset id zero (not a USDC trade)")


def _v2_side(side_raw: int) -> Side:
    if side_raw > 1:
        raise DecodeError(f"V2 OrderFilled side {side_raw} is neither 0 (BUY) nor 1 (SELL)")
    return "BUY" if side_raw == 0 else "SELL"


def decode_order_filled(log: dict[str, Any],
                        exchanges: tuple[str, ...] = DEFAULT_EXCHANGES) -> Trade:
    """Decode one ``OrderFilled`` log (as ``eth_getLogs`` or a ``logs`` notification gives it).

    Raises :class:`DecodeError` for anything else; the caller counts and skips it.
    """
    version, topics, data = _envelope(log, exchanges)
    big, n = int(data, 16), len(data) // 64  # one parse, then shifts: faster than slices
    w = [(big >> (256 * (n - 1 - k))) & _WORD_MASK for k in range(n)]
    if version == 1:
        maker_asset, taker_asset, maker_amount, taker_amount, fee = w
        side, token = _v1_side(maker_asset, taker_asset)
    else:
        side_raw, token, maker_amount, taker_amount, fee = w[:5]
        side = _v2_side(side_raw)
    return _build(log, version, topics, side, token, maker_amount, taker_amount, fee)


_V1_TYPES = ["uint256"] * 5
_V2_TYPES = ["uint8", "uint256", "uint256", "uint256", "uint256", "bytes32", "bytes32"]


def decode_order_filled_reference(log: dict[str, Any],
                                  exchanges: tuple[str, ...] = DEFAULT_EXCHANGES) -> Trade:
    """The same as :func:`decode_order_filled`, through eth-abi (the reference decoder)."""
    version, topics, data = _envelope(log, exchanges)
    raw = bytes.fromhex(data)
    try:
        if version == 1:
            maker_asset, taker_asset, maker_amount, taker_amount, fee = abi_decode(_V1_TYPES, raw)
            side, token = _v1_side(maker_asset, taker_asset)
        else:
            side_raw, token, maker_amount, taker_amount, fee, _b, _m = abi_decode(
                _V2_TYPES, raw, strict=True
            )
            side = _v2_side(side_raw)
    except DecodeError:
        raise
    except Exception as exc:  # eth-abi raises several types; all mean "not this layout"
        raise DecodeError(f"eth-abi could not decode V{version} OrderFilled: {exc}") from None
    return _build(log, version, topics, side, token, maker_amount, taker_amount, fee)
