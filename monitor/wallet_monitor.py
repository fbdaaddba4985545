"""The wallet monitor: WebSocket detection with backfill, reorgs, dedup, fallback, rollout.

Sources
-------
Wallets are split by the gradual-rollout rule (:func:`monitor.cores.assign_source`, stable
by keccak of the address): ``websocket_share`` % go to WebSocket shards, the rest to the
polling baseline (:class:`monitor.polling.PollingMonitor`). ``mode = polling`` (or
``websocket_enabled = false``) puts every wallet on polling: the pure baseline.

Subscriptions: :func:`monitor.providers.plan_subscriptions` picks ``filtered`` or
``firehose`` from ``subscription_mode``, the provider profile and the wallet count (logged,
and a ``subscription_mode`` history row). In firehose mode one shard watches every
WebSocket wallet with ``{"address": exchanges, "topics": [[V1, V2]]}`` (no maker topics):
notifications of other makers are dropped before the delivery queue, and its ``eth_getLogs``
syncs ask for the same filter in chunks of ``firehose_chunk_blocks``.

Each WebSocket shard (at most ``max_wallets_per_filter`` wallets) owns one
:class:`~monitor.websocket_manager.WebSocketManager` connection with two subscriptions:
``logs`` ``{"address": exchanges, "topics": [[V1, V2], null, [maker topics...]]}`` (made
first) and ``newHeads`` (liveness, gap and reorg detection). Every notification goes
through :class:`monitor.pipeline.Pipeline` at once (decode, ``removed`` -> retract, dedup,
outbox, sink) - live trades are never held back behind a backfill; the dedup by trade id
merges the sources without loss or duplicates.

Cursor policy (what "fully processed" means)
--------------------------------------------
The stored per-wallet cursor only passes block N when N was *verified by a query*: an
``eth_getLogs`` sync over the shard's filter covering N (run after every (re)connect, on a
head gap, after a reorg, and every ``reconcile_interval`` simulated seconds), or an explorer
poll covering N (fallback). A sync goes up to ``head - 1`` (the head's logs could still be
arriving at a provider whose HTTP node lags its WebSocket node), or to the head itself once
the probes have seen the node's head unmoved for two block intervals (a chain that
stopped). Live notifications alone never advance the cursor (unless
``reconcile_interval = 0``, when contiguous heads on one connection advance it to
``head - 1``, and the blocks they passed are fetched once every ``ZERO_MODE_SWEEP_BLOCKS``:
a notification lost there comes up to that many blocks late - the dedup ids of the
blocks a sweep is still to read are kept (``WsShard.sweep_floor``), down to the cursor
less ``ZERO_MODE_HOLD_BLOCKS``: sweeps failing longer leave the blocks below unswept,
said by the alert ``zero_mode_unswept`` -, and after a restart the first sweep fetches
the ``RESTART_SWEEP_BLOCKS`` below the stored cursor, which the heads of the run before
may have moved past blocks no sweep had fetched, or from the sweep floor it stored
(table ``sweep_floors``) down to the cursor less ``dedup_retention_blocks``), so a
notification lost on the wire (drop, silent subscription, loss) is recovered at the latest
by the next sync, and a restart resumes from a cursor that is never ahead of what was verified. A
shard syncs from the lowest cursor of its wallets (a wallet new while ``start_block`` stays
set starts there); the other wallets' logs more than ``dedup_retention_blocks`` below their own
cursors, whose trade ids may be pruned, are not delivered again.

Interruptions
-------------
``on_connected`` -> sync from the cursor to the first head seen; a head that skips heights
-> sync; a head whose parent changed or that repeats a height with a new hash -> reorg
check: walk down with ``eth_getBlockByNumber`` to the fork point, re-query the logs from the
fork, retract delivered trades that are no longer there, deliver the ones that moved only if
they had been retracted (dedup), move the cursor back to the fork and sync again. After a
restart the first sync checks that the stored cursor's block hash is still canonical;
before that, the trades a crashed process left in the outbox are sent only if the node
does not have their block with another hash (else retracted; see ``Pipeline.recover``).

Fallback
--------
Feed health = manager CONNECTED and a head within ``staleness_blocks * block_interval``.
Unhealthy for ``fallback_after`` -> poll the explorer (the same polling code, same
per-wallet cursors) every ``fallback_polling_interval``; healthy again -> sync via
``eth_getLogs`` from the cursor, then stop polling. History rows ``feed`` and ``fallback``.
The HTTP node's quota spent (``QuotaExhausted``: Alchemy's monthly capacity, a daily
count) while the feed is healthy: the same poller fills the feed's gaps from the explorer
(history ``quota_fill``), polling while a gap is open (a first head, a head that skips
blocks, a reorg's head, a lost live log: with ``reconcile_interval = 0`` the cursors go back
below a lost log's block first) and once every ``QUOTA_FILL_IDLE_S`` otherwise, the sync
asking the node again every ``backoff_max``; the first sync it answers hands back and stops
the poller.

All intervals are simulated seconds divided by ``speed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import resource
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from monitor.alerts import Alerter, LogAlerter, TelegramAlerter
from monitor.bounds import quantity
from monitor.clock import Clock, SystemClock
from monitor.config import Settings
from monitor.connection import ConnState, WsSettings
from monitor.cores import (
    BlockTracker,
    ChainChanges,
    ChangeMark,
    FallbackAction,
    FallbackDecider,
    FallbackState,
    HeadKind,
    assign_source,
    backfill_ranges,
    plausible_head,
)
from monitor.departed import OWED_GROUP, NotIndexedYet, OwedDrain, owed_from, owed_group, owed_top
from monitor.errors import (
    BadResponse,
    ConfigError,
    MonitorError,
    QuotaExhausted,
    RpcError,
    StoreError,
    Timeout,
)
from monitor.explorer_client import ExplorerClient
from monitor.history import History, NullHistory, record_bad_input
from monitor.jsonrpc_client import JsonRpcHttpClient, retry_delays
from monitor.metrics import peak_rss_bytes
from monitor.node_sync import node_sync_gap
from monitor.ops_server import LatencyHistogram, ObservedSink, OpsServer
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor, RefusalEpisodes, explorer_block_hashes
from monitor.providers import SubscriptionPlan, plan_subscriptions
from monitor.redact import redact
from monitor.sinks import JsonlSink, MemorySink, Sink
from monitor.stages import FrameStamps
from monitor.store import LAUNCH_GROUP, Store
from monitor.supervisor import Supervisor
from monitor.trades import DecodeError, Trade, word_hex
from monitor.websocket_manager import WebSocketManager, insecure_factory
from polyvocab import ORDER_FILLED_TOPICS, V2_EXCHANGES, address_topic
from polyvocab.policies import (
    PRUNED_HISTORY_CODE,
    backoff_delay,
    is_beyond_head,
    is_range_too_large,
)
from polyvocab.redact import mask_url

__all__ = ["WalletMonitor", "WsShard", "fallback_due", "next_tick", "split_wallets",
           "sync_retry_delay"]


class _NodeBehind(MonitorError):
    """The HTTP node has not the reorg the feed showed yet: re-check later."""


class _Prefetched:
    """A sync's first range's eth_getLogs answer, asked in one batch with the node's head
    (see :meth:`WsShard._confirmed_target`): blocks ``start..end``, the chain changes' mark
    taken before it was asked, and the result (or the node's :class:`RpcError`)."""

    __slots__ = ("answer", "changes", "end", "start")

    def __init__(self, start: int, end: int, changes: ChangeMark, answer: Any) -> None:
        self.start, self.end, self.changes, self.answer = start, end, changes, answer


def _above(entry: Any, block: int) -> bool:
    """A log whose block number reads as above ``block`` (one that does not read is kept:
    the pipeline reports it, as any malformed log)."""
    try:
        return quantity(entry["blockNumber"]) > block
    except (KeyError, TypeError, ValueError):
        return False


def _outside(entry: Any, a: int, b: int) -> bool:
    """A log whose block number reads as outside ``a..b`` (one that does not read is kept,
    as by :func:`_above`)."""
    try:
        return not a <= quantity(entry["blockNumber"]) <= b
    except (KeyError, TypeError, ValueError):
        return False


log = logging.getLogger("monitor.wallets")

#: the bytes of live logs waiting for delivery, as :func:`live_log_bytes` counts them
#: (``live_queue_max`` bounds their number; a hostile node's logs can be large)
LIVE_QUEUE_MAX_BYTES = 64 << 20
#: a live log larger than this (as :func:`live_log_bytes` counts) is no OrderFilled:
#: one is ~1.5 kB (its data 5 to 7 words, four topics, hashes and numbers as hex)
MAX_LIVE_LOG_BYTES = 8192
#: a sweep's trade at least this many blocks below the feed's head, in a block whose head
#: this connection announced, should have come live: the logs subscription is silent (see
#: :meth:`WsShard._missed_live`)
LIVE_MISS_BLOCKS = 3
_MAX_LIST = 8  # topics: OrderFilled has four
#: simulated seconds a restart waits for the node to judge the blocks of the trades a
#: crashed process left in the outbox (see :meth:`Pipeline.recover`) before sending them
#: unchecked
RESTART_CHECK_WAIT_S = 5.0
#: blocks below the highest delivered one whose trades of a wallet no longer on the list
#: are still re-checked after a reorg (the depth the re-checks look back: BlockTracker's)
DEPARTED_DEPTH = 128
#: simulated seconds past the highest block the run before had read (its cursors, its
#: tracked hashes) up to which a removed wallet's trades count as owed to it: a run stuck
#: in a fault for up to this long before it stopped still owed the trades of that time.
#: Later ones were mined while no monitor ran (a monitor down for a weekend, a state DB
#: of an old run given a new list): not the bot's, the wallet was off the list by then
OWED_SLACK_S = 3600.0
#: after a sweep found trades a silent logs subscription should have sent, every head
#: syncs (eth_getLogs a block, not a sweep every ``reconcile_interval``) for this many
#: blocks (~5 minutes), or until a logs notification comes: a re-made subscription may be
#: silent too (a provider whose logs pipeline is down, not one dropped subscription)
LOGS_DISTRUST_BLOCKS = 150
#: reconcile_interval = 0: blocks the heads move the cursor past before one eth_getLogs
#: fetches them (see :meth:`WsShard._sweep_passed`); under BlockTracker's 128, so the
#: sweep can tell a silent logs subscription by the heads' hashes
ZERO_MODE_SWEEP_BLOCKS = 64
#: reconcile_interval = 0: the blocks below a restart's stored cursor its first sweep
#: fetches again (those the heads passed unswept before the stop, with a margin)
RESTART_SWEEP_BLOCKS = 2 * ZERO_MODE_SWEEP_BLOCKS
#: reconcile_interval = 0: how far below a shard's cursor the dedup rows of blocks its
#: sweeps are still to read are kept (:meth:`WsShard.sweep_floor`, ``Pipeline.prune_hold``;
#: at least ``dedup_retention_blocks``): about a day of Polygon blocks. The node's sweeps
#: failing for longer, the blocks further below are left unswept (``zero_mode_unswept``).
#: The hold is global (one stuck shard holds every wallet's rows): the ``delivered``
#: table keeps at most this many blocks' rows more than the retention
ZERO_MODE_HOLD_BLOCKS = 43_200
#: simulated seconds between two rounds of a quota fill while no gap is open (see
#: WsShard._fill_due): the wallets' cursors stay near the head (~150 blocks behind at
#: most), so the sync that takes over when the quota is back fetches a few chunks, not
#: every block since the quota was spent (a month: 1.3 M blocks, 162,000 firehose chunks)
QUOTA_FILL_IDLE_S = 300.0


def live_log_bytes(entry: dict[str, Any]) -> int | None:
    """What a live log holds, roughly, in bytes (its texts and short lists, one level
    deep); None for one too large to be a trade (a frame of max_size could carry a log of
    ~1 MB: 100,000 of them queued were 100 GB)."""
    size = 256
    for value in entry.values():
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, list | dict):
            if len(value) > _MAX_LIST:
                return None
            size += sum(len(v) if isinstance(v, str) else 64 for v in value)
        else:
            size += 32
    return size if size <= MAX_LIVE_LOG_BYTES else None


def split_wallets(wallets: Sequence[str], share: float, websocket: bool
                  ) -> tuple[list[str], list[str]]:
    """(websocket wallets, polling wallets) by the stable rollout rule."""
    if not websocket:
        return [], list(wallets)
    ws = [w for w in wallets if assign_source(w, share) == "websocket"]
    on_ws = set(ws)  # once: a set per wallet made 100,000 wallets quadratic
    return ws, [w for w in wallets if w not in on_ws]


def next_tick(last: float, period: float, due: float, now: float) -> float:
    """The first tick of the grid ``last + n * period`` (n >= 1) that is after ``now`` and
    not before ``due`` (``inf`` if ``due`` is). A loop that sleeps ``period`` after every
    tick ticks on the same grid; one that sleeps until ``next_tick(...)`` runs the same
    ticks minus those that could do nothing. Float slack: a millionth of a period."""
    if due == math.inf:
        return math.inf
    eps = period * 1e-6
    n = math.ceil((max(due - eps, now + eps) - last) / period)
    return last + max(n, 1) * period


def sync_retry_delay(failures: int, *, speed: float) -> float:
    """Clock seconds the sync loop waits after ``failures`` failures in a row: 2, 4, 8, 16,
    then 30 simulated seconds, never more than 30 clock seconds (``backoff_delay``: an
    exponent of its own, ``2.0 ** 1024``, was an OverflowError that a node refusing for
    hours reached, crashing the sync loop from inside its own error handling)."""
    return min(backoff_delay(failures, initial=1.0, maximum=30.0) / speed, 30.0)


def fallback_due(fallback: FallbackDecider, healthy: bool) -> float:
    """When ``fallback.update(healthy, now)`` would next change anything (its state, an
    action) if ``healthy`` stays as it is: ``-inf`` at once, the fallback deadline while
    UNHEALTHY, ``inf`` when only a change of health can."""
    state = fallback.state
    if healthy:
        return math.inf if state in (FallbackState.LIVE, FallbackState.HANDBACK) else -math.inf
    if state is FallbackState.POLLING:
        return math.inf
    if state is FallbackState.UNHEALTHY:
        deadline = fallback.deadline()
        return math.inf if deadline is None else deadline
    return -math.inf  # LIVE -> UNHEALTHY, HANDBACK -> POLLING


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _jitter_seed(url: str) -> str:
    """The retry jitter's seed: the endpoint's host and path, not its port (a simulator on
    a random loopback port must not change the delays: virtual runs are byte-identical)."""
    parts = urlsplit(url)
    return f"{parts.hostname}{parts.path}"


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _block_hash(block: Any, number: int) -> str | None:
    """The hash of an ``eth_getBlockByNumber`` result for block ``number`` (None: the node
    does not have it). A block without a 32-byte hex hash, or another block than the one
    asked (a batch's answers mixed up by a proxy), is a :class:`BadResponse`: its hash
    must never be compared with a stored one (a mismatch re-checks and retracts)."""
    if not isinstance(block, dict):
        return None
    h = block.get("hash")
    try:
        answered = quantity(block.get("number"))
    except (ValueError, TypeError):
        answered = None
    if answered != number:
        raise BadResponse(f"eth_getBlockByNumber({number}): the answer is block "
                          f"{str(block.get('number'))[:24]!r}", kind="bad_shape")
    try:
        return word_hex(h, "hash")
    except DecodeError:
        raise BadResponse(f"eth_getBlockByNumber({number}): no 32-byte hash "
                          f"({str(h)[:24]!r})", kind="bad_shape") from None


async def node_hashes(rpc: _Rpc, numbers: Collection[int],
                      out: dict[int, str | None] | None = None) -> dict[int, str | None]:
    """The node's hash of each block in ``numbers`` (None: a block it does not have),
    asked in JSON-RPC batches (:meth:`_Rpc.call_many`), in the order given.

    ``out`` (optional): the dict the answers go into, each as it comes (a batch at a time,
    or one call at a time from a node that refuses batches), and which is returned: a
    caller that stops waiting (a deadline) or gets an error still has the blocks answered
    so far (as :func:`monitor.polling.explorer_block_hashes`)."""
    if out is None:
        out = {}
    asked = list(numbers)
    got = out

    def answered(i: int, block: Any) -> None:
        got[asked[i]] = _block_hash(block, asked[i])
    await rpc.call_many("eth_getBlockByNumber", [[hex(n), False] for n in asked], answered)
    return out


async def node_block_number(rpc: _Rpc) -> int:
    """The HTTP node's ``eth_blockNumber``: a hex string (a JSON-RPC QUANTITY), or
    :class:`BadResponse`."""
    return block_number_of(await rpc.call("eth_blockNumber", []))


def block_number_of(answer: Any) -> int:
    """An ``eth_blockNumber`` result as a number (:class:`BadResponse` if it is none)."""
    if not isinstance(answer, str):
        raise BadResponse(f"eth_blockNumber answered a {type(answer).__name__}, not a "
                          "hex quantity", kind="bad_shape")
    try:
        return quantity(answer, "eth_blockNumber")
    except ValueError as exc:
        raise BadResponse(str(exc), kind="bad_shape") from None


#: simulated seconds between two alerts of the HTTP node's spent quota at least (and the
#: quiet period that ends an episode: :class:`polyvocab.policies.QuotaEpisode`)
QUOTA_ALERT_EVERY_S = 3600.0
#: simulated seconds a server's asked wait (a 429's Retry-After, Infura's
#: ``backoff_seconds``) may hold one JSON-RPC HTTP call, a retry; a longer spent quota
#: is raised at once (the sync loop asks again at its own pace)
RPC_MAX_RETRY_AFTER_S = 60.0


class _Rpc:
    """JSON-RPC over HTTP (:class:`monitor.jsonrpc_client.JsonRpcHttpClient`), counted."""

    def __init__(self, url: str, session: aiohttp.ClientSession, *, history: History,
                 clock: Clock, timeout: float, speed: float, rate_per_s: float,
                 batch_size: int = 1,
                 on_quota_exhausted: Callable[[QuotaExhausted], None] | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.failures = 0
        self.batch_size = batch_size  # halved at each batch the node refuses
        self.mixed_batches = True  # False once the node refused a batch of :meth:`batch`
        self._client = JsonRpcHttpClient(
            url, session, history=history, clock=clock, timeout=timeout, max_retries=3,
            rate_limit_per_s=rate_per_s * speed, on_quota_exhausted=on_quota_exhausted,
            quota_alert_every=QUOTA_ALERT_EVERY_S / speed,
            # simulated, as every interval of the monitor: left at 60 clock seconds, a
            # wait held inside one call at speed 20 was 1,200 simulated seconds
            max_retry_after=RPC_MAX_RETRY_AFTER_S / speed,
            retry_policy=lambda: retry_delays(max(0.25 / speed, 0.02), max(8.0 / speed, 0.5),
                                              jitter=0.2, seed=_jitter_seed(url)))

    async def call(self, method: str, params: list[Any]) -> Any:
        self.calls[method] += 1
        try:
            return await self._client.call(method, params)
        except MonitorError:
            self.failures += 1
            raise

    async def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any] | None:
        """``calls`` (of different methods) in ONE JSON-RPC batch, one HTTP request: their
        results in order, a call the node answered with an error as its :class:`RpcError`
        in its place. None, asking nothing more, when this client sends no batches
        (``batch_size`` 1) or no such batch any more (the node refused one: a provider's
        limit, as :meth:`call_many` halves to; or it timed out): the caller asks the
        calls one at a time. The calls count as many API calls as when asked apart."""
        if self.batch_size <= 1 or not self.mixed_batches:
            return None
        for method, _p in calls:
            self.calls[method] += 1
        try:
            results = await self._client.batch(calls)
        except (RpcError, BadResponse, Timeout) as exc:
            refused = isinstance(exc, RpcError) or (
                isinstance(exc, BadResponse) and (exc.kind == "batch_refused" or (
                    exc.status is not None and 400 <= exc.status < 500)))
            if not (refused or isinstance(exc, Timeout)):
                self.failures += 1
                raise
            for method, _p in calls:
                self.calls[method] -= 1
            if isinstance(exc, Timeout):
                self.failures += 1  # asked apart (eth_getLogs splits a heavy range)
            else:
                self.mixed_batches = False
                log.warning("JSON-RPC node refused a batch of %s (%s): one call at a time "
                            "from now on", "+".join(m for m, _p in calls), exc)
            return None
        except MonitorError:
            self.failures += 1
            raise
        self.failures += sum(isinstance(r, RpcError) for r in results)
        return results

    async def call_many(self, method: str, params: Sequence[list[Any]],
                        answered: Callable[[int, Any], None] | None = None) -> list[Any]:
        """``method`` once for each of ``params``, results in their order: JSON-RPC batches
        of up to ``batch_size`` calls (one HTTP request each). A refused batch (an error
        object for the whole batch, a 4xx, or an answer that is not a batch's) halves
        ``batch_size`` for this client from then on (a provider's batch limit), down to one
        call at a time; so does a batch that timed out. A call the node answered with an
        error raises it, as :meth:`call` does; so does a failed request.

        ``answered(i, result)`` (optional) is called for each result as it comes (the
        calls of a batch before its first error too): a caller cut short by an error or
        a deadline keeps what was answered before it."""
        out: list[Any] = []
        i = 0
        while i < len(params):
            size = self.batch_size
            if size <= 1 or len(params) - i == 1:
                out.append(await self.call(method, params[i]))
                if answered is not None:
                    answered(i, out[-1])
                i += 1
                continue
            chunk = params[i:i + size]
            self.calls[method] += len(chunk)
            try:
                results = await self._client.batch([(method, p) for p in chunk])
            except (RpcError, BadResponse) as exc:
                if isinstance(exc, BadResponse) and exc.kind != "batch_refused" and not (
                        exc.status is not None and 400 <= exc.status < 500):
                    self.failures += 1
                    raise
                self.calls[method] -= len(chunk)
                self.batch_size = len(chunk) // 2  # a provider's batch limit: halve until
                log.warning("JSON-RPC node refused a batch of %d %s calls (%s): %s from now "
                            "on", len(chunk), method, exc,  # it passes, or no batch at all
                            f"batches of {self.batch_size}" if self.batch_size > 1
                            else "one call at a time")
                continue
            except Timeout as exc:
                # a node too slow for this many calls in one request (a restart check asks
                # for up to 128 blocks at once): the same batch timed out at every retry,
                # for ever. Halved like a refused one, down to one call at a time, whose
                # timeout then raises as any call's
                self.failures += 1
                self.calls[method] -= len(chunk)
                self.batch_size = len(chunk) // 2
                log.warning("JSON-RPC batch of %d %s calls timed out (%s): %s from now on",
                            len(chunk), method, exc, f"batches of {self.batch_size}"
                            if self.batch_size > 1 else "one call at a time")
                continue
            except MonitorError:
                self.failures += 1
                raise
            for k, r in enumerate(results):
                if isinstance(r, RpcError):
                    self.failures += 1
                    raise r
                if answered is not None:
                    answered(i + k, r)
            out.extend(results)
            i += len(chunk)
        return out


class WsShard:
    """One WebSocket connection watching up to ``max_wallets_per_filter`` wallets.

    Nothing a sync does costs the live path more than one slice: the shard's cursor (the
    lowest of its wallets') is read from the store once and then kept in memory (it moves
    only by this shard's own writes, except while the fallback poller runs, when it is
    read from the store again); the per-wallet cursors are written a cursor set of the
    store's a transaction (one row once its wallets moved together), and a backfill's
    logs go to the pipeline ``BACKFILL_SLICE`` at a time, with the event loop (live
    deliveries) running in between. A firehose of 100,000 wallets otherwise stalled
    live deliveries by more than a second at every sync."""

    #: logs of a backfill handed to the pipeline at a time (one transaction each)
    BACKFILL_SLICE = 250
    #: re-checks put off while the HTTP node has not the reorg's head block the feed
    #: showed (then the node's view is taken: a feed on a fork of its own is wrong)
    RECHECK_NODE_WAITS = 3
    #: ... and while the node's head is also below the feed's: it is behind, still on the
    #: replaced chain, not on a fork of its own (with the sync back-off, 2 + 4 + 8 + 16 +
    #: 30 x 4 simulated seconds: ~80 Polygon blocks)
    RECHECK_BEHIND_WAITS = 8

    def __init__(self, index: int, wallets: list[str], *, settings: Settings, store: Store,
                 pipeline: Pipeline, rpc: _Rpc, explorer: ExplorerClient | None,
                 history: History, clock: Clock, alerts: Alerter | None,
                 supervisor: Supervisor | None = None, firehose: bool = False,
                 committed: dict[int, str] | None = None,
                 departed: tuple[list[str], int] | None = None) -> None:
        """``firehose``: subscribe to every ``OrderFilled`` of the exchanges (no maker
        topics) and keep only ``wallets``' logs. ``committed``: the stored block hashes as
        the process found them, before any shard wrote (default: the store's now).
        ``departed``: wallets no longer on the list, and the block from which their
        standing deliveries are still judged after a reorg (see :meth:`_check_departed`)."""
        self.index = index
        # the node answered the sync "pruned history unavailable" (alerted once an episode)
        self._pruned_alerted = False
        self.firehose = firehose
        self._maker_topics = frozenset(address_topic(w).lower() for w in wallets)
        self.chunk_blocks = (min(settings.backfill_chunk_blocks, settings.firehose_chunk_blocks)
                             if firehose else settings.backfill_chunk_blocks)
        self.conn_id = f"ws{index}"
        self.wallets = wallets
        self._wallet_set = frozenset(wallets)  # for the store's look-ups (hashed once)
        self.s = settings
        self.store = store
        self.pipeline = pipeline
        self.rpc = rpc
        self.explorer = explorer
        self.history = history
        self.clock = clock
        self.tracker = BlockTracker(keep=128)
        self.fallback = FallbackDecider(settings.scaled(settings.fallback_after))
        self.counters: Counter[str] = Counter()
        # the jitter differs per endpoint (a provider's key is in its path) and per shard:
        # monitors dropped together by a provider's outage do not come back together (a
        # digest: the settings' repr must not carry the key)
        seed = hashlib.sha256(f"{_jitter_seed(str(settings.websocket_url))}#{index}"
                              .encode()).hexdigest()
        ws = WsSettings.from_settings(settings, seed=seed)
        self.manager = WebSocketManager(str(settings.websocket_url), settings=ws, clock=clock,
                                        history=history, alerts=alerts, conn_id=self.conn_id,
                                        session_factory=None if settings.tls_verify
                                        else insecure_factory,
                                        stamp_frames=settings.latency_stages)
        self._stamp = settings.latency_stages
        self.manager.on_connected.append(self._on_connected)
        self.manager.on_disconnected.append(self._on_disconnected)
        self.manager.on_state.append(lambda _t: self._health_replan())
        self.head: int | None = None
        self.node_head: int | None = None  # the node's head as the head-lag probe saw it
        self.head_at: float | None = None
        self.live_from: int | None = None  # first head of the current connection
        self._healthy = False
        self._wake = asyncio.Event()
        # (log, its frame's stamps when latency_stages is on, its size as counted)
        self._inbox: asyncio.Queue[tuple[dict[str, Any], FrameStamps | None, int]] = \
            asyncio.Queue(maxsize=settings.live_queue_max)
        self._inbox_bytes = 0  # bounded by LIVE_QUEUE_MAX_BYTES as well as by items
        # the lowest block of a live log dropped (full queue) or whose delivery failed,
        # until a sync has covered it: heads do not move the cursor past it meanwhile
        self._dropped_from: int | None = None
        self._drops = 0  # how many so far (a sync clears only what it started after)
        self._live_busy = False  # a batch of live logs is being delivered
        self._live_miss_conn: float | None = None  # the connection re-made for missed logs
        # the feed's head when the last logs notification came (this connection): a
        # subscription that sent something since a missed trade's block is lossy, not dead
        self._live_log_head: int | None = None
        # every head syncs up to this block: a sweep found trades the logs subscription
        # should have sent (see LOGS_DISTRUST_BLOCKS); None once a notification came
        self._logs_distrusted_to: int | None = None
        self.supervisor = supervisor or Supervisor(history=history, clock=clock,
                                                   alerts=alerts, speed=settings.speed)
        self._reorg_from: int | None = None
        # the last reorg head the feed showed (number, hash), until a re-check is done:
        # the node must have that block before its answers judge the reorg
        self._reorg_head: tuple[int, str] | None = None
        # (number - 1, its parentHash) when that is not the block the feed had below it:
        # the fork lies below the head (geth announces a side chain that overtakes in one
        # import with the new top's header only), so a node without the head must have
        # its parent. Kept through a later reorg forked at its own head (not below it)
        self._reorg_parent: tuple[int, str] | None = None
        # the highest height a reorg head showed changed since the last re-check done:
        # the re-check walks down from there (see _recheck)
        self._reorg_top: int | None = None
        self._node_waits = 0  # re-checks put off so far for it
        # live signs of a chain change (reorg heads, ``removed`` logs) seen so far: an
        # eth_getLogs answer fetched across one may be the old chain's (see sync)
        self._changes = ChainChanges()  # what makes logs fetched meanwhile stale
        self._sync_cut = False  # the last sync stopped short of its target (see sync)
        # how far the node's head - 1 was below the sync's target at the last ask: the
        # next sync's batch asks the logs up to as far below its own (_confirmed_target)
        self._node_behind_by = 0
        self._handback = False
        self._verified_restart = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._poller: PollingMonitor | None = None
        self._poll_task: asyncio.Task[Any] | None = None
        # the shard's cursor when the fallback poller started (its deliveries are above)
        self._fallback_floor: int | None = None
        # once polling stopped: blocks from here up still to be checked (see the loop)
        self._fallback_check: int | None = None
        # the poller runs because the node's quota is spent, not for the feed's fallback
        # (see _start_quota_fill): stopped once a sync answers again
        self._quota_fill = False
        # the running poller was started as a quota fill and is one still (its history
        # rows are ``quota_fill``, not ``fallback``: the feed never fell back)
        self._fill_poller = False
        # the highest block whose trades the live feed may not have delivered (the blocks
        # up to a connection's first head, a head that skipped blocks, a reorg's head, a
        # dropped or undecodable live log, the heads of a distrusted logs subscription): a quota
        # fill polls only while the cursor is below it (see _fill_due). Blocks the cursor
        # is below otherwise were delivered live (a sync's job to verify, the node's)
        self._gap_to: int | None = None
        self._fill_round_at = 0.0  # (clock) the quota fill's last round (see _fill_due)
        # the explorer's refused key or setting: one episode (one alert) across the
        # pollers this shard builds, one each fallback
        self._explorer_episodes = RefusalEpisodes()
        self.synced_to: int | None = None  # highest block verified this run
        # reconcile_interval = 0: every block up to here was fetched by eth_getLogs this
        # run, without a hole (heads move the cursor past blocks none fetched); a sweep is
        # due once the heads are ZERO_MODE_SWEEP_BLOCKS past it (see _sweep_passed)
        self._swept_to: int | None = None
        # reconcile_interval = 0 and a poller running: wallet -> the block up to which it
        # read that wallet's logs without a hole from _swept_to (see _poller_read)
        self._fill_read: dict[str, int] = {}
        # a quota fill: a head moved the cursor since the explorer last read from
        # _swept_to (see _on_head, _fill_from_swept)
        self._fill_heads_moved = False
        # reconcile_interval = 0: wallet -> the highest cursor less dedup_retention_blocks
        # (less 1) a quota fill's rewind saw: its trades' ids below are pruned, the
        # explorer never reads them again (see _rewind_for_fill)
        self._prune_line: dict[str, int] = {}
        # reconcile_interval = 0: the first block the sweeps left unswept since the last
        # one done (its trades' ids pruned: see _unswept_floor), and the last
        self._unswept: tuple[int, int] | None = None
        # reconcile_interval = 0: the cursor heads moved on before the first sync (None:
        # none did); the first sweep starts there (see sync)
        self._unswept_from: int | None = None
        #: reconcile_interval = 0, after a restart: the blocks below the stored cursor the
        #: first sweep fetches (first, last), and each wallet's block at or below which its
        #: logs are left out there (its ids may have been pruned; see _not_pruned)
        self._restart_window: tuple[int, int] | None = None
        self._restart_pruned: dict[str, int] = {}
        # the restart window's block below the chunk its sweep is reading (taken from
        # _restart_window while it reads; see sweep_floor, _store_floor)
        self._window_reading: int | None = None
        # ... and the sweep's (_sweep_passed) block below the chunk it is asking
        self._sweep_reading: int | None = None
        # reconcile_interval = 0: the pipeline's prune keeps the dedup rows from this
        # shard's sweep_floor() up (set by WalletMonitor): its sweeps reach down to the
        # cursor less _hold_blocks(), not less dedup_retention_blocks
        self.prune_held = False
        # the wallets' stored cursors as first read: with the prune held, the ids of
        # their trades may be pruned only up to these less dedup_retention_blocks (the
        # run before's prune; this run's keeps what its sweeps are still to read)
        self._start_cursors: dict[str, int] | None = None
        # reconcile_interval = 0: the sweep floor the store holds for the shard's wallets
        # (Store.set_sweep_floors; None: no row), and as first read (the run before's)
        self._floor_stored: int | None = None
        self._floor_at_start: int | None = None
        # some of the wallets have no stored floor (it is written for all of them): a
        # wallet added at a restart took none, and once the others were removed (or
        # moved to another shard) its restart read only the RESTART_SWEEP_BLOCKS
        self._floor_partial = False
        self._sweep_due = False
        self._probe: asyncio.Task[None] | None = None
        self._probed_at = float("-inf")
        self._probed_ok_at = float("-inf")
        # the node's head as the probes saw it, and since when it has not moved (a chain
        # that stopped: see _chain_stalled)
        self._node_seen: tuple[int, float] | None = None
        self._lag_reconnect_node: int | None = None  # the node's head at the last one
        self._started_at: float | None = None
        # the health loop's grid (see _health_loop): its last tick, its wait, its timer
        self._health_period = max(settings.scaled(settings.block_interval) / 2, 0.01)
        self._health_last = 0.0
        self._health_wait: asyncio.Future[None] | None = None
        self._health_timer: asyncio.TimerHandle | None = None
        self._health_at = math.inf
        self.health_ticks = 0  # ticks run (the grid has one every period)
        self._cursor: int | None = None  # the shard's cursor, once read (see cursor())
        self._cursor_read = False
        self._cursor_complete = False
        # every wallet's stored cursor is its launch point, not moved by any run yet (see
        # WalletMonitor.record_launch): no run delivered below it, nothing to re-sweep
        self._at_launch = False
        # the block hashes this shard's cursor passed under (see _verify_restart_cursor):
        # the stored ones at start, then those of its own syncs and checks. Not the shared
        # table: another shard writes the chain it saw there, and a shard that was down
        # through a reorg then found its blocks "matching" and never fetched the new ones
        self._committed = dict(store.blocks() if committed is None else committed)
        # wallets no longer on the list whose last deliveries (from _departed_from up)
        # this shard still judges after a reorg (see _check_departed)
        self._departed = list(departed[0]) if departed is not None else []
        self._departed_from = departed[1] if departed is not None else 0
        # wallet -> the block up to which its trade ids may have been pruned, for the
        # wallets whose such block is above the shard's cursor (see _not_pruned)
        self._pruned_below: dict[str, int] = {}
        # wallet -> its launch point (Store.launches, read with the cursors): nothing at
        # or below it was ever the bot's, whatever path fetches it (see _not_pruned)
        self._launched: dict[str, int] = {}

    # -- filter ------------------------------------------------------------------------

    def log_filter(self) -> dict[str, Any]:
        if self.firehose:
            return {"address": list(self.pipeline.exchanges),
                    "topics": [list(ORDER_FILLED_TOPICS)]}
        return {"address": list(self.pipeline.exchanges),
                "topics": [list(ORDER_FILLED_TOPICS), None,
                           [address_topic(w) for w in self.wallets]]}

    def cursor(self) -> int | None:
        """The shard's cursor: the lowest cursor of its wallets (None if none has one).

        Read from the store once (O(wallets)), then kept up to date by this shard's own
        writes. While the fallback poller advances the same wallets' cursors it is read
        from the store every time (a cached value is only ever lower than the store's:
        a sync from it would re-fetch blocks, never skip one)."""
        if not self._cursor_read or self._poller is not None:
            cursors = self.store.cursors()
            own = {w: cursors[w].block for w in self.wallets if w in cursors}
            blocks = list(own.values())
            self._cursor_complete = len(blocks) == len(self.wallets)  # every wallet has one
            self._at_launch = bool(own) and all(cursors[w].group == LAUNCH_GROUP for w in own)
            if blocks and not self._cursor_complete and self.s.start_block is not None:
                # a wallet new to this shard (a rollout change, a wallet the poller never
                # reached) starts at start_block, not at the other wallets' cursor
                blocks.append(self.s.start_block - 1)
            self._cursor = low = min(blocks) if blocks else None
            if self._start_cursors is None:
                self._start_cursors = own
                if self.s.reconcile_interval == 0:
                    floors = self.store.sweep_floors()
                    have = [floors[w] for w in self.wallets if w in floors]
                    self._floor_stored = self._floor_at_start = min(have, default=None)
                    # (some wallets without a row: one added to the list, or re-sharded)
                    self._floor_partial = 0 < len(have) < len(self.wallets)
            keep = self.s.dedup_retention_blocks
            self._pruned_below = {} if low is None or not keep else {
                w: b - keep for w, b in own.items() if b - keep > low}
            launches = self.store.launches()
            self._launched = {w: launches[w] for w in self.wallets if w in launches}
            self._cursor_read = True
        return self._cursor

    def _hold_blocks(self) -> int:
        """How far below the cursor the zero mode's sweeps reach: the dedup rows of blocks
        from the cursor less this up are all kept (the retention's, or with the prune held
        at :meth:`sweep_floor`, ``ZERO_MODE_HOLD_BLOCKS``)."""
        keep = self.s.dedup_retention_blocks
        return max(ZERO_MODE_HOLD_BLOCKS, keep) if self.prune_held else keep

    def _restart_first(self, cur: int) -> int:
        """A restart's window starts above this block: the ``RESTART_SWEEP_BLOCKS`` below
        the stored cursor ``cur``, or from the sweep floor the run before stored (its
        sweeps failing, the heads moved the cursor further past them: a restart lost the
        trades the feed had lost there, with no word), not below the cursor less
        ``dedup_retention_blocks`` (the ids the run before may have pruned: the window
        leaves out each wallet's logs below its own cursor less the retention) nor below
        the wallets' launch point."""
        first = cur - RESTART_SWEEP_BLOCKS
        stored, keep = self._floor_at_start, self.s.dedup_retention_blocks
        if stored is not None and stored < first:
            first = stored if not keep else min(first, max(stored, cur - keep - 1))
        launch = self._launch_floor()
        return max(0, first, launch if launch is not None else 0)

    def _store_floor(self, to: float) -> None:
        """``reconcile_interval = 0``, before the shard's cursors move to ``to``: the
        lowest block its sweeps are still to read (``_swept_to``'s, or the restart
        window's) stored for its wallets when ``to`` is past the restart window's reach,
        ``RESTART_SWEEP_BLOCKS`` (:meth:`Store.set_sweep_floors`), the row dropped once
        the sweeps caught up to a sweep's blocks (``ZERO_MODE_SWEEP_BLOCKS``). A
        restart fetched only the ``RESTART_SWEEP_BLOCKS`` below the stored cursor: the
        node's sweeps failing for longer, a trade the feed lost further below was lost
        with no word. Written in a transaction before the cursor's (durable before the
        cursor passes it); a stored floor lower than ``_swept_to`` only makes a restart
        read more (rare rows: only while the sweeps are behind)."""
        if self.s.reconcile_interval != 0:
            return
        window = self._restart_window[0] if self._restart_window is not None else None
        # (before a restart's first sync: the run before's floor, which its window takes;
        # a head moving the cursor on before it dropped the row)
        before = self._floor_at_start if self._swept_to is None else None
        swept = min((b for b in (
            self._swept_to if self._swept_to is not None else self._unswept_from,
            window, self._window_reading, before) if b is not None), default=None)
        if swept is None:
            return
        # (stored past the restart window's reach only, dropped a sweep's blocks from it:
        # at more than ZERO_MODE_SWEEP_BLOCKS, a sweep still running at the next head (a
        # slow node; a firehose's 64 blocks are 8 eth_getLogs) wrote every wallet's row
        # and the head after it deleted them, O(wallets) twice every sweep)
        if to - swept > RESTART_SWEEP_BLOCKS:
            if self._floor_stored is None or self._floor_stored > swept or \
                    self._floor_partial:
                self.store.set_sweep_floors(self.wallets, swept)
                self._floor_stored, self._floor_partial = swept, False
        elif to - swept <= ZERO_MODE_SWEEP_BLOCKS and self._floor_stored is not None:
            self.store.set_sweep_floors(self.wallets, None)
            self._floor_stored, self._floor_partial = None, False

    def _pruned_line(self, wallet: str, block: int) -> int:
        """The block up to which ``wallet``'s trade ids may have been pruned, its cursor
        at ``block``: that less ``dedup_retention_blocks``; with the prune held at
        :meth:`sweep_floor`, its cursor as this run first read it less the retention
        (the run before's prune): this run's keeps every block its sweeps, a quota
        fill's reads and the restart window still had to read, down to the cursor less
        ``ZERO_MODE_HOLD_BLOCKS`` (:meth:`_unswept_floor` bounds them so)."""
        keep = self.s.dedup_retention_blocks
        if self.prune_held and self._start_cursors is not None:
            block = min(block, self._start_cursors.get(wallet, block))
        return block - keep

    def sweep_floor(self) -> int | None:
        """``reconcile_interval = 0``: the lowest block a sweep of this shard is still to
        read (None: none), whose trades' dedup rows the pipeline's prune keeps whatever
        the cursors say (``Pipeline.prune_hold``): the heads move the cursor over blocks
        no eth_getLogs fetched yet, and the node's sweeps failing for longer than
        ``dedup_retention_blocks`` (the feed healthy), the rows of the trades the feed
        delivered there were pruned; the sweep then sent them to the bot again, or was
        left out (``zero_mode_unswept``) with any trade the feed lost there. The restart
        window's start, or ``_swept_to + 1`` below the cursor (it only moves up once a
        chunk is delivered and its orphans retracted); before a restart's first sync, the
        window it will take and the cursor the heads moved on from (``_unswept_from``).
        Never below the cursor less :meth:`_hold_blocks` (the table bounded) but for a
        chunk being read (``_window_reading``, ``_sweep_reading``). The cached
        cursor, not :meth:`cursor` (the store's, while polling)."""
        if self.s.reconcile_interval != 0:
            return None
        if not self._cursor_read and self._poller is None:
            self.cursor()  # (once: not read yet)
        cur = self._cursor
        if cur is None:
            return None
        lows: list[int] = []
        if self._restart_window is not None:
            lows.append(self._restart_window[0] + 1)
        if self._swept_to is None:
            if not self._at_launch:  # before a restart's first sync: its window
                lows.append(self._restart_first(cur) + 1)
            if self._unswept_from is not None:
                # ... and where the heads moved the cursor on from before it: its sweep
                # starts there (sync). Held at the window only, which rises with the
                # cursor, the rows of the trades the feed delivered between were pruned
                # and that sweep sent them to the bot again
                lows.append(self._unswept_from + 1)
        elif self._swept_to < cur:
            lows.append(self._swept_to + 1)
        floor = max(min(lows), cur - self._hold_blocks()) if lows else None
        # a chunk being asked holds its blocks past the cap: the cap rose with the heads
        # while a slow node answered, and the trades the feed had delivered in its blocks
        # below the new cap, their rows pruned meanwhile, went to the bot again
        reading = [b + 1 for b in (self._window_reading, self._sweep_reading)
                   if b is not None]
        if floor is not None:
            reading.append(floor)
        return min(reading, default=None)

    def _launch_floor(self) -> int | None:
        """The lowest launch point of the shard's wallets when every one has one (else
        None): no block at or below it was ever watched."""
        self.cursor()  # read with the cursors
        if not self.wallets or len(self._launched) < len(self.wallets):
            return None
        return min(self._launched.values())

    def _not_pruned(self, logs: list[dict[str, Any]],
                    below: dict[str, int] | None = None) -> list[dict[str, Any]]:
        """``logs`` less those of a wallet in blocks more than ``dedup_retention_blocks``
        below its own cursor, where its delivered trades' ids may have been pruned.

        The shard syncs from the lowest of its wallets' cursors: a wallet whose cursor was
        left behind (one added back to the list by a monitor from before
        ``Store.forget_wallets``) or new while ``start_block`` stays set pulls the
        other wallets' old blocks into the sync, and their trades there, whose ids were
        pruned, were delivered again as new. Their cursors passed those blocks long ago
        (no reorg is that deep); nearer their cursors the dedup decides, as ever.
        ``below``: the wallets' blocks to use (the sync's, ``_pruned_below``, by default).

        Also less those of a wallet at or below its launch point (``_launched``): mined
        before it was watched - a wallet added at a restart while the others' cursors lag
        behind, a re-check whose fork lies at the launch block - never the bot's."""
        if below is None:
            below = self._pruned_below
        launched = self._launched
        if not below and not launched:
            return logs
        out = []
        for lg in logs:
            try:
                maker = lg["topics"][2]
                wallet = "0x" + maker[-40:].lower() if len(maker) == 66 else None
                done = below.get(wallet) if wallet is not None and below else None
                start = launched.get(wallet) if wallet is not None and launched else None
                if done is not None or start is not None:
                    number = quantity(lg["blockNumber"])
                    if done is not None and number <= done:
                        self.counters["backfill_below_wallet_cursor"] += 1
                        continue
                    if start is not None and number <= start:
                        self.counters["backfill_before_launch"] += 1
                        continue
            except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                pass  # the pipeline reports what does not decode
            out.append(lg)
        return out

    async def _set_cursors(self, block: int, block_hash: str | None, *,
                           forward_only: bool = True, launch: bool = False,
                           blocks: Callable[[], dict[int, str]] | None = None) -> None:
        """Move the cursors of the shard's wallets to ``block``, a cursor set of the
        store's (``cursor_set_max`` wallets: one row once they have moved together) a
        transaction, letting the event loop run in between. A crash between slices
        leaves some wallets behind: the shard's cursor (their lowest) has not moved, so
        nothing is skipped on restart. ``blocks()``: block hashes to store in the last
        slice's transaction (read then, after the last pause). ``launch``: the wallets
        start here, their launch point too (:meth:`Store.set_cursors`)."""
        cur = self.cursor()
        if forward_only:
            self._store_floor(block)
        ws = self.wallets
        step = self.store.cursor_set_max
        last = max(0, (len(ws) - 1) // step * step)
        for i in range(0, len(ws), step):
            if i:
                await asyncio.sleep(0)
            self.store.set_cursors(ws[i:i + step], block, block_hash,
                                   "websocket", forward_only=forward_only, launch=launch,
                                   blocks=blocks() if blocks is not None and i == last else None)
        if launch:  # committed: as Store.set_cursors keeps them
            for w in ws:
                self._launched.setdefault(w, block)
        self._cursor_moved(cur, block, forward_only=forward_only)

    def _cursor_moved(self, before: int | None, block: int, *, forward_only: bool) -> None:
        """Update the kept cursor after this shard wrote ``block`` to every wallet: forward
        only, each wallet is at max(its own, block) (a wallet without one at ``block``);
        otherwise at ``block``."""
        self._cursor = (max(before, block) if forward_only and self._cursor_complete
                        and before is not None else block)
        self._cursor_complete = True
        if self._pruned_below:  # only what lies above the shard's cursor still counts
            self._pruned_below = {w: b for w, b in self._pruned_below.items()
                                  if forward_only and b > block}

    async def _on_logs_sliced(self, logs: list[dict[str, Any]], *,
                              changes: ChangeMark | None = None, sweep: bool = False) -> bool:
        """A backfill's logs to the pipeline, ``BACKFILL_SLICE`` at a time (in order), the
        event loop running in between; in firehose mode other makers' logs are dropped
        before decoding, as live notifications are. With ``changes`` (where the chain
        changes stood when the logs were asked): False, delivering no further slice, once
        the feed has shown a reorg since, or removed the block of a log not yet
        delivered. ``sweep``: a sync's logs, whose trades the feed should have sent live
        (see :meth:`_check_live_missed`)."""
        if self.firehose:
            n = len(logs)
            logs = [lg for lg in logs if self._watched(lg)]
            self.counters["backfill_other_wallet"] += n - len(logs)
        for i in range(0, len(logs), self.BACKFILL_SLICE):
            if i:
                await asyncio.sleep(0)
            if changes is not None and self._changes.stale(changes, logs[i:]):
                return False
            delivered = await self.pipeline.on_logs(logs[i:i + self.BACKFILL_SLICE], "backfill")
            if sweep and delivered:
                self._check_live_missed(delivered)
        if logs:
            await asyncio.sleep(0)  # the live deliveries before what the caller does next
        return changes is None or not self._changes.reorged_since(changes)

    def _missed_live(self, trades: Sequence[Trade]) -> list[Trade]:
        """Of ``trades`` a sync just delivered (the live feed had not), those a dead logs
        subscription failed to send: in a block above this connection's first head whose
        head it announced (same hash), ``LIVE_MISS_BLOCKS`` below its head, with no logs
        notification at all since the block before (one that sends others is lossy, not
        dead: the sweeps fetch what it loses, and a reconnect would cost more), while
        nothing live waits for delivery, none was dropped and no reorg is being
        re-checked."""
        live_from, head, heard = self.live_from, self.head, self._live_log_head
        if (live_from is None or head is None or self.manager.state is not ConnState.CONNECTED
                or self._live_busy or not self._inbox.empty() or self._dropped_from is not None
                or self._reorg_from is not None):
            return []
        return [t for t in trades if live_from < t.block_number <= head - LIVE_MISS_BLOCKS
                and (heard is None or heard < t.block_number - 1)
                and (self.tracker.hash_at(t.block_number) or "").lower()
                == t.block_hash.lower()]

    def _check_live_missed(self, trades: Sequence[Trade]) -> None:
        """A logs subscription that stopped delivering while heads flow (a provider's
        failover, a subscription dropped on its side) looks healthy: pings and heads go on,
        and only the sweeps find its trades, ``reconcile_interval`` late, for as long as
        the socket stays up. Trades a sweep found that a silent subscription should have
        sent re-make the connection (once a connection)."""
        missed = self._missed_live(trades)
        if not missed:
            return
        self.counters["live_missed"] += len(missed)
        self._logs_distrusted_to = (self.head or 0) + LOGS_DISTRUST_BLOCKS
        connection = self.manager.connected_at
        if self._live_miss_conn == connection:
            return
        self._live_miss_conn = connection
        blocks = sorted({t.block_number for t in missed})
        log.warning("[%s] %d trade(s) of block(s) %d..%d came by eth_getLogs only, not on the "
                    "logs subscription: re-making it", self.conn_id, len(missed), blocks[0],
                    blocks[-1])
        self.manager.force_reconnect(f"logs_silent: {len(missed)} trade(s) of blocks "
                                     f"{blocks[0]}..{blocks[-1]} not notified")

    def _watched(self, entry: dict[str, Any]) -> bool:
        """False only for a well-formed log of a maker this shard does not watch."""
        topics = entry.get("topics")
        return not (isinstance(topics, list) and len(topics) > 2
                    and isinstance(topics[2], str)
                    and topics[2].lower() not in self._maker_topics)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def departed(self) -> tuple[list[str], int] | None:
        """The wallets no longer on the list whose deliveries from a block on this shard
        re-checks after a reorg (:meth:`_check_departed`), and that block."""
        return (list(self._departed), self._departed_from) if self._departed else None

    @departed.setter
    def departed(self, value: tuple[list[str], int] | None) -> None:
        self._departed = list(value[0]) if value is not None else []
        self._departed_from = value[1] if value is not None else 0

    async def start(self) -> None:
        self.cursor()  # read the stored cursors now, before the feed (O(wallets), once)
        self._started_at = self.clock.now()
        await self.manager.subscribe(["logs", self.log_filter()], self._on_log)
        await self.manager.subscribe(["newHeads"], self._on_head)
        await self.manager.start()
        self._tasks = [self.supervisor.spawn(f"live-{self.conn_id}", self._deliver_loop),
                       self.supervisor.spawn(f"sync-{self.conn_id}", self._sync_loop),
                       self.supervisor.spawn(f"health-{self.conn_id}", self._health_loop)]

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        await self._stop_polling("stop")
        await self.manager.stop()
        if self._probe is not None:
            self._tasks.append(self._probe)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.drain()
        self._tasks = []

    # -- manager callbacks -------------------------------------------------------------

    def _on_connected(self, reconnect: bool) -> None:
        self.live_from = None
        self._live_log_head = None
        self.counters["connects"] += 1
        if reconnect:  # a reorg while the socket was down sent its removals to nobody:
            self._verified_restart = False  # check the delivered blocks again, as at start
        log.info("[%s] feed connected (reconnect=%s): sync on first head", self.conn_id,
                 reconnect)

    def _on_disconnected(self, cause: str) -> None:
        self.live_from = None
        self._set_health(False, f"disconnected: {cause}")

    def _on_log(self, result: Any) -> None:
        """A ``logs`` notification: hand it to the delivery task (the reader stays quick)."""
        if not isinstance(result, dict):
            self.pipeline.report_decode_error(result, "notification result is not a log object")
            self._undecodable_live(result)  # whose block it was is not known: from the head
            return
        self.counters["notifications"] += 1
        self._live_log_head = self.head if self.head is not None else -1
        self._logs_distrusted_to = None  # the subscription delivers: sweeps will do
        if self.firehose and not self._watched(result):  # another maker's fill: dropped
            self.counters["other_wallet"] += 1            # before any decode or queueing
            return
        if result.get("removed") is True:  # logs of its block fetched meanwhile are stale
            removed_from = result.get("blockHash")
            if isinstance(removed_from, str) and len(removed_from) == 66:
                self._changes.on_removed(removed_from)
        size = live_log_bytes(result)
        if size is None:  # no OrderFilled is this big: garbage, before it is held
            self.pipeline.report_decode_error(result, "log too large to be an OrderFilled "
                                                      f"(over {MAX_LIVE_LOG_BYTES} bytes)")
            self._undecodable_live(result)
            return
        try:
            if self._inbox_bytes + size > LIVE_QUEUE_MAX_BYTES:
                raise asyncio.QueueFull
            self._inbox.put_nowait((result, self.manager.frame_stamps if self._stamp else None,
                                    size))
            self._inbox_bytes += size
        except asyncio.QueueFull:  # bounded: the next sync fetches what was dropped here
            self.counters["live_queue_overflow"] += 1
            self._live_lost([result])
            if self.counters["live_queue_overflow"] == 1:
                log.warning("[%s] live queue full (%d logs, %d bytes at most): dropping, a sync "
                            "will re-fetch", self.conn_id, self._inbox.maxsize,
                            LIVE_QUEUE_MAX_BYTES)
            self._wake.set()

    async def _deliver_loop(self) -> None:
        """Deliver live logs in arrival order, in batches of whatever is waiting (one store
        transaction per batch)."""
        while True:
            first = await self._inbox.get()
            batch = [first]
            while len(batch) < 1000 and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            self._inbox_bytes -= sum(size for _l, _s, size in batch)
            self._live_busy = True
            try:
                await self._deliver(batch)
            except Exception as exc:  # never lose the delivery task; the next sync re-fetches
                self.counters["deliver_errors"] += 1
                log.warning("[%s] live delivery failed (%s: %s); the next sync re-fetches",
                            self.conn_id, type(exc).__name__, redact(str(exc)))
                self._live_lost([entry for entry, _f, _n in batch])
                self._wake.set()
            finally:
                self._live_busy = False

    def _live_lost(self, logs: list[dict[str, Any]]) -> None:
        """Live logs that will not be delivered (dropped, or their delivery failed): a
        sync must fetch their blocks. Until one has, heads do not move the cursor past
        them (``reconcile_interval = 0``): a head moved it past the block of a dropped
        log before any sync asked for it, and the trade was lost for good."""
        lowest = self.head if self.head is not None else 0
        for entry in logs:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                lowest = min(lowest, quantity(entry["blockNumber"]))
        self._drops += 1
        self._dropped_from = lowest if self._dropped_from is None else min(
            self._dropped_from, lowest)
        self._gap_open(max(lowest, self.head if self.head is not None else lowest))
        # ... and where the heads had moved it past them already (reconcile_interval = 0:
        # a head moves it while the block's logs still wait for delivery, whose decode or
        # commit then failed), a sync starts above them: the sweep fetches them now, not
        # ZERO_MODE_SWEEP_BLOCKS later; never from further below (a live log is a block or
        # two behind the head: one that says block 0 must not make a sweep of the chain)
        # ... nor below the wallets' launch point (nothing was watched there): a monitor
        # started less than ZERO_MODE_SWEEP_BLOCKS ago had _swept_to under it, where a
        # quota fill, which rewinds no lower, never read, and took every read for one
        # above a hole (_poller_read): _swept_to never moved for the whole fill and the
        # first sweep once the quota was back fetched every block of it again
        if self.s.reconcile_interval != 0 or self._swept_to is None:
            return
        cur = self.cursor()
        if cur is not None and lowest <= cur:
            launch = self._launch_floor()
            self._swept_to = min(self._swept_to, max(
                lowest - 1, cur - ZERO_MODE_SWEEP_BLOCKS, 0,
                launch if launch is not None else 0))
            self._fill_read = {}  # (read from the old _swept_to: counted again from here)
            self._sweep_due = True
            self._fill_from_lost()  # (the explorer polling: the node may not answer)

    def _undecodable_live(self, entry: Any) -> None:
        """A live log that did not decode (a proxy cut its data short, garbled a field):
        unless it is, by its topics, another maker's, its block is fetched by a sync as a
        dropped log's is (:meth:`_live_lost`); the node's own copy is often whole. Before,
        it was counted and dropped, and with ``reconcile_interval = 0`` the heads moved
        the cursor past its block: only the sweep ``ZERO_MODE_SWEEP_BLOCKS`` later fetched
        the trade (~2 minutes late on Polygon)."""
        if isinstance(entry, dict) and not self._watched(entry):
            return
        self.counters["live_undecodable"] += 1
        self._live_lost([entry] if isinstance(entry, dict) else [])
        self._wake.set()

    async def _deliver(self, batch: list[tuple[dict[str, Any], FrameStamps | None, int]]
                       ) -> None:
        logs = [entry for entry, _f, _n in batch]
        await self.pipeline.on_logs(logs, "ws",
                                    stamps=[f for _, f, _n in batch] if self._stamp else None,
                                    undecodable=self._undecodable_live)

    async def drain(self) -> None:
        """Deliver every live log already received (used on stop)."""
        batch = []
        while not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        self._inbox_bytes -= sum(size for _l, _s, size in batch)
        if batch:
            await self._deliver(batch)

    def _on_head(self, result: Any) -> None:
        try:
            number = quantity(result["number"])
            bh, parent = result["hash"], result["parentHash"]
            if not (isinstance(bh, str) and isinstance(parent, str)
                    and len(bh) == 66 and len(parent) == 66):
                raise ValueError("hash and parentHash must be 32-byte hex strings")
        except (KeyError, TypeError, ValueError) as exc:
            self._bad_input("bad_head", f"{type(exc).__name__}: {exc}")
            return
        now = self.clock.now()
        if self.head is not None and self.head_at is not None and not plausible_head(
                number, self.head, now - self.head_at,
                block_interval=self.s.scaled(self.s.block_interval),
                slack=self.s.head_jump_slack):
            self._bad_input("head_jump", f"head {number} while the last was {self.head}")
            return
        self.head_at = now
        ev = self.tracker.on_head(number, bh, parent)
        if self.head is None or number > self.head or ev.kind is HeadKind.REORG:
            self.head = number
        first = self.live_from is None
        if first:
            self.live_from = number
        if ev.kind is HeadKind.REORG:
            self.counters["reorgs_seen"] += 1
            self._changes.on_reorg()
            # a node head the probe saw before the reorg may be of the chain it replaced
            # (a shorter new chain): the re-check fetched and judged up to it, retracting
            # the new chain's trades the feed delivered meanwhile. The next probe says.
            self.node_head = None
            self._reorg_from = ev.start if self._reorg_from is None else min(
                self._reorg_from, ev.start)
            self._reorg_top = ev.start if self._reorg_top is None else max(
                self._reorg_top, ev.start)
            self._reorg_head, self._node_waits = (number, bh.lower()), 0
            # the replaced heights' new trades are the feed's alone while the node's
            # quota is spent (its re-check refused): one the logs subscription did not
            # send is the quota fill's to poll (it idled without a gap: up to
            # QUOTA_FILL_IDLE_S, or until the node answered again)
            self._gap_open(number)
            if ev.start < number:
                self._reorg_parent = (number - 1, parent.lower())
            elif self._reorg_parent is not None and self._reorg_parent[0] >= number:
                self._reorg_parent = None  # this reorg replaced that block
            self._wake.set()
        elif ev.kind is HeadKind.GAP or first or self._dropped_from is not None:
            if ev.kind is HeadKind.GAP or first:  # (a dropped log opened its own gap)
                self._gap_open(number)
            self._wake.set()  # (a dropped live log: a sync, not the head, moves the cursor)
        elif self._logs_distrusted_to is not None and ev.kind is HeadKind.NEXT:
            if number > self._logs_distrusted_to:
                self._logs_distrusted_to = None
            else:  # the logs subscription was silent: the block's trades by eth_getLogs
                self.counters["logs_distrust_syncs"] += 1
                self._gap_open(number)
                self._wake.set()
        elif ev.kind is HeadKind.NEXT and self.s.reconcile_interval == 0 and \
                self.live_from is not None and number - 1 >= self.live_from:
            cur = self.cursor()
            # the feed delivered block number - 1 (the last head's): the cursor moves
            # there only from number - 2. Lower, blocks between were never verified - a
            # gap whose sync failed (a node error, a garbage answer) or was held below
            # the HTTP node's head - and moving past them lost their trades for good
            if cur is not None and cur >= max(self.live_from - 1, number - 2):
                if self._swept_to is None and self._unswept_from is None:
                    # before the first sync (a launch point stored at start): the
                    # sweeps start here, not at the cursor the heads moved on
                    self._unswept_from = cur
                self._store_floor(number - 1)
                self.store.set_cursors(self.wallets, number - 1,
                                       self.tracker.hash_at(number - 1), "websocket")
                self._cursor_moved(cur, number - 1, forward_only=True)
                if self._quota_fill:
                    self._fill_heads_moved = True
                if self._swept_to is not None and \
                        number - 1 - self._swept_to >= ZERO_MODE_SWEEP_BLOCKS:
                    self._sweep_due = True  # what the heads passed is fetched once
                    self._wake.set()
            elif cur is not None and cur < number - 2:
                self._wake.set()  # a sync covers them (one failing retries by itself)
                if self._quota_fill and self._poller is not None and \
                        self._fill_heads_moved and \
                        self._swept_to is not None and self._swept_to < cur:
                    # heads moved the cursor over blocks no one read, then stopped (a
                    # head that skipped; an overlap of 1 or 2 the heads follow only
                    # while the explorer is ahead): the fill polls from the cursor,
                    # above them, and the sweep is due only 64 blocks of heads' moves
                    # on: _swept_to stayed below them for the rest of the fill, and
                    # the first sweep once the quota was back fetched all of it. The
                    # explorer reads them now (_fill_from_swept, the refused sweep's)
                    # ... only after a head moved it: the fill's cursor is the
                    # explorer's head less the overlap, behind every head with one
                    # over 2, and _swept_to stays below it while the index head is not
                    # known anew (its probe failing): every pass of the sync loop
                    # rewound the cursors, and the fill polled every interval, each
                    # round reading again from the last index head known
                    self._sweep_due = True
        if not self._healthy and self.manager.state is ConnState.CONNECTED:
            self._set_health(True, "heads flowing")
        self._health_replan()  # the staleness and probe deadlines moved

    def _bad_input(self, kind: str, reason: str) -> None:
        """Count, record and log (first of each kind) a malformed or implausible input."""
        record_bad_input(self.history, self.counters, log, kind=kind, source=self.conn_id,
                         reason=reason)

    # -- health and fallback -----------------------------------------------------------

    def healthy_now(self) -> bool:
        if self.manager.state is not ConnState.CONNECTED or self.head_at is None:
            return False
        stale = self.s.scaled(self.s.staleness_blocks * self.s.block_interval)
        return self.clock.now() - self.head_at <= stale

    def _set_health(self, healthy: bool, cause: str) -> None:
        if healthy != self._healthy:
            self._healthy = healthy
            self.history.record("feed", healthy=healthy, cause=f"{self.conn_id}: {cause}")
        self._apply(self.fallback.update(healthy, self.clock.now()), cause)
        self._health_replan()

    def _apply(self, action: FallbackAction, cause: str) -> None:
        if action is FallbackAction.START_POLLING:
            self._start_polling(cause)
        elif action is FallbackAction.BACKFILL:
            self._handback = True
            self._wake.set()

    async def _health_loop(self) -> None:
        """Health ticks on a fixed grid, half a block interval apart from the loop's start:
        each tick sets the feed's health (history ``feed``), feeds the fallback decider and
        may probe the node's head. Only the ticks where one of those can act are run: after
        each tick (and on every event that moves a deadline: a head, a state change of the
        connection, a probe's end, a fallback change) the next one is planned at the first
        grid tick at or after :meth:`_health_due`. A tick at which nothing could happen
        would have done nothing: the detections, probes, fallbacks and their times are
        those of a loop that wakes every period, and a feed whose heads flow costs no
        wake-up at all (in virtual time, a timer a second each was ~5 % of a run)."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            now = self.clock.now()
            self.health_ticks += 1
            healthy = self.healthy_now()
            cause = "heads flowing" if healthy else (
                f"state {self.manager.state.value}" if self.manager.state
                is not ConnState.CONNECTED else "no new head")
            self._set_health(healthy, cause)
            self._maybe_probe_head()
            self._health_last = now
            self._health_wait = wait = loop.create_future()
            self._health_replan()
            try:
                await wait
            finally:
                self._health_wait = None
                if self._health_timer is not None:
                    self._health_timer.cancel()
                    self._health_timer = None

    def _health_due(self) -> float:
        """The earliest clock time at which a health tick could act, if nothing else
        happens meanwhile (-inf: at the next tick): the feed going stale, the fallback
        deadline, the next head probe."""
        healthy = self.healthy_now()
        if healthy != self._healthy:
            return -math.inf
        due = fallback_due(self.fallback, healthy)
        if healthy:  # goes stale
            due = min(due, self.head_at + self.s.scaled(  # type: ignore[operator]
                self.s.staleness_blocks * self.s.block_interval))
        if (self.s.head_lag_blocks and self.manager.state is not ConnState.FAILED
                and (self._probe is None or self._probe.done())):
            signs = [t for t in (self.head_at, self.manager.connected_at, self._started_at)
                     if t is not None]
            if signs:
                interval = self.s.scaled(self.s.block_interval)
                due = min(due, max(max(signs) + self._first_probe_after() * interval,
                                   self._probed_at + interval))
        return due

    def _health_replan(self) -> None:
        """(Re)plan the health loop's next tick after a change (no-op during a tick). A
        tick due at this very moment is never moved."""
        wait = self._health_wait
        if wait is None or wait.done():
            return
        now = self.clock.now()
        target = next_tick(self._health_last, self._health_period, self._health_due(), now)
        timer = self._health_timer
        if timer is not None:
            if target == self._health_at or self._health_at <= now:
                return
            timer.cancel()
            self._health_timer = None
        self._health_at = target
        if target != math.inf:
            self._health_timer = asyncio.get_running_loop().call_later(
                target - now, _wake, wait)

    def _maybe_probe_head(self) -> None:
        """Heads late (or the socket down)? Ask the node over HTTP, once per block interval.

        While CONNECTED, a node ahead of the feed by ``head_lag_blocks`` means the
        subscription is dead even though the socket answers pings (silent subscription,
        half-open socket): backfill to the node's head and reconnect now instead of
        waiting for the heartbeat or the staleness watchdog. While the socket is down,
        the node's head keeps the eth_getLogs backfill going block by block over HTTP,
        so trades keep arriving while the WebSocket reconnects. A monitor that has seen no
        head at all since it started (a quiet chain, a subscription dead from the start)
        asks too: the node's head is what lets it re-check the blocks it delivered from
        before the restart and backfill from its cursor. Costs one call per block
        interval, only while heads are late (see :meth:`_first_probe_after`)."""
        lag = self.s.head_lag_blocks
        if (lag == 0 or self.manager.state is ConnState.FAILED
                or (self._probe is not None and not self._probe.done())):
            return
        now = self.clock.now()
        interval = self.s.scaled(self.s.block_interval)
        # a fresh connection (or a fresh start) gets its own 1.5 intervals to deliver a
        # first head
        signs = [t for t in (self.head_at, self.manager.connected_at, self._started_at)
                 if t is not None]
        if not signs:
            return
        last_sign = max(signs)
        if (now - last_sign < self._first_probe_after() * interval
                or now - self._probed_at < interval):
            return
        self._probed_at = now
        self._probe = asyncio.create_task(self._probe_head(), name=f"probe-{self.conn_id}")
        self._probe.add_done_callback(lambda _t: self._health_replan())

    def _first_probe_after(self) -> float:
        """Block intervals after the last sign of life before the node's head is asked.
        While heads flow on this connection, an answer can act only once the node is
        ``head_lag_blocks`` ahead of the feed: no sooner than that many intervals after
        the last head. Asked at 1.5 intervals, it found the one block of a slot that came
        late - on Polygon about one interval in eight is 4 s, not 2 (REFERENCE: 88 %
        exactly 2 s, gaps mostly even multiples) - a provider call each time that could
        change nothing (~1,400 a day). The reconnect comes no later: the probes still
        run every interval from there. With the socket down, or no head yet on this
        connection (the backfill runs on the node's head), 1.5 intervals."""
        connected_at = self.manager.connected_at
        if (self.manager.state is ConnState.CONNECTED and self.head_at is not None
                and connected_at is not None and self.head_at >= connected_at):
            return max(1.5, self.s.head_lag_blocks - 0.5)
        return 1.5

    def _chain_stalled(self, head: int) -> bool:
        """The probes have seen the node at ``head`` for two block intervals or more: the
        chain stopped there (a halt, the end of a replay). A sync then covers the head block
        itself - its logs have long been indexed by any node behind the provider - or a
        trade in the last block before a halt whose notification was lost would wait for
        the chain to move again."""
        seen = self._node_seen
        return (seen is not None and seen[0] == head
                and self.clock.now() - seen[1] >= 2 * self.s.scaled(self.s.block_interval))

    def _node_head_fresh(self) -> bool:
        """The probe saw the node's head within the last two block intervals."""
        return (self.node_head is not None and self.clock.now() - self._probed_ok_at
                <= 2 * self.s.scaled(self.s.block_interval))

    async def _probe_head(self) -> None:
        connection = self.manager.connected_at
        try:
            node = await self._node_block_number()
        except BadResponse as exc:  # an answer that is no block number
            self._bad_input("bad_head", exc.message)
            return
        except MonitorError:
            return  # the node is unreachable too: the reconnect loop and fallback handle it
        feed = self.head
        if feed is not None and self.head_at is not None and not plausible_head(
                node, feed, self.clock.now() - self.head_at,
                block_interval=self.s.scaled(self.s.block_interval),
                slack=self.s.head_jump_slack):
            self._bad_input("head_jump", f"node head {node} while the feed is at {feed}")
            return
        now = self.clock.now()
        self._probed_ok_at = now
        if self._node_seen is None or self._node_seen[0] != node:
            self._node_seen = (node, now)
        if feed is None:  # no head yet on this run: sync from the cursor to the node's head
            self.node_head = max(node, self.node_head or node)
            self._wake.set()
            return
        if node < feed + (self.s.head_lag_blocks
                                          if self.manager.state is ConnState.CONNECTED else 1):
            if self._chain_stalled(node):  # the head block itself is due a sync now
                self._wake.set()
            return
        # backfill what the subscription did not deliver
        self.node_head = max(node, self.node_head or node)
        self._wake.set()
        if (self._lag_reconnect_node is not None and node <= self._lag_reconnect_node):
            # the node has not moved since the last such reconnect: a chain that stopped
            # sends no head on a new subscription either, so reconnecting again gains
            # nothing (it was a reconnect and an outage alert every 1.5 block intervals)
            return
        if (self.manager.state is ConnState.CONNECTED
                and self.manager.connected_at == connection):  # not a newer connection
            self._lag_reconnect_node = node
            self.counters["head_lag_reconnects"] += 1
            log.warning("[%s] node head %d is %d blocks ahead of the feed: reconnecting",
                        self.conn_id, node, node - feed)
            self.manager.force_reconnect(f"lagging: node head {node}, feed head {feed}")

    def _start_polling(self, cause: str) -> None:
        if self.explorer is None:
            log.warning("[%s] feed down but no explorer configured: cannot fall back",
                        self.conn_id)
            return
        self.history.record("fallback", active=True, cause=f"{self.conn_id}: {cause}")
        log.warning("[%s] feed unhealthy for %.1fs: polling the explorer", self.conn_id,
                    self.s.fallback_after)
        self.counters["fallbacks"] += 1
        if self._poller is not None:
            # already polling to fill for a spent node quota: the same poller goes on,
            # now the feed's fallback (stopped at the feed's hand-back), every interval
            self._quota_fill = False
            if self._fill_poller:
                self._fill_poller = False
                self.history.record("quota_fill", active=False,
                                    cause=f"{self.conn_id}: the feed's fallback takes over")
            return
        self._spawn_poller()
        self._fill_from_lost()

    def _start_quota_fill(self, exc: QuotaExhausted) -> None:
        """The HTTP node's quota is spent (for longer than a call may wait: a month for
        Alchemy's capacity limit): no ``eth_getLogs`` fills a gap in the feed, and the
        sync loop asks again only every ``backoff_max``. The explorer fills meanwhile:
        the fallback poller runs from the wallets' cursors (the same polling code, the
        pipeline's dedup, cursors moved after the durable commit) while the feed stays
        live, until a sync answers again (:meth:`_end_quota_fill`). Once an episode."""
        if self.explorer is None or self._poller is not None or self._stop.is_set():
            return
        self._quota_fill = True
        self.counters["quota_fills"] += 1
        # not a ``fallback`` row: the feed is live, and the report counted a month's
        # spent quota as fallback time
        self.history.record("quota_fill", active=True,
                            cause=f"{self.conn_id}: node quota spent, the explorer fills")
        log.warning("[%s] the node's quota is spent (%s): the explorer fills the gaps "
                    "(polling from the cursors) until the node answers again",
                    self.conn_id, exc.message[:200])
        self._spawn_poller(fill=True)  # (its task runs from the next pause: after these)
        self._fill_from_lost()
        self._fill_from_swept()

    def _fill_from_lost(self) -> None:
        """``reconcile_interval = 0`` and a quota fill: the heads moved the cursor past
        the block of a live log lost since (it did not decode, its delivery failed, the
        queue was full). Its trade is the sweep's to fetch, which the spent quota
        refuses, and the fill polls from the cursors, above it: the trade waited for the
        node (a month for a monthly quota). The cursors go back below that block (never
        further than the sweep would reach, ``ZERO_MODE_SWEEP_BLOCKS``, nor below the
        launch point) and the explorer fills from there; what the feed delivered above is
        not sent twice (the pipeline's dedup). So too in the feed's fallback (the poller
        running, the feed unhealthy): the sweep is the node's, which often fails with the
        feed (one provider's WebSocket and HTTP down together), and the trade waited for
        it; when the node answers, the sweep and the explorer both fetch it, delivered
        once."""
        lost, cur = self._dropped_from, self.cursor()
        if not (self._quota_fill or self._poller is not None) \
                or self.s.reconcile_interval != 0 or lost is None \
                or cur is None or lost > cur:
            return
        to = max(lost - 1, cur - ZERO_MODE_SWEEP_BLOCKS, 0)
        launch = self._launch_floor()
        if launch is not None:
            to = max(to, launch)
        if to >= cur:
            return
        self.counters["quota_fill_rewinds"] += 1
        log.info("[%s] a live log of block %d was lost below the cursor %d: the explorer "
                 "fills from %d", self.conn_id, lost, cur, to + 1)
        self._rewind_for_fill(cur, to)

    def _fill_from_swept(self) -> None:
        """``reconcile_interval = 0`` and a quota fill: the heads moved the cursor over
        blocks no eth_getLogs fetched (the sweep's, which the spent quota refuses), and
        the fill polled from the cursor, above them: none of them was read while the
        quota stayed spent, and the sweep that ran once it was back fetched every block
        since (1.3 M for a month). The cursors go back to ``_swept_to`` (nor below the
        launch point) and the explorer reads from there; what it reads without a hole
        counts as swept (:meth:`_poller_read`), and the cursor it moves stays the
        overlap below the head, where the heads no longer move it."""
        if not self._quota_fill or self.s.reconcile_interval != 0:
            return
        self._fill_heads_moved = False
        self._window_to_fill()
        self._unswept_floor(self.cursor())
        swept, cur = self._swept_to, self.cursor()
        if swept is None or cur is None or swept >= cur:
            return
        launch = self._launch_floor()
        to = swept if launch is None else max(swept, launch)
        if to >= cur:
            return
        self.counters["quota_fill_sweep_rewinds"] += 1
        log.info("[%s] the blocks %d..%d the heads passed are the explorer's to read (the "
                 "node's quota is spent)", self.conn_id, to + 1, cur)
        self._rewind_for_fill(cur, to)
        self._gap_open(cur)

    def _window_to_fill(self) -> None:
        """A quota fill with the restart window still to fetch (a restart straight into a
        spent quota): the window was the node's sweep's, which the quota refuses, and the
        fill read from ``_swept_to`` (the stored cursor), above it: a trade the run
        before's feed lost there waited for the quota (a month for a monthly one). The
        explorer reads it now: ``_swept_to`` goes down to the window's start (bounded by
        the retention: :meth:`_window_kept`), and what the fill reads from there counts
        as swept; a fill that ends first leaves it to the node's sweep from there."""
        window, swept = self._restart_window, self._swept_to
        if window is None or swept is None:
            return
        self._restart_window = None
        kept = self._window_kept(window)
        if kept is not None and kept[0] < swept:
            self._swept_to = kept[0]
            self._fill_read = {}  # (read from the old _swept_to: counted again from here)

    def _unswept_floor(self, cur: int | None) -> None:
        """``reconcile_interval = 0``: a sweep (the node's, or the explorer's in a quota
        fill) starts no lower than the blocks whose trades' dedup ids are kept: from
        ``cur - dedup_retention_blocks`` up (:meth:`Store.prune_delivered` drops those of
        blocks below a wallet's cursor less the retention). The node's sweeps failing for
        longer than that (its HTTP side down while the feed stays healthy), the sweep that
        ran at last - the node's once it answered, the explorer's once a spent quota
        started a fill (:meth:`_fill_from_swept`: the cursors back to ``_swept_to``) -
        read blocks whose trades the feed had delivered and whose ids were pruned, and
        sent every one to the bot again (the pipeline's memory keeps the newest
        ``dedup_capacity`` ids only). A duplicate there is certain (every trade the feed
        delivered), a miss only possible (a live log lost, which the sweep is for): those
        blocks are left unswept, and said - an error, a history row and an alert
        ``zero_mode_unswept`` once an episode (until a sweep is done: see
        :meth:`_unswept_done`), since a trade the feed lost there is not delivered."""
        keep, swept = self._hold_blocks(), self._swept_to
        if not keep or swept is None or cur is None or self.s.reconcile_interval != 0:
            return
        # fetched from cur - keep up: those ids are all kept (the prune held at
        # sweep_floor(): from cur - ZERO_MODE_HOLD_BLOCKS up)
        low = cur - keep - 1
        launch = self._launch_floor()
        first = swept if launch is None else max(swept, launch)
        if first >= low:
            return
        self._swept_to = low
        self._fill_read = {}  # (read from the old _swept_to: counted again from here)
        self._say_unswept(first, low)

    def _say_unswept(self, first: int, low: int, *, restart: bool = False) -> None:
        """Blocks ``first + 1..low`` are left unswept (their trades' ids pruned): counted,
        and said once an episode (until a sweep is done: :meth:`_unswept_done`).
        ``restart``: the run before's sweeps failed for longer than the retention (its
        stored sweep floor, :meth:`_restart_first`)."""
        keep = self.s.dedup_retention_blocks if restart else self._hold_blocks()
        what = "blocks (dedup_retention_blocks)" if restart or not self.prune_held else \
            "blocks (ZERO_MODE_HOLD_BLOCKS)"
        self.counters["zero_mode_unswept_blocks"] += low - first
        if self._unswept is not None:
            self._unswept = (min(self._unswept[0], first + 1), max(self._unswept[1], low))
            return
        self._unswept = (first + 1, low)
        text = (f"[{self.conn_id}] the node's sweeps failed for more than {keep} "
                f"{what}{' before the restart' if restart else ''}: blocks "
                f"{first + 1}..{low}, which the "
                "heads passed and no eth_getLogs fetched, are not fetched now (the ids of "
                "the trades the feed delivered there are pruned: they would go to the bot "
                "again); a trade the feed lost there is not delivered. Blocks further "
                "below the cursor than that are left so until a sweep is done")
        log.error("%s", text)
        self.history.record("alert", kind="zero_mode_unswept", text=text)
        self.pipeline._alert("zero_mode_unswept", text)

    def _unswept_done(self) -> None:
        """A sweep of the node got through: the episode of blocks left unswept (if any) is
        over (a quota fill's reads do not end it: its sweeps are still refused)."""
        if self._unswept is None:
            return
        first, last = self._unswept
        self._unswept = None
        log.warning("[%s] the zero mode's sweeps run again: blocks %d..%d were left "
                    "unswept", self.conn_id, first, last)
        self.history.record("zero_mode_unswept", first=first, last=last)

    def _rewind_for_fill(self, cur: int, to: int) -> None:
        """The cursors go back to ``to`` for the explorer poller to read from there, each
        wallet's no lower than its own launch point. ``to`` is at or above the lowest of
        them (:meth:`_launch_floor`), and a wallet added at a restart has a later one:
        the poller, which unlike the node's syncs (:meth:`_not_pruned`) knows no launch
        point, read it from below its own, and its trades mined before it was watched
        went to the bot as new ones. Nor below its own cursor less
        ``dedup_retention_blocks`` (the highest seen: ``_prune_line``): a wallet whose
        cursor is far ahead of the shard's (one new while ``start_block`` stays set, its
        cursor the shard's) had its trades' ids pruned there, and the explorer sent them again;
        what lies below it counts as read for that wallet (:meth:`_poller_read`), as the
        node's sweep leaves it (:meth:`_not_pruned`)."""
        self.cursor()  # (the launch points: read with the cursors)
        keep = self.s.dedup_retention_blocks
        stored = self.store.cursors() if keep else {}
        groups: dict[int, list[str]] = {}
        for w in self.wallets:
            launch = self._launched.get(w)
            block = to if launch is None else max(to, launch)
            if w in stored:
                line = max(self._prune_line.get(w, 0),
                           self._pruned_line(w, stored[w].block) - 1)
                self._prune_line[w] = line
                block = min(max(block, line), max(stored[w].block, to))
                if block > to:  # (read up to there, for _swept_to: see _poller_read)
                    self._fill_read[w] = max(self._fill_read.get(w, block), block)
            groups.setdefault(block, []).append(w)
        for block, wallets in sorted(groups.items()):
            self.store.set_cursors(wallets, block, None, "websocket", forward_only=False)
        self._cursor_moved(cur, to, forward_only=False)
        self._cursor_read = False  # (the poller moves them too)

    def _gap_open(self, top: int) -> None:
        """The live feed may not have delivered the trades of blocks up to ``top``."""
        if self._gap_to is None or top > self._gap_to:
            self._gap_to = top

    def _fill_due(self) -> bool:
        """Is a round of the poller due? Always for the feed's fallback. A quota fill
        (the feed live, the node refusing) polls every interval only while a gap is
        open: the cursor below the highest block the feed may not have delivered; a gap
        opened later (a reconnect, a head that skips blocks, a dropped log) is polled
        from the next interval, and so is every block while the connection has shown no
        head (it delivers nothing). Otherwise one round every ``QUOTA_FILL_IDLE_S``
        keeps the cursors near the head. Before, it polled the explorer every
        ``fallback_polling_interval`` for as long as the quota stayed spent (a month for
        a monthly one), gap or not."""
        if self._quota_fill and self.live_from is not None:
            gap, cur = self._gap_to, self.cursor()
            now = self.clock.now()
            if (gap is None or (cur is not None and cur >= gap)) and \
                    now - self._fill_round_at < self.s.scaled(QUOTA_FILL_IDLE_S):
                return False
            self._fill_round_at = now
        return True

    async def _end_quota_fill(self) -> None:
        """A sync answered again after a spent quota: the node takes over, the poller
        stops (unless the feed's own fallback needs it), what it delivered is checked."""
        self._quota_fill = False
        if self._poller is None or self.fallback.polling:
            return
        log.warning("[%s] the node answers again: the explorer no longer fills",
                    self.conn_id)
        await self._end_polling("node answers again after its quota was spent")

    async def _end_polling(self, cause: str) -> None:
        """Stop the poller and check, once it can deliver no more, what it delivered."""
        floor, poller = self._fallback_floor, self._poller
        await self._stop_polling(cause)
        low = poller.lowest_cursor if poller is not None else None
        if floor is not None and low is not None:
            # a poll asked from below the shard's cursor (rewound to an
            # explorer head far behind it): checked from there
            floor = min(floor, low)
        # what the poller delivered is checked once it can deliver no more;
        # and the feed's own last deliveries below the floor: a reorg while
        # the feed was down replaced blocks up to the tracker's depth below
        # the head, and the restart check looks only that far below the
        # cursor the poller moved on (a 64-block reorg 70 s into a 3-minute
        # outage left the feed's trades of its first two blocks standing)
        check = 0 if floor is None else max(0, floor - self.tracker.keep)
        # a check still pending (an earlier poller's deliveries, its node call refused:
        # a spent quota starts the next poller before it ran) is kept: the lower start
        self._fallback_check = check if self._fallback_check is None else min(
            check, self._fallback_check)
        self._wake.set()

    def _spawn_poller(self, *, fill: bool = False) -> None:
        """Start the explorer poller from the cursors: the feed's fallback, or with
        ``fill`` a quota fill (polling only while a gap is open: :meth:`_fill_due`)."""
        assert self.explorer is not None
        self._fill_poller = fill
        self._store_floor(math.inf)  # (the poller moves the cursors on)
        self._fill_round_at = self.clock.now()  # (the fill's rounds: from here)
        self._fallback_floor = self.cursor()
        self._fill_read = {}
        self._poller = PollingMonitor(
            self.explorer, self.pipeline, self.store, wallets=self.wallets,
            interval=self.s.fallback_polling_interval, speed=self.s.speed,
            overlap_blocks=self.s.explorer_overlap_blocks, start_block=self.s.start_block,
            group="websocket", clock=self.clock, block_interval=self.s.block_interval,
            head_jump_slack=self.s.head_jump_slack, history=self.history,
            episodes=self._explorer_episodes, due=self._fill_due if fill else None,
            on_read=self._poller_read)
        self._poll_task = self.supervisor.spawn(f"fallback-{self.conn_id}", self._poller.run)

    def _poller_read(self, wallet: str, after: int, upto: int) -> None:
        """The poller read ``wallet``'s logs of blocks ``after + 1..upto`` whole (its
        cursor moved over them). ``reconcile_interval = 0``: what it read of every wallet
        without a hole from ``_swept_to`` up counts as swept. Before, nothing moved
        ``_swept_to`` over a quota fill's blocks, and when the node answered again the
        first sweep fetched every block since the quota ran out (1.3 M blocks for a
        month's quota: 162,000 eth_getLogs of 8 blocks in firehose mode) against the
        fresh quota. Never past a block it did not read (a failed poll, the index head,
        the blocks the heads moved the cursor over that no poll asked for)."""
        swept = self._swept_to
        if self.s.reconcile_interval != 0 or swept is None:
            return
        have = max(self._fill_read.get(wallet, swept), swept)
        if after > have:
            return  # blocks below it were not read: the sweep's still
        self._fill_read[wallet] = max(have, upto)
        reads = [self._fill_read.get(w.lower()) for w in self.wallets]
        low = min((r for r in reads if r is not None), default=None)
        if low is None or None in reads or low <= swept:
            return
        self.counters["zero_mode_fill_swept_blocks"] += low - swept
        self._swept_to = low

    async def _stop_polling(self, cause: str) -> None:
        poller, task = self._poller, self._poll_task
        self._poller, self._poll_task = None, None
        if poller is None or task is None:
            return
        fill, self._fill_poller = self._fill_poller, False
        poller.stop()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, timeout=max(self.s.scaled(60), 5.0))
        if not task.done():
            task.cancel()
        self._cursor_read = False  # the poller moved the cursors: read them again
        self.history.record("quota_fill" if fill else "fallback", active=False,
                            cause=f"{self.conn_id}: {cause}")
        log.info("[%s] handed back to the WebSocket feed (%s)", self.conn_id, cause)

    # -- sync: backfill, reconcile, reorg ----------------------------------------------

    async def _sync_loop(self) -> None:
        reconcile = self.s.scaled(self.s.reconcile_interval) if self.s.reconcile_interval else None
        failures = 0
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=reconcile)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._stop.is_set():
                return
            if (self.head is None or self.manager.state is not ConnState.CONNECTED) \
                    and not self._node_head_fresh():
                continue
            try:
                if not self._verified_restart:
                    # taken before the check: a reconnect while it waits for the node asks
                    # for another (its answers may predate a reorg that reconnect missed)
                    self._verified_restart = True
                    try:
                        await self._verify_restart_cursor()
                        await self._check_departed()
                    except BaseException:
                        self._verified_restart = False
                        raise
                if self._reorg_from is not None:
                    # cleared only once the re-check succeeded: a re-check that fails (the
                    # node unreachable right after the reorg) is retried, never forgotten
                    start, changes = self._reorg_from, self._changes.mark()
                    await self._unverify_from(start)
                    # done unless a reorg came meanwhile (one from the same height is
                    # taken for done) or its logs went stale (it asked for another)
                    if await self._recheck(start) and \
                            not self._changes.reorged_since(changes):
                        await self._check_departed()
                        self._reorg_from = self._reorg_head = self._reorg_top = None
                        self._reorg_parent = None
                if self._fallback_check is not None and self._poller is None:
                    since = self._fallback_check
                    await self._check_fallback_deliveries(since)
                    if self._fallback_check == since:  # not set again meanwhile
                        self._fallback_check = None
                if self._sweep_due and self._quota_fill and self._poller is not None:
                    self._sweep_due = False  # the explorer sweeps: the node refuses
                    self._fill_from_swept()
                elif self._sweep_due:
                    try:
                        await self._sweep_passed()
                    except MonitorError:
                        if self._restart_window is None:
                            raise
                        # the restart window failed (kept, asked again after the
                        # back-off): it holds no sync. A node that kept failing its
                        # blocks (older than it serves, a range it cannot answer) held
                        # every sync after it, and a gap in the feed was never fetched
                        await self.sync()
                        raise
                await self.sync()
                failures = 0
                self._pruned_alerted = False
                if self._handback and not self._sync_cut and self.healthy_now():
                    self._handback = False
                    action = self.fallback.handed_back(self.clock.now())
                    self._health_replan()
                    if action is FallbackAction.STOP_POLLING:
                        self._quota_fill = False
                        await self._end_polling("feed healthy and backfilled")
                if self._quota_fill and not self._sync_cut:
                    await self._end_quota_fill()
            except MonitorError as exc:
                failures += 1
                delay = sync_retry_delay(failures, speed=self.s.speed)
                if isinstance(exc, _NodeBehind):
                    log.info("[%s] %s: re-check in %.2fs", self.conn_id, exc.message, delay)
                elif isinstance(exc, RpcError) and exc.code == PRUNED_HISTORY_CODE:
                    # a start_block (or a stored cursor) below the history the node keeps
                    # (geth v1.16+: 4444): no retry soon can help. Asked again every 3 s
                    # with a warning each, the cursors never moving; now one error and
                    # alert an episode, and asked again at the longest back-off (a node
                    # that keeps the history behind the same URL is taken at once then)
                    self.counters["sync_errors"] += 1
                    delay = self.s.scaled(self.s.backoff_max)
                    if not self._pruned_alerted:
                        self._pruned_alerted = True
                        self._pruned_history_alert(exc)
                elif isinstance(exc, QuotaExhausted):
                    # the HTTP node's quota spent, for longer than a call may wait (the
                    # client says it, an alert once an episode): asked again every
                    # backoff_max (the WebSocket manager's pace for a spent quota), the
                    # cursor staying, so the gap is fetched at the first answer. The
                    # client held the call up to 3 x 60 s instead, and as long again
                    # after the quota was back; this wait ends at a stop (cancelled)
                    self.counters["sync_errors"] += 1
                    self.counters["sync_quota_waits"] += 1
                    delay = max(delay, self.s.scaled(self.s.backoff_max))
                    # ... and the explorer fills the gap meanwhile (a month's quota
                    # held a gap's trades for the rest of the month)
                    self._start_quota_fill(exc)
                    log.info("[%s] sync: the node's quota is spent (%s); asked again in "
                             "%.2fs%s", self.conn_id, exc.message, delay,
                             ", the explorer fills meanwhile" if self._poller is not None
                             else ", the gap kept")
                else:
                    self.counters["sync_errors"] += 1
                    log.warning("[%s] sync failed (%s); retry in %.2fs", self.conn_id,
                                exc.message, delay)
                await asyncio.sleep(delay)
                self._wake.set()

    def _pruned_history_alert(self, exc: RpcError) -> None:
        """Say once an episode that the node keeps no history from the cursor on: an
        error, a history row, and the alert sent in the background (the pipeline's
        alerter, as the poller's: never holding the sync loop)."""
        text = (f"[{self.conn_id}] the node at rpc_url has no history from block "
                f"{(self.cursor() or 0) + 1} on ({exc.message}): this shard cannot backfill "
                "(a start_block or a stored cursor below what the node keeps); use a later "
                "start_block or a node that keeps that history (an archive node)")
        log.error("%s", text)
        self.history.record("alert", kind="pruned_history", text=text)
        self.pipeline._alert("pruned_history", text)

    async def sync(self) -> int:
        """eth_getLogs from the cursor to head-1 in chunks; advance the cursor per chunk.

        The head is the feed's, or the node's as the head-lag probe saw it when the
        subscription fell behind (so a dead subscription's blocks are backfilled)."""
        self._sync_cut = False
        drops = self._drops  # what was dropped from here on may be in ranges asked before
        head = self._known_head()
        if head is None:
            return 0
        target = head if self._chain_stalled(head) else head - 1
        cur = self.cursor()
        # a cursor a run before moved (not a launch point no run moved: nothing was
        # delivered below it, no sweep of the blocks under it is due)
        restarted = cur is not None and self._swept_to is None and not self._at_launch
        if cur is None:
            # wallets never seen, their launch point not stored (the node did not say its
            # head at start): start at the configured block or here
            first = self.s.start_block if self.s.start_block is not None else (
                self.live_from if self.live_from is not None else head)
            # none of the shard's wallets has a cursor (cursor() is exact outside a
            # fallback, when it is read from the store): all of them start here
            await self._set_cursors(first - 1, None, forward_only=False, launch=True)
            cur = self.cursor()
            assert cur is not None
        if self._swept_to is None:
            # the zero mode's sweeps start here: fetched (or, at a first start, nothing to
            # fetch below). Set only by a sync that fetched something, a first start whose
            # first sync had no block to ask left it None, and no sweep ever ran: a logs
            # subscription silent while heads flowed lost its trades for good
            # ... before the node is asked: a first sync refused (a restart into a spent
            # quota) left it None for the fill that followed, which counted none of its
            # reads as swept, and the heads' moves meanwhile set _unswept_from: once the
            # quota was back the first sweep fetched every block since the restart
            # ... or below: where the heads moved the cursor from before this first sync
            # (a launch point stored at start, record_launch: blocks from there on were
            # fetched by nothing, the launch block's logs mined before the subscription)
            self._swept_to = cur if self._unswept_from is None else min(
                cur, self._unswept_from)
            if self._swept_to < cur:  # fetched now: more heads may not come soon
                self._sweep_due = True
                self._wake.set()
            if restarted and self.s.reconcile_interval == 0:
                # the heads of the run before moved the stored cursor past blocks its
                # sweeps had not fetched yet (up to ZERO_MODE_SWEEP_BLOCKS, more while a
                # sweep failed): a notification lost there was lost for good. The first
                # sweep fetches them again (what was delivered is not sent twice). Only
                # them: the sync fetches what lies above (from the sweep's start, the
                # sweep fetched the whole sync again, past the wallets far ahead's pruned
                # ids: their old trades went to the bot a second time)
                # ... and never below a wallet's launch point (Store.launches: its first
                # cursor): a run shorter than the window had moved the cursor a few blocks
                # past it, and the sweep sent trades mined before the launch
                # ... and from the sweep floor the run before stored, its sweeps failing
                # for longer (_store_floor), down to the cursor less the retention; what
                # lies below is said (a trade the feed lost there is not delivered)
                first = self._restart_first(cur)
                floor, launch = self._floor_at_start, self._launch_floor()
                if floor is not None and launch is not None:
                    floor = max(floor, launch)
                if floor is not None and floor < first:
                    self._say_unswept(floor, first, restart=True)
                self._restart_window = (first, cur) if first < cur else None
                keep = self.s.dedup_retention_blocks
                stored = self.store.cursors()
                # (a wallet's own launch point bounds its logs too: _not_pruned)
                self._restart_pruned = {} if not keep else {
                    w: stored[w].block - keep for w in self.wallets
                    if w in stored and stored[w].block - keep > first}
                self._sweep_due = True
                self._wake.set()
        first_logs: _Prefetched | None = None
        if target > cur:  # never past the HTTP node's own head (it may lag the feed)
            target, first_logs = await self._confirmed_target(cur, target)
        done = 0

        saved: dict[int, str] = {}

        def tracked() -> dict[int, str]:  # the feed's block hashes, up to the new cursor
            saved.update((n, h) for n, h in self.tracker.known().items() if n <= target)
            return saved

        for a, b in backfill_ranges(cur, target, self.chunk_blocks):
            if first_logs is not None and first_logs.start == a:
                # asked with the node's head (_confirmed_target): what it holds up to b
                changes, logs = first_logs.changes, await self._prefetched_logs(first_logs, b)
            else:
                changes = self._changes.mark()
                logs = await self._get_logs(a, b)
            first_logs = None
            # the answer was parsed in one stretch of the loop (~5 us a log: 17 ms for a
            # firehose's 15 busy blocks): what the feed sent meanwhile is delivered first
            await asyncio.sleep(0)
            if not await self._on_logs_sliced(self._not_pruned(logs), changes=changes,
                                              sweep=True):
                # the feed saw a reorg while these logs were fetched or delivered: they may
                # be the old chain's, and would deliver again a trade the feed has just
                # retracted (an orphan at the sink twice). The cursor stays; the re-check
                # runs first, then the range is asked again.
                self.counters["syncs_outrun"] += 1
                self._sync_cut = True
                self._wake.set()
                break
            await self._retract_orphans(a, b, logs)
            await asyncio.sleep(0)  # (its look-up of what stands in a..b: one stretch)
            if self._changes.reorged_since(changes):
                # a reorg the feed showed during the orphan check or the pause after it:
                # the cursor and the feed's (new) hashes stored over the old chain's logs
                # made a restart before the re-check find them matching the node, and the
                # new chain's trades in the range were never fetched. Cut, as above
                self.counters["syncs_outrun"] += 1
                self._sync_cut = True
                self._wake.set()
                break
            # the hashes the logs were checked against, taken now: _set_cursors lets the
            # loop run between its cursor sets, and a reorg then put the new chain's
            # hashes beside the old chain's logs (read after its last pause)
            if b == target:
                tracked()
            # (delivered, orphans retracted: swept, before the cursors' write, whose
            # _store_floor then finds nothing left behind)
            if self._swept_to is None or a <= self._swept_to + 1:
                self._swept_to = max(b, self._swept_to or b)
            # the last range's cursors and the tracked hashes: one transaction
            await self._set_cursors(b, self.tracker.hash_at(b),
                                    blocks=(lambda: saved) if b == target else None)
            self._commit_view(saved)
            done += b - a + 1
            self.synced_to = b
        if (self._dropped_from is not None and not self._sync_cut and drops == self._drops
                and self._dropped_from <= target and (self.cursor() or 0) >= target):
            self._dropped_from = None  # fetched from the node, from the cursor up
        if done:
            self.counters["synced_blocks"] += done
        return done

    async def _sweep_passed(self) -> None:
        """``reconcile_interval = 0``: heads move the cursor, so a logs subscription that
        went silent while heads flow (a provider's failover, a subscription dropped on its
        side) lost its trades for good: nothing fetched the blocks the heads passed.
        Once every ``ZERO_MODE_SWEEP_BLOCKS`` blocks, those blocks (from the last one
        fetched without a hole up to the cursor, never past the HTTP node's head - 1) are
        fetched with one eth_getLogs a chunk: their trades are delivered (late, but not
        lost), orphans retracted, and trades a silent subscription should have sent re-make
        the connection (``logs_silent``, as a sweep does). ~30 calls an hour on Polygon,
        against ~120 for the default 30 s sweeps. Not kept across restarts: the first
        sweep after one fetches the ``RESTART_SWEEP_BLOCKS`` below the stored cursor."""
        self._sweep_due = False
        window, self._restart_window = self._restart_window, None
        if window is not None:
            window = self._window_kept(window)
        if window is not None:
            first, last = window
            try:
                for a, b in backfill_ranges(first, last, self.chunk_blocks):
                    # (its blocks from a up held from the prune until read: sweep_floor)
                    self._window_reading = a - 1
                    changes = self._changes.mark()
                    try:
                        logs = await self._get_logs(a, b)
                        done = await self._on_logs_sliced(
                            self._not_pruned(logs, self._restart_pruned), changes=changes,
                            sweep=True)
                        if done:
                            await self._retract_orphans(a, b, logs)
                    except BaseException:
                        # kept for the next sweep (the sync loop retries): taken before it
                        # was asked, a node error on its first ask (a timeout, a 5xx, a
                        # spent quota) lost it for good, and the trades the feed lost there
                        self._restart_window = (a - 1, last)
                        self._sweep_due = True
                        raise
                    if not done:
                        self._restart_window = (a - 1, last)  # a reorg came: again after it
                        self._sweep_due = True
                        self._wake.set()
                        return
                    self.counters["zero_mode_swept_blocks"] += b - a + 1
            finally:
                self._window_reading = None
        self._unswept_floor(self.cursor())
        start, cur = self._swept_to, self.cursor()
        if start is None or cur is None:
            return
        if cur <= start:
            self._unswept_done()  # (nothing left to sweep)
            return
        try:
            self._sweep_reading = start  # (held while the node's head is asked, too)
            top = min(cur, await self._node_block_number() - 1)
            for a, b in backfill_ranges(start, top, self.chunk_blocks):
                self._sweep_reading = a - 1  # (held from the prune until read: sweep_floor)
                changes = self._changes.mark()
                logs = await self._get_logs(a, b)
                if not await self._on_logs_sliced(self._not_pruned(logs), changes=changes,
                                                  sweep=True):
                    self._sweep_due = True  # a reorg came: re-checked first, swept again
                    self._wake.set()
                    return
                await self._retract_orphans(a, b, logs)
                self._swept_to = b
                self.counters["zero_mode_swept_blocks"] += b - a + 1
        finally:
            self._sweep_reading = None
        self._unswept_done()

    def _window_kept(self, window: tuple[int, int]) -> tuple[int, int] | None:
        """The restart window (``first``, ``last``: blocks ``first + 1..last``) as it may
        be fetched now: no lower than the cursor less ``dedup_retention_blocks``, and each
        wallet's logs left out up to its own cursor less the retention
        (``_restart_pruned``), as the zero mode's sweep (:meth:`_unswept_floor`). Kept
        until fetched (a node failing, a restart straight into a quota fill: the explorer
        reads from the cursor, above it), the window was fetched once the cursor was far
        past it, the ids of the trades the run before's feed delivered there pruned, and
        every one went to the bot again. What it leaves is said as the sweep's is."""
        keep, cur = self.s.dedup_retention_blocks, self.cursor()
        if not keep or cur is None or self.s.reconcile_interval != 0:
            return window
        first, last = window
        stored = self.store.cursors()
        for w in self.wallets:
            line = self._pruned_line(w, stored[w].block) if w in stored else first
            if line > first:
                self._restart_pruned[w] = max(self._restart_pruned.get(w, first), line)
        # (the prune held at sweep_floor(), which has the window: from cur less
        # ZERO_MODE_HOLD_BLOCKS up)
        low = min(cur - self._hold_blocks() - 1, last)
        if low <= first:
            return window
        self._say_unswept(first, low)
        return (low, last) if low < last else None

    async def _retract_orphans(self, a: int, b: int, logs: list[dict[str, Any]], *,
                               known: dict[int, str | None] | None = None,
                               recheck: bool = False) -> None:
        """Trades delivered in blocks ``a..b`` (live, above the cursor) that the node's
        logs for that range no longer hold, and whose block the node now has with another
        hash, were reorged away: retract them. This is what catches a reorg whose
        ``removed`` notifications were lost (a crash, a dropped connection) - the stored
        cursor was below those blocks, so the restart check could not see them. A block the
        node does not know yet, or still has with the same hash, is left alone. ``known``:
        the node's hashes already asked (a re-check's walk), not asked again.

        Outside a re-check (``recheck``), a block the feed has with the trade's hash is not
        the node's to judge: a provider's HTTP node behind its WebSocket node still serves
        the chain a reorg replaced, and a sync that began right after the feed showed the
        reorg (its logs not stale) retracted the new block's live trades on its word, to
        deliver them again once it caught up (90 real trades undone and redone in a loaded
        run of test_rpc_lag_monitor). Such a disagreement asks for a re-check from that
        block instead, which waits for the node (:meth:`_node_has_the_reorg`)."""
        standing = self.store.standing_in_range(self._wallet_set, a, b)
        if not standing:
            return
        ids = set()
        for lg in logs:
            if not self._watched(lg):
                # the firehose's logs hold every maker's fills: a reorg that re-included a
                # delivered trade's transaction in another block can give its log index to
                # another maker's fill there, and the orphan was kept on that one's word
                continue
            try:  # (not contextlib.suppress: a context manager a log, ~1 us each)
                ids.add(f"{str(lg['transactionHash']).lower()}:{quantity(lg['logIndex'])}")
            except (KeyError, TypeError, ValueError, AttributeError):
                pass
        gone = [(tid, number, block_hash) for tid, number, block_hash in standing
                if tid not in ids]
        if not gone:
            return
        numbers = sorted({number for _t, number, _h in gone})
        canonical = {n: known[n] for n in numbers if known is not None and n in known}
        missing = [n for n in numbers if n not in canonical]
        if missing:
            canonical.update(await self._canonical_hashes(missing))
        for tid, number, block_hash in gone:
            now = canonical[number]
            if now is not None and now != block_hash.lower():
                feed = self.tracker.hash_at(number)
                if not recheck and feed is not None and feed.lower() == block_hash.lower():
                    self.counters["orphans_deferred"] += 1
                    self._ask_recheck(number, feed)
                    continue
                self.counters["orphans_retracted"] += 1
                log.warning("[%s] trade %s in block %d (%s...) is no longer canonical: "
                            "retracting", self.conn_id, tid[:18], number, block_hash[:10])
                await self.pipeline.retract(tid, block_hash)

    def _ask_recheck(self, number: int, feed_hash: str) -> None:
        """The node has block ``number`` with another hash than the feed: a re-check from
        there, which waits for the node to have the feed's block (``_reorg_head``) before
        it takes the node's view."""
        if self._reorg_from is None or number < self._reorg_from:
            self._reorg_from = number
        if self._reorg_head is None:
            self._reorg_head, self._node_waits = (number, feed_hash.lower()), 0
            self._reorg_parent = None
        self._wake.set()

    async def _confirmed_target(self, cur: int, target: int
                                ) -> tuple[int, _Prefetched | None]:
        """Ask the node's HTTP head first and never sync past it. A provider's HTTP node
        may lag its WebSocket node: older geth answers an eth_getLogs range above its
        head with the logs it has, and the sync moved the cursor over blocks the node did
        not have (a trade no notification carried, in the last block of a gap or before
        the first head, was lost for good); today's geth refuses such a range. Below the
        feed's target, the sync goes to the node's head - 1 (a load-balanced provider may
        send the eth_getLogs to a node a block behind the one that answered) and asks
        again one block interval later (``_sync_cut``). A feed head far above the node's
        is also not fetched range after range.

        The sync's first range's eth_getLogs goes in the same JSON-RPC batch, after the
        eth_blockNumber (one HTTP request where it was two; the same two calls): a node
        answers a batch's calls in order (geth's handler, the simulator), so the logs were
        taken at a head at or above the one it gave. Returned with the target (None when
        asked apart); the sync keeps the logs of blocks up to its target, the node's
        head - 1 when that is lower (older geth answers a range past its head with the
        logs it has; today's refuses it: that range is asked again). While the node was
        behind the feed at the last ask (a lagging HTTP node: a sync every block), the
        range ends as far below the target, at the node's head - 1 if it lags as much
        again (the rest, if it caught up, is asked apart)."""
        a = cur + 1  # the sync's first range
        b = min(cur + self.chunk_blocks, target - self._node_behind_by)
        changes = self._changes.mark()
        pair = None if b < a else await self.rpc.batch(
            [("eth_blockNumber", []), ("eth_getLogs", [self._logs_filter(a, b)])])
        if pair is None:
            node, first = await self._node_block_number(), None
        else:
            if isinstance(pair[0], RpcError):
                raise pair[0]
            node, first = block_number_of(pair[0]), _Prefetched(a, b, changes, pair[1])
        self._node_behind_by = target + 1 - node if node < target else 0
        if node >= target:
            return target, first
        if target - node > self.s.head_jump_slack:
            self._bad_input("head_jump", f"feed head {target + 1} but node head {node}")
            if len(self.tracker.known()) <= 1:
                # the feed's first head, which nothing checked (later ones are checked
                # against it): the node's word is taken. Past it the feed's chain of heads
                # is, and one answer does not lower it: a garbage eth_blockNumber (a
                # number 12345678 where a hex string belongs) lowered the head for good,
                # every real head after it was refused as a jump, and the feed was dropped
                # for the explorer for the rest of the day
                if self.head is not None and self.head > node:
                    self.head = node
                if self.node_head is not None and self.node_head > node:
                    self.node_head = node
        self.counters["sync_node_behind"] += 1
        self._sync_cut = True
        asyncio.get_running_loop().call_later(self.s.scaled(self.s.block_interval),
                                              self._wake.set)
        return max(cur, node - 1), first

    async def _node_block_number(self) -> int:
        """The HTTP node's ``eth_blockNumber`` (:func:`node_block_number`)."""
        return await node_block_number(self.rpc)

    def _logs_filter(self, a: int, b: int, base: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        return dict(base or self.log_filter(), fromBlock=hex(a), toBlock=hex(b))

    async def _get_logs(self, a: int, b: int, base: dict[str, Any] | None = None
                        ) -> list[dict[str, Any]]:
        """The node's logs of blocks ``a..b`` for the shard's filter (or ``base``)."""
        try:
            result = await self.rpc.call("eth_getLogs", [self._logs_filter(a, b, base)])
        except (RpcError, Timeout, BadResponse) as exc:
            return await self._logs_failed(exc, a, b, base)
        return self._logs_of(result, a, b)

    async def _logs_failed(self, exc: RpcError | Timeout | BadResponse, a: int, b: int,
                           base: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """An eth_getLogs of ``a..b`` failed with ``exc``: the logs of its halves, or raise."""
        if isinstance(exc, RpcError) and is_beyond_head(exc.rpc_message):
            # a node behind the one that gave the head: the sync loop asks again later
            raise _NodeBehind(f"the node has not block {b} yet: {exc.rpc_message}"
                              ) from None
        # a range the node refuses, cannot answer in time, or answers past the body
        # bound is asked again in halves (busy wallets: one range can hold 10,000 logs)
        heavy = (isinstance(exc, Timeout) or (isinstance(exc, BadResponse)
                                              and exc.kind == "too_large")
                 or (isinstance(exc, RpcError) and is_range_too_large(exc.rpc_message)))
        if b > a and heavy:
            self.counters["getlogs_splits"] += 1
            mid = (a + b) // 2
            return (await self._get_logs(a, mid, base)
                    + await self._get_logs(mid + 1, b, base))
        raise exc

    async def _prefetched_logs(self, got: _Prefetched, b: int) -> list[dict[str, Any]]:
        """The logs of blocks ``got.start..b`` from the eth_getLogs answer of
        ``got.start..got.end`` asked with the node's head (see :meth:`_confirmed_target`),
        and those above ``got.end`` asked now. A range the node refused (past its head:
        older nodes give what they have there, today's geth refuses it; too heavy) is
        asked again, as ``a..b``."""
        if b > got.end:
            return (await self._prefetched_logs(got, got.end)
                    + await self._get_logs(got.end + 1, b))
        if isinstance(got.answer, RpcError):
            if b < got.end:  # the node's head was below the range: ask for what it has
                return await self._get_logs(got.start, b)
            return await self._logs_failed(got.answer, got.start, b)
        logs = self._logs_of(got.answer, got.start, got.end)
        if b < got.end:
            logs = [lg for lg in logs if not _above(lg, b)]
        return logs

    def _logs_of(self, result: Any, a: int, b: int) -> list[dict[str, Any]]:
        """The log objects of an eth_getLogs result for blocks ``a..b``
        (:class:`BadResponse` if it is no list). A log of a block outside ``a..b`` or one
        with ``removed: true`` (eth_getLogs never sends one: a provider's bug, a cache or
        load balancer in front of the node) is refused as bad input: taken, the first
        sent the bot a trade of a range read long ago (its dedup id pruned) or of a block
        not mined yet, the second retracted a trade that stands, with no reorg anywhere."""
        if not isinstance(result, list):
            raise BadResponse("eth_getLogs result is not a list", kind="bad_shape")
        good = [x for x in result if isinstance(x, dict)]
        if len(good) < len(result):
            self._bad_input("bad_log", f"{len(result) - len(good)} eth_getLogs entries are "
                                       f"not log objects")
        kept = [x for x in good if x.get("removed") is not True
                and not _outside(x, a, b)]
        if len(kept) < len(good):
            self._bad_input("bad_log", f"{len(good) - len(kept)} eth_getLogs entries of "
                                       f"blocks {a}..{b} are removed or of another block")
        return kept

    async def _canonical_hash(self, n: int) -> str | None:
        block = await self.rpc.call("eth_getBlockByNumber", [hex(n), False])
        return _block_hash(block, n)

    async def _canonical_hashes(self, numbers: Sequence[int]) -> dict[int, str | None]:
        return await node_hashes(self.rpc, numbers)

    async def _unverify_from(self, start: int) -> None:
        """A reorg touched heights >= ``start``: the stored cursor goes below it before the
        re-check waits for the node. It was kept until the re-check was done, in memory
        only (``_reorg_from``): a process killed while it waited left its cursor past
        blocks the chain replaced, and where the feed never showed them (a gap its sync
        went over: no hash stored) the restart check had nothing to compare, and the new
        chain's trades there were never fetched. (The re-check rewinds to its fork below,
        as before; this is only the durable part of it, first.) Never below the wallets'
        launch point: nothing below it was watched, and a node whose history begins
        there refuses a range reaching under it (4444, at every retry)."""
        cur = self.cursor()
        to = start - 1
        launch = self._launch_floor()
        if launch is not None:
            to = max(to, launch)
        if cur is not None and cur > to:
            await self._set_cursors(to, None, forward_only=False)

    async def _recheck(self, start: int) -> bool:
        """A reorg touched heights >= ``start``: find the fork, fix deliveries, rewind.
        False if the logs it fetched went stale (another re-check is asked for)."""
        walk = self._changes.mark()
        await self._node_has_the_reorg()
        canonical: dict[int, str] = {}
        floor = self.tracker.oldest if self.tracker.oldest is not None else start
        # from the highest height a reorg head showed changed, not only from ``start``:
        # a head whose parent is not the block the feed had (geth's one header for a
        # side chain's import) says only "from number - 1 down to a fork below". With
        # ``start`` lowered by an earlier re-check (its logs went stale: this reorg came
        # meanwhile), the walk began below the new fork, found the node agreeing there
        # and took the fork at the head: the 30 blocks between kept the old chain's
        # trades (phantoms) and never got the new chain's (missed)
        k = max(start, self._reorg_top if self._reorg_top is not None else start)
        while k >= floor:
            h = await self._canonical_hash(k)
            if h is None:
                below = self._reorg_parent
                if not canonical and below is not None and start <= below[0] < k:
                    k = below[0]  # the node has not the top yet: from the parent it has
                    continue
                break
            canonical[k] = h
            if self.tracker.hash_at(k) == h and k < start:
                break
            k -= 1
        if self._changes.reorged_since(walk):
            # the feed showed another reorg while the node was asked (has it the reorg
            # head, then its hashes): they may be of the chain the new reorg replaced (a
            # node behind the feed). Recorded, they wrote over the feed's new hashes, and
            # the next re-check, its reorg head gone from the tracker, judged at once
            # with the node's old chain: the new chain's trades retracted, the old one's
            # delivered again (an HTTP node 2 blocks behind, a 16-block reorg 6 s after
            # a 3-block one). Asked again once the node has the new reorg's head
            self._reorg_from = start if self._reorg_from is None else min(
                start, self._reorg_from)
            return False
        fork = self.tracker.fork_point(canonical) if canonical else start
        launch = self._launch_floor()
        if launch is not None and fork <= launch:
            # the fork below the first block watched (the new chain's lowest block has the
            # launch block for parent, which the feed never showed): nothing was delivered
            # there, and a node whose history begins at the launch has nothing below it
            # (4444, pruned history: asked again at every retry)
            fork = launch + 1
        done = await self._fix_range(fork, self._known_head() or fork,
                                     known=dict(canonical))
        self.counters["reorgs"] += 1
        return done

    async def _node_has_the_reorg(self) -> None:
        """Raise :class:`_NodeBehind` (the sync loop retries after its back-off) while
        the HTTP node has the feed's reorg head block with another hash, at most
        ``RECHECK_NODE_WAITS`` times in a row. A provider's HTTP node may lag its WebSocket
        node: still on the replaced chain, its hashes and logs judged the trades the feed
        delivered from the new block orphans (retracted, then delivered again once it
        caught up: the bot undid and redid a real trade) and brought back the old chain's
        trades the feed had just retracted. A node without the block yet is left to the
        rules of the re-check (it judges only blocks the node has) when the fork is the
        head block itself. When it lies below (``_reorg_parent``: geth announces a side
        chain that overtakes in one import with the new top's header only), the node
        must have the head's parent, or it is behind too (the same waits): its blocks
        below the head may be the replaced ones (the re-check took them for the chain:
        the new branch's live trades retracted, the old one's delivered again)."""
        seen = self._reorg_head
        if seen is None or self.tracker.hash_at(seen[0]) != seen[1]:
            return  # no reorg head, or the feed has since moved off it
        number, feed_hash = seen
        node_hash = await self._canonical_hash(number)
        if node_hash == feed_hash:
            return
        if node_hash is None:
            parent = self._reorg_parent
            if parent is None or await self._canonical_hash(parent[0]) == parent[1]:
                return  # what it has below the head is the feed's chain
        shown = "no such block" if node_hash is None else f"{node_hash[:10]}..."
        if self._node_waits < self.RECHECK_NODE_WAITS or (
                self._node_waits < self.RECHECK_BEHIND_WAITS
                and await self._node_behind_feed()):
            self._node_waits += 1
            self.counters["recheck_node_behind"] += 1
            raise _NodeBehind(f"the node's block {number} is not the feed's yet "
                              f"({shown} against {feed_hash[:10]}...)")
        log.warning("[%s] the node still has block %d as %s, the feed showed %s...: "
                    "the re-check takes the node's chain", self.conn_id, number,
                    shown, feed_hash[:10])

    async def _node_behind_feed(self) -> bool:
        """Is the HTTP node's head below the feed's? A node slow to follow (a provider's
        node under load) still has the replaced chain for longer than
        ``RECHECK_NODE_WAITS`` back-offs: taking its view then undid the new chain's
        trades the feed delivered (retracted, then delivered again once it caught up)."""
        head = self.head
        return head is not None and await self._node_block_number() < head

    async def _fix_range(self, fork: int, head: int, *,
                         known: dict[int, str | None] | None = None) -> bool:
        """Re-check blocks ``fork..head`` after a chain change: retract the standing trades
        the node's logs no longer hold and whose block the node has with another hash,
        deliver the logs (moved trades, retracted ones back), rewind the cursor below
        ``fork``. ``known``: the node's block hashes already asked. False if the logs
        went stale meanwhile: another re-check is asked for (``_reorg_from``)."""
        changes = self._changes.mark()
        logs: list[dict[str, Any]] = []
        for a, b in backfill_ranges(fork - 1, head, self.chunk_blocks):
            logs.extend(await self._get_logs(a, b))
        if not self._changes.stale(changes, logs):
            # a standing trade missing from these logs is an orphan only if the node has
            # its block with another hash: a provider's HTTP node may lag its WebSocket
            # node (no block at the feed's head yet, or its logs not yet indexed), and a
            # trade of a block it cannot see is not absent from the chain. Such a block
            # is judged by the sync that reaches it (the cursor goes back to the fork)
            await self._retract_orphans(fork, head, logs, known=known, recheck=True)
            await self._on_logs_sliced(self._not_pruned(logs, {}), changes=changes)
        stale = self._changes.stale(changes, logs)
        if stale:
            # another reorg while the logs were fetched or used: they may be of the chain
            # it replaced - the trades the feed has just retracted would be delivered
            # again from them, the new chain's retracted. The re-check runs again.
            self._reorg_from = min(fork, fork if self._reorg_from is None
                                   else self._reorg_from)
        # above the fetched range: trades the live feed delivered from newer blocks while
        # the logs were fetched (the node has their block: kept), and orphans of an old
        # chain longer than the head (their height holds another block: retracted; one the
        # node does not have yet is judged when a sync reaches it). Judged by the block's
        # hash, never by their absence from logs that were not asked for.
        await self._retract_orphans(head + 1, 1 << 62, [], recheck=True)
        cur = self.cursor()
        if cur is not None and cur >= fork:
            await self._set_cursors(fork - 1, None, forward_only=False)
        log.info("[%s] reorg from block %d re-checked (%d logs)", self.conn_id, fork, len(logs))
        return not stale

    async def _check_fallback_deliveries(self, since: int) -> None:
        """After the fallback: are the blocks the poller delivered from still canonical?

        The explorer indexes the chain late, and after a reorg it may still show the logs
        of the blocks the reorg replaced for a while: the poller delivered them, and
        nothing judged them again - the handback's checks ran before a poll still in
        flight delivered one, and look only at the last ``tracker.keep`` blocks below the
        cursor (an outage's first orphans are far below it), and the syncs start at the
        cursor. Every block from ``since`` up that holds a standing delivery is asked of
        the node; everything from the lowest one it has with another hash is re-checked
        (orphans retracted, the cursor rewound). A block the node does not have is left
        to the sync that reaches it."""
        top = self._known_head()
        if top is None:
            return
        claims: dict[int, set[str]] = {}
        for _tid, n, h in self.store.standing_in_range(self._wallet_set, since, top):
            claims.setdefault(n, set()).add(h.lower())
        if not claims:
            return
        hashes = await self._canonical_hashes(sorted(claims))
        changed = [n for n, claimed in claims.items()
                   if hashes[n] is not None and claimed != {hashes[n]}]
        if not changed:
            return
        fork = min(changed)
        log.warning("[%s] the fallback delivered from blocks the node no longer has: "
                    "re-check from %d", self.conn_id, fork)
        self.counters["fallback_rechecks"] += 1
        await self._fix_range(fork, top, known=hashes)
        self._wake.set()  # the cursor went back to the fork: sync from there

    def _known_head(self) -> int | None:
        """The feed's head, or the node's as the probe saw it, whichever is higher."""
        return max((h for h in (self.head, self.node_head) if h is not None), default=None)

    async def _verify_restart_cursor(self) -> None:
        """After a restart: are the blocks this monitor committed to still canonical?

        Committed are the block hashes up to the cursor that this shard's cursor passed
        under (the stored ones at the process's start, then those of this shard's own syncs
        and checks: another shard may have stored another chain since), and the blocks of
        the standing deliveries of the last ``tracker.keep`` blocks up to the cursor (a trade
        delivered live whose block hash was never stored, because a backfill or the
        explorer then moved the cursor past it). The stored blocks are checked from the
        highest down until one matches the node (they are the feed's one view of the chain);
        every block that holds a standing delivery is checked, whatever matched above it: a
        delivery backfilled before a reorg whose removals went to nobody sits below the
        deliveries of the new chain, which match. A reorg while the monitor was down, or
        one whose removals were lost in a crash or a lagging subscription, shows as a
        mismatch, and everything from the lowest mismatch up is re-checked: orphans
        retracted, the cursor rewound. A block the node does not have cannot be judged and
        is skipped."""
        cur = self.cursor()
        if cur is None:
            return
        claims: dict[int, set[str]] = {}
        stored = {n: h for n, h in self._committed.items() if n <= cur}
        for n, h in stored.items():
            claims.setdefault(n, set()).add(h.lower())
        delivered: set[int] = set()
        for _tid, n, h in self.store.standing_in_range(
                self._wallet_set, max(0, cur - self.tracker.keep), cur):
            claims.setdefault(n, set()).add(h.lower())
            delivered.add(n)
        fork: int | None = None
        vouched = False  # a stored block matched: the stored ones below it need no call
        stale: dict[int, str] = {}  # stored hashes the node no longer has: its hash instead
        order = sorted(claims, reverse=True)
        hashes: dict[int, str | None] = {}
        walk = 1  # blocks asked at once before one matched: 1, 2, 4, ... (the first matches
        # unless the chain changed, and then every delivered block below it is asked)
        for i, n in enumerate(order):
            if vouched and n not in delivered:
                continue
            if n not in hashes:  # the next batch: the blocks this walk may still need
                ahead = [k for k in order[i:] if not vouched or k in delivered]
                size = self.rpc.batch_size if vouched else min(walk, self.rpc.batch_size)
                walk *= 2
                hashes.update(await self._canonical_hashes(ahead[:size]))
            now = hashes[n]
            if now is None:
                continue
            if n in stored and stored[n].lower() != now:
                stale[n] = now
            if claims[n] == {now}:
                vouched = True
                continue
            fork = n
        if fork is None:
            return
        log.warning("[%s] chain changed below the stored cursor while stopped: re-check from %d",
                    self.conn_id, fork)
        await self._fix_range(fork, self._known_head() or cur, known=hashes)
        # the re-check is done: the stored view of those blocks becomes the node's, or
        # every later check (each reconnect) found the same stale hash and rewound the
        # cursor to it again (a growing backfill each time, until it aged out)
        self.store.save_blocks(stale)
        self._commit_view(stale)

    async def _check_departed(self) -> None:
        """Are the last deliveries of wallets no longer on the list still canonical?

        A wallet removed from the list (between runs) is watched by no shard: its trades
        delivered in the last blocks before, which the bot acted on, were judged by no
        re-check (they match no shard's wallets), and a reorg of their block left them
        standing: a phantom. The shard that holds them (``departed``, the first) asks the
        node for their blocks at each restart check and reorg re-check until its head is
        ``tracker.keep`` blocks past the newest of them. Those whose block the node has
        with another hash and that the node's logs of those wallets (from that block to the
        head) no longer hold are retracted; one the new chain holds (it moved) stands.
        Their wallets' trades are never delivered again (they are not watched)."""
        if not self._departed:
            return
        head = self._known_head()
        standing = self.store.standing_in_range(self._departed, self._departed_from, 1 << 62)
        if not standing or (head is not None
                            and head - max(n for _t, n, _h in standing) > self.tracker.keep):
            self._departed = []  # nothing left to judge, or past any reorg's depth
            return
        hashes = await self._canonical_hashes(sorted({n for _t, n, _h in standing}))
        changed = [(tid, n, h) for tid, n, h in standing
                   if hashes[n] is not None and hashes[n] != h.lower()]
        if not changed:
            return
        low = min(n for _t, n, _h in changed)
        top = max([low, *(n for _t, n, _h in changed), *([head] if head is not None else [])])
        base = {"address": list(self.pipeline.exchanges),
                "topics": [list(ORDER_FILLED_TOPICS), None,
                           [address_topic(w) for w in self._departed]]}
        ids: set[str] = set()
        for a, b in backfill_ranges(low - 1, top, self.chunk_blocks):
            for lg in await self._get_logs(a, b, base):
                with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
                    ids.add(f"{str(lg['transactionHash']).lower()}:{quantity(lg['logIndex'])}")
        for tid, number, block_hash in changed:
            if tid in ids:
                continue  # the new chain holds it (moved): it stands
            self.counters["departed_retracted"] += 1
            log.warning("[%s] trade %s of a wallet no longer watched, in block %d (%s...), is "
                        "no longer canonical: retracting", self.conn_id, tid[:18], number,
                        block_hash[:10])
            await self.pipeline.retract(tid, block_hash)

    def _commit_view(self, hashes: dict[int, str]) -> None:
        """This shard's cursor passed ``hashes`` (saved to the store too): its view, kept
        as deep as the store keeps blocks."""
        if not hashes:
            return
        view = self._committed
        view.update(hashes)
        floor = max(view) - self.store.keep_blocks
        if min(view) <= floor:
            self._committed = {n: h for n, h in view.items() if n > floor}


class WalletMonitor:
    """The whole monitor. ``await start()`` ... ``await stop()``."""

    def __init__(self, settings: Settings, *, sink: Sink | None = None,
                 history: History | None = None, clock: Clock | None = None) -> None:
        self.s = settings
        self.clock = clock or SystemClock()
        self.history = history or (History(settings.history_path, clock=self.clock)
                                   if settings.history_path else NullHistory())
        if sink is None:
            sink = (JsonlSink(settings.detections_path, fsync=settings.detections_fsync,
                              clock=self.clock, remember=settings.dedup_capacity)
                    if settings.detections_path else MemorySink())
        self.sink = sink
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self.session: aiohttp.ClientSession | None = None
        self.explorer: ExplorerClient | None = None
        self.rpc: _Rpc | None = None
        self.shards: list[WsShard] = []
        self._shards_built = True  # (the prune held at 0 while they are built: _prune_hold)
        self.plan: SubscriptionPlan | None = None
        self.poller: PollingMonitor | None = None
        self._poll_task: asyncio.Task[Any] | None = None
        self.ws_wallets, self.poll_wallets = split_wallets(
            settings.wallets, settings.websocket_share, settings.use_websocket)
        self._stopped = False
        #: the outbox a crashed process left was checked against the node (start): until
        #: then ``stop`` must not send it
        self._recovered = False
        self.alerts: Alerter = LogAlerter()
        self.supervisor: Supervisor | None = None
        self.latency = LatencyHistogram()  # detection latency, for /metrics
        self.ops: OpsServer | None = None  # /metrics, /healthz, /readyz (metrics_port)
        self._cpu_at_start = 0.0  # the process's CPU seconds when start() began
        self._head_at_start: int | None = None  # the head record_launch read, if it did
        self._started_now: set[str] = set()  # the wallets record_launch started
        #: removed wallets whose stored drain top is above this start's: their mark
        self._owed_marks: dict[str, int] = {}
        self.owed: OwedDrain | None = None  # the trades owed to departed wallets

    async def __aenter__(self) -> WalletMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _rpc_quota_exhausted(self, exc: QuotaExhausted) -> None:
        """The HTTP node's provider said its quota is spent (the client says it once an
        episode: a log error and a history row): the operator's alert too, in the
        background. Nothing the monitor retries fixes it; backfill and the re-checks wait
        (the WebSocket feed, or the explorer once the feed falls back, go on)."""
        if self.pipeline is None:  # (made before the client: never the case)
            return
        self.pipeline._alert("quota_exhausted", redact(
            f"the JSON-RPC provider's quota is EXHAUSTED ({exc.message[:200]}): backfill "
            "and reorg checks fail until the quota resets or the plan is raised"
            + ("; the explorer fills the feed's gaps meanwhile" if self.explorer is not None
               else "; no explorer configured: gaps in the feed wait for it")))

    async def start(self) -> None:
        """Open the store, the HTTP session and every source. A start that fails part way
        (a metrics port in use, a setting found wrong only here) stops what it opened
        before it raises: the caller of a failed ``start`` (``async with``) never calls
        ``stop``, and the session, the store, the sink and any task begun stayed open."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.s
        self._cpu_at_start = _process_cpu_s()
        self.history.record("start", mode="websocket" if s.use_websocket else "polling",
                            wallets=len(s.wallets), speed=s.speed, settings=s.redacted_dict())
        self.store = Store(s.state_db, synchronous=s.state_synchronous)
        if isinstance(self.sink, JsonlSink):  # what the outbox re-sends is found there
            self.sink.cover(self.store.unsent())
        self.pipeline = Pipeline(self.store, ObservedSink(self.sink, self.latency),
                                 wallets=s.wallets,
                                 exchanges=s.exchanges, history=self.history, clock=self.clock,
                                 dedup_capacity=s.dedup_capacity,
                                 dedup_retention_blocks=s.dedup_retention_blocks,
                                 # a thread makes a virtual clock jump while it works
                                 checkpoint_in_thread=isinstance(self.clock, SystemClock))
        if not s.tls_verify:
            log.warning("tls_verify = false: TLS certificates of wss:// and https:// endpoints "
                        "are NOT checked; use only against a test node")
        self.session = aiohttp.ClientSession(
            connector=None if s.tls_verify else aiohttp.TCPConnector(ssl=False))
        if s.telegram_token and s.telegram_chat_id:
            self.alerts = TelegramAlerter(s.telegram_token.get_secret_value(),
                                          s.telegram_chat_id, session=self.session,
                                          api_url=s.telegram_api_url)
        self.pipeline.alerts = self.alerts  # a sink that keeps failing is alerted
        if self.ws_wallets:
            if not s.websocket_url or not s.rpc_url:
                raise MonitorError("websocket mode needs websocket_url and rpc_url")
            self.rpc = _Rpc(s.rpc_url, self.session, history=self.history, clock=self.clock,
                            timeout=max(s.scaled(s.rpc_timeout), 1.0), speed=s.speed,
                            rate_per_s=s.rpc_rate_per_s, batch_size=s.rpc_batch_size,
                            on_quota_exhausted=self._rpc_quota_exhausted)
        if s.explorer_url and (self.poll_wallets or self.ws_wallets):
            self.explorer = ExplorerClient(
                s.explorer_url, self.session, api_key=s.api_key(), chain_id=s.chain_id,
                rate_per_s=s.explorer_rate_per_s, speed=s.speed, timeout=s.explorer_timeout,
                page_size=s.explorer_page_size, history=self.history, clock=self.clock)
        # before anything is delivered (the outbox included) or READY said: a process
        # killed before its first head must leave where it started on disk
        self._started_now = await self.record_launch()
        owed = await self._owed_wallets()  # (before any source moves a cursor)
        # before any source or the outbox loop runs: what a crashed process left goes out
        # first, less the trades of blocks the chain replaced meanwhile: the node's view,
        # or without a node (polling only) the explorer's (sent unchecked, such a trade
        # reached the bot, to be retracted ~2 polls later)
        await self.pipeline.recover(
            self._hashes_at_restart if self.rpc is not None
            else self._explorer_hashes_at_restart if self.explorer is not None else None)
        self._recovered = True
        # what start-up wrote (a launch point of 100,000 wallets: as many cursor rows)
        # copied back into the database now, not by the first live batch's commit: that
        # one found the WAL past CHECKPOINT_HARD_ROWS and held the first block's trades
        # 100-235 ms behind it (test_wallets_bench at 100,000 wallets)
        self.pipeline.counters["wal_checkpoints"] += int(self.store.checkpoint_if_due())
        self.supervisor = Supervisor(history=self.history, clock=self.clock,
                                     alerts=self.alerts, speed=s.speed,
                                     initial=s.backoff_initial, maximum=s.backoff_max,
                                     healthy_after=s.backoff_reset_after)
        if self.ws_wallets and s.reconcile_interval == 0:
            # the prune keeps what the shards' sweeps are still to read (before they
            # are built: everything)
            self._shards_built = False
            self.pipeline.prune_hold = self._prune_hold
        self.supervisor.spawn("outbox", self._outbox_loop)
        if self.rpc is not None:
            self.plan = plan = plan_subscriptions(
                s.subscription_mode, len(self.ws_wallets),
                max_wallets_per_filter=s.max_wallets_per_filter,
                firehose_above_wallets=s.firehose_above_wallets, profile=s.provider_profile)
            log.info("subscriptions: %s (%s); %d connection(s), %d subscription(s)",
                     plan.mode, plan.reason, plan.connections, plan.subscriptions)
            self.history.record("subscription_mode", **plan.to_dict())
            firehose = plan.mode == "firehose"
            per = len(self.ws_wallets) if firehose else plan.wallets_per_filter
            committed = self.store.blocks()  # before any shard runs (and writes there)
            departed = self._departed_wallets()
            for i in range(0, len(self.ws_wallets), per):
                shard = WsShard(i // per, self.ws_wallets[i:i + per], settings=s,
                                store=self.store, pipeline=self.pipeline, rpc=self.rpc,
                                explorer=self.explorer, history=self.history, clock=self.clock,
                                alerts=self.alerts, supervisor=self.supervisor,
                                firehose=firehose, committed=committed,
                                departed=departed if i == 0 else None)
                shard.prune_held = self.pipeline.prune_hold is not None
                self.shards.append(shard)
                await shard.start()
            self._shards_built = True
        if self.poll_wallets:
            if self.explorer is None:
                raise MonitorError("polling needs explorer_url")
            self.poller = PollingMonitor(
                self.explorer, self.pipeline, self.store, wallets=self.poll_wallets,
                interval=s.polling_interval, speed=s.speed,
                overlap_blocks=s.explorer_overlap_blocks, start_block=s.start_block,
                group="polling", clock=self.clock, block_interval=s.block_interval,
                head_jump_slack=s.head_jump_slack, history=self.history)
            self._poll_task = self.supervisor.spawn("polling", self.poller.run)
        if owed:
            self._hold_owed_back(owed)
            self.supervisor.spawn("owed", lambda: self._drain_owed(owed))
        if s.metrics_port:
            self.ops = OpsServer([({}, self)], host=s.metrics_host, port=s.metrics_port)
            await self.ops.start()
        log.info("monitor started: %d wallet(s) on websocket in %d shard(s), %d on polling",
                 len(self.ws_wallets), len(self.shards), len(self.poll_wallets))

    def _prune_hold(self) -> int | None:
        """``reconcile_interval = 0``: the lowest block whose dedup rows the pipeline's
        prune keeps whatever the cursors say (``Pipeline.prune_hold``): the lowest
        :meth:`WsShard.sweep_floor` (None: no shard holds any; 0 while they are built)."""
        if not self._shards_built:
            return 0
        floors = [f for f in (shard.sweep_floor() for shard in self.shards) if f is not None]
        return min(floors, default=None)

    async def record_launch(self) -> set[str]:
        """Store the launch point: every watched wallet without a cursor (a fresh state
        database, or wallets new to the list) gets one below ``start_block`` if
        configured, else at the head at this start - the HTTP node's ``eth_blockNumber``,
        or in polling-only mode the explorer's; watched from the block after it - in one
        transaction, before anything is delivered. A process killed before its first head
        (before any sync or poll stored a cursor) then leaves that point on disk, and the
        next one backfills from it: it started at its own, later, head, and every trade
        between the two launches was lost for good. A wallet added to the list later
        starts at the head of the start that first watches it, the same way. The head is
        waited for at most
        ``RESTART_CHECK_WAIT_S`` simulated seconds (at least one second); without it the
        wallets start at the first head a source sees, as before (a warning says so).
        Returns the wallets started here."""
        s, store = self.s, self.store
        assert store is not None
        stored = store.cursors()
        new = [w for w in s.wallets if w not in stored]
        if not new:
            return set()
        if s.start_block is not None:
            block, source = s.start_block, "start_block"
            cursor = block - 1  # the first block to watch
        else:
            wait = max(s.scaled(RESTART_CHECK_WAIT_S), 1.0)
            source = "node" if self.rpc is not None else "explorer"
            try:
                if self.rpc is not None:
                    block = await asyncio.wait_for(node_block_number(self.rpc), wait)
                elif self.explorer is not None:
                    block = await asyncio.wait_for(self.explorer.block_number(), wait)
                else:
                    return set()
            except (MonitorError, TimeoutError) as exc:
                log.warning("the %s did not say its head within %.1fs (%s): the launch point "
                            "is not stored; the wallets start at the first head seen", source,
                            wait, redact(str(exc)) or type(exc).__name__)
                return set()
            if block <= 0:  # a node resyncing, an explorer with nothing indexed
                log.warning("the %s said head %d at start: the launch point is not stored; "
                            "the wallets start at the first head seen", source, block)
                return set()
            if self.rpc is not None:
                await self._refuse_syncing_node(wait)
            # the head at start was mined before the launch: watched from the next block,
            # as from the first head a feed sends (geth sends none on subscribing). From
            # the head itself, its trades - made before the launch - went to the bot: 189
            # phantoms of the harness's truth at 100,000 wallets (the paused replay's last
            # history block)
            cursor = block
            self._head_at_start = block
        started = set(store.start_cursors(new, cursor))
        log.info("launch point: %d wallet(s) start at block %d (%s)", len(started),
                 cursor + 1, source)
        return started

    async def _refuse_syncing_node(self, wait: float) -> None:
        """Raise :class:`MonitorError` when the HTTP node says (``eth_syncing``) it is more
        than ``SYNC_SLACK_BLOCKS`` behind the chain: a self-hosted bor, geth or erigon
        catching up answers ``eth_blockNumber`` with a block of the chain's past, and the
        launch point is stored for good - every trade since would go to the bot as new.
        A node that cannot say in ``wait`` seconds (or at all) is taken as synced."""
        assert self.rpc is not None
        try:
            gap = await asyncio.wait_for(node_sync_gap(self.rpc), wait)
        except TimeoutError:
            return
        if gap is not None:
            raise MonitorError(
                f"the node at rpc_url is syncing (at block {gap[0]} of {gap[1]}): its head "
                "is a block of the chain's past, and the wallets' launch point would be "
                "stored there for good; start the monitor once the node has synced, or set "
                "start_block")

    async def _owed_wallets(self) -> dict[str, tuple[int, int]]:
        """Wallets no longer on the list that have a stored cursor, each with the first
        block of the trades the run before may still have owed them
        (:func:`monitor.departed.owed_from`) and the last (the top).

        The top is kept on disk before anything is read (the wallets' cursor group:
        :func:`monitor.departed.owed_group`): a drain that does not finish (a kill, a node
        failing its ranges) is resumed by the next start up to it, not up to that start's
        head - the wallet's trades mined while it was off the list went to the bot. A
        wallet added back to the list whose drain did not finish gets what it was owed up
        to that top, and starts at this start's launch point: its cursor, left where the
        drain stopped, had its shard send the trades of its whole time off the list.

        Their top, the head at this start (``_head_at_start``), is read here if
        :meth:`record_launch` did not (every watched wallet has a cursor, or
        ``start_block`` is set), waited for as long, and from a node taken only once it
        has that block (asked again up to 3 times). Read later, by the drain, it was the
        head of whenever the node came back (down at start: minutes, hours), and the
        removed wallets' trades mined after this start - when they were not on the list -
        went to the bot. A source that does not say its head in time: the highest block
        the store says the run before reached (its cursors, its tracked hashes), never
        past this start (a warning says trades above it, if any, are not read)."""
        assert self.store is not None
        s, store = self.s, self.store
        watched = {w.lower() for w in s.wallets}
        cursors = store.cursors()
        gone = {w: c.block for w, c in cursors.items() if w.lower() not in watched}
        marked = {w: t for w, c in cursors.items() if (t := owed_top(c.group)) is not None}
        for w, c in cursors.items():  # a mark whose top is unreadable: nothing guessed
            if w not in marked and c.group.startswith(OWED_GROUP):
                raise StoreError(
                    f"state_db {s.state_db} is damaged (wallet {w[:42]}: cursor group "
                    f"{c.group[:40]!r}, not {OWED_GROUP}<block>): fix the row with sqlite3, "
                    "or use another state_db")
        back = {w: cursors[w].block for w in marked if w.lower() in watched}
        # back on the list at a start before, their drain then cut short (a kill): the
        # rest of it (the last block read, the last owed). One removed again since: its
        # cursor of the time it was back is owed as any removed wallet's
        again = {w: bt for w, bt in store.owed_back().items()
                 if w.lower() in watched and w not in marked}
        if not gone and not back and not again:
            return {}
        rpc, explorer = self.rpc, self.explorer
        if rpc is not None or (self._head_at_start is None and explorer is not None):
            wait = max(s.scaled(RESTART_CHECK_WAIT_S), 1.0)
            source = "node" if rpc is not None else "explorer"

            async def read_head() -> int | None:
                # the node's head is taken once it has that block: a head it has not (a
                # backend of a load balancer gone wrong: 10**15) was the drain's top, and
                # it walked eth_getLogs and cursor writes toward it for ever. Asked again
                # (up to 3 times) while the head said is not one
                got = self._head_at_start
                for _ in range(3):
                    if got is None:
                        got = (await node_block_number(rpc) if rpc is not None
                               else await explorer.block_number() if explorer is not None
                               else None)
                    if got is None or got <= 0:
                        return None
                    if rpc is None:
                        return got
                    try:
                        block = await rpc.call("eth_getBlockByNumber", [hex(got), False])
                    except MonitorError:
                        return got  # not shown bogus: a node failing now (it said it)
                    with contextlib.suppress(BadResponse):
                        if _block_hash(block, got) is not None:
                            return got
                    log.warning("the node said head %d at start but has no such block",
                                got)
                    got = None
                return None
            head: int | None = None
            try:
                head = await asyncio.wait_for(read_head(), wait)
            except (MonitorError, TimeoutError) as exc:
                log.warning("the %s did not say its head within %.1fs (%s)", source, wait,
                            redact(str(exc)) or type(exc).__name__)
            if head is None:
                head = max([*(c.block for c in cursors.values()), *store.blocks()],
                           default=0)
                log.warning("%d wallet(s) no longer watched: the trades the run before owed "
                            "them are read up to block %d, the highest the run before "
                            "reached; any above it (up to the head at this start, unknown) "
                            "are not", len(gone), head)
            self._head_at_start = head
        top = new_top = self._head_at_start
        if top is not None and any(w not in marked for w in gone):
            # owed: what was mined while the run before ran, which its furthest read and an
            # hour's slack bound (a stuck run); not what was mined while none ran
            reached = max([*(c.block for w, c in cursors.items()
                             if w not in self._started_now), *store.blocks()], default=None)
            slack = math.ceil(OWED_SLACK_S / max(s.block_interval, 0.1))
            if reached is not None and reached + slack < top:
                log.warning("%d wallet(s) no longer watched: the trades the run before owed "
                            "them are read up to block %d (%.0f s past block %d, the "
                            "highest it had read); those of blocks %d..%d were mined while "
                            "no monitor ran, when they were off the list", len(gone),
                            reached + slack, OWED_SLACK_S, reached, reached + slack + 1, top)
                self.history.record("owed_capped", reached=reached, top=reached + slack,
                                    head=top)
                new_top = reached + slack
        zero = s.reconcile_interval == 0
        floors = store.sweep_floors() if zero else {}
        launches = store.launches()
        owed = {w: owed_from(block, zero_mode_window=RESTART_SWEEP_BLOCKS if zero else 0,
                             floor=floors.get(w), retention=s.dedup_retention_blocks,
                             launch=launches.get(w))
                for w, block in (gone | back).items()}
        if top is None or new_top is None:  # no source to read them: nothing marked
            return {w: (first, marked.get(w, 0)) for w, first in owed.items()}
        # the top on disk first (each wallet's block kept), ONE transaction for all: one
        # per distinct cursor was ~100 s of a start at 100,000 removed polled wallets
        unmarked: dict[tuple[int, str | None], list[str]] = {}
        for w in gone:
            if w not in marked:
                unmarked.setdefault((cursors[w].block, cursors[w].hash), []).append(w)
        if unmarked:
            store.set_cursors_each([(ws, block, block_hash)
                                    for (block, block_hash), ws in unmarked.items()],
                                   owed_group(new_top), forward_only=False)
        if back:  # added back mid-drain: watched from this start's launch point
            log.info("%d wallet(s) back on the list were still owed trades of the run "
                     "before theirs: delivered up to the drain's top, and watched from "
                     "block %d", len(back), top + 1)
            store.forget_wallets(  # (one transaction; what is owed kept for a resume)
                list(back), start_at=top,
                owed={w: (owed[w] - 1, min(marked[w], top)) for w in back})
        # a mark above this start's head (a node behind the one of the start that wrote
        # it, or its head unknown: the highest block the store has): drained up to this
        # head, the mark kept and the wallet not forgotten - the next start reads the
        # rest. Lowered to this head and forgotten, the trades owed above it were lost
        self._owed_marks = {w: m for w, m in marked.items() if w in gone and m > top}
        return {**{w: (first, min(marked.get(w, new_top), top)) for w, first in owed.items()},
                **{w: (block + 1, min(last, top)) for w, (block, last) in again.items()}}

    def _hold_owed_back(self, owed: dict[str, tuple[int, int]]) -> None:
        """The pipeline's prune keeps the dedup rows of the blocks the drain is still to
        read for wallets back on the list (``Pipeline.prune_hold``, with the zero mode's
        own). Such a wallet's cursor is this start's head: its rows from where the run
        before left it up were the prune's once the head was the retention past them, and
        the drain, reading there after a prune (a slow or failing node), sent the trades
        the run before's feed had delivered above that cursor to the bot again. A wallet
        only removed keeps its cursor until it is drained: its rows stay without this."""
        assert self.pipeline is not None
        watched = {w.lower() for w in self.s.wallets}
        back = [w for w in owed if w.lower() in watched]
        if not back:
            return
        firsts = {w: owed[w][0] for w in back}
        held = self.pipeline.prune_hold

        def hold() -> int | None:
            drain = self.owed
            left = (firsts.values() if drain is None
                    else [drain.owed[w] for w in back if w in drain.owed])
            low = min(left, default=None)
            other = held() if held is not None else None
            return low if other is None else other if low is None else min(low, other)
        self.pipeline.prune_hold = hold

    async def _drain_owed(self, owed: dict[str, tuple[int, int]]) -> None:
        """The ``owed`` task: deliver what the run before owed the wallets removed from the
        list (:class:`monitor.departed.OwedDrain`), read from the HTTP node (or without one
        from the explorer, once its index has the blocks) up to the head at this start
        (:meth:`_owed_wallets`). Then they are forgotten, and the reorg re-checks of
        departed wallets (:meth:`_departed_wallets`) take their new deliveries."""
        s, store = self.s, self.store
        assert store is not None
        if self.owed is None:
            top = self._head_at_start  # (read at start whenever a source is configured)
            if top is None:
                log.warning("%d wallet(s) no longer watched may be owed trades, but no "
                            "source is configured to read them", len(owed))
                return
            fetch = (self._owed_node_logs if self.shards else self._owed_explorer_logs)
            tops = {w: t for w, (_f, t) in owed.items()}
            watched = {w.lower() for w in s.wallets}

            def advance(ws: list[str], b: int) -> None:
                # (a wallet back on the list: its cursor is its shard's now; how far its
                # drain read is kept apart for a resume)
                store.set_owed_back([w for w in ws if w.lower() in watched], b)
                ws = [w for w in ws if w.lower() not in watched]
                by_mark: dict[int, list[str]] = {}
                for w in ws:  # the group of its top (its mark, if above): for a resume
                    by_mark.setdefault(self._owed_marks.get(w, tops.get(w, top)),
                                       []).append(w)
                for mark, part in by_mark.items():
                    store.set_cursors(part, b, None, owed_group(mark))
            self.owed = OwedDrain(
                {w: f for w, (f, _t) in owed.items()}, top, tops=tops, fetch=fetch,
                deliver=self._deliver_owed, advance=advance,
                forget=self._forget_owed,
                chunk=self.shards[0].chunk_blocks if self.shards else s.backfill_chunk_blocks,
                group_size=s.max_wallets_per_filter if self.shards else 1,
                retry_s=max(s.scaled(s.polling_interval), 0.05), clock=self.clock,
                history=self.history, retry_max_s=s.scaled(s.backoff_max))
        await self.owed.run()

    async def _owed_node_logs(self, wallets: Sequence[str], a: int, b: int
                              ) -> list[dict[str, Any]]:
        assert self.pipeline is not None
        base = {"address": list(self.pipeline.exchanges),
                "topics": [list(ORDER_FILLED_TOPICS), None,
                           [address_topic(w) for w in wallets]]}
        return await self.shards[0]._get_logs(a, b, base)

    async def _owed_explorer_logs(self, wallets: Sequence[str], a: int, b: int
                                  ) -> list[dict[str, Any]]:
        """The explorer's logs of ``wallets`` in ``a..b``, once its index has block ``b``
        (the newest transaction to an exchange; none: its head less the overlap). The
        index is asked only while the highest block it said it has is below ``b``
        (``OwedDrain.indexed``): asked for each wallet and range (one a call), 100,000
        removed wallets cost 200,000 more calls of the quota the polls share."""
        assert self.explorer is not None and self.pipeline is not None
        drain = self.owed
        if drain is None or drain.indexed is None or drain.indexed < b:
            exchanges = sorted(self.pipeline.exchanges,
                               key=lambda x: (x not in V2_EXCHANGES, x))
            index = await self.explorer.index_head(exchanges[0]) if exchanges else None
            if index is None:
                index = await self.explorer.block_number() - self.s.explorer_overlap_blocks
            if drain is not None:
                drain.indexed = max(index, drain.indexed if drain.indexed is not None
                                    else index)
            if index < b:
                raise NotIndexedYet(f"the explorer's index has block {index}, not {b} yet")
        out: list[dict[str, Any]] = []
        for w in wallets:
            out.extend(await self.explorer.get_logs(from_block=a, to_block=b,
                                                    topics={2: address_topic(w)}))
        return out

    async def _deliver_owed(self, logs: list[dict[str, Any]], wallets: frozenset[str]
                            ) -> None:
        assert self.pipeline is not None
        # OrderFilled logs of the exchanges (``logs``: the owed wallets' fills only, as
        # OwedDrain._owed_logs keeps them; a wallet on the list's are its own sources')
        exchanges = set(self.pipeline.exchanges)
        fills = [lg for lg in logs if isinstance(lg.get("topics"), list)
                 and len(lg["topics"]) > 2 and lg["topics"][0] in ORDER_FILLED_TOPICS
                 and str(lg.get("address", "")).lower() in exchanges]
        if fills:
            await self.pipeline.on_logs(fills, "backfill", owed=wallets)

    def _forget_owed(self, wallets: list[str]) -> None:
        """``wallets`` got what they were owed: forgotten by the store, and their new
        deliveries re-checked after a reorg as any departed wallet's."""
        assert self.store is not None
        watched = {w.lower() for w in self.s.wallets}  # (one back on the list: its shard's)
        later = [w for w in wallets if w in self._owed_marks]  # owed above this head
        if later:
            log.info("%d wallet(s) no longer watched are owed trades up to block %d, above "
                     "the head at this start: the rest is read by the next start",
                     len(later), max(self._owed_marks[w] for w in later))
        self.store.forget_wallets([w for w in wallets if w.lower() not in watched
                                   and w not in self._owed_marks])
        self.store.set_owed_back([w for w in wallets if w.lower() in watched], None)
        departed = self._departed_wallets()
        if departed is not None and self.shards:
            self.shards[0].departed = departed
        if self.poller is not None:  # its list of them is made again at its next round
            self.poller._departed = None

    def _departed_wallets(self) -> tuple[list[str], int] | None:
        """Wallets no longer on the list with a standing delivery in the last
        ``DEPARTED_DEPTH`` blocks delivered, and the lowest of those blocks: their trades
        the bot acted on are still re-checked after a reorg (by the first shard)."""
        assert self.store is not None
        recent, first = self.store.recent_wallets(DEPARTED_DEPTH)
        gone = sorted(recent - {w.lower() for w in self.s.wallets})
        if not gone:
            return None
        log.info("%d wallet(s) no longer watched have deliveries in the last %d blocks: "
                 "re-checked after a reorg until the chain is past them", len(gone),
                 DEPARTED_DEPTH)
        return gone, first

    async def _hashes_at_restart(self, numbers: Collection[int]) -> dict[int, str | None]:
        """The node's hashes of ``numbers`` for :meth:`Pipeline.recover`, waited for at most
        ``RESTART_CHECK_WAIT_S`` simulated seconds (at least one second): a node down or
        slow at start does not hold the outbox back; what it did not say goes out
        unchecked, and the restart's re-check retracts what it must. The blocks it answered
        before the wait ran out or a call failed (asked newest first; one at a time from a
        node that refuses batches) are judged: they were all thrown away, and a trade of a
        block the node had already shown replaced reached the bot."""
        assert self.rpc is not None
        wait = max(self.s.scaled(RESTART_CHECK_WAIT_S), 1.0)
        answered: dict[int, str | None] = {}
        try:  # the newest first: a reorg while down replaced those, if any
            return await asyncio.wait_for(
                node_hashes(self.rpc, sorted(numbers, reverse=True), answered), wait)
        except (MonitorError, TimeoutError) as exc:
            log.warning("the node did not say within %.1fs whether the blocks of the outbox's "
                        "trades are still canonical (%s): %d block(s) judged, the trades of "
                        "the others sent unchecked", wait,
                        redact(str(exc)) or type(exc).__name__, len(answered))
            return dict(answered)

    async def _explorer_hashes_at_restart(self, numbers: Collection[int]
                                          ) -> dict[int, str | None]:
        """Polling only (no node): the explorer's hashes of the newest of ``numbers``
        (:func:`monitor.polling.explorer_block_hashes`) for :meth:`Pipeline.recover`, waited
        for as the node's are (``RESTART_CHECK_WAIT_S``): an explorer down or slow at start
        does not hold the outbox back; what it did not say goes out unchecked, and the
        first polls retract what they must. The blocks it answered before the wait ran out
        are judged (they went out unchecked too, while their answers were at hand)."""
        assert self.explorer is not None
        wait = max(self.s.scaled(RESTART_CHECK_WAIT_S), 1.0)
        answered: dict[int, str | None] = {}
        try:
            return await asyncio.wait_for(
                explorer_block_hashes(self.explorer, numbers, answered), wait)
        except (MonitorError, TimeoutError) as exc:
            log.warning("the explorer did not say within %.1fs whether the blocks of the "
                        "outbox's trades are still canonical (%s): %d block(s) judged, the "
                        "trades of the others sent unchecked", wait,
                        redact(str(exc)) or type(exc).__name__, len(answered))
            return dict(answered)

    async def _outbox_loop(self) -> None:
        """Re-send what a failed sink left in the outbox, and prune sent rows, every
        ``outbox_retry_interval`` (simulated seconds) while the process runs."""
        assert self.pipeline is not None
        period = self.s.scaled(self.s.outbox_retry_interval)
        while not self._stopped:
            await asyncio.sleep(period)
            try:
                await self.pipeline.redeliver()
            except MonitorError as exc:  # a locked or full database: next round
                log.warning("outbox redelivery failed (%s); retry in %.2fs", exc.message,
                            period)

    def tasks_alive(self) -> dict[str, bool]:
        """Each supervised task: running now? (a crashed task waiting to restart is not)"""
        alive = self.supervisor.alive() if self.supervisor is not None else {}
        for shard in self.shards:
            alive[f"ws-manager-{shard.conn_id}"] = shard.manager.running
        return alive

    def ready(self) -> bool:
        """Every part alive (readiness): no task dead or restarting."""
        return not self._stopped and all(self.tasks_alive().values())

    async def wait_connected(self, timeout: float) -> bool:
        """Wait (clock seconds) until every WebSocket shard is CONNECTED with its
        subscriptions made. True at once without shards; False on timeout (the monitor
        keeps running: reconnects and the fallback take it from there).

        Raises :class:`~monitor.errors.ConfigError` as soon as a shard's first handshake
        of all was refused the key (HTTP 401/403, :meth:`key_refused_at_start`): no wait
        helps, the key must be fixed (``monitor run`` and the pilot exit 2 on it, as on a
        provider's 401/403 over HTTP). Once connected before, a refusal is the manager's
        FAILED, and the fallback polls."""
        if not self.shards:
            return True

        def settled(manager: WebSocketManager) -> Callable[[], bool]:
            return lambda: manager.state is ConnState.CONNECTED or (
                manager.key_refused is not None and not manager.ever_connected)

        await asyncio.gather(*(shard.manager.wait_until(settled(shard.manager), timeout)
                               for shard in self.shards))
        refused = self.key_refused_at_start()
        if refused is not None:
            raise ConfigError(f"websocket_url {mask_url(str(self.s.websocket_url))} refuses "
                              f"the key (HTTP {refused} at the WebSocket handshake): check "
                              "the key in the URL")
        return all(shard.manager.state is ConnState.CONNECTED for shard in self.shards)

    def key_refused_at_start(self) -> int | None:
        """The HTTP status (401/403) with which the provider refused the key at a
        shard's first WebSocket handshake, while no shard's connection ever opened; else
        None. A shard refused while another connected with the same key is no key to fix
        (a provider's cap on connections answers 403 too): its ``failed`` alert says so,
        and the fallback polls its wallets."""
        if any(shard.manager.ever_connected for shard in self.shards):
            return None
        for shard in self.shards:
            if shard.manager.key_refused is not None:
                return shard.manager.key_refused
        return None

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pipeline is not None:
            out["pipeline"] = dict(self.pipeline.counters)
        if self.explorer is not None:
            out["explorer"] = self.explorer.calls.to_dict()
        if self.rpc is not None:
            out["rpc_http"] = {"calls": dict(self.rpc.calls), "failures": self.rpc.failures}
        if self.plan is not None:
            out["subscriptions"] = self.plan.to_dict()
        out["shards"] = {sh.conn_id: {"ws": sh.manager.metrics_dict(),
                                      **dict(sh.counters)} for sh in self.shards}
        if self.supervisor is not None:
            out["task_restarts"] = dict(self.supervisor.restarts)
        out["history_dropped"] = self.history.dropped
        if self.poller is not None:
            out["polling"] = {"polls": self.poller.polls, **dict(self.poller.counters)}
        if self.store is not None:
            out["store"] = self.store.stats()
        return out

    async def abort(self) -> None:
        """Stop as a killed process stops (SIGKILL): every task cancelled, nothing drained,
        redelivered, sent or marked sent, no last history row, and whatever a cancelled
        task still writes to the state store lost (its connection closed under it). For a
        harness that kills and restarts the monitor inside its own process (virtual time,
        ``[[restarts]]`` of kind ``kill``); a process is stopped with :meth:`stop`."""
        if self._stopped:
            return
        self._stopped = True
        tasks = self.supervisor.cancel_all() if self.supervisor is not None else []
        tasks += [sh._probe for sh in self.shards if sh._probe is not None]
        if self._poll_task is not None:
            tasks.append(self._poll_task)
        for t in tasks:
            t.cancel()
        for shard in self.shards:
            shard._stop.set()
        if self.store is not None:
            self.store.abandon()
        self.sink.close()
        for shard in self.shards:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await shard.manager.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if self.ops is not None:  # its socket dies with the process
            with contextlib.suppress(Exception):
                await self.ops.stop()
        if self.session is not None:
            await self.session.close()
        self.history.close()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.ops is not None:
            with contextlib.suppress(Exception):
                await self.ops.stop()
        alive = self.tasks_alive()
        tasks = self.supervisor.snapshot() if self.supervisor is not None else {}
        for shard in self.shards:
            tasks[f"ws-manager-{shard.conn_id}"] = {
                "state": "running" if shard.manager.running else "dead",
                "restarts": shard.manager.crashes, "last_error": None}
        self.history.record("tasks", alive=alive, tasks=tasks)
        for shard in self.shards:
            with contextlib.suppress(Exception):
                await shard.stop()
        if self.poller is not None:
            self.poller.stop()
        if self._poll_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._poll_task, timeout=10.0)
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self.pipeline is not None and self._recovered:
            with contextlib.suppress(MonitorError):
                await self.pipeline.redeliver()
        metrics = self.metrics()
        # this run's CPU: a process that hosts several runs (the harness's virtual-time
        # workers run seed after seed) must not bill one run for the ones before it
        self.history.record("stop", metrics=metrics,
                            cpu_s=_process_cpu_s() - self._cpu_at_start,
                            rss_peak_bytes=peak_rss_bytes())
        if self.pipeline is not None:  # a sink's failure or recovery said at the end
            await self.pipeline.flush_alerts(5.0)
        if self.session is not None:
            await self.session.close()
        self.sink.close()
        if self.store is not None:
            self.store.close()
        self.history.flush()
        self.history.close()
        log.info("monitor stopped: %s", redact(str(metrics.get("pipeline", {}))))
