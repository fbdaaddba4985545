"""JSON-RPC 2.0 as geth/Bor answers it, over any transport (sans-I/O).

:meth:`JsonRpc.handle` takes one request body (a text or binary frame, or an HTTP body)
and returns the response text (``None`` when only notifications were sent) plus, for the
request counters, which methods were called and how they ended. Subscriptions need a
:class:`SubscriptionHost` (a WebSocket connection); over HTTP ``eth_subscribe`` does not
exist, as on geth. Installed filters (``eth_newFilter``, ``eth_newBlockFilter``,
``eth_getFilterChanges``, ``eth_getFilterLogs``, ``eth_uninstallFilter``: what web3.py's
``w3.eth.filter`` and ethers' JsonRpcProvider events poll) belong to the node
(:class:`~simulator.filters.PollFilters`, fed by the server at every published or orphaned
block) and expire after 5 unpolled minutes, as on geth.

Errors: -32700 parse error, -32600 invalid request, -32601 method not found, -32602
invalid params, -32005 limits (too many results, subscriptions), -32003 response too large
(a batch past ``max_response_bytes`` or ``max_logs_per_request``: the rest of the batch
gets this error, as on geth), -32603 internal error (a bug; logged, never a 500).

Limits and their texts come from the provider profile (``NodeSettings.profile``, see
:mod:`simulator.providers`): ``eth_getLogs`` range and result caps, HTTP and WebSocket batch
sizes.

A node that lags the head (fault ``rpc_lag``, HTTP only) is :meth:`JsonRpc.lagging`: the
same methods over a :class:`LaggingChain`, a view of the chain as a node ``blocks`` behind
it has it.

Input is bounded before it is used (:func:`parse_json`): values in a body (counted before
anything decodes it), nesting depth, digits of a number, non-finite numbers; request ids
are short scalars; quantities fit in 64 bits.

A WebSocket message is first read as geth's reader reads it (:func:`read_ws_message`: the
first JSON value; a syntax error is a -32700 with encoding/json's text and the end of the
connection). Methods that need state the replay does not have (:data:`NEEDS_STATE`) are
geth's -32601 with the reason added. An HTTP body is its first JSON value too
(:func:`read_http_body`). Request bytes are UTF-8 (an invalid byte is U+FFFD, as in Go);
a request object, a filter and a block reference are read as Go's encoding/json fills
geth's structs (:func:`_go_struct`: member names in any case, the last one wins); ids are
echoed as sent.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from polyvocab.bounds import nesting_ok
from simulator.chain import Chain, ChainBlock, Steps, run_steps
from simulator.chainshape import keccak256
from simulator.filters import (
    FILTER_TIMEOUT_S,
    FilterError,
    LogFilter,
    PollFilters,
    go_json_type,
    over_query_limit,
    parse_topic,
)
from simulator.hexutil import geth_id, parse_uint64
from simulator.providers import profile
from simulator.recording import compact_json
from simulator.settings import NodeSettings

__all__ = ["FEE_HISTORY_MAX_BLOCKS", "GO_SCAN_MAX_BYTES", "NEEDS_STATE", "PEER_COUNT", "Call",
           "JsonInputError", "JsonRpc", "LaggingChain", "RpcError", "SubscriptionHost", "WsRead",
           "error_response", "go_float", "parse_json", "read_http_body", "read_ws_message"]

log = logging.getLogger("simulator.jsonrpc")

MAX_NUMBER_DIGITS = 40  # a JSON number longer than this is refused before Python parses it
MAX_ID_CHARS = 256  # request ids are echoed back: keep them short
#: values in one request body or WebSocket message, counted before anything else reads it
#: (an upper bound: commas plus openings plus one; in strings too). Decoding costs by the
#: value, not the byte: a 32 MiB message of ``{"a":1},`` held the event loop ~7 s (the
#: depth check ~3.5 s, then the decoder twice); geth reads it in its own goroutine. The
#: most a client of ours sends is ~100,000 (a batch of 100 filters of 1,000 topics);
#: at this bound the checks and the decoder take ~0.1 s.
MAX_JSON_VALUES = 200_000
#: net_peerCount: a constant (the replay node has no peers; geth counts its p2p peers, and
#: bor's default maxpeers is 50: 32 is a node well connected, not full)
PEER_COUNT = 32
#: methods that need state the replay node does not have: refused with geth's -32601 and
#: a text that says why (other unknown methods keep geth's plain text)
NEEDS_STATE = frozenset({
    "eth_getBalance", "eth_getCode", "eth_getStorageAt", "eth_getTransactionCount",
    "eth_call", "eth_estimateGas", "eth_sendRawTransaction", "eth_createAccessList",
    "eth_getProof"})
#: eth_feeHistory: geth's full node limits (eth/ethconfig FullNodeGPO MaxHeaderHistory and
#: MaxBlockHistory: a longer blockCount is cut to it; eth/gasprice maxQueryLimit: more
#: percentiles are refused)
FEE_HISTORY_MAX_BLOCKS = 1024
FEE_HISTORY_MAX_PERCENTILES = 100
#: blocks reorgs orphaned, still found by hash (geth keeps side-chain blocks: by hash, a
#: block and its logs are served after their height was reorged; receipts and
#: transactions by hash only on the canonical chain). The newest are kept.
MAX_ORPHANS = 64


class RpcError(Exception):
    """A JSON-RPC error object: ``code``, ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SubscriptionHost(Protocol):
    """What a transport offers for ``eth_subscribe`` (a WebSocket connection)."""

    def subscribe(self, kind: str, flt: LogFilter | None, *, lo: int | None = None,
                  hi: int | None = None) -> str:
        """A new subscription's id; ``lo``/``hi``: the heights a logs subscription's
        fromBlock/toBlock allow (None: open), given only when one is set."""
        ...

    def unsubscribe(self, sub_id: str) -> bool: ...


@dataclass(slots=True)
class Call:
    """One method call as counted: ``status`` is ``ok`` or ``error``."""

    method: str
    status: str


@dataclass(slots=True)
class Reply:
    """A body's answer (None: nothing, every message a notification or a response) and the
    calls it counted. ``plain``: geth writes it as an error of the body as a whole
    (rpc/http.go httpWrite's ``isError``: a parse error, an empty or too large batch, a
    batch cut at its response limit), which its HTTP server never compresses."""

    text: str | None
    calls: list[Call] = field(default_factory=list)
    plain: bool = False


@dataclass(slots=True)
class _Budget:
    """What one request body (a call or a batch) may still spend: it belongs to the body,
    not to the node, because the server interleaves the steps of several bodies."""

    #: logs selected (a query refused past a result cap counts as its cap + 1)
    logs: int
    #: blocks outside a streamed chain's window covered (each one is rebuilt)
    rebuilt: int


class RawJson(str):
    """A result that is already JSON text (an ``eth_getLogs`` answer spliced from the
    cached texts of its logs); :func:`_dumps` puts it in the response as it is."""


class _SentFloat(float):
    """A number of a request with a fraction or an exponent, and its text as sent: an id
    is echoed as geth echoes it (its raw JSON: ``1E2``, ``1.50``, ``1e-7``), not as
    Python writes the float (``100.0``, ``1.5``, ``1e-07``)."""

    text: str

    def __new__(cls, text: str) -> _SentFloat:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


class _MinusZero(int):
    """``-0`` of a request: 0, echoed as sent (an id)."""

    text = "-0"


#: the start of every answer :func:`error_response` and :meth:`JsonRpc._one` make
_ANSWER_HEAD = '{"jsonrpc":"2.0","id":null'


def _dumps(obj: Any) -> str:
    if isinstance(obj, dict) and type(obj.get("id")) in (_SentFloat, _MinusZero):
        text = _dumps({**obj, "id": None})
        if text.startswith(_ANSWER_HEAD):  # the id as it was sent
            return f'{{"jsonrpc":"2.0","id":{obj["id"].text}{text[len(_ANSWER_HEAD):]}'
    if isinstance(obj, dict) and isinstance(obj.get("result"), RawJson):
        head = compact_json({k: v for k, v in obj.items() if k != "result"})
        return f'{head[:-1]},"result":{obj["result"]}}}'
    return compact_json(obj)



class JsonInputError(ValueError):
    """A body that is not JSON, or JSON past the bounds (the message says which)."""


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise JsonInputError(f"number with too many digits ({len(text)})")
    return _MinusZero() if text == "-0" else int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS * 2:
        raise JsonInputError(f"number with too many digits ({len(text)})")
    value = _SentFloat(text)
    if not math.isfinite(value):
        raise JsonInputError(f"number out of range ({text[:20]})")
    return value


def _parse_constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not JSON")


#: the lone surrogates "surrogateescape" makes of the bytes that are not UTF-8
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _go_utf8(raw: bytes) -> str:
    """``raw`` as Go's decoder reads UTF-8: U+FFFD for each byte that is not UTF-8
    (utf8.DecodeRune: width 1; Python's "replace" makes one of a cut sequence such as
    ``\\xe2\\x82``, Go two)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _ESCAPED_BYTE.sub("\ufffd", raw.decode("utf-8", "surrogateescape"))


def _text(body: str | bytes) -> str:
    """A body as text: UTF-8, the only encoding geth reads (Go's encoding/json; a body in
    UTF-16 or -32, which ``json.loads`` would detect by its first bytes and serve, is no
    JSON to geth: its first byte is an invalid character). An invalid byte is U+FFFD, as
    Go's decoder makes it in a string (outside one it is no JSON either way), so such a
    body is decoded with the bounds of any other."""
    if isinstance(body, str):
        return body
    return _go_utf8(body)


def _values_over(body: str | bytes, limit: int) -> bool:
    """Whether ``body`` may hold more than ``limit`` JSON values: each value past the first
    of a container follows a comma, each first one an opening (C-speed counts, no parse;
    in UTF-8 these are single bytes no other character contains)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    count = 1
    for mark in (b",", b"[", b"{"):
        count += raw.count(mark)
        if count > limit:
            return True
    return False


def parse_json(body: str | bytes, *, max_depth: int) -> Any:
    """Decode a request body with bounds: at most :data:`MAX_JSON_VALUES` values, containers
    nested at most ``max_depth`` deep, numbers of at most :data:`MAX_NUMBER_DIGITS` digits,
    finite, no ``NaN``/``Infinity``.

    Raises :class:`JsonInputError` (a ``ValueError``) with a short reason; the caller
    answers it as a client error (-32700, HTTP 400), never as a 500.
    """
    # counted on the bytes as they came: before a decoding that may fail (invalid UTF-8),
    # after which the message is read again (read_ws_message) by a scanner with no bound
    if len(body) > MAX_JSON_VALUES and _values_over(body, MAX_JSON_VALUES):
        raise JsonInputError(f"more than {MAX_JSON_VALUES} values")
    text = _text(body)
    # polyvocab's linear check, strict: the brackets of a body of a million ``[`` are
    # summed at C speed and it never reaches the recursive decoder, whatever the
    # recursion limit (one imported library raises it to 100,000)
    if not nesting_ok(text, max_depth, strict=True):
        raise JsonInputError(f"nested deeper than {max_depth} levels")
    try:
        obj = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                         parse_constant=_parse_constant)
    except JsonInputError:
        raise
    except RecursionError:
        raise JsonInputError(f"nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError, bad UTF-8, digit limit
        raise JsonInputError("not valid JSON") from None
    # no walk of the decoded object: the strict check is exact for what the decoder
    # accepts, and a walk cost as much as the decoding (~0.25 s a 1 MB body of nests)
    return obj


def _valid_id(req_id: Any) -> bool:
    """geth v1.17 rpc/json.go hasValidID: any id that is no object or array (its raw JSON
    starts with neither ``{`` nor ``[``), so ``true`` and ``false`` too (refused here as
    "invalid request" before); strings are bounded here (they are echoed back)."""
    if req_id is None or isinstance(req_id, (int, float)):  # bool is an int
        return True  # numbers are already bounded by parse_json
    return isinstance(req_id, str) and len(req_id) <= MAX_ID_CHARS


#: geth's jsonrpcMessage fields: the strings (a value of another type, or null, leaves them
#: empty) and the raw ones (json.RawMessage: any value, null too, is "present")
_GO_STRING_FIELDS = ("jsonrpc", "method")
_MESSAGE_FIELDS = ("jsonrpc", "id", "method", "params", "error", "result")
#: eth/filters FilterCriteria.UnmarshalJSON's input struct; rpc/types.go BlockNumberOrHash
_FILTER_FIELDS = ("blockHash", "fromBlock", "toBlock", "address", "topics")
_BLOCK_REF_FIELDS = ("blockNumber", "blockHash", "requireCanonical")
#: geth v1.15.11+ rpc/json.go maxMethodNameLength (bytes)
MAX_METHOD_NAME_BYTES = 2048


def _go_struct(obj: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object as Go's encoding/json hands it to a struct of the fields ``names``:
    member names match in any case (bytes.EqualFold, which ``casefold`` follows for these
    names: ``"FromBlock"``, ``"blockhash"``, ``"ID"``), the last member naming a field
    wins, other members are ignored. The usual object (exact names) is returned as is."""
    if all(key in names for key in obj):
        return obj
    folded = {name.casefold(): name for name in names}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in names else folded.get(key.casefold())
        if name is not None:
            out[name] = value
    return out


def _go_message(req: dict[str, Any]) -> dict[str, Any]:
    """A request object as Go's encoding/json fills geth's ``jsonrpcMessage``
    (:func:`_go_struct`); ``jsonrpc`` and ``method`` are kept only as strings (null, or a
    value of another type, leaves the field as it was: empty, absent here)."""
    msg = _go_struct(req, _MESSAGE_FIELDS)
    if all(type(msg.get(name, "")) is str for name in _GO_STRING_FIELDS):
        return msg
    out: dict[str, Any] = {}
    for key, value in req.items():  # again in order: a null does not undo an earlier name
        name = key if key in _MESSAGE_FIELDS else _MESSAGE_FOLDED.get(key.casefold())
        if name is None or (name in _GO_STRING_FIELDS and not isinstance(value, str)):
            continue
        out[name] = value
    return out


_MESSAGE_FOLDED = {name.casefold(): name for name in _MESSAGE_FIELDS}


def _is_response(msg: dict[str, Any]) -> bool:
    """geth's ``jsonrpcMessage.isResponse`` (of a :func:`_go_message`): version 2.0, an id
    that is no object or array (null is one), no method, no params, and a result or an
    error (null too: a json.RawMessage holding ``null`` is set)."""
    return (msg.get("jsonrpc") == "2.0" and "id" in msg
            and not isinstance(msg["id"], (dict, list)) and not msg.get("method")
            and "params" not in msg and ("result" in msg or "error" in msg))


def _first_call_id(batch: list[Any]) -> Any:
    """The id of the batch's first call (geth's ``isCall``: version 2.0, an id that is no
    object or array, a method name), else None."""
    for item in batch:
        if not isinstance(item, dict):
            continue
        msg = _go_message(item)
        if (msg.get("jsonrpc") == "2.0" and "id" in msg and _valid_id(msg["id"])
                and msg.get("method")):
            return msg["id"]
    return None


def error_response(req_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


def _arg_error(pos: int, text: str) -> RpcError:
    return RpcError(-32602, f"invalid argument {pos}: {text}")


#: hex digits as geth reads them: ASCII only. ``int(body, 16)`` alone also takes a sign,
#: whitespace, ``_`` and non-ASCII digits (``0x-1``, ``0x 5``, ``0x1_0``, ``0x\u0665``)


_MAX_INT64 = (1 << 63) - 1


def _quantity(value: Any, pos: int) -> int:
    """A block number as geth's ``rpc.BlockNumber`` reads it (tags are the caller's): its
    UnmarshalJSON takes the raw JSON text (a string's quotes stripped) to
    ``hexutil.DecodeUint64``, so a number, ``null`` or ``true`` is "hex string without
    0x prefix", ``""`` is "empty hex string", and past int64 is refused."""
    if not isinstance(value, str):
        raise _arg_error(pos, "hex string without 0x prefix")
    if not value:
        raise _arg_error(pos, "empty hex string")
    try:
        number = parse_uint64(value)
    except ValueError as exc:
        raise _arg_error(pos, str(exc)) from None
    if number > _MAX_INT64:
        raise _arg_error(pos, "block number larger than int64")
    return number


#: geth over HTTP (rpc/handler.go): eth_subscribe is ErrNotificationsUnsupported, and
#: eth_unsubscribe finds no subscription on the request's (HTTP) connection
#: (code, message); a new RpcError at each raise (a raised instance keeps its traceback)
_SUBSCRIPTION_NOT_FOUND = (-32000, "subscription not found")
#: geth v1.16+ history expiry (core/history/historymode.go PrunedHistoryError): a block,
#: or logs, below the node's history cutoff - here the first block the simulator holds
#: (a replay from block N is a node whose history before N was pruned)
_PRUNED = (4444, "pruned history unavailable")
_NO_NOTIFICATIONS = (-32601, "notifications not supported")


def _filter_bounds(obj: dict[str, Any], pos: int, earliest: int) -> tuple[int | None, int | None]:
    """A filter's fromBlock/toBlock as geth's SubscribeLogs takes them (eth_newFilter and
    eth_subscribe "logs"): heights, or None for a bound that moves with the head (missing,
    null, latest). Both quantities are decoded first (``invalid argument pos``); then
    "pending" on either side is refused; fromBlock "earliest" is the earliest block the
    node has (``earliest``: geth's history pruning cutoff, since v1.15.8 #31361); of the
    rest only latest..latest, a..b with a <= b and a..latest are a range (not latest..b,
    nor toBlock earliest, safe, finalized). Codes as geth v1.17 (#33320): both refusals
    are invalid params, -32602. A fromBlock below ``earliest`` is pruned history (4444,
    checked between the two)."""
    def height(tag: Any) -> int | str | None:
        if tag is None or tag == "latest":
            return None
        if isinstance(tag, str) and tag in _TAGS:
            return tag
        return _quantity(tag, pos)

    lo, hi = height(obj.get("fromBlock")), height(obj.get("toBlock"))
    _query_limit(obj)
    if lo == "pending" or hi == "pending":
        raise RpcError(-32602, "pending logs are not supported")
    if lo == "earliest":
        lo = earliest
    if isinstance(lo, int) and lo < earliest:
        # geth v1.17 eth/filters filter_system.go SubscribeLogs: "Queries beyond the
        # pruning cutoff are not supported", after the pending check, before the range's
        raise RpcError(*_PRUNED)
    if isinstance(lo, str) or isinstance(hi, str) or (lo is None and hi is not None) \
            or (lo is not None and hi is not None and lo > hi):
        raise RpcError(-32602, "invalid block range params")
    return lo, hi


def _parse_filter(obj: dict[str, Any], pos: int) -> LogFilter:
    """A filter object decoded in the order of geth's FilterCriteria.UnmarshalJSON:
    blockHash, fromBlock and toBlock first, then blockHash with either bound refused,
    then the addresses and the topics (every error ``invalid argument pos``)."""
    if obj.get("blockHash") is not None:
        _hash(obj["blockHash"], pos)
    for tag in (obj.get("fromBlock"), obj.get("toBlock")):
        if tag is not None and not (isinstance(tag, str) and tag in _TAGS):
            _quantity(tag, pos)
    if obj.get("blockHash") is not None and (obj.get("fromBlock") is not None
                                             or obj.get("toBlock") is not None):
        raise _arg_error(pos, "cannot specify both BlockHash and FromBlock/ToBlock, choose "
                              "one or the other")
    try:
        return LogFilter.parse(obj)
    except FilterError as exc:
        raise _arg_error(pos, str(exc)) from None


def _query_limit(obj: dict[str, Any]) -> None:
    """geth's LogQueryLimit (eth/filters, default 1,000 addresses; v1.16.4 #32327),
    checked once the filter decoded, by eth_getLogs and SubscribeLogs: a plain error
    (-32000), not invalid params. Counted as sent (duplicates too)."""
    if over_query_limit(obj):
        raise RpcError(-32000, "exceed max addresses or topics per search position")


def _filter_id(p: list[Any]) -> str:
    if not p:
        raise _missing(0)
    if not isinstance(p[0], str) or len(p[0]) > MAX_ID_CHARS:
        raise _arg_error(0, "filter id must be a string")
    _at_most(p, 1)
    return p[0]


def _missing(pos: int) -> RpcError:
    return RpcError(-32602, f"missing value for required argument {pos}")


def _at_most(p: list[Any], most: int) -> None:
    """geth's parseArgumentArray: an argument past the method's last one is refused, once
    those before it decoded (-32602), so a client bug that sends one too many (or a
    required one too few: :func:`_missing`) fails here as it fails on a real node."""
    if len(p) > most:
        raise RpcError(-32602, f"too many arguments, want at most {most}")


def _no_args(fn: Callable[[], Any]) -> Callable[[list[Any], SubscriptionHost | None], Any]:
    """A method without arguments (eth_chainId, eth_blockNumber, ...)."""
    def method(p: list[Any], h: SubscriptionHost | None) -> Any:
        _at_most(p, 0)
        return fn()
    return method


def _hash(value: Any, pos: int) -> str:
    """A ``common.Hash`` argument (block or transaction hash) as geth decodes it."""
    if not isinstance(value, str):  # hexutil.UnmarshalFixedJSON: null and numbers alike
        raise _arg_error(pos, "json: cannot unmarshal non-string into Go value of type "
                              "common.Hash")
    # geth v1.17 common/hexutil/json.go UnmarshalFixedText, in its order: the prefix, an
    # odd length (both hexutil decErrors, which wrapTypeError words as a json type error),
    # the length (not wrapped; "" is a length of 0), then the digits (wrapped). This took
    # the filter's topic texts: "hex string without 0x prefix", "invalid hex string '..'"
    wrapped = "json: cannot unmarshal {} into Go value of type common.Hash"
    if value and not value.startswith(("0x", "0X")):
        raise _arg_error(pos, wrapped.format("hex string without 0x prefix"))
    body = value[2:]
    if len(body) % 2:
        raise _arg_error(pos, wrapped.format("hex string of odd length"))
    if len(body) != 64:
        raise _arg_error(pos, f"hex string has length {len(body)}, want 64 for common.Hash")
    try:
        return parse_topic(value)
    except FilterError:
        raise _arg_error(pos, wrapped.format("invalid hex string")) from None


def _bool(value: Any, pos: int) -> bool:
    if value is None:  # Go's json: null into a bool is no error and leaves it false
        return False
    if not isinstance(value, bool):
        # Go's UnmarshalTypeError names the JSON type (string, number, object, array:
        # go_json_type), not Python's (str, int, dict, list as before)
        raise _arg_error(pos, f"json: cannot unmarshal {go_json_type(value)} into Go value "
                              f"of type bool")
    return value


#: what stays unchanged of hexutil's texts when they are wrapped as a json type error
_HEX_BODY = re.compile(r"[0-9a-fA-F]*")


def _hexutil_uint(value: Any, pos: int) -> int:
    """A ``hexutil.Uint`` argument (a transaction or uncle index) as geth decodes it
    (common/hexutil/json.go Uint.UnmarshalJSON): a string, else "non-string"; ``""`` is 0;
    then Uint64.UnmarshalText's checks in its order (prefix, ``0x`` alone, leading zeros,
    more than 16 digits, then the digits), each wrapped as a json type error."""
    wrapped = "json: cannot unmarshal {} into Go value of type hexutil.Uint"
    if not isinstance(value, str):
        raise _arg_error(pos, wrapped.format("non-string"))
    if not value:
        return 0
    if not value.startswith(("0x", "0X")):
        raise _arg_error(pos, wrapped.format("hex string without 0x prefix"))
    body = value[2:]
    if not body:
        raise _arg_error(pos, wrapped.format('hex string "0x"'))
    if len(body) > 1 and body[0] == "0":
        raise _arg_error(pos, wrapped.format("hex number with leading zero digits"))
    if len(body) > 16:
        raise _arg_error(pos, wrapped.format("hex number > 64 bits"))
    if _HEX_BODY.fullmatch(body) is None:
        raise _arg_error(pos, wrapped.format("invalid hex string"))
    return int(body, 16)


def _hexutil_bytes(value: Any, pos: int) -> bytes:
    """A ``hexutil.Bytes`` argument (web3_sha3's data) as geth decodes it: a string, else
    "non-string"; ``""`` is no bytes; the prefix, an even length, then hex digits (each
    error wrapped as a json type error)."""
    wrapped = "json: cannot unmarshal {} into Go value of type hexutil.Bytes"
    if not isinstance(value, str):
        raise _arg_error(pos, wrapped.format("non-string"))
    if not value:
        return b""
    if not value.startswith(("0x", "0X")):
        raise _arg_error(pos, wrapped.format("hex string without 0x prefix"))
    body = value[2:]
    if len(body) % 2:
        raise _arg_error(pos, wrapped.format("hex string of odd length"))
    if _HEX_BODY.fullmatch(body) is None:
        raise _arg_error(pos, wrapped.format("invalid hex string"))
    return bytes.fromhex(body)


_DECIMAL = re.compile(r"[0-9]+")
_HEX_DIGITS_1 = re.compile(r"[0-9a-fA-F]+")


def _hex_or_decimal64(value: Any, pos: int) -> int:
    """eth_feeHistory's blockCount, a ``math.HexOrDecimal64``: the raw JSON text (a
    string's quotes stripped) read by math.ParseUint64 (``""`` is 0, ``0x`` + hex digits,
    or decimal digits; leading zeros allowed; at most 64 bits), else "invalid hex or
    decimal integer" with the text quoted as Go's %q."""
    if isinstance(value, str):
        raw = value
    else:  # a number, true, false, null, an object or array: its JSON text
        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    number: int | None = None
    if not raw:
        number = 0
    elif raw.startswith(("0x", "0X")):
        if _HEX_DIGITS_1.fullmatch(raw[2:]):
            number = int(raw[2:], 16)
    elif _DECIMAL.fullmatch(raw):
        number = int(raw)
    if number is None or number >= 1 << 64:
        raise _arg_error(pos, "invalid hex or decimal integer "
                         + json.dumps(raw, ensure_ascii=False))
    return number


def _percentiles(value: Any, pos: int) -> list[float]:
    """eth_feeHistory's rewardPercentiles, a ``[]float64``: null is none; an element null
    is 0 (Go's json); any other non-number is a json type error."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _arg_error(pos, f"json: cannot unmarshal {go_json_type(value)} into Go value "
                              f"of type []float64")
    out: list[float] = []
    for item in value:
        if item is None:
            out.append(0.0)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise _arg_error(pos, f"json: cannot unmarshal {go_json_type(item)} into Go "
                                  f"value of type float64")
        else:
            out.append(float(item))
    return out


def go_float(value: float) -> str:
    """A float64 as Go's encoding/json writes it: the shortest digits, fixed notation
    (``0``, ``1``, ``0.25``), exponent form below 1e-6 or from 1e21 (``1e-7``)."""
    if value == 0:
        return "0"
    if 1e-6 <= abs(value) < 1e21:
        return format(Decimal(repr(value)).normalize(), "f")
    text = repr(value)  # 'e' form: Go's cleanup turns e-07 into e-7
    if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
        text = text[:-2] + text[-1]
    return text


# -- WebSocket messages as geth reads them (rpc/client.go read, gorilla's ReadJSON) ------------
_GO_MAX_DEPTH = 10000  # encoding/json scanner maxNestingDepth
_GO_SPACE = b" \t\r\n"
_GO_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
               0x5C: "\\\\"}
_STRING_RUN = re.compile(rb'[^"\\\x00-\x1f]+')
_DIGIT_RUN = re.compile(rb"[0-9]+")
_SPACE_RUN = re.compile(rb"[ \t\r\n]+")


def _go_quote(text: str) -> str:
    """Go's strconv.Quote (fmt's ``%q``): printable characters as they are, ``\\`` and
    ``"`` escaped, the C escapes, other characters as ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN``
    (a lone surrogate: Go decoded it as U+FFFD)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code in _GO_ESCAPES:
            out.append(_GO_ESCAPES[code])
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _go_quote_char(c: int) -> str:
    """encoding/json's quoteChar: the byte as a Go rune literal (strconv.Quote's escapes)."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c in _GO_ESCAPES:
        text = _GO_ESCAPES[c]
    elif c < 0x20 or c == 0x7F:
        text = f"\\x{c:02x}"
    elif 0x80 <= c <= 0xA0 or c == 0xAD:  # not printable (strconv.IsPrint)
        text = f"\\u{c:04x}"
    else:
        text = chr(c)
    return f"'{text}'"


class _GoSyntaxError(Exception):
    pass


class _GoEof(Exception):
    pass


def _go_first_value(data: bytes) -> int:
    """The end of the first JSON value of ``data`` as Go's json.Decoder reads it (what
    follows it is not looked at). Raises :class:`_GoSyntaxError` with encoding/json's
    text (``invalid character 'x' looking for beginning of value``) or :class:`_GoEof`
    when the message ends before a whole value (io.EOF / io.ErrUnexpectedEOF)."""
    n = len(data)
    i = 0
    stack: list[bool] = []  # True: an object

    def fail(at: int, context: str) -> _GoSyntaxError:
        return _GoSyntaxError(f"invalid character {_go_quote_char(data[at])} {context}")

    def space(at: int) -> int:
        m = _SPACE_RUN.match(data, at)
        at = m.end() if m else at
        if at >= n:
            raise _GoEof
        return at

    def string(at: int) -> int:  # data[at] is the opening quote
        at += 1
        while True:
            m = _STRING_RUN.match(data, at)
            if m:
                at = m.end()
            if at >= n:
                raise _GoEof
            c = data[at]
            if c == 0x22:
                return at + 1
            if c != 0x5C:
                raise fail(at, "in string literal")
            at += 1
            if at >= n:
                raise _GoEof
            if data[at] in b'bfnrt\\/"':
                at += 1
            elif data[at] == 0x75:  # u
                at += 1
                for _ in range(4):
                    if at >= n:
                        raise _GoEof
                    if data[at] not in b"0123456789abcdefABCDEF":
                        raise fail(at, "in \\u hexadecimal character escape")
                    at += 1
            else:
                raise fail(at, "in string escape code")

    def digits(at: int) -> int:
        m = _DIGIT_RUN.match(data, at)
        return m.end() if m else at

    def number(at: int) -> int:  # ends at the first byte that cannot extend it
        if data[at] == 0x2D:  # -
            at += 1
            if at >= n:
                raise _GoEof
            if data[at] not in b"0123456789":
                raise fail(at, "in numeric literal")
        at = at + 1 if data[at] == 0x30 else digits(at)
        if at < n and data[at] == 0x2E:  # .
            at += 1
            if at >= n:
                raise _GoEof
            if data[at] not in b"0123456789":
                raise fail(at, "after decimal point in numeric literal")
            at = digits(at)
        if at < n and data[at] in b"eE":
            at += 1
            if at < n and data[at] in b"+-":
                at += 1
            if at >= n:
                raise _GoEof
            if data[at] not in b"0123456789":
                raise fail(at, "in exponent of numeric literal")
            at = digits(at)
        if at >= n and stack:
            raise _GoEof
        return at

    def literal(at: int, word: bytes) -> int:
        for k in range(1, len(word)):
            if at + k >= n:
                raise _GoEof
            if data[at + k] != word[k]:
                expect = chr(word[k])
                raise fail(at + k, f"in literal {word.decode()} (expecting '{expect}')")
        return at + len(word)

    def push(at: int, obj: bool) -> None:
        stack.append(obj)
        if len(stack) > _GO_MAX_DEPTH:
            raise fail(at, "exceeded max depth")

    def key(at: int) -> int:  # an object's key and its colon: where its value begins
        if data[at] != 0x22:
            raise fail(at, "looking for beginning of object key string")
        at = space(string(at))
        if data[at] != 0x3A:
            raise fail(at, "after object key")
        return at + 1

    while True:
        # a value begins
        i = space(i)
        c = data[i]
        if c == 0x7B:  # {
            push(i, True)
            i = space(i + 1)
            if data[i] == 0x7D:
                i += 1
                stack.pop()
            else:
                i = key(i)
                continue
        elif c == 0x5B:  # [
            push(i, False)
            i = space(i + 1)
            if data[i] == 0x5D:
                i += 1
                stack.pop()
            else:
                continue
        elif c == 0x22:
            i = string(i)
        elif c == 0x2D or 0x30 <= c <= 0x39:
            i = number(i)
        elif c in (0x74, 0x66, 0x6E):  # t f n
            i = literal(i, {0x74: b"true", 0x66: b"false", 0x6E: b"null"}[c])
        else:
            raise fail(i, "looking for beginning of value")
        # the value ended: close containers until one wants another value
        while True:
            if not stack:
                return i
            i = space(i)
            c = data[i]
            if stack[-1]:
                if c == 0x2C:
                    i = key(space(i + 1))
                    break
                if c == 0x7D:
                    stack.pop()
                    i += 1
                    continue
                raise fail(i, "after object key:value pair")
            if c == 0x2C:
                i += 1
                break
            if c == 0x5D:
                stack.pop()
                i += 1
                continue
            raise fail(i, "after array element")


@dataclass(frozen=True, slots=True)
class WsRead:
    """What geth makes of one WebSocket message (rpc/client.go ``read``: gorilla's
    ReadJSON, a json.Decoder's first value of the message).

    ``body``: the request to answer (the message's first JSON value; what follows it is
    ignored), or None: the connection is closed (read returned). ``reply``: a -32700
    answer to send before closing (a JSON syntax error; none when the message ended
    before a whole value, io.ErrUnexpectedEOF)."""

    body: str | bytes | None
    reply: str | None = None
    #: ``body`` decoded (by :func:`parse_json`), when reading it did: :meth:`JsonRpc.steps`
    #: takes it instead of decoding the message a second time
    payload: Any = None
    parsed: bool = False


def read_ws_message(data: str | bytes, *, max_depth: int) -> WsRead:
    """One WebSocket message as geth v1.17 reads it: a message that is one JSON value is
    served as it is; after a whole first value anything is ignored; a JSON syntax error
    gets a -32700 with encoding/json's text, then the connection closes; an empty or
    truncated message closes it without an answer. The node's own bounds (values, depth,
    digits) stay its -32700 answers on an open connection (:meth:`JsonRpc.steps`)."""
    try:
        return WsRead(data, payload=parse_json(data, max_depth=max_depth), parsed=True)
    except JsonInputError as exc:
        text = str(exc)
        if text != "not valid JSON" and not text.endswith("is not JSON"):
            return WsRead(data)  # JSON past the node's bounds: steps answers it
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > GO_SCAN_MAX_BYTES:
        return _read_large(raw)
    try:
        end = _go_first_value(raw)
    except _GoSyntaxError as exc:
        return WsRead(None, _dumps(error_response(None, -32700, str(exc))))
    except _GoEof:
        return WsRead(None)
    return WsRead(_go_utf8(raw[:end]))


def read_http_body(data: bytes, *, max_depth: int) -> WsRead:
    """An HTTP request body as geth v1.17 reads it (rpc/http.go newHTTPServerConn: a
    json.Decoder's first value; server.go serveSingleRequest): after a whole first value
    anything is ignored (``{..} junk`` is served); a body that is no JSON, or ends before a
    whole value, is answered -32700 "parse error" (messageForReadError; the server answers
    a body of white space alone with nothing, before this)."""
    read = read_ws_message(data, max_depth=max_depth)
    if read.body is None:
        return WsRead(None, _dumps(error_response(None, -32700, "parse error")))
    return read


#: a message that is not JSON is scanned byte by byte as Go's scanner does up to this size
#: (~0.1 s); a longer one is read by Python's decoder (:func:`_read_large`)
GO_SCAN_MAX_BYTES = 256 * 1024
#: Python's decoder's complaint -> encoding/json's context (where Python does not say
#: which container, an array's)
_PY_TO_GO = (("Expecting value", "looking for beginning of value"),
             ("Expecting property name", "looking for beginning of object key string"),
             ("Expecting ':' delimiter", "after object key"),
             ("Expecting ',' delimiter", "after array element"),
             ("Invalid control character", "in string literal"),
             ("Invalid \\uXXXX escape", "in \\u hexadecimal character escape"),
             ("Invalid \\escape", "in string escape code"))


def _read_large(raw: bytes) -> WsRead:
    """:func:`read_ws_message` past :data:`GO_SCAN_MAX_BYTES`, at the C decoder's speed (a
    32 MiB message scanned in Python held the event loop ~12 s): a whole first value is
    served as Go's decoder serves it; a message ending early closes; a syntax error gets
    -32700 with Go's words where Python's decoder gives the same position (the character
    may differ inside a number or literal, and the container in a missing-comma error)."""
    text = _go_utf8(raw)
    start = len(text) - len(text.lstrip(" \t\r\n"))
    try:
        _, end = _LARGE_DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text) or exc.msg.startswith("Unterminated string"):
            return WsRead(None)
        context = next((go for py, go in _PY_TO_GO if exc.msg.startswith(py)),
                       "looking for beginning of value")
        char = text[exc.pos].encode("utf-8", "surrogatepass")[0]
        message = f"invalid character {_go_quote_char(char)} {context}"
        return WsRead(None, _dumps(error_response(None, -32700, message)))
    except (ValueError, RecursionError):  # NaN and the like: Go's first character
        char = raw[start] if start < len(raw) else 0x20
        message = f"invalid character {_go_quote_char(char)} looking for beginning of value"
        return WsRead(None, _dumps(error_response(None, -32700, message)))
    return WsRead(text[:end])


_LARGE_DECODER = json.JSONDecoder(parse_constant=_parse_constant)


_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})

# geth v1.17's gas price oracle with its full node defaults (eth/ethconfig FullNodeGPO,
# eth/gasprice/gasprice.go): 20 blocks, the 60th percentile, the 3 lowest tips of a block
# (sampleNumber), tips under 2 wei ignored (DefaultIgnorePrice), at most 500 gwei
# (DefaultMaxPrice); before any price, the miner's 0.001 gwei (miner DefaultConfig
# GasPrice). Bor may set other numbers (UNCONFIRMED).
_GPO_BLOCKS = 20
_GPO_PERCENTILE = 60
_GPO_SAMPLE = 3
_GPO_IGNORE_WEI = 2
_GPO_MAX_WEI = 500 * 10**9
_GPO_START_WEI = 10**9 // 1000


def _wei(value: Any) -> int | None:
    """A hex quantity of a recorded block or transaction (None if absent or bad)."""
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _effective_tip(tx: dict[str, Any], base_fee: int | None) -> int:
    """geth's Transaction.EffectiveGasTip: min(tip cap, fee cap - base fee) (negative when
    the fee cap is under the base fee); a legacy or access-list transaction's caps are its
    gasPrice; no base fee: the tip cap."""
    price = _wei(tx.get("gasPrice")) or 0
    if tx.get("type") in ("0x0", "0x1", None):
        tip_cap = fee_cap = price
    else:
        tip = _wei(tx.get("maxPriorityFeePerGas"))
        fee = _wei(tx.get("maxFeePerGas"))
        tip_cap = price if tip is None else tip
        fee_cap = price if fee is None else fee
    if base_fee is None:
        return tip_cap
    return min(tip_cap, fee_cap - base_fee)
#: the root of an empty trie (geth's types.EmptyRootHash): a block without transactions
_EMPTY_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"


def _or_latest(tag: Any) -> Any:
    return "latest" if tag is None else tag


class LaggingChain:
    """The chain as a node ``blocks`` behind its head has it (the provider's HTTP node
    lagging its WebSocket node; fault ``rpc_lag``), read live from ``chain``.

    Its head is ``blocks`` below the chain's: a block above it is unknown (by number, by
    hash, its logs and transactions), as geth answers for a block it does not have yet.
    Where a reorg made while the chain's head was above this head replaced blocks at or
    below it, this node still has the replaced blocks (old hashes, old logs):
    :meth:`Chain.replaced_at`. Offers what :class:`JsonRpc` reads of a :class:`Chain`.
    """

    def __init__(self, chain: Chain, blocks: int) -> None:
        self.chain = chain
        self.blocks = blocks
        self.chain_id = chain.chain_id

    @property
    def first_number(self) -> int:
        return self.chain.first_number

    @property
    def published(self) -> int:
        return max(self.chain.published - self.blocks, 0)

    @property
    def head_number(self) -> int:
        return self.chain.first_number + self.published - 1

    @property
    def rebuilt(self) -> int:
        return self.chain.rebuilt

    def _replaced(self) -> dict[int, ChainBlock]:
        return self.chain.replaced_at(self.head_number)

    def block(self, number: int) -> ChainBlock | None:
        if number > self.head_number:
            return None
        return self._replaced().get(number) or self.chain.block(number)

    def block_by_hash(self, block_hash: str) -> ChainBlock | None:
        replaced = self._replaced()
        block = self.chain.block_by_hash(block_hash)
        if block is not None and block.number <= self.head_number \
                and block.number not in replaced:
            return block
        key = block_hash.lower()
        return next((b for b in replaced.values() if b.hash.lower() == key), None)

    def tx(self, tx_hash: str) -> tuple[ChainBlock, int] | None:
        replaced = self._replaced()
        found = self.chain.tx(tx_hash)
        if found is not None and found[0].number <= self.head_number \
                and found[0].number not in replaced:
            return found
        key = tx_hash.lower()
        for block in replaced.values():
            for i, h in enumerate(block.tx_hashes):
                if h.lower() == key:
                    return block, i
        return None

    def outside_window(self, start: int, stop: int) -> int:
        return self.chain.outside_window(start, min(stop, self.head_number))

    def logs_json_steps(self, flt: LogFilter, start: int, stop: int,
                        limit: int | None = None) -> Steps:
        """:meth:`Chain.logs_json_steps` over this node's blocks (none above its head)."""
        replaced = self._replaced()
        numbers = range(max(start, self.first_number), min(stop, self.head_number) + 1)
        blocks = (b for b in (replaced.get(n) or self.chain.block(n) for n in numbers)
                  if b is not None)
        return (yield from self.chain.select_json_steps(blocks, flt, start, stop, limit))


class JsonRpc:
    """The method table of the mock node, over a :class:`Chain` (or a lagging view of it)."""

    def __init__(self, chain: Chain | LaggingChain, settings: NodeSettings | None = None,
                 *, clock_ns: Callable[[], int] = time.monotonic_ns,
                 poll_filters: PollFilters | None = None,
                 orphans: OrderedDict[str, ChainBlock] | None = None) -> None:
        """``clock_ns``: the replay's clock (installed filters expire on it);
        ``poll_filters``, ``orphans``: the node's installed filters and orphaned blocks (a
        lagging view shares its node's)."""
        self.chain = chain
        self.settings = settings or NodeSettings()
        self.profile = profile(self.settings.profile)
        self.clock_ns = clock_ns
        if poll_filters is None:
            speed = chain.chain.speed if isinstance(chain, LaggingChain) else chain.speed
            poll_filters = PollFilters(timeout_ns=int(FILTER_TIMEOUT_S * 1e9 / speed),
                                       new_id=geth_id)
        #: fed by the server at every published and orphaned block
        self.poll_filters = poll_filters
        #: lower-case hash -> block a reorg orphaned (:meth:`keep_orphan`), oldest first
        self.orphans: OrderedDict[str, ChainBlock] = OrderedDict() if orphans is None \
            else orphans
        self._lagging: dict[int, JsonRpc] = {}
        # the gas price oracle's cache (geth's lastHead, lastPrice)
        self._gpo_head: str | None = None
        self._gpo_price = _GPO_START_WEI
        self.methods: dict[str, Callable[[list[Any], SubscriptionHost | None], Any]] = {
            "eth_chainId": _no_args(lambda: hex(self.chain.chain_id)),
            "net_version": _no_args(lambda: str(self.chain.chain_id)),
            "net_listening": _no_args(lambda: True),
            "eth_syncing": _no_args(lambda: False),
            "web3_clientVersion": _no_args(lambda: self.settings.client_version),
            "eth_blockNumber": _no_args(lambda: hex(max(self.chain.head_number, 0))),
            "eth_getBlockByNumber": self._get_block_by_number,
            "eth_getBlockByHash": self._get_block_by_hash,
            "eth_getLogs": self._get_logs,
            "eth_getTransactionByHash": self._get_tx,
            "eth_getTransactionReceipt": self._get_receipt,
            "eth_getBlockReceipts": self._get_block_receipts,
            "eth_gasPrice": _no_args(self._gas_price),
            "eth_maxPriorityFeePerGas": _no_args(lambda: hex(self._suggest_tip())),
            "eth_subscribe": self._subscribe,
            "eth_unsubscribe": self._unsubscribe,
            "eth_newFilter": self._new_filter,
            "eth_newBlockFilter": self._new_block_filter,
            "eth_getFilterChanges": self._get_filter_changes,
            "eth_getFilterLogs": self._get_filter_logs,
            "eth_uninstallFilter": self._uninstall_filter,
            "web3_sha3": self._sha3,
            "eth_accounts": _no_args(lambda: []),
            "net_peerCount": _no_args(lambda: hex(PEER_COUNT)),
            "eth_getBlockTransactionCountByNumber": self._tx_count_by_number,
            "eth_getBlockTransactionCountByHash": self._tx_count_by_hash,
            "eth_getTransactionByBlockNumberAndIndex": self._tx_by_number_and_index,
            "eth_getTransactionByBlockHashAndIndex": self._tx_by_hash_and_index,
            "eth_getUncleCountByBlockNumber": self._uncle_count_by_number,
            "eth_getUncleCountByBlockHash": self._uncle_count_by_hash,
            "eth_getUncleByBlockNumberAndIndex": self._uncle_by_number_and_index,
            "eth_getUncleByBlockHashAndIndex": self._uncle_by_hash_and_index,
            "eth_feeHistory": self._fee_history,
        }

    def lagging(self, blocks: int) -> JsonRpc:
        """This node as one ``blocks`` behind the head answers (fault ``rpc_lag``): the
        same methods and limits over a :class:`LaggingChain` (one per lag, kept)."""
        rpc = self._lagging.get(blocks)
        if rpc is None:
            base = self.chain.chain if isinstance(self.chain, LaggingChain) else self.chain
            rpc = self._lagging[blocks] = JsonRpc(LaggingChain(base, blocks), self.settings,
                                                  clock_ns=self.clock_ns,
                                                  poll_filters=self.poll_filters,
                                                  orphans=self.orphans)
        return rpc

    def keep_orphan(self, block: ChainBlock) -> None:
        """A reorg orphaned ``block``: it is still found by its hash (the newest
        :data:`MAX_ORPHANS`)."""
        self.orphans[block.hash.lower()] = block
        self.orphans.move_to_end(block.hash.lower())
        while len(self.orphans) > MAX_ORPHANS:
            self.orphans.popitem(last=False)

    def block_by_hash(self, block_hash: str) -> ChainBlock | None:
        """The block named ``block_hash``, canonical or orphaned by a reorg (geth serves
        side-chain blocks by hash), that this node has (none above its head)."""
        block = self.chain.block_by_hash(block_hash)
        if block is None:
            block = self.orphans.get(block_hash.lower())
            if block is not None and block.number > self.chain.head_number:
                return None
        return block

    # -- envelope ---------------------------------------------------------------------------
    def handle(self, body: str | bytes, host: SubscriptionHost | None = None) -> Reply:
        """Answer one body: a single request or a batch. Never raises for bad input."""
        reply: Reply = run_steps(self.steps(body, host))
        return reply

    def steps(self, body: str | bytes, host: SubscriptionHost | None = None,
              read: WsRead | None = None) -> Steps:
        """:meth:`handle` in steps, returning the :class:`Reply`: it yields after each block
        it had rebuilt (``eth_getLogs`` past a streamed chain's window) and after a batch
        entry that rebuilt any, so the server lets the replay and other clients run
        meanwhile. The work itself is bounded by ``max_rebuilt_blocks``. ``read``: the
        WebSocket message as :func:`read_ws_message` read it (its decoded payload, if it
        has one, is not decoded again)."""
        s = self.settings
        if read is not None and read.parsed:
            payload = read.payload
        else:
            try:
                payload = parse_json(body, max_depth=s.max_json_depth)
            except JsonInputError as exc:
                text = "parse error" if str(exc) == "not valid JSON" \
                    else f"parse error: {exc}"
                return Reply(_dumps(error_response(None, -32700, text)), [Call("?", "error")],
                             plain=True)
        budget = _Budget(logs=s.max_logs_per_request, rebuilt=s.max_rebuilt_blocks)
        if isinstance(payload, list):
            if not payload:
                return Reply(_dumps(error_response(None, -32600, "empty batch")),
                             [Call("?", "error")], plain=True)
            limit = s.max_batch if host is None else s.max_ws_batch
            if limit is not None and len(payload) > limit:
                # geth's respondWithBatchTooLarge: a batch of one error carrying the first
                # call's id, so a client matching answers by id sees why its call failed
                refusal = error_response(_first_call_id(payload), -32600, "batch too large")
                return Reply("[" + _dumps(refusal) + "]", [Call("?", "error")], plain=True)
            calls: list[Call] = []
            out: list[str] = []
            size = 0
            cut = False  # geth's respondWithError: the batch written as an error
            for item in payload:
                if size > s.max_response_bytes or budget.logs <= 0:
                    # geth: once the batch answer is too large, the rest get this error
                    cut = True
                    resp: dict[str, Any] | None = self._refuse(item, calls)
                else:
                    rebuilt = self.chain.rebuilt
                    resp = yield from self._one(item, host, calls, budget)
                    if self.chain.rebuilt != rebuilt:  # old blocks by number or hash
                        yield
                if resp is not None:
                    text = _dumps(resp)
                    size += len(text)
                    out.append(text)
            # geth checks the size after each answer: one past it, even the last, makes
            # the batch an error's write
            cut = cut or size > s.max_response_bytes
            return Reply("[" + ",".join(out) + "]" if out else None, calls, plain=cut)
        calls = []
        resp = yield from self._one(payload, host, calls, budget)
        return Reply(_dumps(resp) if resp is not None else None, calls)

    def _label(self, method: Any) -> str:
        """The counter label of a method: its name when the node knows it, else ``?``."""
        return method if isinstance(method, str) and method in self.methods else "?"

    def _refuse(self, req: Any, calls: list[Call]) -> dict[str, Any] | None:
        """-32003 for a message past the batch's response limits, as geth's
        batchCallBuffer.respondWithError: to every message but a notification (and a
        response, which the batch dropped before), with its id; one without an id (no
        object, or no id member) gets an answer with no id member."""
        msg = _go_message(req) if isinstance(req, dict) else {}
        calls.append(Call(self._label(msg.get("method")), "error"))
        if _is_response(msg) or (msg.get("jsonrpc") == "2.0" and "id" not in msg
                                 and msg.get("method")):
            return None
        resp = error_response(msg.get("id") if _valid_id(msg.get("id")) else None, -32003,
                              "response too large")
        if "id" not in msg:
            del resp["id"]
        return resp

    def _one(self, req: Any, host: SubscriptionHost | None, calls: list[Call],
             budget: _Budget) -> Steps:
        """One call's answer (None for a notification), in steps."""
        if not isinstance(req, dict):
            calls.append(Call("?", "error"))
            return error_response(None, -32600, "invalid request")
        req = _go_message(req)
        if _is_response(req):
            # geth's handleResponses: an answer to a request of its own (none here) is
            # dropped without a reply, in a batch too ("Unsolicited RPC response")
            calls.append(Call("?", "error"))
            return None
        req_id = req.get("id")
        method = req.get("method", "")
        label = self._label(method)
        # geth's handleCallMsg: a notification (no id) or a call (an id that is no object
        # or array), both of version 2.0 with a method name; anything else is an invalid
        # request, answered with its id when it has a valid one (a notification too)
        valid_id = "id" in req and _valid_id(req_id)
        if req.get("jsonrpc") != "2.0" or not method or not (valid_id or "id" not in req):
            calls.append(Call(label, "error"))
            return error_response(req_id if valid_id else None, -32600, "invalid request")
        notification = "id" not in req
        params = req.get("params")
        try:
            size = len(method.encode("utf-8", "surrogatepass"))
            if size > MAX_METHOD_NAME_BYTES:  # geth's handleCall, before anything else
                raise RpcError(-32600, f"method name too long: {size} > "
                                       f"{MAX_METHOD_NAME_BYTES}")
            # geth v1.17 rpc/handler.go handleCall: a method named *_subscribe goes to
            # handleSubscribe, which refuses over HTTP before it reads params, then wants an
            # array (parseSubscriptionName: a missing or null params is "non-array args"
            # there, not an empty list) and a subscription of that namespace; *_unsubscribe
            # is the connection's unsubscribe whatever the namespace; any other method is
            # looked up before its params are read (parsePositionalArguments: a missing or
            # null params is no arguments, else anything but an array is "non-array args")
            if method.endswith("_subscribe"):
                if host is None:
                    raise RpcError(*_NO_NOTIFICATIONS)
                if not isinstance(params, list):
                    raise RpcError(-32602, "non-array args")
                namespace = method.partition("_")[0]
                if namespace != "eth" and params and isinstance(params[0], str):
                    raise RpcError(-32601, f"no {_go_quote(params[0])} subscription in "
                                           f"{namespace} namespace")
                method = "eth_subscribe"
            elif method.endswith("_unsubscribe"):
                method = "eth_unsubscribe"
            fn = self.methods.get(method)
            if fn is None:
                if method in NEEDS_STATE:  # geth's code for a method it does not serve
                    raise RpcError(-32601, f"the method {method} does not exist/is not "
                                           f"available: this node replays recorded blocks "
                                           f"and has no state (balances, code, storage, "
                                           f"nonces, calls, transaction pool)")
                # the whole name, as geth (at most MAX_METHOD_NAME_BYTES)
                raise RpcError(-32601, f"the method {method} does not exist/is not available")
            if params is None:
                params = []
            if not isinstance(params, list):
                raise RpcError(-32602, "non-array args")
            if method == "eth_getLogs":
                result = yield from self._get_logs_steps(params, budget)
            elif method == "eth_feeHistory":
                result = yield from self._fee_history_steps(params, budget)
            elif method == "eth_getFilterLogs":
                criteria = self._filter_criteria(params)
                result = yield from self._get_logs_steps([criteria], budget)
            else:
                result = fn(params, host)
        except RpcError as exc:
            calls.append(Call(label, "error"))
            return None if notification else error_response(req_id, exc.code, exc.message)
        except Exception:  # a bug in a method: answer like geth's panic handler, log it
            log.exception("internal error in %s", label)
            calls.append(Call(label, "error"))
            return None if notification else error_response(req_id, -32603,
                                                             "internal error")
        calls.append(Call(label, "ok"))
        if notification:
            return None
        return {"jsonrpc": "2.0", "id": req_id, "result": result}

    # -- blocks ----------------------------------------------------------------------------
    def resolve(self, tag: Any, pos: int = 0) -> int | None:
        """A block tag or number as a height (None: nothing published yet)."""
        chain = self.chain
        if isinstance(tag, str) and tag in _TAGS:
            if chain.published == 0:
                return None
            if tag == "earliest":
                return chain.first_number
            if tag in ("safe", "finalized"):
                return max(chain.head_number - self.settings.finality_depth,
                           chain.first_number)
            return chain.head_number
        return _quantity(tag, pos)

    def block_json(self, block: ChainBlock | None, full: bool) -> dict[str, Any] | None:
        if block is None:
            return None
        if not full:
            return block.rb.block
        return {**block.rb.block, "transactions": block.transactions()}

    def _get_block_by_number(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p:
            raise _missing(0)
        number = self.resolve(p[0])
        full = self._full_tx(p)
        if number is None:
            return None
        if p[0] == "pending":
            return self._pending_block(number)
        if number < self.chain.first_number:
            # geth v1.17 eth/api_backend.go BlockByNumber: no block, below the history
            # pruning cutoff -> PrunedHistoryError (a block above the head stays null)
            raise RpcError(*_PRUNED)
        return self.block_json(self.chain.block(number), full)

    def _gas_price(self) -> str:
        """geth v1.17 internal/ethapi/api.go GasPrice: the oracle's tip plus the head's
        base fee (this node answered -32601 "does not exist" for it, and for
        eth_maxPriorityFeePerGas, the tip alone)."""
        tip = self._suggest_tip()
        head = self.chain.block(self.chain.head_number)
        base_fee = None if head is None else _wei(head.rb.block.get("baseFeePerGas"))
        return hex(tip + (base_fee or 0))

    def _block_tips(self, number: int) -> list[int]:
        """geth v1.17 eth/gasprice getBlockValues: the block's transactions sorted by their
        effective tip, the first :data:`_GPO_SAMPLE` tips of at least
        :data:`_GPO_IGNORE_WEI` from senders other than the block's miner."""
        block = self.chain.block(number)
        if block is None:
            return []
        base_fee = _wei(block.rb.block.get("baseFeePerGas"))
        miner = str(block.rb.block.get("miner", "")).lower()
        tips: list[int] = []
        for tip, tx in sorted(((_effective_tip(tx, base_fee), tx)
                               for tx in block.transactions()), key=lambda t: t[0]):
            if tip < _GPO_IGNORE_WEI or str(tx.get("from", "")).lower() == miner:
                continue
            tips.append(tip)
            if len(tips) >= _GPO_SAMPLE:
                break
        return tips

    def _suggest_tip(self) -> int:
        """geth v1.17 eth/gasprice Oracle.SuggestTipCap, its goroutines taken in the order
        they were started: the last :data:`_GPO_BLOCKS` blocks' tips (a block with none
        counts the last price once; a block giving one value makes it read one block more,
        up to twice as many), their :data:`_GPO_PERCENTILE` th percentile, capped; kept
        for the head it was made for. geth stops above block 0; this node's chain begins
        at its first block held (below it geth would fail, its history pruned)."""
        head = self.chain.block(self.chain.head_number)
        if head is None:
            return self._gpo_price
        if head.hash == self._gpo_head:
            return self._gpo_price
        last = self._gpo_price
        floor = max(0, self.chain.first_number - 1)
        number = head.number
        queue: deque[int] = deque()
        while len(queue) < _GPO_BLOCKS and number > floor:
            queue.append(number)
            number -= 1
        results: list[int] = []
        while queue:
            values = self._block_tips(queue.popleft()) or [last]
            if len(values) == 1 and len(results) + 1 + len(queue) < _GPO_BLOCKS * 2 \
                    and number > floor:
                queue.append(number)
                number -= 1
            results.extend(values)
        price = last
        if results:
            results.sort()
            price = results[(len(results) - 1) * _GPO_PERCENTILE // 100]
        price = min(price, _GPO_MAX_WEI)
        self._gpo_head, self._gpo_price = head.hash, price
        return price

    def _pending_block(self, head_number: int) -> dict[str, Any] | None:
        """geth v1.17's pending block (eth/api_backend.go BlockByNumber -> miner.Pending:
        miner/miner.go getPending builds one on the current head; internal/ethapi
        GetBlockByNumber nils its hash, nonce and miner): the head's child, height head +
        1, with the transactions of the node's pool - none here (the simulated node has no
        mempool, as newPendingTransactions sends nothing) - so no gas used, an empty
        bloom and the empty tries' roots; its time the parent's + 1 (prepareWork's floor:
        a block built as the head arrives); its base fee the next block's
        (:meth:`_next_base_fee`: geth's CalcBaseFee of the head; it was the head's own).
        Other fields as the head's."""
        head = self.chain.block(head_number)
        if head is None:
            return None
        parent = head.rb.block
        fee = {} if parent.get("baseFeePerGas") is None \
            else {"baseFeePerGas": hex(self._next_base_fee(head))}
        return {**parent, **fee, "number": hex(head_number + 1), "hash": None, "nonce": None,
                "miner": None, "parentHash": head.hash,
                "timestamp": hex(int(parent["timestamp"], 16) + 1), "gasUsed": "0x0",
                "logsBloom": "0x" + "00" * 256, "transactionsRoot": _EMPTY_ROOT,
                "receiptsRoot": _EMPTY_ROOT, "transactions": []}

    def _get_block_by_hash(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p:
            raise _missing(0)
        block_hash = _hash(p[0], 0)
        full = self._full_tx(p)
        if self._pruned_hash(block_hash):
            raise RpcError(*_PRUNED)  # geth v1.17 eth/api_backend.go BlockByHash
        return self.block_json(self.block_by_hash(block_hash), full)

    def _pruned_hash(self, block_hash: str) -> bool:
        """Whether ``block_hash`` names a block below the history cutoff that the node
        knows the header of: geth keeps every header when it prunes bodies and receipts
        (v1.16+ history expiry), so by hash such a block is "pruned history
        unavailable", not unknown. The simulator knows one: the first block's parent."""
        first = self.chain.block(self.chain.first_number)
        return first is not None and first.number > 0 \
            and str(first.rb.block.get("parentHash", "")).lower() == block_hash.lower()

    @staticmethod
    def _full_tx(p: list[Any]) -> bool:
        """The second argument of eth_getBlockBy*: geth's ``fullTx bool`` is required (a
        client sending only the block got the block here and an error from a node)."""
        if len(p) < 2:
            raise _missing(1)
        full = _bool(p[1], 1)
        _at_most(p, 2)
        return full

    # -- blocks' transactions and uncles by number, hash and index ----------------------------
    # geth v1.17 internal/ethapi/api.go: every argument is decoded first (rpc.BlockNumber or
    # common.Hash, then the index, a hexutil.Uint), then backend BlockByNumber/BlockByHash
    # (eth/api_backend.go): null for a block the node does not have, PrunedHistoryError
    # (4444) below the history cutoff (the first block held), the pending block (the
    # head's child, no transactions here) for "pending".
    def _txs_by_number(self, tag: Any, number: int | None) -> list[dict[str, Any]] | None:
        """The transactions of the block ``tag`` names (resolved to ``number``), None when
        the node has no such block."""
        if number is None:
            return None
        if tag == "pending":
            return [] if self.chain.block(number) is not None else None
        if number < self.chain.first_number:
            raise RpcError(*_PRUNED)
        block = self.chain.block(number)
        return None if block is None else block.transactions()

    def _txs_by_hash(self, block_hash: str) -> list[dict[str, Any]] | None:
        if self._pruned_hash(block_hash):
            raise RpcError(*_PRUNED)
        block = self.block_by_hash(block_hash)
        return None if block is None else block.transactions()

    def _by_number(self, p: list[Any], indexed: bool) -> tuple[list[dict[str, Any]] | None, int]:
        """(the block's transactions or None, the index) of a ByNumber method's arguments."""
        if not p:
            raise _missing(0)
        number = self.resolve(p[0], 0)
        index = _hexutil_uint(p[1], 1) if indexed and len(p) > 1 else 0
        _at_most(p, 2 if indexed else 1)
        if indexed and len(p) < 2:
            raise _missing(1)
        return self._txs_by_number(p[0], number), index

    def _by_hash(self, p: list[Any], indexed: bool) -> tuple[list[dict[str, Any]] | None, int]:
        if not p:
            raise _missing(0)
        block_hash = _hash(p[0], 0)
        index = _hexutil_uint(p[1], 1) if indexed and len(p) > 1 else 0
        _at_most(p, 2 if indexed else 1)
        if indexed and len(p) < 2:
            raise _missing(1)
        return self._txs_by_hash(block_hash), index

    def _tx_count_by_number(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        txs, _ = self._by_number(p, False)
        return None if txs is None else hex(len(txs))

    def _tx_count_by_hash(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        txs, _ = self._by_hash(p, False)
        return None if txs is None else hex(len(txs))

    def _tx_by_number_and_index(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        """The transaction object eth_getTransactionByHash gives; null past the end."""
        txs, index = self._by_number(p, True)
        return txs[index] if txs is not None and index < len(txs) else None

    def _tx_by_hash_and_index(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        txs, index = self._by_hash(p, True)
        return txs[index] if txs is not None and index < len(txs) else None

    def _uncle_count_by_number(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        """Polygon's blocks have no uncles: "0x0" for a block the node has, else null."""
        txs, _ = self._by_number(p, False)
        return None if txs is None else "0x0"

    def _uncle_count_by_hash(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        txs, _ = self._by_hash(p, False)
        return None if txs is None else "0x0"

    def _uncle_by_number_and_index(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        """null: no block has an uncle (the arguments are still decoded and the block
        looked up, so a bad index or a pruned block is geth's error)."""
        self._by_number(p, True)
        return None

    def _uncle_by_hash_and_index(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        self._by_hash(p, True)
        return None

    def _sha3(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        """geth v1.17 node/api.go web3API.Sha3(input hexutil.Bytes): keccak-256 of the
        decoded bytes."""
        data = _hexutil_bytes(p[0], 0) if p else None
        _at_most(p, 1)
        if data is None:
            raise _missing(0)
        return "0x" + keccak256(data).hex()

    # -- fee history -----------------------------------------------------------------------
    def _fee_history(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        s = self.settings
        return run_steps(self._fee_history_steps(
            p, _Budget(logs=s.max_logs_per_request, rebuilt=s.max_rebuilt_blocks)))

    def _next_base_fee(self, block: ChainBlock) -> int:
        """The base fee of the block after ``block`` (geth: eip1559.CalcBaseFee of its
        header). The replay has no base-fee rule of its own - base fees come from the
        recording - so it is the next recorded block's, published or not (what the node
        will show for it); past the recording's end, ``block``'s own."""
        base = self.chain.chain if isinstance(self.chain, LaggingChain) else self.chain
        nxt = base.block(block.number + 1)
        if nxt is None:
            up = base.upcoming()
            nxt = up if up is not None and up.number == block.number + 1 else None
        return _wei((nxt or block).rb.block.get("baseFeePerGas")) or 0

    def _rewards(self, block: ChainBlock, percentiles: list[float]) -> list[int]:
        """geth v1.17 eth/gasprice/feehistory.go processBlock: the block's transactions
        sorted (stably) by effective tip (:func:`_effective_tip`, as the gas price oracle
        reads them), each weighted by its receipt's gas used (as eth_getTransactionReceipt
        gives it); for each percentile the tip of the transaction where the running sum
        of gas reaches that share of the block's gasUsed; a block without transactions: 0s."""
        txs = block.transactions()
        if not txs:
            return [0] * len(percentiles)
        base_fee = _wei(block.rb.block.get("baseFeePerGas"))
        ranked = sorted(((_effective_tip(tx, base_fee), _wei(tx.get("gas")) or 0)
                         for tx in txs), key=lambda t: t[0])
        block_gas = _wei(block.rb.block.get("gasUsed")) or 0
        out: list[int] = []
        k = 0
        total = ranked[0][1]
        for pct in percentiles:
            threshold = int(float(block_gas) * pct / 100)
            while total < threshold and k < len(ranked) - 1:
                k += 1
                total += ranked[k][1]
            out.append(ranked[k][0])
        return out

    def _fee_history_steps(self, p: list[Any], budget: _Budget) -> Steps:
        """geth v1.17 EthereumAPI.FeeHistory(blockCount math.HexOrDecimal64, lastBlock
        rpc.BlockNumber, rewardPercentiles []float64) over eth/gasprice Oracle.FeeHistory,
        in its order: blockCount 0 is an empty answer (before any other check); more than
        :data:`FEE_HISTORY_MAX_PERCENTILES` percentiles, one outside 0..100 or one not above
        the one before are "invalid reward percentile" (-32000); blockCount is cut to
        :data:`FEE_HISTORY_MAX_BLOCKS`; a lastBlock number above the head is "request beyond
        head block" (-32000); the range stops at block 0.

        Blocks the node does not hold (below its first block: a replay from block N is a
        node whose history before N was pruned): with percentiles geth reads the blocks
        and answers PrunedHistoryError (4444), so does this node; without, geth reads only
        headers, which a pruned node keeps, and this node has none: the range is cut to
        start at its first block (4444 when nothing is left). Blocks that left a streamed
        chain's window are rebuilt within ``max_rebuilt_blocks``; past it the range is cut
        to start higher (oldestBlock says where, as geth's cut ranges do)."""
        count = _hex_or_decimal64(p[0], 0) if p else None
        newest: int | str | None = None
        if len(p) > 1:
            newest = p[1] if isinstance(p[1], str) and p[1] in _TAGS else _quantity(p[1], 1)
        percentiles = _percentiles(p[2], 2) if len(p) > 2 else []
        _at_most(p, 3)
        if len(p) < 3:
            raise _missing(len(p))
        assert count is not None and newest is not None
        if count < 1:
            return RawJson('{"oldestBlock":"0x0","gasUsedRatio":null}')
        if len(percentiles) > FEE_HISTORY_MAX_PERCENTILES:
            raise RpcError(-32000, f"invalid reward percentile: over the query limit "
                                   f"{FEE_HISTORY_MAX_PERCENTILES}")
        count = min(count, FEE_HISTORY_MAX_BLOCKS)
        for i, pct in enumerate(percentiles):
            if pct < 0 or pct > 100:
                raise RpcError(-32000, f"invalid reward percentile: {pct:f}")
            if i > 0 and pct <= percentiles[i - 1]:
                raise RpcError(-32000, f"invalid reward percentile: #{i - 1}:"
                                       f"{percentiles[i - 1]:f} >= #{i}:{pct:f}")
        chain = self.chain
        head_block = chain.block(chain.head_number)
        if head_block is None:  # nothing published yet: no retrievable blocks
            return RawJson('{"oldestBlock":"0x0","gasUsedRatio":null}')
        head = head_block.number
        if isinstance(newest, int) and newest > head:
            raise RpcError(-32000, f"request beyond head block: requested {newest}, "
                                   f"head {head}")
        pending = newest == "pending"
        last = head + 1 if pending else newest if isinstance(newest, int) \
            else self.resolve(newest)
        assert last is not None
        count = min(count, last + 1)
        oldest = last + 1 - count
        first = chain.first_number
        if oldest < first:
            if percentiles or last < first:
                raise RpcError(*_PRUNED)
            oldest = first
        held_top = min(last, head)
        outside = chain.outside_window(oldest, held_top)
        if outside > budget.rebuilt:
            oldest += outside - budget.rebuilt
            outside = budget.rebuilt
        budget.rebuilt -= outside
        rewards: list[list[int]] = []
        base_fees: list[int] = []
        ratios: list[float] = []
        for number in range(oldest, last + 1):
            if pending and number == head + 1:
                # the pending block: the head's child, empty (no pool here); its base fee
                # is the next block's, and the one after it the same (no base-fee rule)
                fee = self._next_base_fee(head_block)
                base_fees[len(ratios):] = [fee, fee]
                ratios.append(0.0)
                rewards.append([0] * len(percentiles))
                continue
            rebuilt = chain.rebuilt
            block = chain.block(number)
            if chain.rebuilt != rebuilt:
                yield
            if block is None:  # gone meanwhile (a reorg shortened the chain): cut here
                break
            header = block.rb.block
            limit = _wei(header.get("gasLimit")) or 0
            used = _wei(header.get("gasUsed")) or 0
            base_fees[len(ratios):] = [_wei(header.get("baseFeePerGas")) or 0,
                                       self._next_base_fee(block)]
            ratios.append(used / limit if limit else 0.0)
            if percentiles:
                rewards.append(self._rewards(block, percentiles))
        if not ratios:
            return RawJson('{"oldestBlock":"0x0","gasUsedRatio":null}')
        zeros = ",".join("0" for _ in ratios)
        parts = [f'"oldestBlock":"{hex(oldest)}"']
        if percentiles:
            parts.append('"reward":[' + ",".join(
                "[" + ",".join(f'"{hex(r)}"' for r in row) + "]" for row in rewards) + "]")
        parts.append('"baseFeePerGas":[' + ",".join(f'"{hex(f)}"' for f in base_fees) + "]")
        parts.append('"gasUsedRatio":[' + ",".join(go_float(r) for r in ratios) + "]")
        # no header here carries blob fields (excessBlobGas, blobGasUsed): geth's zeros
        parts.append('"baseFeePerBlobGas":[' + ",".join('"0x0"' for _ in base_fees) + "]")
        parts.append('"blobGasUsedRatio":[' + zeros + "]")
        return RawJson("{" + ",".join(parts) + "}")

    # -- logs ------------------------------------------------------------------------------
    def _get_logs(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        s = self.settings
        return run_steps(self._get_logs_steps(
            p, _Budget(logs=s.max_logs_per_request, rebuilt=s.max_rebuilt_blocks)))

    def _get_logs_steps(self, p: list[Any], budget: _Budget) -> Steps:
        if not p:
            raise _missing(0)
        if not isinstance(p[0], dict):
            raise RpcError(-32602, "invalid argument 0: filter must be an object")
        obj = _go_struct(p[0], _FILTER_FIELDS)
        flt = _parse_filter(obj, 0)
        _at_most(p, 1)
        _query_limit(obj)  # once the filter decoded, as geth's GetLogs
        chain = self.chain
        s = self.settings
        only: ChainBlock | None = None  # the block named by blockHash (maybe an orphan)
        if obj.get("blockHash") is not None:
            block_hash = _hash(obj["blockHash"], 0)
            only = self.block_by_hash(block_hash)
            if only is None:
                if self._pruned_hash(block_hash):  # geth v1.17 eth/filters filter.go Logs
                    raise RpcError(*_PRUNED)
                raise RpcError(-32000, "unknown block")
            start = stop = only.number
        else:
            # only a missing or null bound is "latest" ("" or 0 is a bad quantity, as on geth)
            tags = (_or_latest(obj.get("fromBlock")), _or_latest(obj.get("toBlock")))
            # geth v1.17 eth/filters api.go GetLogs, before the filter runs: numbers
            # begin > end (both > 0) are an invalid range, then a begin below the history
            # pruning cutoff is PrunedHistoryError (4444)
            nums = [None if isinstance(t, str) and t in _TAGS else _quantity(t, 0)
                    for t in tags]
            begin, end = nums
            if begin is not None and end is not None and begin > 0 and end > 0 \
                    and begin > end:
                raise RpcError(-32602, "invalid block range params")
            if begin is not None and begin < chain.first_number:
                raise RpcError(*_PRUNED)
            if "pending" in tags:
                for tag in tags:  # geth decodes both bounds first (invalid argument 0)
                    if not (isinstance(tag, str) and tag in _TAGS):
                        _quantity(tag, 0)
                # geth (eth/filters filter.go Logs, since v1.14 #29574; -32602 since v1.17
                # #33320): no pending logs, where they were the head's
                raise RpcError(-32602, "pending logs are not supported")
            start_n = self.resolve(tags[0])
            stop_n = self.resolve(tags[1])
            if start_n is None or stop_n is None:
                return []
            if stop_n > chain.head_number and start_n <= stop_n \
                    and self.profile.beyond_head == "error":
                raise RpcError(-32602, "block range extends beyond current head block")
            start, stop = start_n, min(stop_n, chain.head_number)
            if start > stop:
                if start_n > stop_n:
                    raise RpcError(-32602, "invalid block range params")
                return []
            asked = stop - start + 1
            if (s.logs_max_range is not None and asked > s.logs_max_range
                    and self.profile.range_rule == "hard"):
                code, text = self.profile.range_error(s.logs_max_range, asked, start, stop)
                raise RpcError(code, text)
        old = chain.outside_window(start, stop)
        if old > budget.rebuilt:
            raise self._too_far_back(start, stop, budget.rebuilt)
        budget.rebuilt -= old
        cap = s.logs_max_results
        if (self.profile.range_rule == "soft" and s.logs_max_range is not None
                and stop - start + 1 <= s.logs_max_range):
            cap = None  # Alchemy: within the free range, no limit on the response size
        most = s.max_logs_per_request
        limit = most if cap is None else min(cap, most)
        if only is not None:
            base = chain.chain if isinstance(chain, LaggingChain) else chain
            logs, fitting = yield from base.select_json_steps([only], flt, start, stop, limit)
        else:
            logs, fitting = yield from chain.logs_json_steps(flt, start, stop, limit=limit)
        if logs is None and cap is not None and cap < most:
            budget.logs -= cap + 1
            code, text = self.profile.results_error(cap, s.logs_max_range, start, fitting)
            raise RpcError(code, text)
        budget.logs -= most + 1 if logs is None else len(logs)
        if logs is None:  # past the node's own bound on one body
            raise RpcError(-32005, f"query returned more than {most} results")
        return RawJson("[" + ",".join(logs) + "]")

    def _too_far_back(self, start: int, stop: int, room: int) -> RpcError:
        """The profile's refusal of a range that reaches further back than ``room`` more
        blocks outside the window: its range error where it has one, else its result-cap
        error suggesting ``[start, start + room - 1]`` (clients split the range on
        either). Rebuilding 2,000 old busy blocks took 51 s."""
        s = self.settings
        if self.profile.range_rule == "hard" and s.logs_max_range is not None:
            code, text = self.profile.range_error(room, stop - start + 1, start, stop)
        else:
            shown = s.logs_max_results or s.max_logs_per_request
            code, text = self.profile.results_error(shown, s.logs_max_range, start,
                                                    start + max(room - 1, 0))
        return RpcError(code, text)

    # -- installed filters (polled over HTTP: ethers' JsonRpcProvider events, web3.py's
    # w3.eth.filter) ---------------------------------------------------------------------------
    def _new_filter(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p:
            raise _missing(0)
        if not isinstance(p[0], dict):
            raise RpcError(-32602, "invalid argument 0: filter must be an object")
        obj = _go_struct(p[0], _FILTER_FIELDS)
        flt = _parse_filter(obj, 0)
        if obj.get("blockHash") is not None:  # a filter of one past block has no changes
            raise RpcError(-32602, "invalid argument 0: blockHash is not a filter of new "
                                   "blocks (use eth_getLogs)")
        _at_most(p, 1)
        lo, hi = _filter_bounds(obj, 0, self.chain.first_number)
        return self._install(flt, lo=lo, hi=hi, criteria=obj)

    def _new_block_filter(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        _at_most(p, 0)
        return self._install(None)

    def _install(self, flt: LogFilter | None, **where: Any) -> str:
        fid = self.poll_filters.install(flt, self.clock_ns(), **where)
        if fid is None:
            raise RpcError(-32005, f"too many filters: limit of "
                                   f"{self.poll_filters.max_filters} installed on the node")
        return fid

    def _get_filter_changes(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        found = self.poll_filters.changes(_filter_id(p), self.clock_ns())
        if found is None:
            raise RpcError(-32000, "filter not found")  # geth's errFilterNotFound
        return RawJson("[" + ",".join(found) + "]")

    def _filter_criteria(self, p: list[Any]) -> dict[str, Any]:
        criteria = self.poll_filters.log_criteria(_filter_id(p), self.clock_ns())
        if criteria is None:
            raise RpcError(-32000, "filter not found")
        return criteria

    def _get_filter_logs(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        return self._get_logs([self._filter_criteria(p)], h)

    def _uninstall_filter(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        return self.poll_filters.uninstall(_filter_id(p), self.clock_ns())

    # -- transactions -------------------------------------------------------------------------
    def _get_tx(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p:
            raise _missing(0)
        found = self.chain.tx(_hash(p[0], 0))
        _at_most(p, 1)
        if found is None:
            return None
        block, i = found
        return block.transactions()[i]

    def _get_receipt(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p:
            raise _missing(0)
        found = self.chain.tx(_hash(p[0], 0))
        _at_most(p, 1)
        if found is None:
            return None
        block, i = found
        return self._receipt(block, i)

    def _get_block_receipts(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        """geth v1.17 internal/ethapi GetBlockReceipts(blockNrOrHash): the receipts of a
        block's transactions in order (this node answered -32601 "does not exist"); null
        for a block the node does not have; the pending block's (no transactions here):
        []; below the first block held: the pruned history error, as for the block. The
        argument as rpc/types.go BlockNumberOrHash.UnmarshalJSON reads it: an object with
        blockNumber or blockHash, a tag, a 66-character hash or a hex number."""
        if not p:
            raise _missing(0)
        arg = p[0]
        _at_most(p, 1)
        block_hash: str | None = None
        number_arg: Any = None
        if isinstance(arg, dict):
            arg = _go_struct(arg, _BLOCK_REF_FIELDS)
            number_arg, block_hash = arg.get("blockNumber"), arg.get("blockHash")
            if number_arg is not None and block_hash is not None:
                raise _arg_error(0, "cannot specify both BlockHash and BlockNumber, choose "
                                    "one or the other")
            if number_arg is None and block_hash is None:
                raise _arg_error(0, "must specify either BlockHash or BlockNumber")
            if block_hash is not None:
                block_hash = _hash(block_hash, 0)
        elif not isinstance(arg, str):
            raise _arg_error(0, f"json: cannot unmarshal {go_json_type(arg)} into Go value "
                                f"of type string")
        elif arg not in _TAGS and len(arg) == 66:
            try:  # common.Hash UnmarshalText: hexutil's texts, not wrapped
                block_hash = parse_topic(arg)
            except FilterError:
                raise _arg_error(0, "hex string without 0x prefix"
                                 if not arg.startswith(("0x", "0X"))
                                 else "invalid hex string") from None
        else:
            number_arg = arg
        if block_hash is not None:
            if self._pruned_hash(block_hash):
                raise RpcError(*_PRUNED)
            block = self.block_by_hash(block_hash)
        else:
            number = self.resolve(number_arg)
            if number is None:
                return None
            if number_arg == "pending":
                return []  # miner.Pending: the head's child, no pool transactions here
            if number < self.chain.first_number:
                raise RpcError(*_PRUNED)
            block = self.chain.block(number)
        if block is None:
            return None
        return [self._receipt(block, i) for i in range(len(block.transactions()))]

    def _receipt(self, block: ChainBlock, i: int) -> dict[str, Any]:
        """The receipt of the block's ``i``-th transaction."""
        tx = block.transactions()[i]
        logs = [log for log in block.logs if log["transactionHash"].lower() == tx["hash"].lower()]
        return {
            "transactionHash": tx["hash"],
            "transactionIndex": hex(i),
            "blockHash": block.hash,
            "blockNumber": block.rb.block["number"],
            "from": tx.get("from", "0x" + "00" * 20),
            "to": tx.get("to"),
            "cumulativeGasUsed": tx.get("gas", "0x0"),
            "gasUsed": tx.get("gas", "0x0"),
            "effectiveGasPrice": tx.get("gasPrice", "0x0"),
            "contractAddress": None,
            "logs": logs,
            "logsBloom": "0x" + "00" * 256,
            "status": "0x1",
            "type": tx.get("type", "0x0"),
        }

    # -- subscriptions ----------------------------------------------------------------------
    def _subscribe(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        """geth's handleSubscribe: the name first ("expected subscription name as first
        argument", invalid params without an argument number), then the arguments of
        the named subscription with the name as argument 0: newHeads and syncing take
        none, logs a filter it requires (null is an open one), newPendingTransactions an
        optional bool; one more is "too many arguments"."""
        assert h is not None
        if not p or not isinstance(p[0], str):
            raise RpcError(-32602, "expected subscription name as first argument")
        kind = p[0]
        if kind == "newHeads":
            _at_most(p, 1)
            return h.subscribe("newHeads", None)
        if kind == "newPendingTransactions":
            # geth accepts it (an optional fullTx flag); the simulated chain has no
            # mempool, so it sends nothing - as geth does while no transaction is pending
            if len(p) > 1 and p[1] is not None and not isinstance(p[1], bool):
                raise _arg_error(1, f"json: cannot unmarshal {go_json_type(p[1])} into Go "
                                    f"value of type bool")
            _at_most(p, 2)
            return h.subscribe("newPendingTransactions", None)
        if kind == "syncing":
            # geth's DownloaderAPI.Syncing (eth namespace): a node in sync sends one
            # notification, false, and nothing after (the host sends it after the answer)
            _at_most(p, 1)
            return h.subscribe("syncing", None)
        if kind == "logs":
            if len(p) < 2:  # geth's Logs(ctx, crit FilterCriteria): not a pointer
                raise _missing(1)
            obj = p[1]
            if obj is not None and not isinstance(obj, dict):
                raise RpcError(-32602, "invalid argument 1: filter must be an object")
            if obj is not None:
                obj = _go_struct(obj, _FILTER_FIELDS)
            flt = LogFilter() if obj is None else _parse_filter(obj, 1)
            _at_most(p, 2)
            # geth's SubscribeLogs: the range is checked, and a subscription with one
            # delivers only the logs of the blocks in it (no backfill of past blocks)
            lo, hi = _filter_bounds(obj or {}, 1, self.chain.first_number)
            if lo is None and hi is None:
                return h.subscribe("logs", flt)
            return h.subscribe("logs", flt, lo=lo, hi=hi)
        # geth's subscriptionNotFoundError is a -32601 (go-ethereum's client reads that
        # code as ErrNotificationsUnsupported)
        raise RpcError(-32601, f"no {_go_quote(kind)} subscription in eth namespace")

    def _unsubscribe(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        """geth's handler.unsubscribe(ctx, subid ID): a string id, looked up as sent
        (case-sensitive; null decodes as "", which no subscription has). Over HTTP too
        (geth v1.17 rpc/handler.go handleCall: its arguments are read, then no
        subscription is found on the connection)."""
        if not p:
            raise _missing(0)
        sub_id = p[0]
        if sub_id is None:
            sub_id = ""
        elif not isinstance(sub_id, str):
            raise _arg_error(0, f"json: cannot unmarshal {go_json_type(sub_id)} into Go "
                                f"value of type rpc.ID")
        _at_most(p, 1)
        if h is None:  # over HTTP: the arguments decoded, no subscription on the request's
            raise RpcError(*_SUBSCRIPTION_NOT_FOUND)  # connection (geth v1.17 handler.go)
        if h.unsubscribe(sub_id):
            return True
        if self.profile.unsubscribe_unknown == "error":
            raise RpcError(*_SUBSCRIPTION_NOT_FOUND)
        return False
