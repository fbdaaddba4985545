"""The hand-sliced ``decode_order_filled`` against its eth-abi reference.

Property 1: for any valid ``OrderFilled`` log (V1 or V2, every word up to 2**256-1, any
32-byte hashes and topics, upper- or lower-case hex, a checksummed exchange address, hex or
int quantities, with or without a block timestamp) both give the same :class:`Trade`, and
for the usual form (what a node sends) the hand path decodes it without the reference.
Property 2: for any mutated or garbage log both raise the same error (type and message),
or both decode it to the same trade. Hypothesis runs derandomized, as in ``test_fuzz.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitor.trades as trades
from monitor.bounds import MAX_QUANTITY
from monitor.trades import DecodeError, Trade, decode_order_filled, decode_order_filled_reference
from polyvocab import DEFAULT_EXCHANGES, ORDER_FILLED_V1, ORDER_FILLED_V2, trade_id

PROPERTY = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

U256 = st.integers(min_value=0, max_value=2**256 - 1)
SMALL = st.integers(min_value=0, max_value=2**64)  # realistic amounts, and edges
AMOUNT = st.one_of(U256, SMALL, st.sampled_from([0, 1, 2**255, 2**256 - 1]))
WORD32 = st.binary(min_size=32, max_size=32)
ADDR20 = st.binary(min_size=20, max_size=20)
QTY = st.one_of(st.integers(0, 2**40), st.sampled_from([0, MAX_QUANTITY]))


def _hex(b: bytes, upper: bool) -> str:
    h = b.hex()
    return "0x" + (h.upper() if upper else h)


def _checksum_like(address: str, mask: int) -> str:
    """The address with some letters upper-cased (any mixed case, as a checksum gives)."""
    return "0x" + "".join(c.upper() if mask >> i & 1 else c
                          for i, c in enumerate(address[2:]))


@st.composite
def valid_logs(draw: st.DrawFn, usual: bool = False) -> dict[str, Any]:
    """A valid OrderFilled log. ``usual``: the form nodes send (lower-case hex strings)."""
    version = draw(st.sampled_from([1, 2]))
    token = draw(AMOUNT.filter(bool))  # token 0 is the collateral: see the error properties
    if version == 1:
        buy = draw(st.booleans())
        words = [0, token] if buy else [token, 0]
        words += [draw(AMOUNT), draw(AMOUNT), draw(AMOUNT)]
        t0 = ORDER_FILLED_V1
    else:
        words = [draw(st.integers(0, 1)), token, draw(AMOUNT), draw(AMOUNT), draw(AMOUNT),
                 int.from_bytes(draw(WORD32), "big"), int.from_bytes(draw(WORD32), "big")]
        t0 = ORDER_FILLED_V2

    def up() -> bool:
        return False if usual else draw(st.booleans())

    def padded(addr: bytes) -> bytes:  # an indexed address: 12 zero bytes above it
        return bytes(12) + addr

    def qty() -> Any:
        n = draw(QTY)
        return n if not usual and draw(st.booleans()) else hex(n)

    address = draw(st.sampled_from(DEFAULT_EXCHANGES))
    if not usual:
        address = _checksum_like(address, draw(st.integers(0, 2**40 - 1)))
    data = b"".join(w.to_bytes(32, "big") for w in words)
    return {
        "address": address,
        "topics": [t0.upper().replace("0X", "0x") if up() else t0, _hex(draw(WORD32), up()),
                   _hex(padded(draw(ADDR20)), up()), _hex(padded(draw(ADDR20)), up())],
        "data": _hex(data, up()),
        "blockNumber": qty(),
        "blockHash": _hex(draw(WORD32), up()),
        "blockTimestamp": draw(st.one_of(st.none(), st.just(0).map(lambda _: qty()))),
        "transactionHash": _hex(draw(WORD32), up()),
        "transactionIndex": hex(draw(st.integers(0, 500))),
        "logIndex": qty(),
        "removed": False,
    }


def _outcome(decoder: Any, log: Any) -> Any:
    try:
        return decoder(log)
    except Exception as exc:  # the type is the point
        return (type(exc), str(exc))


@PROPERTY
@given(valid_logs())
def test_hand_path_equals_eth_abi_on_any_valid_log(log: dict[str, Any]) -> None:
    fast, ref = decode_order_filled(log), decode_order_filled_reference(log)
    assert type(fast) is Trade and fast == ref and hash(fast) == hash(ref)
    assert fast.to_dict() == ref.to_dict()
    assert fast.id == trade_id(ref.tx_hash, ref.log_index)


@PROPERTY
@given(valid_logs(usual=True))
def test_the_usual_form_is_decoded_by_the_hand_path_alone(log: dict[str, Any]) -> None:
    ref = decode_order_filled_reference(log)
    with mock.patch.object(trades, "decode_order_filled_reference",
                           side_effect=AssertionError("fell back to eth-abi")):
        fast = decode_order_filled(log)
    assert fast == ref


def test_a_hand_path_trade_is_a_frozen_trade() -> None:
    log = {"address": DEFAULT_EXCHANGES[2], "topics": [ORDER_FILLED_V2, "0x" + "ab" * 32,
                                                       "0x" + "00" * 12 + "11" * 20,
                                                       "0x" + "00" * 12 + "22" * 20],
           "data": "0x" + "".join(f"{w:064x}" for w in (1, 7, 6, 3, 0, 0, 0)),
           "blockNumber": "0x10", "blockHash": "0x" + "cd" * 32, "blockTimestamp": None,
           "transactionHash": "0x" + "ef" * 32, "logIndex": "0x2"}
    t = decode_order_filled(log)
    assert type(t) is Trade and t.side == "SELL" and t.price == 0.5
    assert dataclasses.replace(t) == t and {t: 1}[decode_order_filled_reference(log)] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.side = "BUY"  # type: ignore[misc]


# -- mutated and garbage logs ----------------------------------------------------------------

JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=40),
                        st.sampled_from(["0x", "0X", "0xZZ", "0x" + "f" * 80, "-0x1", "1e309",
                                         " 0x1", "0x1 ", "0x_1", "0x" + "0" * 17 + "1",
                                         hex(MAX_QUANTITY + 1), "0x" + "f" * 16]))
JSON = st.recursive(JSON_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=20)
STR_FIELDS = ["address", "data", "blockHash", "transactionHash", "blockNumber", "logIndex",
              "blockTimestamp", "topic0", "topic1", "topic2", "topic3"]


@st.composite
def string_edits(draw: st.DrawFn, value: str) -> str:
    """Small edits that keep the field a string: the cases a strict parser must see."""
    i = draw(st.integers(0, len(value)))
    junk = draw(st.one_of(st.sampled_from([" ", "\t", "\n", "0x", "0X", "x", "g", "G", "é",
                                           "00", "0", "_", "-", "\u0660"]),
                          st.text(max_size=3)))
    how = draw(st.sampled_from(["insert", "replace", "cut", "prefix", "case", "swap_prefix"]))
    if how == "insert":
        return value[:i] + junk + value[i:]
    if how == "replace":
        return value[:i] + junk + value[i + len(junk):]
    if how == "cut":
        return value[:i]
    if how == "prefix":
        return junk + value[2:]
    if how == "case":
        return value.upper()
    return value[2:4] + value[:2] + value[4:]


@st.composite
def mutated_logs(draw: st.DrawFn) -> Any:
    """A valid log with one to three fields edited, replaced by JSON or dropped."""
    log = draw(valid_logs())
    log["topics"] = list(log["topics"])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["edit", "json", "drop", "topics"]))
        key = draw(st.sampled_from(STR_FIELDS))
        container: Any = log
        k: Any = key
        if key.startswith("topic"):
            container, k = log.get("topics"), int(key[-1])
            if not isinstance(container, list) or k >= len(container):
                continue
        if kind == "edit" and isinstance(container.get(k) if container is log
                                         else container[k], str):
            container[k] = draw(string_edits(container[k]))
        elif kind == "json":
            container[k] = draw(JSON)
        elif kind == "drop" and container is log:
            log.pop(k, None)
        elif kind == "topics":
            log["topics"] = draw(st.sampled_from([log["topics"][:3], log["topics"] * 2, [],
                                                  tuple(log["topics"]), "0x"]))
    return log


@st.composite
def shifted_boundary(draw: st.DrawFn) -> dict[str, Any]:
    """Characters moved from one fixed-length field to its neighbour (topic1 .. data, the
    order the hand path joins them): every field keeps its "0x" where a join would look."""
    log = draw(valid_logs(usual=True))
    log["topics"] = list(log["topics"])
    names = ["t1", "t2", "t3", "transactionHash", "blockHash", "data"]
    i = draw(st.integers(0, len(names) - 2))
    n = draw(st.integers(1, 3))

    def get(name: str) -> str:
        return str(log["topics"][int(name[1])] if name[0] == "t" and len(name) == 2
                   else log[name])

    def put(name: str, value: str) -> None:
        if name[0] == "t" and len(name) == 2:
            log["topics"][int(name[1])] = value
        else:
            log[name] = value

    a, b = get(names[i]), get(names[i + 1])
    if draw(st.booleans()):
        a, b = a + b[:n], b[n:]
    else:
        a, b = a[:-n], a[-n:] + b
    put(names[i], a)
    put(names[i + 1], b)
    return log


@st.composite
def bad_words(draw: st.DrawFn) -> dict[str, Any]:
    """A word the layout forbids (V2 side > 1, in its low byte or above it; V1 with both
    asset ids non-zero) or a word of the wrong length."""
    log = draw(valid_logs(usual=draw(st.booleans())))
    data = log["data"]
    at = draw(st.sampled_from([0, 1]))
    w = draw(st.one_of(st.sampled_from([1, 2, 255, 256, 2**8 + 1, 2**248, 2**255]), U256))
    log["data"] = data[:2 + 64 * at] + f"{w:064x}" + data[66 + 64 * at:]
    if draw(st.booleans()):
        extra = draw(st.sampled_from([-64, -2, -1, 1, 2, 64]))
        log["data"] = log["data"][:extra] if extra < 0 else log["data"] + "0" * extra
    return log


def _near_bounds() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 2**40), st.sampled_from([0, 1, MAX_QUANTITY,
                                                             MAX_QUANTITY + 1, 2**64 - 1,
                                                             2**64]))


@st.composite
def padded_quantity(draw: st.DrawFn) -> str:
    """Hex with leading zeros: 16 digits (18 characters) is the longest accepted."""
    digits = f"{draw(_near_bounds()):x}"
    return "0x" + digits.zfill(draw(st.sampled_from([len(digits), 15, 16, 17, 18, 20])))


@st.composite
def odd_quantity(draw: st.DrawFn) -> Any:
    n = draw(_near_bounds())
    digits = f"{n:x}"
    return draw(st.sampled_from([
        "0X" + digits, "0x" + digits.upper(), "0x", "-0x" + digits, "0x-" + digits,
        " 0x" + digits, "0x" + digits + " ", "0x_" + digits, digits, str(n), n, -n - 1,
        float(n), True, None]))


@st.composite
def bad_quantities(draw: st.DrawFn) -> dict[str, Any]:
    log = draw(valid_logs(usual=draw(st.booleans())))
    key = draw(st.sampled_from(["blockNumber", "logIndex", "blockTimestamp"]))
    log[key] = draw(st.one_of(padded_quantity(), odd_quantity()))
    return log


HEX_FIELDS = ["data", "blockHash", "transactionHash", "topic0", "topic1", "topic2", "topic3"]


@st.composite
def bad_prefixes(draw: st.DrawFn) -> dict[str, Any]:
    """A fixed-length hex field whose "0x" is something else of the same length."""
    log = draw(valid_logs(usual=draw(st.booleans())))
    log["topics"] = list(log["topics"])
    key = draw(st.sampled_from(HEX_FIELDS))
    prefix = draw(st.one_of(st.sampled_from(["0X", "00", "x0", "  ", "0 ", " 0", "1x", "\u0660x",
                                             "0\t", "xx", "0x"]), st.text(min_size=2,
                                                                          max_size=2)))
    if key.startswith("topic"):
        log["topics"][int(key[-1])] = prefix + log["topics"][int(key[-1])][2:]
    else:
        log[key] = prefix + log[key][2:]
    return log


def _same_outcome(log: Any) -> None:
    fast, ref = _outcome(decode_order_filled, log), _outcome(decode_order_filled_reference, log)
    assert fast == ref
    if isinstance(ref, tuple):
        assert issubclass(ref[0], DecodeError), ref


@PROPERTY
@given(st.one_of(mutated_logs(), JSON))
def test_mutated_or_garbage_logs_fail_the_same_way_in_both(log: Any) -> None:
    _same_outcome(log)


@PROPERTY
@given(shifted_boundary())
def test_characters_moved_across_a_field_boundary_fail_the_same_way(log: Any) -> None:
    _same_outcome(log)


@PROPERTY
@given(bad_prefixes())
def test_a_field_without_its_0x_fails_the_same_way(log: Any) -> None:
    _same_outcome(log)


@PROPERTY
@given(bad_words())
def test_words_the_layout_forbids_fail_the_same_way(log: Any) -> None:
    _same_outcome(log)


@PROPERTY
@given(bad_quantities())
def test_odd_quantities_fail_or_decode_the_same_way(log: Any) -> None:
    _same_outcome(log)


@st.composite
def not_a_trade(draw: st.DrawFn) -> dict[str, Any]:
    """What no exchange emits: an indexed maker or taker with non-zero bytes above its 20
    (a node or explorer forging a watched wallet's trade in the low bytes), or no outcome
    token (V1: both asset ids zero; V2: tokenId 0)."""
    log = draw(valid_logs(usual=draw(st.booleans())))
    log["topics"] = list(log["topics"])
    if draw(st.booleans()):
        i = draw(st.sampled_from([2, 3]))
        junk = draw(st.binary(min_size=12, max_size=12).filter(any))
        log["topics"][i] = "0x" + junk.hex() + log["topics"][i][26:]
    else:
        v1 = log["topics"][0].lower() == ORDER_FILLED_V1
        body = log["data"][2:]
        body = "0" * 128 + body[128:] if v1 else body[:64] + "0" * 64 + body[128:]
        log["data"] = log["data"][:2] + body
    return log


@PROPERTY
@given(not_a_trade())
def test_a_forged_address_or_a_missing_token_is_refused_by_both(log: Any) -> None:
    fast, ref = _outcome(decode_order_filled, log), _outcome(decode_order_filled_reference, log)
    assert fast == ref and isinstance(ref, tuple) and issubclass(ref[0], DecodeError), ref


def test_a_watched_wallet_in_the_low_bytes_of_a_dirty_topic_is_no_trade_of_it() -> None:
    """A maker topic ``0xde00..00<wallet>`` decoded as the wallet's trade: a hostile node
    or explorer could make the bot copy a trade its wallet never made."""
    wallet = "11" * 20
    log = {"address": DEFAULT_EXCHANGES[2], "topics": [ORDER_FILLED_V2, "0x" + "ab" * 32,
                                                       "0xde" + "00" * 11 + wallet,
                                                       "0x" + "00" * 12 + "22" * 20],
           "data": "0x" + "".join(f"{w:064x}" for w in (0, 7, 6, 3, 0, 0, 0)),
           "blockNumber": "0x10", "blockHash": "0x" + "cd" * 32,
           "transactionHash": "0x" + "ef" * 32, "logIndex": "0x2"}
    for decode in (decode_order_filled, decode_order_filled_reference):
        with pytest.raises(DecodeError, match="topic2 \\(maker\\) is not an address"):
            decode(log)
    log["topics"][2] = "0x" + "00" * 12 + wallet
    assert decode_order_filled(log).wallet == "0x" + wallet


QUANTITY_EDGES = [hex(MAX_QUANTITY), hex(MAX_QUANTITY + 1), hex(2**64 - 1), "0x" + "0" * 16,
                  "0x" + "0" * 15 + "1", "0x" + "0" * 16 + "1", "0x" + "0" * 17 + "1", "0x",
                  "0x0", "0X1", "0xA", "0x_1", "0x1 ", " 0x1", "1", "-0x1", "0x-1", 1,
                  MAX_QUANTITY, MAX_QUANTITY + 1, -1, 1.0, True, None, "0x\u0661"]


@pytest.mark.parametrize("key", ["blockNumber", "logIndex", "blockTimestamp"])
@pytest.mark.parametrize("value", QUANTITY_EDGES)
@pytest.mark.parametrize("version", [1, 2])
def test_every_quantity_edge_decodes_or_fails_the_same_way(key: str, value: Any,
                                                           version: int) -> None:
    data = "".join(f"{w:064x}" for w in ([0, 5, 6, 7, 8] if version == 1
                                         else [1, 5, 6, 7, 8, 9, 10]))
    log = {"address": DEFAULT_EXCHANGES[0], "data": "0x" + data,
           "topics": [ORDER_FILLED_V1 if version == 1 else ORDER_FILLED_V2, "0x" + "ab" * 32,
                      "0x" + "00" * 12 + "11" * 20, "0x" + "00" * 12 + "22" * 20],
           "blockNumber": "0x10", "blockHash": "0x" + "cd" * 32, "blockTimestamp": "0x20",
           "transactionHash": "0x" + "ef" * 32, "logIndex": "0x2", key: value}
    _same_outcome(log)



def _dumps(t: Trade) -> str:
    import json
    return json.dumps(t.to_dict(), separators=(",", ":"))


@given(valid_logs())
def test_to_json_is_the_bytes_json_dumps_gives_for_any_decoded_trade(
        log: dict[str, Any]) -> None:
    """``to_json`` writes the declared field types by hand (issue 11): the outbox payload
    and the detections row's ``trade`` object stay json's bytes."""
    t = decode_order_filled(log)
    assert t.to_json() == _dumps(t)
    untimed = dataclasses.replace(t, block_timestamp=None)
    assert untimed.to_json() == _dumps(untimed)


_ODD = st.one_of(st.text(max_size=8), st.integers(-2**80, 2**80), st.none(), st.booleans(),
                 st.floats(allow_nan=True, allow_infinity=True))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_to_json_of_a_trade_with_odd_field_values_is_what_json_dumps_gives(
        data: st.DataObject) -> None:
    """Trades built by hand (``from_dict`` of a file, tests) may hold any values: text with
    quotes and non-ASCII, bools, None, huge numbers. The text is still json's."""
    base = decode_order_filled(data.draw(valid_logs(), label="log"))
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(Trade)}
    for name in data.draw(st.sets(st.sampled_from(sorted(fields)), max_size=4), label="odd"):
        fields[name] = data.draw(_ODD, label=name)
    t = Trade(**fields)
    try:
        want = _dumps(t)
    except Exception as exc:  # e.g. a text amount: the properties fail the same way
        with pytest.raises(type(exc)):
            t.to_json()
        return
    assert t.to_json() == want
