"""JSON-RPC 2.0 as geth/Bor answers it, over any transport (sans-I/O).

:meth:`JsonRpc.handle` takes one request body (a text or binary frame, or an HTTP body)
and returns the response text (``None`` when only notifications were sent) plus, for the
request counters, which methods were called and how they ended. Subscriptions need a
:class:`SubscriptionHost` (a WebSocket connection); over HTTP ``eth_subscribe`` does not
exist, as on geth.

Errors: -32700 parse error, -32600 invalid request, -32601 method not found, -32602
invalid params, -32005 limits (too many results, subscriptions).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulator.chain import Chain, ChainBlock
from simulator.filters import FilterError, LogFilter, parse_topic
from simulator.settings import NodeSettings

__all__ = ["Call", "JsonRpc", "RpcError", "SubscriptionHost", "error_response"]


class RpcError(Exception):
    """A JSON-RPC error object: ``code``, ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SubscriptionHost(Protocol):
    """What a transport offers for ``eth_subscribe`` (a WebSocket connection)."""

    def subscribe(self, kind: str, flt: LogFilter | None) -> str: ...

    def unsubscribe(self, sub_id: str) -> bool: ...


@dataclass(slots=True)
class Call:
    """One method call as counted: ``status`` is ``ok`` or ``error``."""

    method: str
    status: str


@dataclass(slots=True)
class Reply:
    text: str | None
    calls: list[Call] = field(default_factory=list)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def error_response(req_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


def _arg_error(pos: int, text: str) -> RpcError:
    return RpcError(-32602, f"invalid argument {pos}: {text}")


def _quantity(value: Any, pos: int) -> int:
    if not isinstance(value, str):
        raise _arg_error(pos, f"json: cannot unmarshal {type(value).__name__} into Go value "
                              f"of type hexutil.Uint64")
    if not value.startswith(("0x", "0X")):
        raise _arg_error(pos, "hex string without 0x prefix")
    body = value[2:]
    if not body:
        raise _arg_error(pos, "hex string \"0x\"")
    if len(body) > 1 and body[0] == "0":
        raise _arg_error(pos, "hex number with leading zero digits")
    try:
        return int(body, 16)
    except ValueError:
        raise _arg_error(pos, "invalid hex string") from None


def _hash(value: Any, pos: int) -> str:
    try:
        return parse_topic(value)
    except FilterError as exc:
        raise _arg_error(pos, str(exc)) from None


def _bool(value: Any, pos: int) -> bool:
    if not isinstance(value, bool):
        raise _arg_error(pos, f"json: cannot unmarshal {type(value).__name__} into Go value "
                              f"of type bool")
    return value


_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})


class JsonRpc:
    """The method table of the mock node, over a :class:`Chain`."""

    def __init__(self, chain: Chain, settings: NodeSettings | None = None) -> None:
        self.chain = chain
        self.settings = settings or NodeSettings()
        self.methods: dict[str, Callable[[list[Any], SubscriptionHost | None], Any]] = {
            "eth_chainId": lambda p, h: hex(self.chain.chain_id),
            "net_version": lambda p, h: str(self.chain.chain_id),
            "net_listening": lambda p, h: True,
            "eth_syncing": lambda p, h: False,
            "web3_clientVersion": lambda p, h: self.settings.client_version,
            "eth_blockNumber": lambda p, h: hex(max(self.chain.head_number, 0)),
            "eth_getBlockByNumber": self._get_block_by_number,
            "eth_getBlockByHash": self._get_block_by_hash,
            "eth_getLogs": self._get_logs,
            "eth_getTransactionByHash": self._get_tx,
            "eth_getTransactionReceipt": self._get_receipt,
            "eth_subscribe": self._subscribe,
            "eth_unsubscribe": self._unsubscribe,
        }

    # -- envelope ---------------------------------------------------------------------------
    def handle(self, body: str | bytes, host: SubscriptionHost | None = None) -> Reply:
        """Answer one body: a single request or a batch."""
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return Reply(_dumps(error_response(None, -32700, "parse error")),
                         [Call("?", "error")])
        if isinstance(payload, list):
            if not payload:
                return Reply(_dumps(error_response(None, -32600, "empty batch")),
                             [Call("?", "error")])
            if len(payload) > self.settings.max_batch:
                return Reply(_dumps(error_response(None, -32600, "batch too large")),
                             [Call("?", "error")])
            calls: list[Call] = []
            out = []
            for item in payload:
                resp = self._one(item, host, calls)
                if resp is not None:
                    out.append(resp)
            return Reply(_dumps(out) if out else None, calls)
        calls = []
        resp = self._one(payload, host, calls)
        return Reply(_dumps(resp) if resp is not None else None, calls)

    def _one(self, req: Any, host: SubscriptionHost | None,
             calls: list[Call]) -> dict[str, Any] | None:
        if not isinstance(req, dict):
            calls.append(Call("?", "error"))
            return error_response(None, -32600, "invalid request")
        req_id = req.get("id")
        notification = "id" not in req
        if isinstance(req_id, (dict, list, bool)):
            calls.append(Call("?", "error"))
            return error_response(None, -32600, "invalid request")
        method = req.get("method")
        if req.get("jsonrpc") != "2.0" or not isinstance(method, str):
            calls.append(Call(method if isinstance(method, str) else "?", "error"))
            return error_response(req_id, -32600, "invalid request")
        params = req.get("params", [])
        if params is None:
            params = []
        try:
            if not isinstance(params, list):
                raise RpcError(-32602, "non-array args")
            fn = self.methods.get(method)
            if fn is None or (host is None and method in ("eth_subscribe", "eth_unsubscribe")):
                raise RpcError(-32601, f"the method {method} does not exist/is not available")
            result = fn(params, host)
        except RpcError as exc:
            calls.append(Call(method, "error"))
            return None if notification else error_response(req_id, exc.code, exc.message)
        calls.append(Call(method, "ok"))
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
            raise RpcError(-32602, "missing value for required argument 0")
        number = self.resolve(p[0])
        full = _bool(p[1], 1) if len(p) > 1 else False
        return None if number is None else self.block_json(self.chain.block(number), full)

    def _get_block_by_hash(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p:
            raise RpcError(-32602, "missing value for required argument 0")
        block_hash = _hash(p[0], 0)
        full = _bool(p[1], 1) if len(p) > 1 else False
        return self.block_json(self.chain.block_by_hash(block_hash), full)

    # -- logs ------------------------------------------------------------------------------
    def _get_logs(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p or not isinstance(p[0], dict):
            raise RpcError(-32602, "invalid argument 0: filter must be an object")
        obj = p[0]
        try:
            flt = LogFilter.parse(obj)
        except FilterError as exc:
            raise _arg_error(0, str(exc)) from None
        chain = self.chain
        s = self.settings
        if obj.get("blockHash") is not None:
            if obj.get("fromBlock") is not None or obj.get("toBlock") is not None:
                raise RpcError(-32602, "invalid argument 0: cannot specify both BlockHash "
                                       "and FromBlock/ToBlock, choose one or the other")
            block = chain.block_by_hash(_hash(obj["blockHash"], 0))
            if block is None:
                raise RpcError(-32000, "unknown block")
            start = stop = block.number
        else:
            start_n = self.resolve(obj.get("fromBlock") or "latest")
            stop_n = self.resolve(obj.get("toBlock") or "latest")
            if start_n is None or stop_n is None:
                return []
            start, stop = start_n, min(stop_n, chain.head_number)
            if start > stop:
                if start_n > stop_n:
                    raise RpcError(-32602, "invalid block range params")
                return []
            if stop - start + 1 > s.logs_max_range:
                raise RpcError(-32602, (
                    f"Log response size exceeded. You can make eth_getLogs requests with up "
                    f"to a {_short(s.logs_max_range)} block range and no limit on the "
                    f"response size, or you can request any block range with a cap of "
                    f"{_short(s.logs_max_results)} logs in the response."))
        logs = chain.logs(flt, start, stop, limit=s.logs_max_results)
        if logs is None:
            raise RpcError(-32005, f"query returned more than {s.logs_max_results} results")
        return logs

    # -- transactions -------------------------------------------------------------------------
    def _get_tx(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p:
            raise RpcError(-32602, "missing value for required argument 0")
        found = self.chain.tx(_hash(p[0], 0))
        if found is None:
            return None
        block, i = found
        return block.transactions()[i]

    def _get_receipt(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        if not p:
            raise RpcError(-32602, "missing value for required argument 0")
        found = self.chain.tx(_hash(p[0], 0))
        if found is None:
            return None
        block, i = found
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
        assert h is not None
        if not p or not isinstance(p[0], str):
            raise RpcError(-32602, "invalid argument 0: expected subscription name")
        kind = p[0]
        if kind == "newHeads":
            return h.subscribe("newHeads", None)
        if kind == "logs":
            obj = p[1] if len(p) > 1 else None
            if obj is not None and not isinstance(obj, dict):
                raise RpcError(-32602, "invalid argument 1: filter must be an object")
            try:
                flt = LogFilter.parse(obj)
            except FilterError as exc:
                raise _arg_error(1, str(exc)) from None
            return h.subscribe("logs", flt)
        raise RpcError(-32602, f"no \"{kind}\" subscription in eth namespace")

    def _unsubscribe(self, p: list[Any], h: SubscriptionHost | None) -> Any:
        assert h is not None
        if not p or not isinstance(p[0], str):
            raise RpcError(-32602, "invalid argument 0: expected subscription id")
        return h.unsubscribe(p[0])


def _short(n: int) -> str:
    return f"{n // 1000}K" if n >= 1000 and n % 1000 == 0 else str(n)
