"""Decode Polymarket ``OrderFilled`` logs (V1 and V2) into frozen :class:`Trade` records.

Two decoders give the same answer: :func:`decode_order_filled` slices the hex by hand (the
hot path, see ``benchmarks/test_decode_bench.py``) and :func:`decode_order_filled_reference` uses
eth-abi (and is where the hand path sends anything unusual, so the errors are its errors). A
property test (``tests/monitor/test_trades_fast_path.py``) proves them equal. A log that does
not decode raises :class:`DecodeError`; the caller counts it and carries on.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
from binascii import a2b_hex
from dataclasses import dataclass
from math import isfinite
from typing import Any, Literal

from eth_abi import decode as abi_decode

from monitor.bounds import MAX_QUANTITY
from polyvocab import DEFAULT_EXCHANGES, ORDER_FILLED_V1, ORDER_FILLED_V2, trade_id
from polyvocab.bounds import brief

__all__ = [
    "DecodeError",
    "Trade",
    "decode_order_filled",
    "decode_order_filled_reference",
    "word_hex",
]

Side = Literal["BUY", "SELL"]
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
        d = dict(zip(_FIELD_NAMES, _fields_of(self), strict=True))  # all flat: no deep copy
        d.update(price=self.price, shares=self.shares, usdc=self.usdc, fee=self.fee)
        return d

    def to_json(self) -> str:
        """``to_dict`` as compact JSON: the outbox payload, and the ``trade`` object of a
        detections row byte for byte (the pipeline encodes a trade once, here).

        Written field by field when every field has its declared type (what the decoders
        give; ~40 % cheaper than a dict through the encoder), else through the encoder:
        the text fields in plain quotes when none holds a character json escapes (else
        json's own string encoder), the amounts in millionths from their integers
        (:func:`_millionths`). Property tests prove the bytes equal
        (``tests/monitor/test_trades_fast_path.py``, ``test_trade_json_text.py``)."""
        values = _fields_of(self)
        if tuple(map(type, values)) not in _PLAIN_TYPES:
            return _encode(self.to_dict())
        (id_, tx_hash, log_index, wallet, side, token_id, maker_amount, taker_amount,
         fee_raw, block_number, block_hash, block_timestamp, exchange, version, taker,
         order_hash) = values
        texts = (id_, tx_hash, wallet, side, token_id, block_hash, exchange, taker,
                 order_hash)
        if not _plain_text("".join(texts)):  # rare: escaped, written without the quotes
            (id_, tx_hash, wallet, side, token_id, block_hash, exchange, taker,
             order_hash) = (_json_str(t)[1:-1] for t in texts)
        f = _json_float
        ts = "null" if block_timestamp is None else repr(block_timestamp)
        # the properties' values, each computed as they compute it (the same floats)
        if side == "BUY":
            shares_raw, usdc_raw = taker_amount, maker_amount
        else:
            shares_raw, usdc_raw = maker_amount, taker_amount
        price = usdc_raw / shares_raw if shares_raw else 0.0
        return (f'{{"id":"{id_}","tx_hash":"{tx_hash}","log_index":{log_index!r},'
                f'"wallet":"{wallet}","side":"{side}","token_id":"{token_id}",'
                f'"maker_amount":{maker_amount!r},"taker_amount":{taker_amount!r},'
                f'"fee_raw":{fee_raw!r},"block_number":{block_number!r},'
                f'"block_hash":"{block_hash}","block_timestamp":{ts},'
                f'"exchange":"{exchange}","version":{version!r},"taker":"{taker}",'
                f'"order_hash":"{order_hash}","price":{f(price)},'
                f'"shares":{_millionths(shares_raw)},"usdc":{_millionths(usdc_raw)},'
                f'"fee":{_millionths(fee_raw)}}}')

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trade:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Trade))
_fields_of = operator.attrgetter(*_FIELD_NAMES)
# json.dumps(..., separators=...) builds an encoder every call; this one is built once
_encode = json.JSONEncoder(separators=(",", ":")).encode
_json_str = json.encoder.encode_basestring_ascii  # what the encoder uses (ensure_ascii)
# the field types to_json writes by hand: the declared ones (block_timestamp int or None)
_DECLARED = tuple(int if n in ("log_index", "maker_amount", "taker_amount", "fee_raw",
                               "block_number", "block_timestamp", "version") else str
                  for n in _FIELD_NAMES)
_PLAIN_TYPES = frozenset({_DECLARED, tuple(type(None) if n == "block_timestamp" else t
                                           for n, t in zip(_FIELD_NAMES, _DECLARED,
                                                           strict=True))})


def _plain_text(text: str) -> bool:
    """``_json_str`` of ``text`` (and of every part of it) is the text in quotes: every
    character printable ASCII (space to ``~``), no quote, no backslash - no character
    json escapes with ``ensure_ascii``. One C pass over the UTF-8 bytes (a non-ASCII
    character, a lone surrogate too, encodes to bytes of 0x80 and up, which stay):
    the bytes json writes as they are are deleted, and nothing may remain. ~2.7x
    cheaper than ``isascii`` + ``isprintable`` + two scans; a property test proves it
    equal to them (``tests/monitor/test_live_path_text.py``)."""
    return not text.encode("utf-8", "surrogatepass").translate(None, _UNESCAPED)


#: the bytes json writes as they are (ensure_ascii): printable ASCII but quote and backslash
_UNESCAPED = bytes(b for b in range(0x20, 0x7F) if b not in b'"\\')


def _millionths(n: int) -> str:
    """``_json_float(n / 1_000_000)`` for an int ``n`` (shares, USDC, fee), without the
    float's shortest-repr search (~5x cheaper) where that gives the same text: for
    100 <= n < 10**15 the exact decimal of n / 10**6 has at most 15 significant digits,
    so it is the shortest text that reads back as the float (DBL_DIG), and repr writes
    it in fixed notation (below 1e-4 repr switches to an exponent: those go the float
    way, as does anything else). A property test proves the texts equal."""
    if 100 <= n < 1_000_000_000_000_000:  # the decimal digits, cut 6 from the right
        digits = int.__repr__(n)
        if n >= _UNIT:
            return f"{digits[:-6]}.{digits[-6:].rstrip('0') or '0'}"
        return "0." + digits.rjust(6, "0").rstrip("0")
    return _json_float(n / _UNIT)


def _json_float(x: float) -> str:
    """A float as json writes it (``repr``; NaN and infinities by their JSON names)."""
    return float.__repr__(x) if isfinite(x) else _encode(x)


def _quantity(value: Any, what: str) -> int:
    if type(value) is str and 2 < len(value) <= 18 and value[:2] == "0x":
        try:
            n = int(value, 16)
        except ValueError:
            pass
        else:
            if n <= MAX_QUANTITY:
                return n
            raise DecodeError(f"{what} out of range: {value[:40]}")
    if type(value) is int and 0 <= value <= MAX_QUANTITY:
        return value
    if not isinstance(value, str) or not value.startswith("0x"):
        raise DecodeError(f"{what} is not a hex quantity: {brief(value, 40)!r}")
    if value == "0x":
        return 0
    raise DecodeError(f"{what} is not a hex quantity in range: {value[:40]!r}")


_HEX = re.compile(r"0x[0-9a-fA-F]*\Z")
_WORD = re.compile(r"0x[0-9a-fA-F]{64}\Z")
_TOPICS4 = re.compile(r"(?:0x[0-9a-fA-F]{64}){4}\Z")
_PAD12 = "0" * 24  # what stands above an address in an indexed topic


def _hex_body(value: Any, what: str, nbytes: int | None = None) -> str:
    # Fast path (the hot loop): one regex match instead of int() on every field.
    if type(value) is str and _HEX.match(value) is not None and (
            nbytes is None or len(value) == 2 + 2 * nbytes):
        return value[2:].lower()
    if not isinstance(value, str) or not value.startswith("0x"):
        raise DecodeError(f"{what} is not hex: {brief(value, 80)!r}")
    if nbytes is not None and len(value) != 2 + 2 * nbytes:  # (no copy of a huge text)
        raise DecodeError(f"{what} has {(len(value) - 2) // 2} bytes, expected {nbytes}")
    raise DecodeError(f"{what} is not hex: {brief(value, 80)!r}")


def _envelope(log: dict[str, Any], exchanges: tuple[str, ...]) -> tuple[int, list[str], str]:
    """Check the fields common to both layouts; return (version, topic bodies, data body)."""
    if not isinstance(log, dict):
        raise DecodeError(f"log is not an object: {type(log).__name__}")
    topics = log.get("topics")
    if not isinstance(topics, list) or len(topics) != 4:
        raise DecodeError("OrderFilled needs 4 topics")
    t0 = topics[0].lower() if isinstance(topics[0], str) else brief(topics[0], 18)
    if t0 == ORDER_FILLED_V1:
        version, words = 1, 5
    elif t0 == ORDER_FILLED_V2:
        version, words = 2, 7
    else:
        raise DecodeError(f"topic0 {t0[:18]}... is not OrderFilled")
    address = log.get("address", "")
    address = address.lower() if isinstance(address, str) else brief(address, 42)
    if address not in exchanges:
        raise DecodeError(f"log from {address[:42]} which is not a configured exchange")
    try:
        joined = "".join(topics)
    except TypeError:
        joined = ""
    if _TOPICS4.match(joined) is not None:
        bodies = [t[2:].lower() for t in topics]
    else:  # slow path, for the error message
        bodies = [_hex_body(t, f"topic{i}", 32) for i, t in enumerate(topics)]
    for i, who in ((2, "maker"), (3, "taker")):
        if bodies[i][:24] != _PAD12:  # an indexed address: 12 zero bytes above it
            raise DecodeError(f"topic{i} ({who}) is not an address: its 12 upper bytes are "
                              f"not zero ({bodies[i][:24]})")
    data = _hex_body(log.get("data"), "data")
    if len(data) != 64 * words:
        raise DecodeError(f"V{version} OrderFilled data has {len(data) // 2} bytes, "
                          f"expected {32 * words}")
    return version, bodies, data


def word_hex(value: Any, what: str) -> str:
    """A 32-byte hex string (a hash), lower-case with ``0x``; else :class:`DecodeError`."""
    if type(value) is str and _WORD.match(value) is not None:
        return value.lower()
    return "0x" + _hex_body(value, what, 32)


def _build(log: dict[str, Any], version: int, topics: list[str], side: Side, token_id: int,
           maker_amount: int, taker_amount: int, fee: int) -> Trade:
    tx_hash = word_hex(log.get("transactionHash"), "transactionHash")
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
        block_hash=word_hex(log.get("blockHash"), "blockHash"),
        block_timestamp=None if ts is None else _quantity(ts, "blockTimestamp"),
        exchange=str(log["address"]).lower(),
        version=version,
        taker="0x" + topics[3][24:],
        order_hash="0x" + topics[1],
    )


def _v1_side(maker_asset: int, taker_asset: int) -> tuple[Side, int]:
    """V1: the USDC side has asset id 0. Maker gives USDC -> BUY the taker asset."""
    if maker_asset == 0 and taker_asset == 0:
        raise DecodeError("V1 OrderFilled with both asset ids zero (collateral for "
                          "collateral: no outcome token)")
    if maker_asset == 0:
        return "BUY", taker_asset
    if taker_asset == 0:
        return "SELL", maker_asset
    raise DecodeError("V1 OrderFilled with neither asset id zero (not a USDC trade)")


def _v2_side(side_raw: int) -> Side:
    if side_raw > 1:
        raise DecodeError(f"V2 OrderFilled side {side_raw} is neither 0 (BUY) nor 1 (SELL)")
    return "BUY" if side_raw == 0 else "SELL"


class _TradeFields:
    """A :class:`Trade`'s slots without the frozen ``__setattr__``: the fast path fills one
    with plain slot stores, then makes it a ``Trade`` (same slot layout, so CPython allows
    the ``__class__`` assignment). A frozen dataclass's ``__init__`` calls
    ``object.__setattr__`` once a field: ~15x slower than these stores."""

    __slots__ = Trade.__slots__

    def __init__(self, id: str, tx_hash: str, log_index: int, wallet: str, side: Side,
                 token_id: str, maker_amount: int, taker_amount: int, fee_raw: int,
                 block_number: int, block_hash: str, block_timestamp: int | None,
                 exchange: str, version: int, taker: str, order_hash: str) -> None:
        self.id = id
        self.tx_hash = tx_hash
        self.log_index = log_index
        self.wallet = wallet
        self.side = side
        self.token_id = token_id
        self.maker_amount = maker_amount
        self.taker_amount = taker_amount
        self.fee_raw = fee_raw
        self.block_number = block_number
        self.block_hash = block_hash
        self.block_timestamp = block_timestamp
        self.exchange = exchange
        self.version = version
        self.taker = taker
        self.order_hash = order_hash


if _TradeFields.__init__.__code__.co_varnames[1:len(_FIELD_NAMES) + 1] != _FIELD_NAMES:
    raise ImportError("monitor.trades: _TradeFields.__init__ does not list Trade's fields")

# topic0 -> (version, len of the data string with its 0x: 5 or 7 words)
_LAYOUTS = {ORDER_FILLED_V1: (1, 2 + 64 * 5), ORDER_FILLED_V2: (2, 2 + 64 * 7)}
_ZERO12 = bytes(12)
_ZERO31 = bytes(31)
_ZERO32 = bytes(32)


def decode_order_filled(log: dict[str, Any],
                        exchanges: tuple[str, ...] = DEFAULT_EXCHANGES) -> Trade:
    """Decode one ``OrderFilled`` log (as ``eth_getLogs`` or a ``logs`` notification gives it).

    The hand path, for the usual form (lower-case topic0, string fields, hex quantities): a
    fixed layout, so the topics, the two hashes and the data are joined into one string,
    read by ONE strict hex parse (``binascii.a2b_hex``) and lower-cased once, then
    ``int.from_bytes`` on 32-byte slices. Anything else (not a dict, upper-case topic0, int
    quantities, a wrong length, non-hex, a bad side or asset pair, out-of-range numbers)
    goes to :func:`decode_order_filled_reference` (eth-abi), which decodes it the same way
    or raises its :class:`DecodeError`; the caller counts and skips it. A property test
    (``tests/monitor/test_trades_fast_path.py``) proves both give the same trades and the
    same errors.
    """
    if type(log) is not dict:
        return decode_order_filled_reference(log, exchanges)
    get = log.get
    topics = get("topics")
    address = get("address")
    data = get("data")
    tx = get("transactionHash")
    bh = get("blockHash")
    bn = get("blockNumber")
    li = get("logIndex")
    ts = get("blockTimestamp")
    if not (type(topics) is list and len(topics) == 4 and type(address) is str
            and type(data) is str and type(tx) is str and type(bh) is str
            and type(bn) is str and type(li) is str and (ts is None or type(ts) is str)):
        return decode_order_filled_reference(log, exchanges)
    t0, t1, t2, t3 = topics
    layout = _LAYOUTS.get(t0) if type(t0) is str else None
    exchange = address.lower()
    if (layout is None or exchange not in exchanges
            or type(t1) is not str or type(t2) is not str or type(t3) is not str
            or not len(t1) == len(t2) == len(t3) == len(tx) == len(bh) == 66
            or len(data) != layout[1]
            or bn[:2] != "0x" or len(bn) > 18 or li[:2] != "0x" or len(li) > 18
            or (ts is not None and (ts[:2] != "0x" or len(ts) > 18))):
        return decode_order_filled_reference(log, exchanges)
    # One string: t1 @0, t2 @66, t3 @132, tx @198, bh @264, data @330, each "0x" checked
    # where it belongs (every length is checked above); a2b_hex is strict (hex digits only,
    # no whitespace), so it proves the rest hex.
    j = "".join((t1, t2, t3, tx, bh, data))
    try:
        raw = a2b_hex(j[2:66] + j[68:132] + j[134:198] + j[200:264] + j[266:330] + j[332:])
        block_number = int(bn, 16)  # the same parse and bounds as _quantity's
        log_index = int(li, 16)
        block_ts = None if ts is None else int(ts, 16)
    except ValueError:  # binascii.Error is one
        return decode_order_filled_reference(log, exchanges)
    if (j[0:331:66] != "000000" or j[1:332:66] != "xxxxxx"
            or not 0 <= block_number <= MAX_QUANTITY or not 0 <= log_index <= MAX_QUANTITY
            or (block_ts is not None and not 0 <= block_ts <= MAX_QUANTITY)):
        return decode_order_filled_reference(log, exchanges)
    if raw[32:44] != _ZERO12 or raw[64:76] != _ZERO12:  # maker/taker: not addresses
        return decode_order_filled_reference(log, exchanges)
    frm = int.from_bytes
    side: Side
    if layout[0] == 1:  # makerAssetId, takerAssetId, makerAmount, takerAmount, fee
        if raw[160:192] == _ZERO32:  # the maker gives USDC: BUY the taker asset
            side, token = "BUY", frm(raw[192:224], "big")
        elif raw[192:224] == _ZERO32:
            side, token = "SELL", frm(raw[160:192], "big")
        else:  # not a USDC trade: the reference raises
            return decode_order_filled_reference(log, exchanges)
    else:  # side (uint8), tokenId, makerAmount, takerAmount, fee, builder, metadata
        if raw[160:191] != _ZERO31 or raw[191] > 1:
            return decode_order_filled_reference(log, exchanges)
        side = "BUY" if raw[191] == 0 else "SELL"
        token = frm(raw[192:224], "big")
    if token == 0:  # collateral on both sides (V1) or no token (V2): the reference raises
        return decode_order_filled_reference(log, exchanges)
    s = j[:330].lower()  # topics and hashes lower-cased once
    tx_hash = s[198:264]
    trade = _TradeFields(
        f"{tx_hash}:{log_index}",  # polyvocab.trade_id (tx_hash is lower-case already)
        tx_hash, log_index, "0x" + s[92:132], side, str(token),
        frm(raw[224:256], "big"), frm(raw[256:288], "big"), frm(raw[288:320], "big"),
        block_number, s[264:330], block_ts, exchange, layout[0], "0x" + s[158:198],
        s[0:66])
    trade.__class__ = Trade  # type: ignore[assignment]
    return trade  # type: ignore[return-value]


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
            if token == 0:
                raise DecodeError("V2 OrderFilled with tokenId 0 (no outcome token)")
    except DecodeError:
        raise
    except Exception as exc:  # eth-abi raises several types; all mean "not this layout"
        raise DecodeError(f"eth-abi could not decode V{version} OrderFilled: {exc}") from None
    return _build(log, version, topics, side, token, maker_amount, taker_amount, fee)
