"""What a run owed the wallets since removed from the list, delivered once.

A wallet taken off the list between two runs was watched by the run before up to its
stop, and that run had not delivered every trade the wallet made while it was watched:
a kill loses what is in flight, a polled wallet's next poll had not come, a fault held
the feed. Its stored cursor says how far it was read. The new run no longer watches the
wallet, so without this those trades never reached the bot (a missed trade of a wallet
followed at the time). :class:`OwedDrain` reads them - from the stored cursor (the
sweep window below it in the zero mode, :func:`owed_from`) up to a top - delivers them
through the pipeline (dedup: what the run before delivered is not sent again), moves
the cursor as each range is delivered (a restart mid-way resumes there), and then
forgets the wallet (:meth:`monitor.store.Store.forget_wallets`): added again later, it
starts at that start's launch point.

The top is the head at this start (one the node has a block of), but never more than
``OWED_SLACK_S`` (an hour, :mod:`monitor.wallet_monitor`) past the highest block the run
before had read: the monitor cannot tell when the run before stopped (a kill writes
nothing), and a run stuck in a fault before it stopped still owed that hour's trades;
those mined later, while no monitor ran, were never the bot's. The top is stored first
(the cursor group :func:`owed_group`), so a drain cut short resumes up to the same one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from monitor.clock import Clock
from monitor.cores import backfill_ranges
from monitor.errors import MonitorError
from monitor.history import History
from monitor.redact import redact

__all__ = ["OWED_GROUP", "RETRY_MAX_FACTOR", "SPREAD_CHUNKS", "NotIndexedYet", "OwedDrain",
           "owed_from", "owed_group", "owed_top"]

log = logging.getLogger("monitor.departed")

#: wallets whose first blocks owed lie within this many chunks share a group (one call
#: reads them all; each wallet's logs below its own first block are dropped)
SPREAD_CHUNKS = 16
#: the longest wait between two asks of a failing range, in ``retry_s``, unless given
RETRY_MAX_FACTOR = 64


#: the cursor group of a wallet whose owed trades are being drained, with the drain's
#: top: ``owed:<top>`` (the top kept on disk: a drain that does not finish in one run is
#: resumed up to it, never up to a later start's head)
OWED_GROUP = "owed:"


def owed_group(top: int) -> str:
    """The cursor group that marks a wallet drained up to ``top``."""
    return f"{OWED_GROUP}{top}"


def owed_top(group: str) -> int | None:
    """The drain's top a cursor group says (:func:`owed_group`), or None (not a mark, or
    one whose top is no block number: ASCII digits only - ``"²".isdigit()`` is True and
    ``int("²")`` a ValueError that crashed the start)."""
    if not group.startswith(OWED_GROUP):
        return None
    digits = group[len(OWED_GROUP):]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 19 \
        else None


def _said(n: int) -> bool:
    """The 1st, 2nd, 4th, 8th ... of a kind: logged and recorded (a bounded number)."""
    return n & (n - 1) == 0

#: fetch(wallets, first, last): every log of ``wallets`` in blocks ``first..last``
Fetch = Callable[[Sequence[str], int, int], Awaitable[list[dict[str, Any]]]]
#: deliver(logs, wallets): through the pipeline, the wallets taken though off the list
Deliver = Callable[[list[dict[str, Any]], frozenset[str]], Awaitable[Any]]


class NotIndexedYet(MonitorError):
    """The source has not got the range yet (an explorer index behind the head at start):
    asked again after a wait, not counted as a failure."""


def owed_from(cursor: int, *, zero_mode_window: int = 0, floor: int | None = None,
              retention: int = 0, launch: int | None = None) -> int:
    """The first block of a departed wallet whose trades are read again: the one after its
    stored ``cursor``. In the zero mode (``zero_mode_window`` > 0: the heads moved the
    cursor over blocks no ``eth_getLogs`` had fetched yet) from that many blocks below
    it, or from the stored sweep ``floor`` when lower, as a kept wallet's restart window
    (never below the cursor less ``retention``: the ids the run before may have pruned,
    read again, would be sent twice). Never at or below the wallet's ``launch`` point."""
    first = cursor
    if zero_mode_window > 0:
        first = cursor - zero_mode_window
        if floor is not None and floor < first:
            first = floor if not retention else min(first, max(floor, cursor - retention - 1))
    return max(0, first, launch if launch is not None else 0) + 1


class OwedDrain:
    """Deliver the trades ``owed`` (wallet -> first block to read) up to ``top``.

    ``fetch`` reads a range of a group of wallets (at most ``group_size`` a call, the
    ranges ``chunk`` blocks long); ``deliver`` hands the logs to the pipeline;
    ``advance(wallets, block)`` stores their cursor once a range is delivered, and
    ``forget(wallets)`` drops them when they are done. A failed fetch is counted and
    retried after ``retry_s`` (real) seconds, doubled at each failure of the same range
    up to ``retry_max_s`` (a node that pruned the history of a cursor months behind fails
    at every call, a spent quota for days: asked every ``retry_s`` for ever, with a
    warning and a history row each time); the 1st, 2nd, 4th, 8th ... failure of a range
    is logged and recorded. A range the source has not indexed yet
    (:class:`NotIndexedYet`) is asked again every ``retry_s`` (said as sparingly). Runs
    under the monitor's supervisor: an error it does not expect crashes it, and the
    restart resumes from the stored cursors."""

    def __init__(self, owed: Mapping[str, int], top: int, *, fetch: Fetch, deliver: Deliver,
                 advance: Callable[[list[str], int], None],
                 forget: Callable[[list[str]], None], chunk: int, group_size: int,
                 retry_s: float, clock: Clock, history: History,
                 retry_max_s: float | None = None,
                 tops: Mapping[str, int] | None = None) -> None:
        self.owed = dict(owed)
        self.top = top
        self.tops = dict(tops or {})  # wallet -> its own top (a drain resumed), if not top
        self._fetch, self._deliver = fetch, deliver
        self._advance, self._forget = advance, forget
        self.chunk, self.group_size = max(1, chunk), max(1, group_size)
        self.retry_s = retry_s
        self.retry_max_s = max(retry_s, retry_max_s if retry_max_s is not None
                               else RETRY_MAX_FACTOR * retry_s)
        self.clock, self.history = clock, history
        self.failures = 0
        self.waits = 0  # ranges asked again because the source had not indexed them
        self.delivered_logs = 0
        self.refused = 0  # logs of an answer that were no owed fill of the range asked
        #: the highest block the source said it has indexed (its ``fetch`` keeps it: a
        #: range at or below it is not asked about again)
        self.indexed: int | None = None

    def groups(self) -> list[tuple[int, list[str]]]:
        """The wallets still owed, at most ``group_size`` a group, each group with the
        lowest first block of its wallets. Wallets in order of their first block share a
        group while theirs is at most ``SPREAD_CHUNKS`` chunks above the group's: one
        call reads them all (the logs of a wallet below its own first block are dropped).
        One group per distinct first block made a call per wallet and chunk when each
        has its own cursor (polled wallets: 100,000 of them, 100,000 calls a chunk)."""
        return [(first, wallets) for first, _top, wallets in self._groups()]

    def _groups(self) -> list[tuple[int, int, list[str]]]:
        """:meth:`groups` with each group's top (its wallets share one)."""
        spread = self.chunk * SPREAD_CHUNKS
        out: list[tuple[int, int, list[str]]] = []
        for wallet, first in sorted(self.owed.items(),
                                    key=lambda kv: (self.top_of(kv[0]), kv[1], kv[0])):
            top = self.top_of(wallet)
            if out and out[-1][1] == top and len(out[-1][2]) < self.group_size \
                    and first - out[-1][0] <= spread:
                out[-1][2].append(wallet)
            else:
                out.append((first, top, [wallet]))
        return out

    def top_of(self, wallet: str) -> int:
        """The last block owed to ``wallet``."""
        return self.tops.get(wallet, self.top)

    def _owed_logs(self, logs: list[dict[str, Any]], a: int, b: int,
                   wallets: Sequence[str]) -> list[dict[str, Any]]:
        """The logs of ``logs`` that are owed: a fill of one of ``wallets`` (its maker) in a
        block of ``a..b`` at or above the wallet's own first block, never one marked
        ``removed`` (eth_getLogs never sends one; taken as a retraction, it withdrew a
        trade the bot acted on). A node that ignores the range or the filter sent trades
        mined after this start (a wallet not followed then) or below the range (read by
        the run before): those are dropped, counted, and logged. A wallet's logs below
        its own first block in the range (its group reads from a lower one) are dropped
        too: the run before read them."""
        owed = {w.lower(): self.owed[w] for w in wallets}
        out: list[dict[str, Any]] = []
        bad = 0
        for lg in logs:
            first = owed.get(_maker(lg) or "")
            n = _block_of(lg)
            if first is None or n is None or not a <= n <= b \
                    or lg.get("removed") is True:
                bad += 1
            elif n >= first:
                out.append(lg)
        if bad:
            self.refused += bad
            log.warning("%d log(s) of the answer for blocks %d..%d are no owed fill of those "
                        "blocks (another wallet's, another block's, or removed): dropped",
                        bad, a, b)
        return out

    async def run(self) -> None:
        if not self.owed:
            return
        log.info("%d wallet(s) no longer watched: the trades the run before owed them are "
                 "read up to block %d, then they are forgotten", len(self.owed), self.top)
        self.history.record("owed_drain", wallets=len(self.owed), top=self.top)
        for first, top, wallets in self._groups():
            await self._drain(first, wallets, top)
        self.history.record("owed_drained", logs=self.delivered_logs, failures=self.failures)
        log.info("the trades owed to wallets no longer watched are delivered (%d log(s) read)",
                 self.delivered_logs)

    async def _drain(self, first: int, wallets: list[str], top: int) -> None:
        for a, b in backfill_ranges(first - 1, top, self.chunk):
            failed = waited = 0
            delay = self.retry_s
            while True:
                try:
                    logs = await self._fetch(wallets, a, b)
                    break
                except NotIndexedYet as exc:
                    self.waits += 1
                    waited += 1
                    wait = self.retry_s
                    if _said(waited):
                        log.info("owed trades of blocks %d..%d: %s; asked again in %.1fs "
                                 "(%d time(s))", a, b, exc.message, wait, waited)
                except MonitorError as exc:
                    self.failures += 1
                    failed += 1
                    wait, delay = delay, min(delay * 2, self.retry_max_s)
                    if _said(failed):
                        reason = redact(exc.message)[:200]
                        log.warning("reading the trades owed to %d wallet(s) no longer "
                                    "watched, blocks %d..%d, failed (%s; %d time(s)); again "
                                    "in %.1fs", len(wallets), a, b, reason, failed, wait)
                        self.history.record("owed_drain_failed", first=a, last=b,
                                            reason=reason, failures=failed)
                await asyncio.sleep(wait)
            logs = self._owed_logs(logs, a, b, wallets)
            self.delivered_logs += len(logs)
            await self._deliver(logs, frozenset(wallets))
            # (a wallet whose first block is above b: not read yet, nothing moves)
            read = [w for w in wallets if self.owed[w] <= b]
            if read:
                self._advance(read, b)
            for w in read:
                self.owed[w] = b + 1
        self._forget(wallets)
        for w in wallets:
            self.owed.pop(w, None)


def _maker(entry: Any) -> str | None:
    """The maker of a fill log (its third topic) as a lowercase address, or None."""
    topics = entry.get("topics") if isinstance(entry, dict) else None
    if not isinstance(topics, list) or len(topics) < 3 or not isinstance(topics[2], str) \
            or len(topics[2]) != 66:
        return None
    return "0x" + topics[2][-40:].lower()


def _block_of(entry: Any) -> int | None:
    """A log's block number, or None if it has none that parses (a hex quantity)."""
    n = entry.get("blockNumber") if isinstance(entry, dict) else None
    if not isinstance(n, str) or not n.startswith("0x") or not 2 < len(n) <= 18:
        return None
    try:
        return int(n, 16)
    except ValueError:
        return None
