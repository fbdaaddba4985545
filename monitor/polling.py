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
monitor's launch point: the head at the process's start (the node's ``eth_blockNumber``,
or in polling-only mode the explorer's ``module=proxy&action=eth_blockNumber``), stored
for every wallet without a cursor before anything is delivered (see
:meth:`~monitor.wallet_monitor.WalletMonitor.record_launch`), so a process killed before
its first poll is resumed from there. When that head could not be had at start, the
first head a round accepts is stored the same way, before any wallet is polled.

Cursor: per wallet, in the store. After a successful query up to the explorer's head H,
the cursor becomes ``H - overlap_blocks``: the explorer indexes logs some seconds after it
reports a block, so the last ``overlap_blocks`` are queried again next time (the
persistent dedup drops repeats; no extra calls). H is ``module=proxy`` ``eth_blockNumber``,
a node's head; the logs answer from the index, behind it. So the cursor never passes the
index head either: the newest block the index holds, from its newest transaction to an
exchange (``txlist``, ``sort=desc``, one row: ``blockNumber + confirmations - 1``; one call
for every wallet, made only when ``H - overlap`` could pass the last index head known - any
wallet's rows show it too -, about every fourth round); when that call fails, the last lag
measured is assumed. An index further behind than the overlap (an indexing incident) had its trades
skipped for good; now its blocks are asked again until it has them (the query range grows
with the lag, the calls do not).

Reorgs (the pure baseline, ``group="polling"``: every delivery of its wallets came from
this explorer): each poll re-reads the blocks above the cursor; a trade delivered there
that the answer no longer has, in a block the explorer now shows with another hash (a
row of the answer, or the first OrderFilled log of that block: one call), is retracted
through :meth:`Pipeline.retract`, as on the WebSocket path, once two polls in a row show
that hash (the cursor stays below it meanwhile); a block the index has that holds no fill
at all any more counts as another hash. A block not indexed (yet) or shown with the trade's
own hash (a short answer) retracts nothing. The trades
judged are read from the store, so a reorg while the monitor was down is found by the
first polls after the restart. A WebSocket shard's fallback poller leaves this to the
shard's checks against its node.

A refused URL or chain id (NOTOK "You are using a deprecated V1 endpoint", "Missing or
unsupported chainid parameter": :class:`~monitor.explorer_client.ExplorerSettingRefused`):
no wallet is polled; an error naming the setting to change, a history row
``explorer_setting`` and one alert ``explorer_setting_refused`` say so at once, the
explorer is asked again after pauses from the polling interval doubling to a minute (one
call a pause), and ``explorer_setting_recovered`` says when a head is answered again.

A refused key (NOTOK "Invalid API Key", or an HTTP 401/403: a key revoked mid-run): no
wallet is polled; an error, a history row ``explorer_key`` and one alert
``explorer_key_refused`` say so at once (not the five-minute ``polling_failing``), the
explorer is asked again every interval (one call a round: nothing retried within it), and
``explorer_key_recovered`` says when it answers again - any answer that shows the key
accepted, a rate limit or a quota too; the no-answer alert (``polling_failing``) takes
over from there. Cursors stay. The key itself is
never in a log, an alert or an error (the explorer's text only).

Daily quota ("Max daily rate limit reached"): not retried (it comes back the next day):
polling pauses 10 minutes, doubling to an hour, one call a pause; an error, a history row
``explorer_quota`` and one alert say so, another when it works again. Cursors stay.

A failed call (rate limit after retries, HTML 502, timeout, NOTOK) is counted, logged and
retried next interval; the cursor does not move, so nothing is lost - unless it failed on
a later page: the pages before it are delivered and the cursor moves over the blocks they
hold whole (at most to ``H - overlap``), so a range of more pages than a poll gets through
still moves on. A refused key or a used-up quota on a later page: the same, then the round
halts and says so at once, as on a first page.
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
from collections.abc import Callable, Collection, Iterable
from typing import Any

from monitor.alerts import seconds_text
from monitor.clock import Clock, SystemClock
from monitor.config import DEFAULT_EXPLORER_OVERLAP_BLOCKS
from monitor.cores import plausible_head
from monitor.errors import MonitorError
from monitor.explorer_client import (
    ExplorerClient,
    ExplorerKeyRefused,
    ExplorerSettingRefused,
    PartialLogs,
    QuotaExhausted,
)
from monitor.history import History, NullHistory, record_bad_input
from monitor.pipeline import Pipeline
from monitor.store import Store
from polyvocab import ORDER_FILLED_TOPICS, V2_EXCHANGES, address_topic, trade_id
from polyvocab.policies import backoff_delay

__all__ = ["PollingMonitor", "RefusalEpisodes", "explorer_block_hashes"]

log = logging.getLogger("monitor.polling")

#: simulated seconds the first pause after a used-up daily quota lasts; each pause that
#: ends in the quota still used up doubles it, up to QUOTA_PAUSE_MAX_S
QUOTA_PAUSE_S = 600.0
QUOTA_PAUSE_MAX_S = 3600.0
#: blocks whose hash one wallet's poll asks the explorer for at most (a reorg check)
JUDGED_BLOCKS_PER_POLL = 8
#: wallets no longer on the list whose deliveries in this many blocks below the newest
#: delivery are re-checked after a restart (as ``wallet_monitor.DEPARTED_DEPTH``), and at
#: most how many of them a round asks (one call each)
DEPARTED_DEPTH = 128
DEPARTED_PER_ROUND = 16
#: simulated seconds of rounds without any wallet's logs before an alert says so
FAILING_ALERT_S = 300.0
#: errors that end a round for every wallet (raised past a wallet's own handling): a
#: used-up daily quota, a refused key, a URL or chain id refused
_HALTS = (QuotaExhausted, ExplorerSettingRefused)
#: simulated seconds the pause after a refused URL or chain id grows to at most (from the
#: polling interval, doubling): asked again at that pace until it is fixed
SETTING_PAUSE_MAX_S = 60.0
#: the view of a block the index has that holds no OrderFilled at all (see _judge)
_NO_FILL = "no fill"
#: simulated seconds the explorer's index may be behind the chain's head before an alert
INDEX_LAG_ALERT_S = 300.0


#: simulated seconds a refused key's or setting's episode is kept after its last refusal
#: seen (see :class:`RefusalEpisodes`): a refusal later than that is a new episode, said
#: again - at most one alert of each an hour on a feed that flaps for days
REFUSAL_EPISODE_KEEP_S = 3600.0


class RefusalEpisodes:
    """The explorer's refused-key and refused-setting episodes, owned by what outlives
    the pollers (a WebSocket shard, which builds a new fallback poller each time its
    feed falls back): one episode is one ``explorer_key_refused`` (or
    ``explorer_setting_refused``) alert until a poller sees it recovered, however many
    pollers meet it. A flapping feed sent one such alert at every fallback. Bounded by
    time: an episode whose last refusal was seen more than ``keep`` clock seconds ago is
    over (the next refusal is a new one, said again). No I/O: times are arguments."""

    def __init__(self) -> None:
        self.key: str | None = None  # the key's refusal text, while its episode lasts
        self.setting: ExplorerSettingRefused | None = None
        self._key_seen = 0.0
        self._setting_seen = 0.0

    def key_open(self, now: float, keep: float) -> str | None:
        """The open key episode's text (None: none, or over by time)."""
        if self.key is not None and now - self._key_seen > keep:
            self.key = None
        return self.key

    def setting_open(self, now: float, keep: float) -> ExplorerSettingRefused | None:
        if self.setting is not None and now - self._setting_seen > keep:
            self.setting = None
        return self.setting

    def key_refused(self, text: str, now: float, keep: float) -> bool:
        """A refusal of the key seen at ``now``; True: a new episode (to be said)."""
        new = self.key_open(now, keep) is None
        self.key, self._key_seen = (text if new else self.key), now
        return new

    def setting_refused(self, exc: ExplorerSettingRefused, now: float, keep: float) -> bool:
        new = self.setting_open(now, keep) is None
        self.setting, self._setting_seen = (exc if new else self.setting), now
        return new

    def key_back(self) -> None:
        self.key = None

    def setting_back(self) -> None:
        self.setting = None


#: blocks (the newest) whose hash :func:`explorer_block_hashes` asks at most: a restart's
#: wait for them is short, and no reorg reaches deeper than a few blocks
RESTART_HASH_BLOCKS = 16


async def explorer_block_hashes(client: ExplorerClient, numbers: Collection[int],
                                out: dict[int, str | None] | None = None
                                ) -> dict[int, str | None]:
    """The explorer's hash of each of the newest :data:`RESTART_HASH_BLOCKS` blocks of
    ``numbers`` (None: no view of it), newest first, for :meth:`Pipeline.recover` in
    polling-only mode, which has no node: the outbox a crashed process left then goes out
    less the trades of blocks replaced while it was down, as on the WebSocket path (sent
    unchecked, such a trade reached the bot, to be retracted by the first polls). A call
    that fails ends the asking: the blocks not asked are not judged (sent as before).

    ``out`` (optional): the dict the answers go into, each as it comes, and which is
    returned: a caller that stops waiting (a deadline) still has the blocks answered so
    far - they are judged, only the rest goes out unchecked."""
    if out is None:
        out = {}
    for n in sorted(set(numbers), reverse=True)[:RESTART_HASH_BLOCKS]:
        try:
            out[n] = await client.block_hash(n, ORDER_FILLED_TOPICS[::-1])
        except MonitorError as exc:
            log.warning("explorer hash of block %d unknown (%s): the outbox's older trades "
                        "go out unchecked", n, exc.message)
            break
    return out


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
        judge_reorgs: bool | None = None,
        episodes: RefusalEpisodes | None = None,
        due: Callable[[], bool] | None = None,
        on_read: Callable[[str, int, int], None] | None = None,
    ) -> None:
        """``episodes``: the refused key's and setting's episodes, shared with the pollers
        built before and after this one by the same owner (one alert an episode).
        ``due`` (optional): asked before each round of :meth:`run`; False skips the round
        (no call: an owner with nothing to fill, see ``WsShard._fill_due``).
        ``on_read`` (optional): called ``(wallet, cursor, safe)`` once a poll's logs of
        blocks ``cursor + 1..safe`` were delivered and the wallet's cursor moved over them
        (only blocks read whole: never past one a poll failed on, nor the index head; see
        ``WsShard._poller_read``)."""
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
        self._due = due
        self._on_read = on_read
        self.skipped_rounds = 0  # rounds ``due`` said were not due (no call made)
        #: the index head's distance below the proxy head at the last probe (None: never
        #: measured): the estimate while the probe fails
        self.index_lag: int | None = None
        self.last_index_head: int | None = None
        # the probe failed before any answered (no index head known, no lag): blocks up
        # to the highest a row showed indexed (``_rows_indexed``) count as read, no more
        self._probe_erred = False
        self._rows_indexed: int | None = None
        self._probe_at = 0  # which exchange's newest transaction tells the index head
        self._probes = sorted(self.exchanges, key=lambda a: (a not in V2_EXCHANGES, a))
        self._probe_failing = False
        # a used-up daily quota: no call before this clock time; the pauses so far
        self._quota_until: float | None = None
        self._quota_pauses = 0
        # the reorg check (retract what the explorer no longer has): on for the pure
        # polling baseline, whose deliveries all came from this explorer. A WebSocket
        # shard's fallback leaves it to the shard's own checks against its node: an
        # explorer behind that node still shows the block a reorg replaced
        self.judge_reorgs = group == "polling" if judge_reorgs is None else judge_reorgs
        #: wallet -> {(trade id, its block hash): the other hash the explorer showed}:
        #: a trade retracted only when two polls in a row show its block replaced
        self._suspects: dict[str, dict[tuple[str, str], str]] = {}
        #: wallets no longer on the list with recent deliveries (None: not looked yet)
        self._departed: list[str] | None = None
        self._departed_at = 0  # the next of them a round asks
        self._departed_from = 0  # the lowest block of their deliveries judged
        # rounds that got no wallet's logs: since when (clock), and whether it was said
        self._failing_since: float | None = None
        self._failing_alerted = False
        self._answered = False  # this round got some wallet's logs
        self._last_error: str | None = None
        self._started = False  # every wallet has a cursor (see _start_wallets)
        self._lag_alerted = False  # the index's lag was said (see _index_behind)
        self._probed: int | None = None  # the index head a call of this round answered
        # the explorer refuses the key: its text, from the first refusal until a round
        # gets through without one (see _key_refused); whether this round met one
        # (an episode a poller before this one met, not over: its recovery is said here)
        self.episodes = episodes if episodes is not None else RefusalEpisodes()
        self._episode_keep = REFUSAL_EPISODE_KEEP_S / speed
        now = self.clock.now()
        self.key_refused: str | None = self.episodes.key_open(now, self._episode_keep)
        self._refused_now = False
        # the explorer refuses a setting (the URL, the chain id): its error from the first
        # refusal until a head is answered; no call before this clock time; the pauses
        self.setting_refused: ExplorerSettingRefused | None = self.episodes.setting_open(
            now, self._episode_keep)
        self._setting_now = False
        self._setting_until: float | None = None
        self._setting_pauses = 0
        self._head_now = False  # this round's head was answered

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Poll every ``interval / speed`` seconds until :meth:`stop`."""
        period = self.interval / self.speed
        next_at = self.clock.now()
        while not self._stop.is_set():
            if self._due is None or self._due():
                await self.poll_once()
            else:
                self.skipped_rounds += 1
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
        self._answered = self._refused_now = self._head_now = self._setting_now = False
        accepted = self.client.key_accepted
        done = await self._round()
        if self.setting_refused is not None and not self._setting_now and self._head_now:
            self._setting_back()  # the URL and the chain answered: fixed, or it passed
        if self.key_refused is not None and not self._refused_now and (
                self._head_now or self.client.key_accepted > accepted):
            # an answer that shows the key accepted (a rate limit or a quota too: the
            # explorer knows the key) ends the episode; the no-answer alert takes over.
            # Only a head answered did: rate limits kept it "refused", and quiet, for good
            self._key_back()
        self._failure_streak(bool(self.wallets) and not done and not self._answered)
        return done

    def _failure_streak(self, failed: bool) -> None:
        """Rounds that got no wallet's logs at all (the head or every call failing, an
        invalid key, a head refused): said once the streak is ``FAILING_ALERT_S`` old
        (an error and an alert), and once it ends. It was only a warning a round in the
        log: a key revoked left the baseline polling nothing, silently, for good. A
        used-up quota has its own alert."""
        now = self.clock.now()
        if not failed:
            if self._failing_alerted:
                down = (now - (self._failing_since or now)) * self.speed
                log.warning("explorer polling works again after %.0f s", down)
                self._alert("polling_recovered", f"{self.group} explorer polling works "
                                                 f"again after {down:.0f} s")
            self._failing_since, self._failing_alerted = None, False
            return
        if self._quota_pauses or self.key_refused is not None or \
                self.setting_refused is not None or self._setting_until is not None:
            return  # said at once by their own alerts
        if self._failing_since is None:
            self._failing_since = now
        down = (now - self._failing_since) * self.speed
        if not self._failing_alerted and down >= FAILING_ALERT_S:
            self._failing_alerted = True
            text = (f"{self.group} explorer polling has got no answer for {down:.0f} s "
                    f"({self._last_error or 'no wallet answered'}): no trade is polled; "
                    "the cursors stay, so what it missed is asked once it works")
            log.error("%s", text)
            self.history.record("polling_failing", source=self.group, seconds=round(down),
                                reason=(self._last_error or "")[:200])
            self._alert("polling_failing", text)

    async def _round(self) -> int:
        if self._quota_until is not None and self.clock.now() < self._quota_until:
            # not a poll: a round without a call, and without an error, counted as one
            # made the pilot's status show the polling path healthy all the pause
            self.counters["quota_paused_polls"] += 1
            return 0
        if self._setting_until is not None and self.clock.now() < self._setting_until:
            self.counters["setting_paused_polls"] += 1  # (a refused URL or chain id)
            return 0
        self.polls += 1
        try:
            head = await self.client.block_number()
        except QuotaExhausted as exc:
            self._quota_used_up(exc)
            return 0
        except ExplorerKeyRefused as exc:
            self._key_refused(exc)
            return 0
        except ExplorerSettingRefused as exc:
            self._setting_refused(exc)
            return 0
        except MonitorError as exc:
            self.counters["errors"] += 1
            self._last_error = exc.message
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
        self._head_now = True
        if not self._started:
            self._start_wallets(head)
        done = 0
        try:
            if self._quota_pauses:
                self._quota_back()
            self._probed = None
            index = await self._index_head(head)
            if self.judge_reorgs:
                await self._judge_departed(head, index)
            for wallet in self.wallets:
                if self._stop.is_set():
                    break
                if await self._poll_wallet(wallet, head, index):
                    done += 1
        except QuotaExhausted as exc:  # the other wallets wait for the pause too
            self._quota_used_up(exc)
        except ExplorerKeyRefused as exc:  # ... and for the key
            self._key_refused(exc)
        except ExplorerSettingRefused as exc:  # ... and for the URL or the chain id
            self._setting_refused(exc)
        return done

    def _setting_refused(self, exc: ExplorerSettingRefused) -> None:
        """The explorer refuses a setting (a V1 URL, a chain id it does not serve),
        whatever is asked: said at once, once an episode - an error naming the setting
        to change, a history row ``explorer_setting``, an alert
        ``explorer_setting_refused`` (it was the generic ``polling_failing`` five
        minutes later) -, and asked again after a pause from the polling interval,
        doubling up to :data:`SETTING_PAUSE_MAX_S` (one call a pause: the operator may
        fix it, the text may pass), quietly; ``explorer_setting_recovered`` when a head
        is answered again. Cursors stay."""
        self._setting_now = True
        self.counters["errors"] += 1
        self.counters["setting_refused"] += 1
        self._last_error = exc.message
        # (backoff_delay: 2.0 ** 1024 was an OverflowError, a URL left refused for 17
        # hours crashed the poller at each refusal from then on)
        pause = backoff_delay(self._setting_pauses, initial=self.interval,
                              maximum=max(self.interval, SETTING_PAUSE_MAX_S))
        self._setting_until = self.clock.now() + pause / self.speed
        self._setting_pauses += 1
        new = self.episodes.setting_refused(exc, self.clock.now(), self._episode_keep)
        if self.setting_refused is not None or not new:
            self.setting_refused = self.setting_refused or exc
            log.info("explorer still refuses %s (%s); next try in %.0f s (simulated)",
                     exc.setting, exc.text, pause)
            return
        self.setting_refused = exc
        text = (f"explorer refuses the setting {exc.setting} ({exc.text}): {self.group} "
                f"polling gets no trade until {exc.setting} is {exc.remedy}; asked again "
                f"every {seconds_text(self.interval)}-"
                f"{seconds_text(max(self.interval, SETTING_PAUSE_MAX_S))} "
                "s, the cursors stay (what it misses is asked once it works)")
        log.error("%s", text)
        self.history.record("explorer_setting", source=self.group, state="refused",
                            setting=exc.setting, reason=exc.text[:200])
        self._alert("explorer_setting_refused", text)

    def _setting_back(self) -> None:
        exc = self.setting_refused
        assert exc is not None
        text = (f"explorer answers again ({exc.setting} accepted): {self.group} polling "
                "resumed from its cursors")
        log.warning("%s", text)
        self.history.record("explorer_setting", source=self.group, state="accepted",
                            setting=exc.setting)
        self._alert("explorer_setting_recovered", text)
        self.setting_refused, self._setting_until, self._setting_pauses = None, None, 0
        self.episodes.setting_back()

    def _key_refused(self, exc: ExplorerKeyRefused) -> None:
        """The explorer refused the key (revoked, wrong): nothing can be polled until it
        is fixed. Said at once, once an episode (an error, a history row
        ``explorer_key``, an alert ``explorer_key_refused``); the next rounds ask again
        at the polling interval (one refused call a round), quietly. Cursors stay."""
        self._refused_now = True
        self.counters["errors"] += 1
        self.counters["key_refused"] += 1
        self._last_error = exc.message
        new = self.episodes.key_refused(exc.text, self.clock.now(), self._episode_keep)
        if self.key_refused is not None or not new:
            self.key_refused = self.key_refused or exc.text
            log.info("explorer still refuses the API key (%s)", exc.text)
            return
        self.key_refused = exc.text
        text = (f"explorer refuses the API key ({exc.text}): {self.group} polling gets no "
                "trade until the key is fixed (EXPLORER_API_KEY_FILE); asked again every "
                f"{seconds_text(self.interval)} s, the cursors stay (what it misses is asked once "
                "the key works)")
        log.error("%s", text)
        self.history.record("explorer_key", source=self.group, state="refused",
                            reason=exc.text[:200])
        self._alert("explorer_key_refused", text)

    def _key_back(self) -> None:
        text = (f"explorer accepts the API key again: polling resumed from its cursors "
                f"({self.group})")
        log.warning("%s", text)
        self.history.record("explorer_key", source=self.group, state="accepted")
        self._alert("explorer_key_recovered", text)
        self.key_refused = None
        self.episodes.key_back()

    def _start_wallets(self, head: int) -> None:
        """Every wallet without a cursor starts here (``start_block``, else this first head
        accepted), all in one transaction, before any wallet's logs are asked: a process
        killed or stopped during its first round (one call per wallet) left the wallets not
        polled yet without a cursor, and the process after it started them at its own first
        head - every trade in between was lost. The monitor stores its launch point the
        same way at start (:meth:`~monitor.wallet_monitor.WalletMonitor.record_launch`),
        before this round: this covers the wallets it could not start (no head then)."""
        first = self.start_block if self.start_block is not None else head
        self.store.start_cursors(self.wallets, first - 1)
        self._started = True

    def _quota_used_up(self, exc: QuotaExhausted) -> None:
        """The explorer's daily quota is used up: no call before a long pause (10 min,
        doubling to an hour: the quota comes back at the next day, and a retry every few
        seconds only spent the day's first calls again). Said once a streak: an error in
        the log, a history row and an alert. Cursors stay: the blocks of the pause are
        asked once it works again."""
        self.counters["errors"] += 1
        self.counters["quota_exhausted"] += 1
        pause = min(max(backoff_delay(self._quota_pauses, initial=QUOTA_PAUSE_S,
                                      maximum=QUOTA_PAUSE_MAX_S),
                        exc.retry_after or 0.0), QUOTA_PAUSE_MAX_S)
        self._quota_until = self.clock.now() + pause / self.speed
        self._quota_pauses += 1
        if self._quota_pauses > 1:
            log.info("explorer daily quota still used up; next try in %.0f s (simulated)",
                     pause)
            return
        text = (f"explorer quota used up ({exc.message}): {self.group} polling "
                f"paused, one try every {QUOTA_PAUSE_S:.0f}-{QUOTA_PAUSE_MAX_S:.0f} s "
                "until it works again; nothing polled meanwhile (the cursors stay: the "
                "blocks of the pause are asked then)")
        log.error("%s", text)
        self.history.record("explorer_quota", source=self.group, state="exhausted",
                            reason=exc.message[:200])
        self._alert("explorer_quota", text)

    def _quota_back(self) -> None:
        log.warning("explorer daily quota back after %d pause(s): %s polling resumed",
                    self._quota_pauses, self.group)
        self.history.record("explorer_quota", source=self.group, state="back",
                            pauses=self._quota_pauses)
        self._alert("explorer_quota_back", f"explorer answers again: {self.group} "
                                           "polling resumed from its cursors")
        self._quota_pauses, self._quota_until = 0, None

    def _index_behind(self, lag: int) -> None:
        """An index more than ``INDEX_LAG_ALERT_S`` behind the chain's head (an indexing
        incident): every trade reaches the bot at least that late. Said once (an error,
        a history row, an alert), and once it is back under half of that."""
        behind = lag * self.block_interval
        if not self._lag_alerted and behind > INDEX_LAG_ALERT_S:
            self._lag_alerted = True
            text = (f"explorer index {lag} blocks (~{behind:.0f} s) behind the chain's "
                    f"head: {self.group} polling delivers trades that late (none is "
                    "skipped: the cursor waits for the index)")
            log.error("%s", text)
            self.history.record("explorer_index_lag", source=self.group, blocks=lag,
                                state="behind")
            self._alert("explorer_index_lag", text)
        elif self._lag_alerted and behind <= INDEX_LAG_ALERT_S / 2:
            self._lag_alerted = False
            log.warning("explorer index caught up (%d blocks behind)", lag)
            self.history.record("explorer_index_lag", source=self.group, blocks=lag,
                                state="caught_up")
            self._alert("explorer_index_caught_up", f"explorer index caught up: {lag} "
                                                    "blocks behind the chain's head")

    def _alert(self, kind: str, text: str) -> None:
        """Through the pipeline's alerter (the monitor's), in the background; flushed at
        the monitor's stop with the pipeline's own alerts."""
        self.pipeline._alert(kind, text)

    async def _index_head(self, head: int) -> int | None:
        """The newest block the explorer's index has (at most ``head``), or an estimate.

        ``head`` is the proxy's: a node's head, ahead of the index by the index lag. The
        cursor moved to ``head - overlap`` whatever the lag, so an index further behind
        than the overlap (an indexing incident) had its trades skipped for good. The
        index head is asked once a round (the newest transaction to an exchange: one
        call, whatever the wallet count); when that fails, the last lag measured is
        taken off ``head``; never measured: None (``head - overlap`` alone, as before).
        Not asked while the last index head known (from that call or from any wallet's
        rows) is less than half the overlap below ``head``: ``head - overlap`` is below
        what the index has then, so a busy wallet's rows or a probe every few rounds
        (every fourth at 15 s of 2-s blocks) do."""
        known = self.last_index_head
        if known is not None and head - known < max(self.overlap // 2, 1):
            # the index has ``known`` (it only moves on, but for a reorg's few blocks):
            # head - overlap is below it with half the overlap to spare, no call needed
            self.counters["index_head_known"] += 1
            return known
        got = await self._probe(head)
        if got is not None:
            return got
        if self.index_lag is None:
            return None
        return max(head - self.index_lag, 0)

    async def _probe(self, head: int) -> int | None:
        """Ask the index head (one call; at most once a round): None when it cannot say.
        :attr:`_probed` keeps this round's answer."""
        if self._probed is not None:
            return self._probed
        got: int | None = None
        if self._probes:
            address = self._probes[self._probe_at % len(self._probes)]
            try:
                got = await self.client.index_head(address)
            except _HALTS:
                raise
            except MonitorError as exc:
                self.counters["index_head_unknown"] += 1
                if not self._probe_failing:
                    log.warning("explorer index head unknown (%s): the last lag (%s) is "
                                "assumed", exc.message, self.index_lag)
                self._probe_failing = self._probe_erred = True
                got = None
            else:
                self._probe_failing = False
                if got is None:  # no transaction to that exchange: the next one next round
                    self.counters["index_head_unknown"] += 1
                    self._probe_at += 1
                    if self._probe_at >= len(self._probes) and self.index_lag is None:
                        log.warning("no exchange has a transaction on the explorer: its "
                                    "index head is not asked again (head - overlap)")
                        self._probes = []
                    elif self._probe_at >= len(self._probes):
                        self._probe_at = 0
            if got is not None:
                got = min(got, head)
                self.index_lag, self.last_index_head = head - got, got
                self._index_behind(head - got)
                self._probed = got
        return got

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

    async def _poll_wallet(self, wallet: str, head: int, index: int | None = None) -> bool:
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
            self.counters["partial_polls"] += 1
            if isinstance(part.cause, _HALTS):
                # a key refused (a quota used up) on a later page: the pages before it
                # are used, then the round halts and it is said now, as on a first
                # page. Taken for a failed page, it was said a round later, if at all
                log.warning("poll of %s..%s stopped at a later page (%s); the rest from "
                            "%d", wallet[:10], cursor + 1, part.cause.message,
                            part.complete_to + 1)
                await self._use_logs(wallet, cursor, head, index, part.logs,
                                     part.complete_to)
                raise part.cause from None
            self.counters["errors"] += 1
            log.warning("poll of %s..%s stopped at a later page (%s); the rest from %d "
                        "next interval", wallet[:10], cursor + 1, part.cause.message,
                        part.complete_to + 1)
            logs, upto = part.logs, part.complete_to
        except _HALTS:
            raise
        except MonitorError as exc:
            self.counters["errors"] += 1
            self._last_error = exc.message
            log.warning("poll of %s..%s failed (%s); cursor stays at %d, retry next interval",
                        wallet[:10], cursor + 1, exc.message, cursor)
            return False
        return await self._use_logs(wallet, cursor, head, index, logs, upto)

    async def _use_logs(self, wallet: str, cursor: int, head: int, index: int | None,
                        logs: list[dict[str, Any]], upto: int) -> bool:
        """Deliver a poll's ``logs`` (every log of ``cursor + 1..upto``) and move the
        cursor over what they hold whole (never past ``head - overlap``, the index head,
        or a trade judged once). True when ``upto`` reached ``head``."""
        self._answered = True
        fills = [lg for lg in logs
                 if lg["topics"] and lg["topics"][0] in ORDER_FILLED_TOPICS
                 and lg["address"] in self.exchanges]
        self.counters["logs"] += len(logs)
        self.counters["fills"] += len(fills)
        if self._rewound(wallet, cursor):
            return False
        # a fill whose trade id stands for another wallet in another block (a reorg gave
        # that wallet's log index to this fill) retracts that trade, then is delivered:
        # Pipeline._offer's rule, on every path
        await self.pipeline.on_logs(fills, "poll")
        if self._rewound(wallet, cursor):
            return False
        # never past what the index can have answered: blocks above its head come later.
        # A row of block n shows the index has n (a probe that said less is wrong)
        if logs:
            proven = min(head, max(int(lg["blockNumber"], 16) for lg in logs))
            if index is not None:
                index = max(index, proven)
            if self.last_index_head is not None and proven > self.last_index_head:
                self.last_index_head = proven  # the next round may need no probe
            if self._rows_indexed is None or proven > self._rows_indexed:
                self._rows_indexed = proven
        safe = min(upto, head - self.overlap, head if index is None else index)
        if self.judge_reorgs:
            indexed = min(upto, head if index is None else index)
            held = await self._judge(wallet, cursor + 1, indexed, logs, fills,
                                     indexed_known=index is not None)
            if held is not None:  # a trade seen once in a replaced block: judged again
                safe = min(safe, held - 1)
            if self._rewound(wallet, cursor):
                return False
        safe = max(cursor, safe)
        self.store.set_cursors([wallet], safe, None, self.group)
        # read whole: never past the last index head known (a probe's answer, a row),
        # not the estimate a failed probe leaves (the head less the last lag measured):
        # an index further behind answered nothing of the blocks between, and counted
        # as read, the zero mode's sweep skipped them (a feed's gap's trade lost)
        known = self._indexed_known(cursor)
        read = safe if known is None else min(safe, known)
        if self._on_read is not None and read > cursor:
            self._on_read(wallet, cursor, read)
        return upto >= head

    def _indexed_known(self, cursor: int) -> int | None:
        """The highest block an answer showed the index holds, for ``on_read``: the last
        index head known; while none is and the probe has failed (it never answered this
        poller, so no lag was measured either), the highest block of a row this poller got
        (``cursor``: none). Before, nothing known counted every block up to ``head -
        overlap`` as read: an index far behind (an indexing incident, its probe failing
        too) answered nothing of the blocks above its head, and the zero mode's sweep
        skipped them once the quota was back (a feed's gap's trade lost). A probe that
        found no transaction at all (an explorer that has none to the exchanges) leaves
        ``head - overlap`` as the poller's own limit, as ever (None: no other bound)."""
        if self.last_index_head is not None:
            return self.last_index_head
        if self._probe_erred:
            return cursor if self._rows_indexed is None else max(cursor, self._rows_indexed)
        return None

    async def _judge_departed(self, head: int, index: int | None) -> None:
        """Wallets removed from the list (between runs): their last deliveries, which the
        bot acted on, are re-read like a polled wallet's overlap and judged the same way
        (:meth:`_judge`) until the index is ``overlap`` blocks past the newest of them. A
        reorg of their block left them standing for good (no poll of theirs ran again).
        Nothing of theirs is delivered (the pipeline has them off its list); their cursor
        is left where it was."""
        if self._departed is None:
            recent, self._departed_from = self.store.recent_wallets(DEPARTED_DEPTH)
            self._departed = sorted(recent - set(self.pipeline.wallets) - set(self.wallets))
            if self._departed:
                log.info("%d wallet(s) no longer watched have deliveries in the last %d "
                         "blocks: re-read until the index is past them", len(self._departed),
                         DEPARTED_DEPTH)
        if not self._departed:
            return
        top = head if index is None else index
        standing = self.store.standing_in_range(self._departed, self._departed_from, 1 << 62)
        if not standing or top - max(n for _t, n, _h in standing) > self.overlap:
            self._departed = []  # nothing left to judge, or the index well past it
            return
        lows: dict[str, int] = {}
        for wallet in self._departed:
            mine = self.store.standing_in_range([wallet], self._departed_from, 1 << 62)
            if mine:
                lows[wallet] = min(n for _t, n, _h in mine)
        turn = sorted(lows)
        if len(turn) > DEPARTED_PER_ROUND:
            at = self._departed_at % len(turn)
            turn = (turn[at:] + turn[:at])[:DEPARTED_PER_ROUND]
            self._departed_at += DEPARTED_PER_ROUND
        for wallet in turn:
            low = lows[wallet]
            if low > top:
                continue
            try:
                logs = await self.client.get_logs(from_block=low, to_block=top,
                                                  topics={2: address_topic(wallet)})
            except _HALTS:
                raise
            except PartialLogs as part:
                if isinstance(part.cause, _HALTS):  # the round halts, said at once
                    raise part.cause from None
                self.counters["reorg_check_failed"] += 1  # judged whole next round
                log.warning("re-read of %s (no longer watched) failed (%s); next round",
                            wallet[:10], part.message)
                continue
            except MonitorError as exc:
                self.counters["reorg_check_failed"] += 1
                log.warning("re-read of %s (no longer watched) failed (%s); next round",
                            wallet[:10], exc.message)
                continue
            fills = [lg for lg in logs
                     if lg["topics"] and lg["topics"][0] in ORDER_FILLED_TOPICS
                     and lg["address"] in self.exchanges]
            await self._judge(wallet, low, top, logs, fills, indexed_known=index is not None)

    async def _judge(self, wallet: str, first: int, last: int,
                     logs: list[dict[str, Any]], fills: list[dict[str, Any]], *,
                     indexed_known: bool = False) -> int | None:
        """Retract the trades of ``wallet`` delivered in blocks ``first..last`` (the
        blocks this answer holds whole, indexed) that the answer no longer has, when the
        explorer shows their block with another hash: reorged away. Each poll re-reads
        the overlap, so this is where the baseline sees a reorg (it retracted nothing:
        the bot kept copies of trades the chain dropped). The same retraction as the
        WebSocket path's (:meth:`Pipeline.retract`), on the same evidence: a block the
        explorer does not show (not indexed, no fill in it) or shows with the trade's own
        hash (a short or partial answer) retracts nothing, and the other hash must be
        seen by two polls in a row (an explorer replica behind another). A block the index
        has (``indexed_known``: ``last`` is at most the index head measured) that holds
        no fill at all is another block than the one the trade was delivered from (a
        block's content is fixed by its hash): evidence as good as another hash (a reorg
        that left the height without a fill - its transactions moved or dropped - left
        the trade standing for good). Returns the lowest block of a trade seen once (the
        cursor stays below it), else None."""
        suspects = self._suspects.pop(wallet, {})
        if last < first:
            return None
        standing = self.store.standing_in_range([wallet], first, last)
        if not standing:
            return None
        ids: set[str] = set()
        hashes: dict[int, str] = {}  # this answer's rows (any kind) show these blocks
        for lg in logs:
            number = int(lg["blockNumber"], 16)
            if len(lg["blockHash"]) == 66:
                hashes.setdefault(number, lg["blockHash"])
        for lg in fills:
            ids.add(trade_id(lg["transactionHash"], int(lg["logIndex"], 16)))
        gone = [(tid, n, bh.lower()) for tid, n, bh in standing if tid not in ids]
        if not gone:
            return None
        blocks = sorted({n for _t, n, _h in gone})[:JUDGED_BLOCKS_PER_POLL]
        for n in blocks:
            if n in hashes:
                continue
            try:
                got, later = await self.client.block_view(  # V2 first
                    n, ORDER_FILLED_TOPICS[::-1], max(last, self.last_head or last))
            except _HALTS:
                raise
            except MonitorError as exc:
                self.counters["reorg_check_failed"] += 1
                log.warning("hash of block %d unknown (%s): its trades judged next poll",
                            n, exc.message)
                continue
            if got is not None:
                hashes[n] = got
            elif later and indexed_known and self.last_head is not None:
                # the logs index answers (a fill of a later block), and block n has no
                # fill: checked on the index head asked now, as one rolled back by a
                # reorg (it has the new blocks some seconds later) holds nothing at n
                fresh = await self._probe(self.last_head)
                if fresh is not None and n <= fresh:
                    hashes[n] = _NO_FILL
        kept: dict[tuple[str, str], str] = {}
        held: int | None = None
        for tid, n, bh in gone:
            now = hashes.get(n)
            if now is None:  # no view of the block: nothing to judge by
                self.counters["orphans_unjudged"] += 1
                continue
            if now == bh:  # the block stands: the answer left the trade out
                self.counters["absent_from_standing_block"] += 1
                continue
            if suspects.get((tid, bh)) != now:
                kept[(tid, bh)] = now
                held = n if held is None else min(held, n)
                continue
            self.counters["orphans_retracted"] += 1
            log.warning("trade %s in block %d (%s...) is no longer on the explorer, whose "
                        "block %d is %s: retracting", tid[:18], n, bh[:10], n,
                        "without a fill" if now == _NO_FILL else f"{now[:10]}...")
            await self.pipeline.retract(tid, bh)
        if kept:
            self._suspects[wallet] = kept
        return held

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
