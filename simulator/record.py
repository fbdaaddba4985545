"""Record a block range from any JSON-RPC HTTP node (``python -m simulator record``).

For each block: ``eth_getBlockByNumber(n, false)`` (stored as is), ``eth_getBlockByNumber(n,
true)`` (its full transactions go into the row's ``transactions``), and the block's logs
from ``eth_getLogs`` over chunks of blocks (a chunk the node refuses as too large or too
many results is split in half until it passes). Requests are batched when the node
accepts JSON-RPC batches, paced by a client-side token bucket (``--rate`` requests per
second), and retried with exponential backoff on HTTP 429/5xx, timeouts and connection
errors, honouring ``Retry-After``.

Errors the user must act on (node unreachable, an HTML page instead of JSON-RPC, a
JSON-RPC error, a block the node does not have) raise :class:`simulator.errors.RecordError`
with one clear line. The node URL is always shown masked (:func:`mask_url`): API keys in
paths, query strings or credentials never reach the terminal or the recording.

Error tree (private, all end as ``RecordError``)::

    _TransportError   retryable: 429/5xx, timeout, connection error (attempts exhausted
                      -> RecordError)
    _HttpError        HTTP 4xx other than 429: not retried
    RpcError          the node answered a JSON-RPC error object
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from polyvocab.policies import is_range_too_large, is_rate_limited, parse_retry_after
from polyvocab.policies import retry_delays as _shared_retry_delays
from simulator.errors import RecordError
from simulator.ratelimit import TokenBucket
from simulator.recording import RecordedBlock, Recording

__all__ = [
    "RecordSettings",
    "RecordStats",
    "RpcError",
    "is_range_error",
    "is_rate_limit_error",
    "mask_url",
    "record_range",
    "retry_delays",
]

_KEYLIKE = re.compile(r"^[A-Za-z0-9_\-]{16,}$")


def mask_url(url: str) -> str:
    """``url`` safe to print or store: credentials, key-like path parts and query values
    replaced by ``***`` (``https://polygon-mainnet.g.alchemy.com/v2/***``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = "***@" + netloc
    path = "/".join("***" if _KEYLIKE.match(seg) else seg for seg in parts.path.split("/"))
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, path, query, ""))


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


class RpcError(Exception):
    """A JSON-RPC error object from the node."""

    def __init__(self, code: Any, message: str) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message


class _TransportError(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class _HttpError(Exception):
    def __init__(self, status: int, snippet: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.snippet = snippet


def is_rate_limit_error(err: RpcError) -> bool:
    """A JSON-RPC error that means "slow down" (retry), not "your query is wrong"."""
    return err.code == 429 or is_rate_limited(err.message)


def is_range_error(err: RpcError) -> bool:
    """An ``eth_getLogs`` refusal that a smaller block range would avoid."""
    text = err.message.lower()
    return err.code != 429 and (is_range_too_large(text) or any(
        w in text for w in ("results", "query timeout", "timeout")))


def retry_delays(base_s: float, max_s: float) -> Iterator[float]:
    """The shared backoff (:func:`polyvocab.policies.retry_delays`), doubling, jittered."""
    return _shared_retry_delays(base_s, max_s, 2.0, jitter=0.2)


def _looks_html(body: bytes, content_type: str) -> bool:
    head = body[:200].lstrip().lower()
    return "html" in content_type.lower() or head.startswith((b"<!doctype", b"<html"))


class _Node:
    """One JSON-RPC HTTP endpoint: pacing, retries, batching."""

    def __init__(self, session: aiohttp.ClientSession, url: str, settings: RecordSettings,
                 stats: RecordStats) -> None:
        self.session = session
        self.url = url
        self.masked = mask_url(url)
        self.settings = settings
        self.stats = stats
        self._bucket = TokenBucket(settings.rate_per_s)
        self._not_before = 0.0
        self._ids = 0

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self._not_before - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            decision = self._bucket.take(time.monotonic_ns())
            if decision.allowed:
                return
            await asyncio.sleep(decision.retry_after_ns / 1e9)

    async def _post_once(self, payload: Any) -> Any:
        await self._pace()
        self.stats.requests += 1
        try:
            async with self.session.post(
                    self.url, json=payload,
                    timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)) as resp:
                body = await resp.read()
                status = resp.status
                ctype = resp.headers.get("Content-Type", "")
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            raise _TransportError("timed out") from None
        except aiohttp.ClientConnectorError as exc:
            reason = getattr(exc.os_error, "strerror", None) or type(exc.os_error).__name__
            raise _TransportError(f"cannot connect ({reason})") from None
        except aiohttp.ClientError as exc:
            raise _TransportError(f"connection error ({type(exc).__name__})") from None
        key = str(status)
        self.stats.statuses[key] = self.stats.statuses.get(key, 0) + 1
        if status == 429 or status >= 500:
            what = "HTML error page" if _looks_html(body, ctype) else "error"
            raise _TransportError(f"HTTP {status} ({what})", retry_after)
        if _looks_html(body, ctype):
            raise RecordError(f"{self.masked} answered HTTP {status} with an HTML page, not "
                           "JSON-RPC: is this the node's JSON-RPC URL?")
        if status >= 400:
            raise _HttpError(status, body[:200].decode("utf-8", "replace"))
        try:
            return json.loads(body)
        except ValueError:
            raise RecordError(f"{self.masked} answered HTTP {status} with a body that is not "
                           "JSON: is this the node's JSON-RPC URL?") from None

    async def post(self, payload: Any) -> Any:
        """POST ``payload``; retry transport failures and rate-limit errors with backoff."""
        delays = retry_delays(self.settings.backoff_base_s, self.settings.backoff_max_s)
        last = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                data = await self._post_once(payload)
            except _TransportError as exc:
                last = exc.reason
                retry_after = exc.retry_after_s
            else:
                err = data.get("error") if isinstance(data, dict) else None
                if not (isinstance(err, dict) and is_rate_limit_error(
                        RpcError(err.get("code"), str(err.get("message", ""))))):
                    return data
                last = f"JSON-RPC rate limit: {err.get('message')}"
                retry_after = None
            if attempt == self.settings.max_attempts:
                break
            self.stats.retries += 1
            delay = next(delays)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.settings.max_retry_after_s))
                loop = asyncio.get_running_loop()
                self._not_before = max(self._not_before, loop.time() + delay)
            await asyncio.sleep(delay)
        raise RecordError(f"{self.masked}: gave up after {self.settings.max_attempts} attempts "
                       f"(last: {last})")

    def _request(self, method: str, params: Sequence[Any]) -> dict[str, Any]:
        self._ids += 1
        return {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}

    @staticmethod
    def _result(reply: Any, method: str) -> Any:
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise RecordError(f"malformed JSON-RPC reply to {method}: {str(reply)[:120]}")
        err = reply.get("error")
        if err is not None:
            if isinstance(err, dict):
                raise RpcError(err.get("code"), str(err.get("message", "")))
            raise RpcError(None, str(err))
        return reply["result"]

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        self.stats.calls += 1
        try:
            reply = await self.post(self._request(method, params))
        except _HttpError as exc:
            raise RecordError(f"{self.masked} refused {method}: HTTP {exc.status} "
                           f"{exc.snippet!r}") from None
        return self._result(reply, method)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Results (or :class:`RpcError` instances) of ``calls``, in order."""
        if self.stats.batched is not False and len(calls) > 1:
            requests = [self._request(m, p) for m, p in calls]
            try:
                reply = await self.post(requests)
            except _HttpError:
                reply = None
            if isinstance(reply, list) and len(reply) == len(requests):
                by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
                if all(q["id"] in by_id for q in requests):
                    self.stats.batched = True
                    self.stats.calls += len(calls)
                    out: list[Any] = []
                    for q, (method, _) in zip(requests, calls, strict=True):
                        try:
                            out.append(self._result(by_id[q["id"]], method))
                        except RpcError as exc:
                            out.append(exc)
                    return out
            self.stats.batched = False  # the node does not do batches: one call each
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
                                   f"{r.message}")
                if r is None:
                    raise RecordError(f"{self.node.masked} has no block {n}")
                if not isinstance(r, dict) or r.get("number") != hex(n):
                    raise RecordError(f"{self.node.masked}: eth_getBlockByNumber({n}) returned "
                                   "something else than that block")
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
                               f"{exc.message}") from None
            self.node.stats.splits += 1
            mid = (start + end) // 2
            return await self.logs(start, mid) + await self.logs(mid + 1, end)
        if not isinstance(result, list):
            raise RecordError(f"{self.node.masked}: eth_getLogs returned {type(result).__name__}, "
                           "not a list")
        return result

    async def logs_by_hash(self, block_hash: str, number: int) -> list[dict[str, Any]]:
        try:
            result = await self.node.call("eth_getLogs", [{"blockHash": block_hash}])
        except RpcError as exc:
            raise RecordError(f"{self.node.masked}: block {number} changed while recording "
                           f"(a reorg?); record again ({exc.message})") from None
        return list(result or [])


async def record_range(url: str, first: int, last: int,
                       settings: RecordSettings | None = None, *,
                       stats: RecordStats | None = None) -> Recording:
    """Record blocks ``first..last`` from the node at ``url``."""
    settings = settings or RecordSettings()
    stats = stats if stats is not None else RecordStats()
    if first > last:
        raise RecordError(f"--from {first} is after --to {last}")
    async with aiohttp.ClientSession() as session:
        node = _Node(session, url, settings, stats)
        rec = _Recorder(node, settings)
        try:
            chain_id = int(str(await node.call("eth_chainId", [])), 16)
            head = int(str(await node.call("eth_blockNumber", [])), 16)
        except RpcError as exc:
            raise RecordError(f"{node.masked}: {exc.message} (code {exc.code})") from None
        except ValueError:
            raise RecordError(f"{node.masked}: eth_chainId/eth_blockNumber did not answer a hex "
                           "number") from None
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
                out.append(RecordedBlock(block=header, logs=logs, transactions=txs))
            if by_block:  # logs of a block hash we did not fetch: a reorg in between
                for i in range(len(out) - len(headers), len(out)):
                    rb = out[i]
                    rb.logs = await rec.logs_by_hash(rb.hash, rb.number)
            progress.advance(task, end - start + 1)
    return out
