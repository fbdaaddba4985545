"""The polling monitor: today's behaviour, the baseline - and the WebSocket fallback.

Method (what a careful user does for Polymarket proxy wallets). The trader's proxy wallet
is neither ``from`` nor ``to`` of a trade transaction (the operator submits it), so
``txlist`` shows nothing. ``tokentx``/``token1155tx`` would show the transfers, but then
every trade needs receipt lookups to find the ``OrderFilled`` log. Instead, once per
interval and per wallet::

    module=logs&action=getLogs&topic2=<wallet as a 32-byte topic>
        &fromBlock=<cursor+1>&toBlock=<explorer head>&page=N&offset=1000

topic2 of ``OrderFilled`` (V1 and V2) is the indexed ``maker``. One call covers both
versions and every exchange; it also matches other events whose third topic is the wallet
(ERC-20 ``Transfer`` to it, ERC-1155 ``TransferSingle`` to it), so rows are filtered
client-side on topic0 in {V1, V2 OrderFilled} and address in the configured exchanges
before decoding. Full pages are followed (see :class:`~monitor.explorer_client.ExplorerClient`).

Start block: a wallet with no cursor starts at ``start_block`` if configured, else at the
explorer's current block (``module=proxy&action=eth_blockNumber``, one call per interval
for all wallets).

Cursor: per wallet, in the store. After a successful query up to the explorer's head H,
the cursor becomes ``H - overlap_blocks``: the explorer indexes logs some seconds after it
reports a block, so the last ``overlap_blocks`` are queried again next time (the
persistent dedup drops repeats; no extra calls). A failed call (rate limit after retries,
HTML 502, timeout, NOTOK) is counted, logged and retried next interval; the cursor does not
move, so nothing is lost - unless it failed on a later page: the pages before it are
delivered and the cursor moves over the blocks they hold whole (at most to
``H - overlap``), so a range of more pages than a poll gets through still moves on.
Intervals are in simulated seconds, divided by ``speed``.

A hostile or broken explorer: a head the chain cannot have reached since the highest one
(:func:`monitor.cores.plausible_head`, as on the WebSocket path) is refused for the round
(``bad_input`` ``explorer_head_jump``), and a cursor more than ``head_jump_slack`` blocks
past the highest head (set from such a head before, or by a store from elsewhere) is
rewound to that head less the overlap (``bad_input`` ``cursor_ahead``): one bogus answer
once left a wallet unpolled for good. The first head of a run is checked by nothing: it
is a reference only once a later answer agrees with it (not lower by more than the slack);
until then it rewinds no cursor, and two answers in a row that agree with each other but
not with it replace it (a low first answer - 12345678 where the chain is at 80 million -
refused every real head after it as a jump, for good). A head below the cursor (0: nothing
indexed, a node resyncing, an index behind) only makes the round poll nothing: it rewound
every cursor to it, and the next poll asked the whole history again and delivered a
second time every trade whose dedup id had been pruned.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable

from monitor.clock import Clock, SystemClock
from monitor.config import DEFAULT_EXPLORER_OVERLAP_BLOCKS
from monitor.cores import plausible_head
from monitor.errors import MonitorError
from monitor.explorer_client import ExplorerClient, PartialLogs
from monitor.history import History, NullHistory, record_bad_input
from monitor.pipeline import Pipeline
from monitor.store import Store
from polyvocab import ORDER_FILLED_TOPICS, address_topic

__all__ = ["PollingMonitor"]

log = logging.getLogger("monitor.polling")


class PollingMonitor:
    """Polls the explorer for a set of wallets. ``run()`` until ``stop()``."""

    def __init__(
        self,
        client: ExplorerClient,
        pipeline: Pipeline,
        store: Store,
        *,
        wallets: Iterable[str],
        interval: float,
        speed: float = 1.0,
        overlap_blocks: int = DEFAULT_EXPLORER_OVERLAP_BLOCKS,
        start_block: int | None = None,
        group: str = "polling",
        clock: Clock | None = None,
        block_interval: float = 2.0,
        head_jump_slack: int = 64,
        history: History | None = None,
    ) -> None:
        self.client = client
        self.pipeline = pipeline
        self.store = store
        self.wallets = [w.lower() for w in wallets]
        self.interval = interval
        self.speed = speed
        self.overlap = overlap_blocks
        self.start_block = start_block
        self.group = group
        self.clock = clock or SystemClock()
        self.counters: Counter[str] = Counter()
        self.exchanges = set(pipeline.exchanges)
        self._stop = asyncio.Event()
        self.polls = 0
        # the lowest cursor a poll asked from (its logs are above it): a cursor rewound,
        # or a wallet started, below where the caller's own checks begin
        self.lowest_cursor: int | None = None
        self.last_head: int | None = None
        self._top: tuple[int, float] | None = None  # (highest head, clock time first seen)
        self._top_agreed = False  # a later answer agreed with _top (see the docstring)
        self._jump: tuple[int, float] | None = None  # the last head refused as a jump
        self.block_interval = block_interval  # simulated seconds
        self.slack = head_jump_slack
        self.history = history or NullHistory()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Poll every ``interval / speed`` seconds until :meth:`stop`."""
        period = self.interval / self.speed
        next_at = self.clock.now()
        while not self._stop.is_set():
            await self.poll_once()
            next_at += period
            delay = next_at - self.clock.now()
            if delay < 0:  # a slow poll: do not try to catch up in a burst
                next_at, delay = self.clock.now(), 0.0
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def poll_once(self) -> int:
        """One round over every wallet. Returns how many wallets were fully covered."""
        self.polls += 1
        try:
            head = await self.client.block_number()
        except MonitorError as exc:
            self.counters["errors"] += 1
            log.warning("explorer head unavailable (%s); retry next interval", exc.message)
            return 0
        now = self.clock.now()
        jump, self._jump = self._jump, None
        top = self._top
        if top is not None and not self._top_agreed and not self._agrees(head, top, now):
            if jump is not None and self._agrees(head, jump, now):
                # the first head, which nothing checked, was the odd one: two answers
                # since agree with each other, not with it
                self._top = top = jump
                self._top_agreed = True
            elif head > 0:
                self._jump = (head, now)
        if top is not None and not self._plausible(head, top, now):
            self._bad_input("explorer_head_jump", f"explorer head {head} while the "
                                                  f"highest was {top[0]}; retry next interval")
            return 0
        if top is not None and self._agrees(head, top, now):
            self._top_agreed = True
        if head > 0 and (self._top is None or head > self._top[0]):
            # the highest head and when it was first seen: a stuck index that catches up
            # is measured from when it got stuck (0 is a head before anything was indexed)
            self._top = (head, now)
        self.last_head = head
        done = 0
        for wallet in self.wallets:
            if self._stop.is_set():
                break
            if await self._poll_wallet(wallet, head):
                done += 1
        return done

    def _plausible(self, head: int, since: tuple[int, float], now: float) -> bool:
        """The chain can be at ``head`` now when it was at ``since`` (head, time)."""
        return plausible_head(head, since[0], now - since[1],
                              block_interval=self.block_interval / self.speed,
                              slack=self.slack)

    def _agrees(self, head: int, since: tuple[int, float], now: float) -> bool:
        """... and ``head`` is not lower than ``since`` by more than the slack."""
        return head >= since[0] - self.slack and self._plausible(head, since, now)

    def _bad_input(self, kind: str, reason: str) -> None:
        record_bad_input(self.history, self.counters, log, kind=kind, source=self.group,
                         reason=reason)

    async def _poll_wallet(self, wallet: str, head: int) -> bool:
        cur = self.store.cursor(wallet)
        if cur is None:
            first = self.start_block if self.start_block is not None else head
            self.store.set_cursors([wallet], first - 1, None, self.group, forward_only=False)
            cursor = first - 1
        else:
            cursor = cur.block
        top = self._top[0] if self._top is not None and self._top_agreed else None
        if top is not None and cursor > top + self.slack:
            # never reached: set from a head that never was. Judged against the highest
            # head, not this one: a head far below the cursor (0, a lagging index, a
            # garbage answer) is no reason to ask the whole history again
            self._bad_input("cursor_ahead", f"{wallet[:10]} cursor {cursor} is past the "
                                            f"explorer head {top}: rewound")
            cursor = max(top - self.overlap, 0)
            self.store.set_cursors([wallet], cursor, None, self.group, forward_only=False)
        if cursor >= head:
            return True
        if self.lowest_cursor is None or cursor < self.lowest_cursor:
            self.lowest_cursor = cursor
        upto = head
        try:
            logs = await self.client.get_logs(from_block=cursor + 1, to_block=head,
                                              topics={2: address_topic(wallet)})
        except PartialLogs as part:  # the pages it got are used, the rest asked next time
            self.counters["errors"] += 1
            self.counters["partial_polls"] += 1
            log.warning("poll of %s..%s stopped at a later page (%s); the rest from %d "
                        "next interval", wallet[:10], cursor + 1, part.cause.message,
                        part.complete_to + 1)
            logs, upto = part.logs, part.complete_to
        except MonitorError as exc:
            self.counters["errors"] += 1
            log.warning("poll of %s..%s failed (%s); cursor stays at %d, retry next interval",
                        wallet[:10], cursor + 1, exc.message, cursor)
            return False
        fills = [lg for lg in logs
                 if lg["topics"] and lg["topics"][0] in ORDER_FILLED_TOPICS
                 and lg["address"] in self.exchanges]
        self.counters["logs"] += len(logs)
        self.counters["fills"] += len(fills)
        if self._rewound(wallet, cursor):
            return False
        await self.pipeline.on_logs(fills, "poll")
        if self._rewound(wallet, cursor):
            return False
        safe = max(cursor, min(upto, head - self.overlap))
        self.store.set_cursors([wallet], safe, None, self.group)
        return upto >= head

    def _rewound(self, wallet: str, cursor: int) -> bool:
        """The wallet's cursor went below ``cursor`` since this poll read it: a reorg's
        re-check (of the WebSocket shard this poller stands in for) rewound it to fetch
        those blocks again. This poll's answer may be of the chain before: delivered, it
        brought back what the re-check retracted, and its cursor (forward only, so past
        the fork again) undid the rewind - the orphans above it were never judged."""
        now = self.store.cursor(wallet)
        if now is None or now.block >= cursor:
            return False
        self.counters["rewound_meanwhile"] += 1
        return True
