"""Reconcile a live pilot's store against the chain: a run in the run-store format.

``python -m experiments reconcile STORE --rpc-url URL --out RESULTS`` reads the pilot
store (``monitor.pilot``: SQLite sightings, sessions, heads, each path's history), builds
the truth of the pilot's block range from the chain itself (``eth_getLogs`` over the
range, chunked and rate-limited, once the chain is ``finality_depth`` blocks past its end)
and classifies every trade for each path with the experiment checker
(:func:`experiments.checker.classify`, one implementation for both). It writes
``RESULTS/<run-id>/`` with one scenario per path (``pilot_websocket``, ``pilot_polling``)
and points ``RESULTS/latest`` at it; ``python -m reports build`` renders it.

The range: ``start_block`` (both paths watch from it) to the highest head the pilot saw at
least ``grace_s`` before its last beat (so trades of the last blocks are not called
missed because the polling shadow had no time to see them), clamped to the chain head
minus ``finality_depth``.

Clock of a reconciled run: every ``t_ns`` in its files is wall-clock UTC ns (a sighting's
``wall_ns``, held from going back within a session, whose order is the monotonic clock's;
histories are converted from monotonic with each session's wall/monotonic pair). A
trade's ``visible_t_ns`` is its block timestamp (+ ``timestamp_offset_s``, 0 on a live
chain; a replayed chain such as a simulator needs the replay's offset). What
a live run cannot measure: when the node first made the block visible (block timestamps
have 1 s resolution, and the provider's own delay is inside every latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd

from experiments.analysis import empty_summary
from experiments.checker import (
    CheckParams,
    FaultWindow,
    _coverage_changes,
    _fallback_changes,
    _feed_changes,
    _share,
    classify,
    detections_frame,
    monitor_metrics,
    outcome_counts,
)
from experiments.store import (
    MAX_LINE_CHARS,
    create_run,
    git_sha,
    package_versions,
    point_latest,
    write_run_summary,
)
from experiments.truth import TRUTH_COLUMNS
from monitor.errors import StoreError
from monitor.pilot import PATHS, PilotStore, endpoint_host, pilot_status, read_rotated
from polyvocab import (
    DEFAULT_EXCHANGES,
    ORDER_FILLED_TOPICS,
    address_topic,
    is_address,
    trade_id,
)
from polyvocab.bounds import quantity
from polyvocab.errors import RpcError, ServiceError, Timeout
from polyvocab.jsonrpc_http import JsonRpcHttpClient, is_rate_limit_reply
from polyvocab.policies import is_range_too_large, retry_delays

__all__ = ["LIMITATIONS", "ReconcileError", "ReconcileOptions", "chain_truth", "reconcile"]

_NS = 1_000_000_000
POLYGON_CHAIN_ID = 137  # a pilot store without its chain id watched Polygon PoS

LIMITATIONS = [
    "Latency is measured from the block timestamp, which has 1 s resolution: each latency "
    "is uncertain by up to 1 s.",
    "The provider's own delay (from block production to the provider's notification or "
    "index) is inside every latency: a live run cannot separate it from the monitor's.",
    "The truth comes from the same provider's eth_getLogs after finality: a trade the "
    "provider never serves is invisible to both paths and to the truth.",
    "Latency uses this machine's clock against the block timestamp: keep it synced (NTP). "
    "A clock behind the chain's shows as deliveries before their block, and latency is then "
    "not judged; a clock ahead makes every latency longer and cannot be seen.",
    "Uptime and coverage count time the pilot process was not running as down; calls per "
    "hour are per hour it ran.",
    "CPU and memory are not measured per path (both paths share one process).",
]


class ReconcileError(ValueError):
    """The store or the chain cannot give a reconciliation (one line, exit 2)."""


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    rpc_url: str
    out: Path
    finality_depth: int = 32
    chunk_blocks: int = 500
    rate_per_s: float = 5.0
    wait_s: float = 600.0
    grace_s: float = 120.0
    actionable_window_s: float = 5.0
    timestamp_offset_s: float = 0.0
    end_block: int | None = None
    run_id: str | None = None
    #: a delivery more than this before its block's timestamp proves the clock behind
    clock_tolerance_s: float = 2.0


_TRIES = 5


def _is_range(exc: BaseException) -> bool:
    return isinstance(exc, RpcError) and is_range_too_large(exc.rpc_message)


#: set while an ``eth_getLogs`` of more than one block is asked: a timeout then (the
#: client's, or the provider's own "request timed out") is split as a refused range is,
#: not tried again on the same range
_SPLITTING: contextvars.ContextVar[bool] = contextvars.ContextVar("_SPLITTING", default=False)


def _is_split(exc: BaseException) -> bool:
    """An ``eth_getLogs`` error answered by asking the range in halves: a range the node
    refuses as too large, or a timeout on a range of more than one block (a range too
    heavy to answer in time: tried again whole, five times 30 s, then the reconcile lost)."""
    return _is_range(exc) or (isinstance(exc, Timeout) and _SPLITTING.get())


def _rpc(url: str, session: aiohttp.ClientSession, rate_per_s: float) -> JsonRpcHttpClient:
    """The shared JSON-RPC client, rate-limited; every error but a range the node refuses
    (or a timeout on a range of blocks, :func:`_is_split`) is tried again, :data:`_TRIES`
    tries in all, with jittered backoff (1, 2, 4, 8 s)."""
    return JsonRpcHttpClient(url, session, max_retries=_TRIES - 1, timeout=30.0,
                             rate_limit_per_s=rate_per_s,
                             retry_policy=lambda: retry_delays(1.0, 10.0, jitter=0.2),
                             retryable=lambda exc: not _is_split(exc),
                             rate_limited=is_rate_limit_reply, kind="reconcile",
                             name="reconcile")


def _failed(rpc: JsonRpcHttpClient, method: str, exc: ServiceError) -> ReconcileError:
    return ReconcileError(f"{method} failed at {endpoint_host(rpc.url)} after {_TRIES} tries: "
                          f"{type(exc).__name__}: {str(exc)[:200]}")


async def _call(rpc: JsonRpcHttpClient, method: str, params: list[Any]) -> Any:
    try:
        return await rpc.call(method, params)
    except ServiceError as exc:
        raise _failed(rpc, method, exc) from None


async def _get_logs(rpc: JsonRpcHttpClient, flt: dict[str, Any], a: int, b: int,
                    unchecked: list[int] | None = None,
                    fit: list[int] | None = None) -> list[dict[str, Any]]:
    """The logs of ``a..b``; a range the node refuses as too large, or does not answer in
    time, is asked in halves, each refusal halving ``fit[0]``, the size the rest (and the
    caller's next ranges) is asked at (with QuickNode's 5-block limit, every 500-block
    chunk and the right half of every split was refused and halved again: twice the
    calls). A block refused even alone is put in ``unchecked`` (its trades cannot be
    judged), or, without that list, a :class:`ReconcileError`; one not answered in time
    is tried again, :data:`_TRIES` tries, then a :class:`ReconcileError`."""
    token = _SPLITTING.set(b > a)
    try:
        res = await rpc.call("eth_getLogs", [dict(flt, fromBlock=hex(a), toBlock=hex(b))])
    except ServiceError as exc:
        if not _is_split(exc):
            raise _failed(rpc, "eth_getLogs", exc) from None
        if b <= a:
            if unchecked is None:
                raise ReconcileError(f"eth_getLogs refuses even one block ({a})") from None
            unchecked.append(a)
            return []
        fit = fit if fit is not None else [b - a + 1]
        fit[0] = min(fit[0], (b - a + 2) // 2)  # half of this range, rounded up
        out: list[dict[str, Any]] = []
        x = a
        while x <= b:  # the rest at the size last taken (lowered by each refusal)
            y = min(b, x + fit[0] - 1)
            out += await _get_logs(rpc, flt, x, y, unchecked, fit)
            x = y + 1
        return out
    finally:
        _SPLITTING.reset(token)
    if not isinstance(res, list):
        raise ReconcileError(f"eth_getLogs of blocks {a}..{b} answered "
                             f"{type(res).__name__}, not a list of logs")
    for i, x in enumerate(res):  # dropped, they made a run "ok" with no trades at all
        if not isinstance(x, dict):
            raise ReconcileError(f"eth_getLogs of blocks {a}..{b}: entry {i} is "
                                 f"{type(x).__name__} {str(x)[:40]!r}, not a log object")
        _in_range(x, a, b)
    return res


def _in_range(lg: dict[str, Any], a: int, b: int) -> None:
    """A :class:`ReconcileError` when a log's block is outside the range asked: a provider
    that does not keep to it (a cache, a proxy answering another query) made a trade of a
    block past the end a phantom, or one of another range counted twice. A malformed
    number is left for :func:`_log_fields` to name."""
    try:
        number = _hex(lg.get("blockNumber"), "blockNumber")
    except ValueError:
        return
    if not a <= number <= b:
        raise ReconcileError(f"eth_getLogs of blocks {a}..{b} answered a log of block "
                             f"{number}: the provider does not keep to the range asked, "
                             "its answers cannot be the truth")


_HEX = re.compile(r"0x[0-9a-fA-F]{1,16}")


def _hex(value: Any, what: str) -> int:
    """A JSON-RPC quantity: a ``0x`` hex string, nothing else (a JSON integer was read as
    hex: 99999999999 became 0x99999999999). ``ValueError`` naming ``what`` otherwise."""
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise ValueError(f"{what} is {str(value)[:40]!r}, not a hex quantity")
    return quantity(value, what)


_TOPIC = re.compile(r"0x[0-9a-f]{64}")


def _topics(lg: dict[str, Any]) -> list[str]:
    """A log's topics, lower-case; anything but a list of 32-byte hex words is an error
    (a garbage maker topic was read as some wallet that is not watched: a trade lost)."""
    topics = lg.get("topics")
    if not isinstance(topics, list) or not all(
            isinstance(t, str) and _TOPIC.fullmatch(t.lower()) for t in topics):
        raise ReconcileError(f"eth_getLogs: a log's topics are {str(topics)[:80]!r}, not "
                             "a list of 32-byte hex words")
    return [t.lower() for t in topics]


def _log_fields(lg: dict[str, Any]) -> tuple[int, str, str, int]:
    """A log's block number, block hash, transaction hash and log index; ``ValueError``
    naming the field that is missing or malformed."""
    for name in ("blockNumber", "blockHash", "transactionHash", "logIndex"):
        if name not in lg:
            raise ValueError(f"no {name}")
    for name in ("blockHash", "transactionHash"):
        if not isinstance(lg[name], str) or not lg[name].startswith("0x"):
            raise ValueError(f"{name} is {str(lg[name])[:40]!r}, not a hash")
    return (_hex(lg["blockNumber"], "blockNumber"), lg["blockHash"].lower(),
            lg["transactionHash"], _hex(lg["logIndex"], "logIndex"))


async def _block_timestamp(rpc: JsonRpcHttpClient, lg: dict[str, Any], number: int) -> int:
    """The log's ``blockTimestamp``, or its block's ``timestamp``."""
    if lg.get("blockTimestamp") is not None:
        try:
            return _hex(lg["blockTimestamp"], "blockTimestamp")
        except ValueError as exc:
            raise ReconcileError(f"eth_getLogs: a log of block {number}: {exc}") from None
    block = await _call(rpc, "eth_getBlockByNumber", [hex(number), False])
    if not isinstance(block, dict):
        raise ReconcileError(f"eth_getBlockByNumber: block {number} is not available")
    try:
        return _hex(block.get("timestamp"), "timestamp")
    except ValueError as exc:
        raise ReconcileError(f"eth_getBlockByNumber: block {number}: {exc}") from None


async def chain_truth(rpc: JsonRpcHttpClient, wallets: Sequence[str], start: int, end: int,
                      *, chunk_blocks: int, offset_s: float,
                      exchanges: Sequence[str] = DEFAULT_EXCHANGES,
                      unchecked: list[int] | None = None
                      ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The watched wallets' OrderFilled logs of ``exchanges`` in ``[start, end]`` as a
    truth frame, and the blocks holding them as ``block_published``-shaped rows (for the
    run's chain history). A block the node refuses even alone goes into ``unchecked``
    when given (else a :class:`ReconcileError`)."""
    flt = {"address": list(exchanges),
           "topics": [list(ORDER_FILLED_TOPICS), None, [address_topic(w) for w in wallets]]}
    watched = {w.lower() for w in wallets}
    logs: list[dict[str, Any]] = []
    a = start
    fit = [chunk_blocks]  # lowered to a size the node takes at its first refusal
    while a <= end:
        b = min(end, a + fit[0] - 1)
        logs.extend(await _get_logs(rpc, flt, a, b, unchecked, fit))
        a = b + 1
    stamps: dict[int, int] = {}
    blocks: dict[int, dict[str, Any]] = {}
    records = []
    where: dict[str, tuple[int, str]] = {}  # trade id -> its block (number, hash)
    for lg in logs:
        if lg.get("removed") is True:
            continue
        topics = _topics(lg)
        if len(topics) < 3 or topics[0] not in ORDER_FILLED_TOPICS:
            continue
        maker = "0x" + topics[2][-40:]
        if maker not in watched:
            continue
        try:
            number, bhash, tx, index = _log_fields(lg)
        except ValueError as exc:  # were KeyError / ValueError tracebacks
            raise ReconcileError(f"eth_getLogs: a log of wallet {maker}: {exc}") from None
        tid = trade_id(tx, index)
        if tid in where:  # the same log twice (ranges split, a provider's retry)
            if where[tid] == (number, bhash):
                continue
            raise ReconcileError(
                f"eth_getLogs answered trade {tid} in block {where[tid][0]} "
                f"({where[tid][1][:18]}..) and in block {number} ({bhash[:18]}..), neither "
                "removed: the provider serves two forks (a node behind a load balancer "
                "not yet reorged); run reconcile again later, or use another --rpc-url")
        where[tid] = (number, bhash)
        if number not in stamps:
            stamps[number] = await _block_timestamp(rpc, lg, number)
        visible = round((stamps[number] + offset_s) * _NS)
        records.append((tid, maker, number, bhash, visible, True, True))
        row = blocks.setdefault(number, {"t_ns": visible, "event": "block_published",
                                         "number": number, "hash": bhash,
                                         "timestamp": stamps[number], "order_filled": [],
                                         "source": "chain"})
        row["order_filled"].append([tid, maker])
    frame = pd.DataFrame.from_records(records, columns=TRUTH_COLUMNS).drop_duplicates(
        "trade_id")
    frame = frame.astype({"trade_id": "string", "wallet": "string", "block_number": "int64",
                          "block_hash": "string", "visible_t_ns": "int64",
                          "canonical": "bool", "in_window": "bool"})
    return (frame.sort_values(["visible_t_ns", "trade_id"], kind="stable")
            .reset_index(drop=True), [blocks[n] for n in sorted(blocks)])


_ROW_START = '{"t_ns":'  # how every history row begins (monitor.history)


def _torn_tolerant_rows(f: Path, torn: list[int]) -> Iterator[dict[str, Any]]:
    """The rows of one of the pilot's history files. A line that is not a JSON object is
    a row torn by a crash (SIGKILL, a full disk): the next session appended its rows after
    it, the first of them on the torn line itself; that row is kept, the torn part
    dropped and counted in ``torn`` (was a JsonlError traceback: no report of the pilot)."""
    with open(f, encoding="utf-8") as fh:
        for i, line in enumerate(iter(lambda: fh.readline(MAX_LINE_CHARS + 1), "")):
            if len(line) > MAX_LINE_CHARS:
                raise ReconcileError(f"{f}:{i + 1}: a line longer than "
                                     f"{MAX_LINE_CHARS:,} characters")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                row = None
                at = line.rfind(_ROW_START, 1)
                if at > 0:
                    with contextlib.suppress(ValueError, RecursionError):
                        row = json.loads(line[at:])
                torn[0] += 1
            if isinstance(row, dict):
                yield row
            elif row is not None:
                raise ReconcileError(f"{f}:{i + 1}: expected a JSON object")


def _history_rows(store_dir: Path, path: str, torn: list[int] | None = None
                  ) -> list[dict[str, Any]]:
    """A path's history (rotated files, oldest first), ``t_ns`` converted to wall ns with
    each session's ``pilot_session`` row; the monotonic value kept as ``mono_ns``.
    ``torn[0]`` counts the torn lines dropped."""
    out: list[dict[str, Any]] = []
    offset: int | None = None
    torn = torn if torn is not None else [0]
    for f in read_rotated(store_dir / path / "history.jsonl"):
        for n, row in enumerate(_torn_tolerant_rows(f, torn), 1):
            if row.get("event") == "pilot_session":
                offset = _ns(row, "wall_ns", f, n) - _ns(row, "mono_ns", f, n)
            if offset is None or "t_ns" not in row:
                continue  # rows before the first session row (rotated away): no clock
            mono = _ns(row, "t_ns", f, n)
            out.append({**row, "t_ns": mono + offset, "mono_ns": mono})
    return out


def _ns(row: dict[str, Any], key: str, f: Path, n: int) -> int:
    """``row[key]``, a time in ns (an integer), or a :class:`ReconcileError` naming the
    file and the row: a value of another type (a hand edit, a damaged rotated file) was a
    ValueError or KeyError traceback, after the truth had been fetched from the chain."""
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReconcileError(f"{f}: row {n} ({str(row.get('event'))[:40]}): {key} is "
                             f"{str(value)[:40]!r}, not a time in ns (a damaged history)")
    return value


def _feed_down(rows: list[dict[str, Any]], end_ns: int) -> list[FaultWindow]:
    """When the WebSocket feed was unhealthy (the pilot's stand-in for fault windows): some
    shard unhealthy, as the checker's uptime counts it (one shard back is not the feed
    back while another is still down)."""
    out: list[FaultWindow] = []
    since: int | None = None
    if not any(r.get("event") == "feed" for r in rows):
        return out
    for t_ns, healthy in _feed_changes(rows) or []:
        if not healthy and since is None:
            since = t_ns
        elif healthy and since is not None:
            out.append(FaultWindow("feed_down", since, t_ns))
            since = None
    if since is not None:
        out.append(FaultWindow("feed_down", since, end_ns))
    return out


PAST_END_BLOCKS = 128  # how far past the end a reorg may have moved a trade (one query)


def _judged_ids(sightings: Sequence[dict[str, Any]], truth: pd.DataFrame, past_end: set[str],
                start: int, end: int) -> set[str]:
    """The trades judged: those of the truth, and those a path saw in ``start..end``,
    less those the chain now has past the end. A reorg can move a trade (same transaction,
    same id) across the end block: seen at the end and now just past it, it was judged a
    phantom; seen just past the end and now at it, a trade both paths saw was missed."""
    seen = {str(s["trade_id"]) for s in sightings if s["kind"] == "trade"
            and s["block_number"] is not None and start <= int(s["block_number"]) <= end}
    return (seen - past_end) | set(truth["trade_id"].tolist())


def _past_end_needed(unchecked: list[int], beyond: list[int],
                     seen: Sequence[tuple[str, int]], truth: pd.DataFrame,
                     past_end: set[str], start: int, end: int,
                     log: Callable[[str], None]) -> tuple[list[int], list[int]]:
    """The blocks whose refusal leaves trades unjudged (``unchecked``, plus the refused
    blocks past the end, ``beyond``, when they are needed) and the refused blocks past
    the end that are not needed. The blocks past the end are read only for a trade a
    reorg moved there from the range (:func:`_judged_ids`): they are needed when a path
    saw a trade in the range (in a block the node answered) that neither the range's
    truth nor the blocks past the end that answered hold. Else a block there refused even
    alone made the pilot INCONCLUSIVE for nothing it would have read."""
    if not beyond:
        return unchecked, []
    have = set(truth["trade_id"].tolist()) | past_end
    lacking = sorted({tid for tid, n in seen
                      if start <= n <= end and n not in unchecked and tid not in have})
    shown = _refused_blocks(beyond)
    if lacking:
        log(f"eth_getLogs refuses {shown} past the pilot's end even alone, and "
            f"{len(lacking)} trade(s) the paths saw in the range (e.g. {lacking[0]}) are not "
            "in its truth: a reorg may have moved them there")
        return sorted(set(unchecked) | set(beyond)), []
    log(f"eth_getLogs refuses {shown} past the pilot's end even alone: not needed (they "
        "are read only for trades a reorg moved past the end, and every trade the paths "
        "saw in the range is in its truth)")
    return unchecked, beyond


def _refused_blocks(blocks: Sequence[int]) -> str:
    """``blocks`` as a short text ('block 7', 'blocks 7, 9 and 12 more'), '' if none."""
    if not blocks:
        return ""
    shown = ", ".join(str(n) for n in blocks[:5])
    more = f" and {len(blocks) - 5} more" if len(blocks) > 5 else ""
    return f"block{'s' if len(blocks) > 1 else ''} {shown}{more}"


def _seen_trades(sightings: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """``(trade id, block number)`` of every trade a path saw."""
    return [(str(s["trade_id"]), int(s["block_number"])) for s in sightings
            if s["kind"] == "trade" and s["block_number"] is not None]


def _detection_rows(sightings: list[dict[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    """The sightings of ``ids`` as detection rows, in the order they happened: by session,
    then by monotonic time within it. ``t_ns`` is the wall clock, never earlier than the
    row before it in the session: a wall clock stepped back by NTP mid-session put a
    retraction before its trade (a phantom), and the monotonic clock alone stands still
    through a suspend."""
    rows = []
    last: dict[Any, int] = {}
    for s in sorted(sightings, key=lambda x: (x["session"] or 0, x["mono_ns"])):
        if s["trade_id"] not in ids:
            continue
        t_ns = max(int(s["wall_ns"]), last.get(s["session"], 0))
        last[s["session"]] = t_ns
        base = {"t_ns": t_ns, "wall_ns": int(s["wall_ns"]),
                "mono_ns": int(s["mono_ns"]), "kind": s["kind"]}
        if s["kind"] == "trade":
            rows.append({**base, "source": s["source"], "trade": {
                "id": s["trade_id"], "wallet": s["wallet"], "block_number": s["block_number"],
                "block_hash": s["block_hash"], "block_timestamp": s["block_timestamp"]}})
        else:
            rows.append({**base, "trade_id": s["trade_id"], "block_hash": s["block_hash"]})
    return rows


def _while_running(hist: list[dict[str, Any]], sessions: Sequence[dict[str, Any]],
                   params: CheckParams, summary: dict[str, Any]) -> dict[str, Any]:
    """Coverage, fallback time and per-hour rates with the time the pilot process was down
    counted as down. The checker reads a history as one run: the state before a kill (feed
    healthy, explorer answering, fallback on) lasted through the days the process was down,
    and calls per hour were divided by those days too. Each session is judged from its own
    rows (``pilot_session`` opens one) over its own span, started .. last beat; time no
    session with rows covers is not covered, and rates are per hour of those spans."""
    start, end = params.window_start_ns, params.window_end_ns
    spans = {x["id"]: (int(x["started_wall_ns"]),
                       int(x["last_wall_ns"] or x["started_wall_ns"])) for x in sessions}
    groups: list[tuple[int, int, list[dict[str, Any]]]] = []
    for r in hist:
        if r.get("event") == "pilot_session" and r.get("session") in spans:
            a, b = spans[r["session"]]
            groups.append((max(a, start), min(b, end), []))
        if groups:
            groups[-1][2].append(r)
    running = sum(max(0, b - a) for a, b, _ in groups)
    whole = end - start
    covered = sum(_share(_coverage_changes(rows, params.mode), a, b) * (b - a)
                  for a, b, rows in groups if b > a)
    fallback = sum(_share(_fallback_changes(rows), a, b) * (b - a)
                   for a, b, rows in groups if b > a)
    hours = running / _NS / 3600.0
    calls = summary.get("api_calls") or {}
    total = sum(calls.values())
    per_hour = total / hours if hours > 0 else None
    return {"coverage": covered / whole if whole > 0 else None,
            "fallback_s": fallback / _NS,
            "api_calls_per_hour": per_hour,
            "explorer_calls_per_hour": calls.get("explorer", 0) / hours if hours > 0 else None,
            "api_calls_per_hour_per_wallet": (per_hour / max(1, len(params.wallets))
                                              if per_hour is not None else None)}


def _clock_behind_s(judged: Sequence[pd.DataFrame], tolerance_s: float) -> float | None:
    """How far the pilot's clock was proven behind the chain's: the earliest delivery
    before its block's timestamp, in seconds, when more than ``tolerance_s`` (block
    timestamps have 1 s resolution); else None. Such a clock makes every latency too
    short and the checker clamps the rest to 0 s: latency cannot be judged."""
    early = [(int(v) - int(d)) / _NS for o in judged
             for d, v in zip(o["delivered_t_ns"], o["visible_t_ns"], strict=True)
             if not pd.isna(d) and not pd.isna(v)]
    worst = max(early, default=0.0)
    return worst if worst > tolerance_s else None


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / _NS, dt.UTC).isoformat(timespec="seconds")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":"), default=str) + "\n")


def _end_block(store: PilotStore, grace_s: float) -> int | None:
    heads = store.heads()
    if not heads:
        return None
    last_wall = max(h[0] for h in heads)
    ok = [h[3] for h in heads if h[0] <= last_wall - grace_s * _NS]
    return max(ok) if ok else None


def _last_head(store: PilotStore) -> int | None:
    heads = store.heads()
    return max(h[3] for h in heads) if heads else None


def _asked_end_block(asked: int, last_head: int | None, log: Callable[[str], None]) -> int:
    """``--end-block``, but never past the last head the pilot saw: a trade of a block
    after the pilot stopped could only be judged missed, by both paths (a false NO-GO)."""
    if last_head is not None and asked > last_head:
        log(f"--end-block {asked} is past the last head the pilot saw ({last_head}): "
            f"judging up to {last_head}")
        return last_head
    return asked


def _head(answer: Any) -> int:
    try:
        return _hex(answer, "the head")
    except ValueError as exc:  # "0xZZ" and null were ValueError tracebacks
        raise ReconcileError(f"eth_blockNumber answered garbage: {exc}") from None


def _same_chain(rpc: JsonRpcHttpClient, answer: Any, chain_id: int) -> None:
    """A :class:`ReconcileError` unless ``--rpc-url`` serves the chain the pilot watched
    (``eth_chainId``): another chain (an Amoy or Ethereum URL) has none of the pilot's
    trades at those blocks, so every one was judged a phantom, and none missed."""
    try:
        served = _hex(answer, "the chain id")
    except ValueError as exc:
        raise ReconcileError(f"eth_chainId at {endpoint_host(rpc.url)} answered garbage: "
                             f"{exc}") from None
    if served != chain_id:
        raise ReconcileError(f"--rpc-url {endpoint_host(rpc.url)} serves chain {served}, the "
                             f"pilot watched chain {chain_id}: its logs cannot judge the "
                             "pilot's (give the same chain's URL)")


def _chain_id(meta: dict[str, Any], store_dir: Path) -> int:
    """The chain the pilot watched (its store's ``chain_id``; a store from before it was
    kept: Polygon PoS, 137)."""
    value = meta.get("chain_id", POLYGON_CHAIN_ID)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ReconcileError(f"{store_dir}: not a pilot store (meta 'chain_id' is "
                             f"{str(value)[:40]!r}, not a chain id)")
    return value


async def _truth_from_chain(opts: ReconcileOptions, wallets: list[str], start: int, end: int,
                            log: Callable[[str], None],
                            exchanges: Sequence[str] = DEFAULT_EXCHANGES,
                            chain_id: int = POLYGON_CHAIN_ID,
                            seen: Sequence[tuple[str, int]] = ()
                            ) -> tuple[int, int | None, pd.DataFrame, list[dict[str, Any]],
                                       set[str], int, list[int], list[int]]:
    """Check the chain (:func:`_same_chain`), wait for finality (or clamp the end), then
    the truth of ``start..end`` (the blocks of trades ``seen`` by a path that it lacks
    asked again, :func:`_confirm_phantoms`): the end,
    the end it was clamped from, the truth frame, its chain rows, the ids of trades now in
    the blocks just past the end (:data:`PAST_END_BLOCKS`), JSON-RPC calls sent, the
    blocks of the range the node refuses even alone (sorted: their trades cannot be
    judged), and those past the end it refuses even alone (needed only for a trade a path
    saw in the range that the range's truth lacks: :func:`_past_end_needed`)."""
    async with aiohttp.ClientSession() as session:
        rpc = _rpc(opts.rpc_url, session, opts.rate_per_s)
        _same_chain(rpc, await _call(rpc, "eth_chainId", []), chain_id)
        deadline = time.monotonic() + opts.wait_s
        while True:
            head = _head(await _call(rpc, "eth_blockNumber", []))
            if head - opts.finality_depth >= end or time.monotonic() >= deadline:
                break
            log(f"waiting for finality: head {head}, need {end + opts.finality_depth}")
            await asyncio.sleep(min(10.0, max(0.5, deadline - time.monotonic())))
        clamped = None
        if head - opts.finality_depth < end:
            clamped = end
            end = head - opts.finality_depth
            if end < start:
                raise ReconcileError(f"the chain head {head} is not {opts.finality_depth} "
                                     f"blocks past the pilot's start block {start}")
            # a node behind the pilot's (or the wait too short): said, not only in the
            # manifest; the trades of the blocks after it are not judged
            log(f"the chain head {head} at {endpoint_host(rpc.url)} is not "
                f"{opts.finality_depth} blocks past the pilot's end {clamped} after "
                f"{opts.wait_s:.0f} s: judging blocks up to {end} only")
        log(f"truth: eth_getLogs over blocks {start}..{end} ({len(wallets)} wallet(s))")
        unchecked: list[int] = []
        truth, chain_rows = await chain_truth(rpc, wallets, start, end,
                                              chunk_blocks=opts.chunk_blocks,
                                              offset_s=opts.timestamp_offset_s,
                                              exchanges=exchanges, unchecked=unchecked)
        past_end: set[str] = set()
        beyond_unchecked: list[int] = []
        if head > end:  # a reorg may have moved a trade the pilot saw at the end past it
            beyond, _rows = await chain_truth(rpc, wallets, end + 1,
                                              min(head, end + PAST_END_BLOCKS),
                                              chunk_blocks=opts.chunk_blocks,
                                              offset_s=opts.timestamp_offset_s,
                                              exchanges=exchanges,
                                              unchecked=beyond_unchecked)
            past_end = set(beyond["trade_id"].tolist())
        await _confirm_phantoms(rpc, wallets, truth, past_end,
                                [x for x in seen if x[1] not in unchecked], start, end,
                                offset_s=opts.timestamp_offset_s, exchanges=exchanges,
                                log=log)
        return (end, clamped, truth, chain_rows, past_end, rpc.counter.total,
                sorted(set(unchecked)), sorted(set(beyond_unchecked)))


#: the most blocks asked again, one at a time, for trades the paths saw that the range
#: answers lack (each one call; at the default 5 calls/s, under two minutes)
MAX_PHANTOM_BLOCKS = 500


async def _confirm_phantoms(rpc: JsonRpcHttpClient, wallets: Sequence[str],
                            truth: pd.DataFrame, past_end: set[str],
                            seen: Sequence[tuple[str, int]], start: int, end: int, *,
                            offset_s: float, exchanges: Sequence[str],
                            log: Callable[[str], None]) -> None:
    """Ask the blocks of the trades a path saw in ``start..end`` that the truth lacks (the
    would-be phantoms) again, one block a call. A provider that caps its answers without
    saying so (a result limit that truncates instead of refusing) left trades out of a
    range's answer, and each was judged a phantom on the paths that saw it: a block that
    now answers a trade the range's answer lacked is a :class:`ReconcileError` naming it,
    never a judgement on an incomplete truth. Of more than :data:`MAX_PHANTOM_BLOCKS`
    such blocks (a monitor that makes phantoms: the evidence of a NO-GO, kept) that many,
    evenly spread, are asked, and ``log`` says so."""
    have = set(truth["trade_id"].tolist()) | past_end
    blocks = sorted({n for tid, n in seen if start <= n <= end and tid not in have})
    if len(blocks) > MAX_PHANTOM_BLOCKS:
        log(f"trades the paths saw in {len(blocks)} blocks are not in eth_getLogs' answers: "
            f"{MAX_PHANTOM_BLOCKS} of those blocks, evenly spread, asked again one by one")
        step = len(blocks) / MAX_PHANTOM_BLOCKS
        blocks = [blocks[int(i * step)] for i in range(MAX_PHANTOM_BLOCKS)]
    for n in blocks:
        again, _rows = await chain_truth(rpc, wallets, n, n, chunk_blocks=1,
                                         offset_s=offset_s, exchanges=exchanges)
        lost = sorted(set(again["trade_id"].tolist()) - have)
        if lost:
            raise ReconcileError(
                f"eth_getLogs left trade {lost[0]} of block {n} out of its answer for the "
                f"range around it, and answers it for block {n} alone: the provider's range "
                "answers are incomplete (a result limit that truncates without an error); "
                "the truth cannot be read from them. Lower --chunk-blocks, or use another "
                "--rpc-url")


def reconcile(store_dir: str | Path, opts: ReconcileOptions, *,
              command: Sequence[str] = (), log: Callable[[str], None] = print) -> Path:
    """Reconcile the pilot store at ``store_dir``; returns the new run directory."""
    store_dir = Path(store_dir)
    try:
        store = PilotStore(store_dir, readonly=True)
    except (FileNotFoundError, OSError) as exc:
        raise ReconcileError(str(exc)) from None
    except StoreError as exc:  # not a database, or not a pilot's
        raise ReconcileError(exc.message) from None
    try:
        meta = store.meta()
        sessions = store.sessions()
        sightings = store.sightings()
        end = _end_block(store, opts.grace_s)
        if opts.end_block is not None:
            end = _asked_end_block(opts.end_block, _last_head(store), log)
    except StoreError as exc:  # a damaged store: other columns, a meta value not JSON
        raise ReconcileError(exc.message) from None
    finally:
        store.close()
    if "start_block" not in meta or not sessions:
        raise ReconcileError(f"{store_dir}: the pilot never started (no start block)")
    start = int(meta["start_block"])
    wallets = [str(w).lower() for w in meta.get("wallets", [])]
    # the exchanges the pilot watched (a store from before they were kept: the defaults)
    watched = meta.get("exchanges") or list(DEFAULT_EXCHANGES)
    if not isinstance(watched, list) or not all(
            isinstance(a, str) and is_address(a) for a in watched):
        raise ReconcileError(f"{store_dir}: not a pilot store (meta 'exchanges' is "
                             f"{str(watched)[:60]!r}, not a list of addresses)")
    exchanges = [a.lower() for a in watched]
    # checked before the node is asked: a wallet that is no address was a ValueError
    # traceback from the truth's filter, a negative start block a node's error, an empty
    # list a query for every maker's trades
    if not wallets or not all(is_address(w) for w in wallets):
        raise ReconcileError(f"{store_dir}: not a pilot store (meta 'wallets' is "
                             f"{str(meta.get('wallets'))[:60]!r}, not a list of addresses)")
    if start < 0:
        raise ReconcileError(f"{store_dir}: not a pilot store (meta 'start_block' is "
                             f"{start}, not a block number)")
    if opts.end_block is not None and opts.end_block < start:
        raise ReconcileError(f"--end-block {opts.end_block} is before the pilot's start block "
                             f"{start}")
    if end is None or end < start:
        raise ReconcileError(f"{store_dir}: the pilot saw no block {opts.grace_s:.0f} s before "
                             f"its last beat (run it longer, or lower --grace)")
    chain_id = _chain_id(meta, store_dir)
    end, clamped, truth, chain_rows, past_end, truth_calls, unchecked, beyond = asyncio.run(
        _truth_from_chain(opts, wallets, start, end, log, exchanges, chain_id,
                          _seen_trades(sightings)))
    unchecked, beyond_not_needed = _past_end_needed(
        unchecked, beyond, _seen_trades(sightings), truth, past_end, start, end, log)
    status = pilot_status(store_dir)
    first_wall = int(sessions[0]["started_wall_ns"])
    last_wall = max(int(s["last_wall_ns"] or s["started_wall_ns"]) for s in sessions)
    run_dir = create_run(opts.out, opts.run_id, private=True)  # copies of 0600 pilot files
    # the window: trades of the range; its time span from the first to the last block
    win_start = min([first_wall, *truth["visible_t_ns"].tolist()])
    win_end = max([last_wall, *truth["visible_t_ns"].tolist()])
    params_base = dict(speed=1.0, window_start_ns=win_start, window_end_ns=win_end,
                       actionable_window_s=opts.actionable_window_s, wallets=tuple(wallets))
    in_range = _judged_ids(sightings, truth, past_end, start, end)
    refused = _refused_blocks(unchecked)
    if refused:  # no truth there: its trades would be phantoms, and none could be missed
        in_range -= {tid for tid, n in _seen_trades(sightings) if n in unchecked}
        log(f"eth_getLogs refuses {refused} even alone: their trades are not judged, and "
            "the run is INCONCLUSIVE")
    torn = {p: [0] for p in PATHS}
    ws_rows = _history_rows(store_dir, "websocket", torn["websocket"])
    windows = _feed_down(ws_rows, win_end)
    summaries = []
    ts0 = chain_rows[0]["timestamp"] if chain_rows else None
    judged = {}
    for path in PATHS:
        params = CheckParams(mode=path, **params_base)
        det_rows = _detection_rows([s for s in sightings if s["path"] == path], in_range)
        detections = detections_frame(det_rows)
        judged[path] = (params, det_rows, detections,
                        classify(truth, detections, windows, params))
    behind_s = _clock_behind_s([j[3] for j in judged.values()], opts.clock_tolerance_s)
    if behind_s is not None:
        log(f"this machine's clock was at least {behind_s:.1f} s behind the chain's: "
            "latency, detected and late are not judged")
    for path in PATHS:
        name = f"pilot_{path}"
        sdir = run_dir / name
        sdir.mkdir(mode=0o700)
        params, det_rows, detections, outcomes = judged[path]
        hist = ws_rows if path == "websocket" else _history_rows(store_dir, path,
                                                                  torn[path])
        run = {"scenario": name, "description": f"live pilot, {path} path", "mode": path,
               "speed": 1.0, "seed": None, "sim_duration_s": (win_end - win_start) / _NS,
               "actionable_window_s": opts.actionable_window_s, "wallets": wallets,
               "status": "ok", "thresholds": []}
        summary = empty_summary(run)
        summary.update(outcome_counts(outcomes))
        if hist:
            summary.update(monitor_metrics(hist, params))
            summary.update(_while_running(hist, sessions, params, summary))
        if behind_s is not None:  # the split of detected and late needs the clock too
            summary.update({k: None for k in summary if k.startswith("latency_")},
                           detected=None, late=None)
            # and the per-trade latencies with them: left in outcomes.parquet, the report
            # drew them (all clamped to 0 s) and listed the "slowest" trades by them
            outcomes = outcomes.assign(latency_s=pd.Series(pd.NA, index=outcomes.index,
                                                           dtype="Float64"))
        summary["uptime"] = status["paths"][path]["uptime"]
        summary["faults"] = [{"name": w.name, "start_s": (w.start_ns - win_start) / _NS,
                              "stop_s": (w.stop_ns - win_start) / _NS} for w in windows]
        summary["status"], summary["error"] = "ok", None
        if refused:  # a window the truth could not be read for: no verdict on guesses
            summary["status"] = "inconclusive"
            summary["error"] = (f"eth_getLogs at {endpoint_host(opts.rpc_url)} refuses "
                                f"{refused} even alone: the trades of those blocks are not "
                                "judged")
        summaries.append(summary)
        truth.to_parquet(sdir / "truth.parquet", index=False)
        detections.to_parquet(sdir / "detections.parquet", index=False)
        outcomes.to_parquet(sdir / "outcomes.parquet", index=False)
        _write_jsonl(sdir / "detections.jsonl", det_rows)
        _write_jsonl(sdir / "monitor_history.jsonl", hist)
        _write_jsonl(sdir / "sim_history.jsonl", [
            {"t_ns": win_start, "event": "start", "speed": 1.0, "t0_ns": win_start,
             "first_block": start, "ts0": ts0, "source": "chain (reconciled pilot)"},
            *chain_rows])
        (sdir / "scenario.toml").write_text(
            f'name = "{name}"\ndescription = "live pilot, {path} path"\nmode = "{path}"\n',
            encoding="utf-8")
        (sdir / "run.json").write_text(json.dumps(
            {**run, "window_start_ns": win_start, "window_end_ns": win_end,
             "clock": "wall"}, indent=2) + "\n", encoding="utf-8")
        (sdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n",
                                           encoding="utf-8")
    for p, (n,) in torn.items():
        if n:
            log(f"{p}: {n} history line(s) torn by a crash, dropped")
    pilot = {
        "store": str(store_dir),
        "endpoints": meta.get("endpoints", {}),
        "truth_rpc": endpoint_host(opts.rpc_url),
        "started": _iso(first_wall), "last_beat": _iso(last_wall),
        "sessions": len(sessions),
        "wallets": wallets,
        "exchanges": exchanges,
        "chain_id": chain_id,
        "blocks": [start, end], "end_clamped_from": clamped,
        # blocks eth_getLogs refused even alone: not judged, the run INCONCLUSIVE
        "unchecked_blocks": unchecked,
        # blocks past the end refused even alone, not needed: no trade seen in the range
        # was missing from its truth (a reorg could have moved only such a trade there)
        "unchecked_past_end_not_needed": beyond_not_needed,
        "finality_depth": opts.finality_depth, "grace_s": opts.grace_s,
        "timestamp_offset_s": opts.timestamp_offset_s,
        "uptime": {p: status["paths"][p]["uptime"] for p in PATHS},
        "trades_both": status["trades_both"],
        "truth_calls": truth_calls,
        # rows torn by a crash and dropped from each path's history
        "history_lines_torn": {p: torn[p][0] for p in PATHS},
        # a delivery this long before its block's timestamp: the local clock was behind
        "clock_behind_s": behind_s,
        "limitations": LIMITATIONS,
    }
    manifest = {"run_id": run_dir.name, "kind": "pilot", "command": list(command),
                "scenarios": [s["scenario"] for s in summaries],
                "seeds": {}, "speed": {s["scenario"]: 1.0 for s in summaries},
                "pilot": pilot, "git_sha": git_sha(Path(__file__).resolve().parent.parent),
                "versions": package_versions(), "started": _iso(first_wall),
                "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n",
                                           encoding="utf-8")
    write_run_summary(run_dir, summaries)
    _make_private(run_dir)
    point_latest(run_dir)
    return run_dir


def _make_private(run_dir: Path) -> None:
    """Files 0600, folders 0700: the sightings and histories copied here are 0600 in the
    pilot's store (they were 0644 here). The run folder was 0700 from its creation, so
    nothing was readable by others in between."""
    for path in run_dir.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)
