"""Record a block range from any JSON-RPC HTTP node (``python -m simulator record``).

For each block: ``eth_getBlockByNumber(n, false)`` (stored as is), ``eth_getBlockByNumber(n,
true)`` (its full transactions go into the row's ``transactions``), and the block's logs
from ``eth_getLogs`` over chunks of blocks (a chunk the node refuses as too large or too
many results is split in half until it passes). The requests go through the one JSON-RPC
HTTP client (:class:`polyvocab.jsonrpc_http.JsonRpcHttpClient`): batched when the node
accepts JSON-RPC batches, paced by a client-side token bucket (``--rate`` requests per
second, bursts of as many), and retried with jittered exponential backoff on HTTP
429/5xx, timeouts, connection errors and rate-limit answers, honouring ``Retry-After``.

Errors the user must act on (node unreachable, an HTML page instead of JSON-RPC, a
JSON-RPC error, a block the node does not have) raise :class:`simulator.errors.RecordError`
with one clear line. The node URL is always shown masked
(:func:`polyvocab.redact.mask_url`): API keys in paths, query strings or credentials never
reach the terminal or the recording.

Errors of the client (:mod:`polyvocab.errors`) and what becomes of them::

    TransportError, ServerError, RateLimited   retried; attempts exhausted -> RecordError
    BadResponse                                 HTML page, not JSON, HTTP 4xx, bad shape:
                                                not retried -> RecordError (a batch the
                                                node refuses: one call at a time instead)
    RpcError                                    the node answered a JSON-RPC error object
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import aiohttp

from polyvocab.errors import (
    BadResponse,
    RateLimited,
    RpcError,
    ServerError,
    ServiceError,
    TransportError,
)
from polyvocab.jsonrpc_http import JsonRpcHttpClient, is_rate_limit_reply
from polyvocab.policies import is_range_too_large
from polyvocab.policies import retry_delays as _shared_retry_delays
from polyvocab.redact import mask_url
from simulator.chainshape import logs_bloom
from simulator.errors import RecordError
from simulator.recording import RecordedBlock, Recording, block_defect, log_defect

__all__ = [
    "MAX_RECORD_BLOCKS",
    "RecordSettings",
    "RecordStats",
    "RpcError",
    "is_range_error",
    "is_rate_limit_error",
    "record_range",
    "retry_delays",
]

#: the most blocks one ``record`` takes: they are held in memory until the file is
#: written (a busy Polygon block with its transactions is a megabyte or more as Python
#: objects): ~5.5 hours of 2-s blocks; longer spans are recorded in parts
MAX_RECORD_BLOCKS = 10_000


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """How to talk to the node. Times in seconds."""

    rate_per_s: float = 10.0
    batch_blocks: int = 10
    logs_chunk: int = 50
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    timeout_s: float = 30.0
    progress: bool = True


@dataclass(slots=True)
class RecordStats:
    """What the recording cost: HTTP requests, JSON-RPC calls, retries, log splits."""

    requests: int = 0
    calls: int = 0
    retries: int = 0
    splits: int = 0
    batched: bool | None = None
    statuses: dict[str, int] = field(default_factory=dict)


def is_rate_limit_error(err: RpcError) -> bool:
    """A JSON-RPC error that means "slow down" (retry), not "your query is wrong"."""
    return is_rate_limit_reply(err.code, err.rpc_message)


def is_range_error(err: RpcError) -> bool:
    """An ``eth_getLogs`` refusal that a smaller block range would avoid."""
    text = err.rpc_message.lower()
    return err.code != 429 and (is_range_too_large(text) or any(
        w in text for w in ("results", "query timeout", "timeout")))


def retry_delays(base_s: float, max_s: float) -> Iterator[float]:
    """The shared backoff (:func:`polyvocab.policies.retry_delays`), doubling, jittered."""
    return _shared_retry_delays(base_s, max_s, 2.0, jitter=0.2)


def _retryable(exc: BaseException) -> bool:
    """The recorder retries what a later try may fix: transport, 5xx, rate limits."""
    return isinstance(exc, TransportError | ServerError | RateLimited)


class _TooLarge(RecordError):
    """An answer past the client's bounds (bytes, JSON values): a smaller range may fit."""


class _Node:
    """The node through the shared client; its errors become one-line ``RecordError``s."""

    def __init__(self, session: aiohttp.ClientSession, url: str, settings: RecordSettings,
                 stats: RecordStats) -> None:
        self.masked = mask_url(url)
        self.settings = settings
        self.stats = stats
        self._base = (stats.requests, stats.retries, dict(stats.statuses))
        self.client = JsonRpcHttpClient(
            url, session, max_retries=max(0, settings.max_attempts - 1),
            timeout=settings.timeout_s, rate_limit_per_s=settings.rate_per_s,
            rate_limit_burst=max(1.0, settings.rate_per_s),
            retry_policy=lambda: retry_delays(settings.backoff_base_s, settings.backoff_max_s),
            retryable=_retryable, rate_limited=is_rate_limit_reply,
            max_retry_after=settings.max_retry_after_s, kind="record", name="record")

    def _count(self) -> None:
        requests, retries, statuses = self._base
        counter = self.client.counter
        self.stats.requests = requests + counter.requests
        self.stats.retries = retries + counter.retries
        self.stats.statuses = {k: statuses.get(k, 0) + counter.statuses.get(k, 0)
                               for k in {*statuses, *counter.statuses}}

    def _explain(self, exc: ServiceError, method: str) -> str:
        if not isinstance(exc, BadResponse):  # retryable: the attempts are used up
            return (f"{self.masked}: gave up after {self.settings.max_attempts} attempts "
                    f"(last: {exc.message})")
        status = exc.status
        if "HTML page" in exc.message:
            return (f"{self.masked} answered HTTP {status} with an HTML page, not JSON-RPC: "
                    "is this the node's JSON-RPC URL?")
        if status is not None and status >= 400:
            return f"{self.masked} refused {method}: {exc.message}"
        if "not JSON" in exc.message:
            return (f"{self.masked} answered HTTP {status} with a body that is not JSON: is "
                    "this the node's JSON-RPC URL?")
        return f"{self.masked}: malformed JSON-RPC reply to {method}: {exc.message}"

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        self.stats.calls += 1
        try:
            return await self.client.call(method, params)
        except RpcError:
            raise
        except BadResponse as exc:
            if exc.kind == "too_large":  # past the client's body or value bound
                raise _TooLarge(self._explain(exc, method)) from None
            raise RecordError(self._explain(exc, method)) from None
        except ServiceError as exc:
            raise RecordError(self._explain(exc, method)) from None
        finally:
            self._count()

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Results (or :class:`RpcError` instances) of ``calls``, in order."""
        if self.stats.batched is not False and len(calls) > 1:
            try:
                out: list[Any] | None = await self.client.batch(calls)
            except (RpcError, BadResponse):  # the node does not do batches
                out = None
            except ServiceError as exc:
                raise RecordError(self._explain(exc, "batch")) from None
            finally:
                self._count()
            if out is not None:
                self.stats.batched = True
                self.stats.calls += len(calls)
                return out
            self.stats.batched = False  # one call each
        results: list[Any] = []
        for method, params in calls:
            try:
                results.append(await self.call(method, params))
            except RpcError as exc:
                results.append(exc)
        return results


class _Recorder:
    def __init__(self, node: _Node, settings: RecordSettings) -> None:
        self.node = node
        self.settings = settings

    async def blocks(self, numbers: Sequence[int]) -> list[tuple[dict[str, Any], list[Any]]]:
        calls: list[tuple[str, Sequence[Any]]] = []
        for n in numbers:
            calls.append(("eth_getBlockByNumber", [hex(n), False]))
            calls.append(("eth_getBlockByNumber", [hex(n), True]))
        results = await self.node.batch(calls)
        out = []
        for i, n in enumerate(numbers):
            header, full = results[2 * i], results[2 * i + 1]
            for r in (header, full):
                if isinstance(r, RpcError):
                    raise RecordError(f"{self.node.masked}: eth_getBlockByNumber({n}) failed: "
                                   f"{r.rpc_message}")
                if r is None:
                    raise RecordError(f"{self.node.masked} has no block {n}")
                if not isinstance(r, dict) or r.get("number") != hex(n):
                    raise RecordError(f"{self.node.masked}: eth_getBlockByNumber({n}) returned "
                                   "something else than that block")
                defect = block_defect(r)
                if defect is None and not isinstance(r.get("transactions", []), list):
                    defect = "block field 'transactions' is not a list"
                if defect is not None:  # was a traceback, or a file serve refuses later
                    raise RecordError(f"{self.node.masked}: eth_getBlockByNumber({n}) returned "
                                      f"a malformed block: {defect}")
            txs = full.get("transactions") or []
            if full.get("hash") != header.get("hash") or [
                    t.get("hash") if isinstance(t, dict) else t for t in txs
            ] != header.get("transactions", []):
                raise RecordError(f"{self.node.masked}: block {n} changed while recording "
                               "(a reorg?); record again")
            out.append((header, [t for t in txs if isinstance(t, dict)]))
        return out

    async def logs(self, start: int, end: int) -> list[dict[str, Any]]:
        """All logs of blocks ``start..end``, halving the range while the node refuses."""
        try:
            result = await self.node.call("eth_getLogs",
                                          [{"fromBlock": hex(start), "toBlock": hex(end)}])
        except RpcError as exc:
            if not is_range_error(exc) or start == end:
                raise RecordError(f"{self.node.masked}: eth_getLogs({start}..{end}) failed: "
                               f"{exc.rpc_message}") from None
            self.node.stats.splits += 1
            mid = (start + end) // 2
            return await self.logs(start, mid) + await self.logs(mid + 1, end)
        except _TooLarge:
            # an answer past the client's bounds (a busy range: ~1,000 logs a block on
            # Polygon) is asked again in halves, as a range the node refuses
            if start == end:
                raise
            self.node.stats.splits += 1
            mid = (start + end) // 2
            return await self.logs(start, mid) + await self.logs(mid + 1, end)
        return self._checked(result, f"eth_getLogs({start}..{end})")

    def _checked(self, result: Any, what: str) -> list[dict[str, Any]]:
        """``result`` if it is a list of log objects with a hex ``blockNumber``: what a
        recording's logs must be (a bad one was a traceback, or a file serve refuses)."""
        if not isinstance(result, list):
            raise RecordError(f"{self.node.masked}: {what} returned {type(result).__name__}, "
                           "not a list")
        for i, lg in enumerate(result):
            defect = log_defect(lg)
            if defect is None:
                try:
                    int(lg.get("blockNumber"), 16)
                except (TypeError, ValueError):
                    defect = f".blockNumber is not hex: {str(lg.get('blockNumber'))[:40]!r}"
            if defect is not None:
                raise RecordError(f"{self.node.masked}: {what} returned a malformed log: "
                                  f"log [{i}]{defect}")
        return result

    async def logs_by_hash(self, block_hash: str, number: int) -> list[dict[str, Any]]:
        try:
            result = await self.node.call("eth_getLogs", [{"blockHash": block_hash}])
        except RpcError as exc:
            raise RecordError(f"{self.node.masked}: block {number} changed while recording "
                           f"(a reorg?); record again ({exc.rpc_message})") from None
        logs = self._checked(result, f"eth_getLogs(blockHash of block {number})")
        if any(str(lg.get("blockHash")).lower() != block_hash.lower()
               or int(lg["blockNumber"], 16) != number or lg.get("removed") is True
               for lg in logs):
            raise RecordError(f"{self.node.masked}: eth_getLogs(blockHash of block {number}) "
                              "returned logs of another block, or removed ones")
        return logs


def _check_block_logs(masked: str, header: dict[str, Any], logs: list[dict[str, Any]]) -> None:
    """The logs recorded for ``header`` are all of its logs, each once: no log index twice,
    and every bit of the header's ``logsBloom`` set by some log (a node's ``eth_getLogs``
    may answer an empty list for a block its headers already show: a lagging backend, a
    reorg; that was a recording without the block's trades, and no error). Extra bits are
    allowed: Bor serves state-sync logs that its header bloom does not hold."""
    number = int(header["number"], 16)
    indexes = [str(lg.get("logIndex")).lower() for lg in logs]
    if len(set(indexes)) != len(indexes):
        twice = next(i for i in indexes if indexes.count(i) > 1)
        raise RecordError(f"{masked}: eth_getLogs returned log {twice} of block {number} "
                          "more than once")
    bloom = header.get("logsBloom")
    if not (isinstance(bloom, str) and len(bloom) == 514 and bloom[:2] == "0x"):
        return  # a node without blooms: nothing to check against
    try:
        want = int(bloom, 16)
        have = int(logs_bloom(logs), 16) if logs else 0
    except (KeyError, TypeError, ValueError):
        raise RecordError(f"{masked}: a log of block {number} has no hex address or "
                          "topics") from None
    if want & ~have:
        raise RecordError(f"{masked}: block {number}'s logsBloom shows logs that eth_getLogs "
                          f"did not return ({len(logs)} returned): the node's log index is "
                          "behind its blocks, or the block changed (a reorg?); record again")


_HEX_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,16}")


def _hex_answer(value: Any, node: _Node, method: str) -> int:
    """A node's hex quantity below 2**63 (what a recording's header holds), or a
    :class:`RecordError`: a JSON number was read as hex (a chain id 137 became 311, the
    recording's header another chain), 2**256 made a header no reader accepts."""
    if isinstance(value, str) and _HEX_QUANTITY.fullmatch(value):
        n = int(value, 16)
        if n < 1 << 63:
            return n
    raise RecordError(f"{node.masked}: {method} answered {str(value)[:40]!r}, not a hex "
                      "quantity")


async def record_range(url: str, first: int, last: int,
                       settings: RecordSettings | None = None, *,
                       stats: RecordStats | None = None) -> Recording:
    """Record blocks ``first..last`` from the node at ``url``."""
    settings = settings or RecordSettings()
    stats = stats if stats is not None else RecordStats()
    if first > last:
        raise RecordError(f"--from {first} is after --to {last}")
    if last - first + 1 > MAX_RECORD_BLOCKS:  # --to 10**30 ran until the node said no;
        # --from 0 --to <head> held every block of the chain in memory first
        raise RecordError(f"--from {first} --to {last} is {last - first + 1:,} blocks; at "
                          f"most {MAX_RECORD_BLOCKS:,} a recording (they are held in memory "
                          "until written): record the span in parts")
    async with aiohttp.ClientSession() as session:
        node = _Node(session, url, settings, stats)
        rec = _Recorder(node, settings)
        try:
            chain_id = _hex_answer(await node.call("eth_chainId", []), node, "eth_chainId")
            head = _hex_answer(await node.call("eth_blockNumber", []), node, "eth_blockNumber")
        except RpcError as exc:
            raise RecordError(f"{node.masked}: {exc.rpc_message} (code {exc.code})") from None
        if last > head:
            raise RecordError(f"block {last} is beyond the node's head ({head})")
        blocks = await _record_blocks(rec, first, last, settings)
    for prev, cur in pairwise(blocks):
        if cur.parent_hash != prev.hash:
            raise RecordError(f"block {cur.number} does not build on block {prev.number} (the "
                           "node reorganised while recording); record again")
    source = {"kind": "recorded", "rpc": mask_url(url),
              "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    return Recording(source=source, blocks=blocks, chain_id=chain_id)


async def _record_blocks(rec: _Recorder, first: int, last: int,
                         settings: RecordSettings) -> list[RecordedBlock]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    out: list[RecordedBlock] = []
    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), disable=not settings.progress,
                        transient=False)
    with progress:
        task = progress.add_task("recording", total=last - first + 1)
        for start in range(first, last + 1, settings.logs_chunk):
            end = min(last, start + settings.logs_chunk - 1)
            headers: list[tuple[dict[str, Any], list[Any]]] = []
            for b in range(start, end + 1, settings.batch_blocks):
                headers += await rec.blocks(range(b, min(end, b + settings.batch_blocks - 1) + 1))
            by_block: dict[str, list[dict[str, Any]]] = {}
            for lg in await rec.logs(start, end):
                by_block.setdefault(str(lg.get("blockHash")), []).append(lg)
            for header, txs in headers:
                number = int(header["number"], 16)
                logs = by_block.pop(header["hash"], [])
                if any(int(str(lg.get("blockNumber")), 16) != number for lg in logs):
                    raise RecordError(f"{rec.node.masked}: logs of block {number} carry another "
                                   "block number")
                if any(lg.get("removed") is True for lg in logs):  # served as a retraction
                    raise RecordError(f"{rec.node.masked}: eth_getLogs returned a removed log "
                                      f"of block {number} (a reorg while recording); record "
                                      "again")
                out.append(RecordedBlock(block=header, logs=logs, transactions=txs))
            if by_block:  # logs of a block hash we did not fetch: a reorg in between
                for i in range(len(out) - len(headers), len(out)):
                    rb = out[i]
                    rb.logs = await rec.logs_by_hash(rb.hash, rb.number)
            for rb in out[len(out) - len(headers):]:
                _check_block_logs(rec.node.masked, rb.block, rb.logs)
            progress.advance(task, end - start + 1)
    return out
