"""The pure-polling baseline as a competent Etherscan-V2 poller: an index far behind the
proxy's head, a reorg seen on a re-read of the overlap, a used-up daily quota, a restart.
A scripted explorer on loopback (real aiohttp client and server, real SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from monitor_helpers import OTHER, WALLET, order_filled, word

from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerClient
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink, SinkEvent
from monitor.store import Store
from polyvocab import CTF_EXCHANGE_V2

DAILY = "Max daily rate limit reached"
QUOTA_PAUSE_S = 600.0  # monitor.polling.QUOTA_PAUSE_S (simulated seconds)


class IndexExplorer:
    """An explorer whose proxy head (``head``) is ahead of its index (``indexed``): the
    logs and account actions answer from the indexed blocks only, as Etherscan's. Logs
    carry their block's hash (``hashes``, default ``0x<word(n)>``)."""

    def __init__(self) -> None:
        self.head = 100
        self.indexed = 100
        self.logs: list[dict[str, Any]] = []
        self.quota_used_up = False
        self.refuse: str | None = None  # a NOTOK text for every call (an invalid key)
        self.retry_after: int | None = None  # HTTP 429 with this Retry-After to every call
        self.drop: set[str] = set()  # transaction hashes a short answer leaves out
        self.claimed: int | None = None  # the index head txlist says, when not ``indexed``
        self.queries: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.queries.append(q)
        if self.retry_after is not None:  # a CDN in front: 429, come back later
            return web.Response(status=429, text="Too Many Requests",
                                headers={"Retry-After": str(self.retry_after)})
        if self.quota_used_up or self.refuse:
            return web.json_response({"status": "0", "message": "NOTOK",
                                      "result": self.refuse or DAILY})
        if q["module"] == "proxy":
            return web.json_response({"jsonrpc": "2.0", "id": 1, "result": hex(self.head)})
        if q["module"] == "account":  # txlist sort=desc offset=1: the newest indexed
            assert q["action"] == "txlist" and q["sort"] == "desc"
            said = self.indexed if self.claimed is None else self.claimed
            return web.json_response({"status": "1", "message": "OK", "result": [{
                "blockNumber": str(said - 3), "confirmations": "4",
                "hash": "0x" + word(1), "to": q["address"]}]})
        frm, to = int(q["fromBlock"]), min(int(q["toBlock"]), self.indexed)
        rows = [lg for lg in self.logs if frm <= int(lg["blockNumber"], 16) <= to
                and ("topic2" not in q or lg["topics"][2] == q["topic2"])
                and ("topic0" not in q or lg["topics"][0] == q["topic0"])
                and lg["transactionHash"] not in self.drop]
        rows = rows[:int(q.get("offset", "1000"))]
        if not rows:
            return web.json_response({"status": "0", "message": "No records found",
                                      "result": []})
        return web.json_response({"status": "1", "message": "OK", "result": [
            dict(r, timeStamp=r["blockTimestamp"]) for r in rows]})

    def replace_block(self, number: int, new_hash: str, *, keep: set[str]) -> None:
        """A reorg: block ``number`` gets ``new_hash``; of its logs only the transactions
        ``keep`` stay (in the new block)."""
        self.logs = [dict(lg, blockHash=new_hash) if int(lg["blockNumber"], 16) == number
                     else lg for lg in self.logs
                     if int(lg["blockNumber"], 16) != number or lg["transactionHash"] in keep]


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, kind: str, text: str) -> bool:
        self.sent.append((kind, text))
        return True


Steps = Callable[[IndexExplorer, PollingMonitor, Store], Awaitable[None]]


def run(tmp_path: Path, steps: Steps, *, clock: ManualClock, overlap: int = 16,
        fake: IndexExplorer | None = None, alerts: Alerts | None = None,
        wallets: tuple[str, ...] = (WALLET,)) -> MemorySink:
    fake = fake or IndexExplorer()
    sink = MemorySink()

    async def go() -> None:
        app = web.Application()
        app.router.add_get("/v2/api", fake.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v2/api"
        store = Store(tmp_path / "s.db")
        try:
            async with aiohttp.ClientSession() as session:
                # the client's own retry waits (rate limits) scaled down: no test waits
                client = ExplorerClient(url, session, rate_per_s=1000, speed=1000)
                pipe = Pipeline(store, sink, wallets=wallets, clock=clock)
                pipe.alerts = alerts
                poller = PollingMonitor(client, pipe, store, wallets=wallets, interval=15,
                                        overlap_blocks=overlap, start_block=100,
                                        clock=clock, block_interval=2.0)
                await steps(fake, poller, store)
                await pipe.flush_alerts(5.0)
        finally:
            store.close()
            await runner.cleanup()
    asyncio.run(go())
    return sink


@contextlib.asynccontextmanager
async def served_explorer(fake: IndexExplorer) -> AsyncIterator[str]:
    """``fake`` on a loopback port: its ``/v2/api`` URL while the block runs."""
    app = web.Application()
    app.router.add_get("/v2/api", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v2/api"
    finally:
        await runner.cleanup()


class _BotDown(MemorySink):
    async def emit(self, event: SinkEvent) -> None:
        raise OSError("the bot is down")


def outbox_explorer(fake: IndexExplorer) -> IndexExplorer:
    """``fake`` at head 110 with one trade of WALLET in block 105 (tx 1), one in 106 (tx 2)."""
    fake.head = fake.indexed = 110
    fake.logs += [order_filled(block=105, tx=1), order_filled(block=106, tx=2)]
    return fake


async def crash_leaving_an_outbox(db: Path, fake: IndexExplorer, replaced: int) -> None:
    """A polling process found ``fake``'s trades and crashed before the bot took them (all in
    the outbox of ``db``); then block ``replaced`` was reorged while it was down: another
    maker's fill (tx 3) in a block of another hash."""
    store = Store(db)
    await Pipeline(store, _BotDown(), wallets=[WALLET]).on_logs(
        [dict(lg) for lg in fake.logs], "poll")
    store.close()  # the crash: the trades still in the outbox
    fake.replace_block(replaced, "0x" + "ab" * 32, keep=set())
    fake.logs.append(order_filled(block=replaced, tx=3, wallet=OTHER,
                                  block_hash="0x" + "ab" * 32))


def trades(sink: MemorySink) -> list[int]:
    return sorted(e.trade.block_number for e in sink.events
                  if e.kind == "trade" and e.trade is not None)


def retracted(sink: MemorySink) -> list[str]:
    return [e.trade_id for e in sink.events if e.kind == "retraction"]


def test_an_index_further_behind_than_the_overlap_loses_no_trade(tmp_path: Path) -> None:
    """The explorer's index 100 blocks (200 s) behind the proxy's eth_blockNumber, an
    indexing incident; the overlap is 16 blocks. The cursor moved to head - overlap
    whatever the index had: every trade of the blocks between the index head and that
    cursor was skipped for good. The cursor now never passes the index head (the newest
    transaction it holds, one txlist call a round), and the re-read stays one call."""
    clock = ManualClock()
    first, last, lag = 100, 260, 100

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=n, tx=n) for n in range(first, last + 1)]
        for head in range(100, last + lag + 40, 8):  # a poll each 16 s of 2-s blocks
            clock.advance(16)
            fake.head, fake.indexed = head, max(head - lag, 0)
            await poller.poll_once()
            if store.cursor(WALLET).block > max(fake.indexed, first - 1):  # moved past it
                past.append(store.cursor(WALLET).block - fake.indexed)
        logs_calls.append(sum(q.get("module") == "logs" for q in fake.queries))
        logs_calls.append(poller.polls)
    past: list[int] = []
    logs_calls: list[int] = []
    sink = run(tmp_path, steps, clock=clock)
    assert trades(sink) == list(range(first, last + 1)), (
        f"{last - first + 1 - len(trades(sink))} trades skipped")
    assert past == []  # the cursor never ahead of the index
    assert logs_calls[0] <= logs_calls[1]  # one getLogs a round for the wallet


def test_an_index_head_said_too_low_does_not_hold_the_cursor_below_the_rows_it_answers(
        tmp_path: Path) -> None:
    """txlist's newest row says the index is at block 10 (a stale cache in front of it),
    while getLogs answers rows up to the head: a row of block n shows the index has n, so
    the cursor follows the rows (else it stayed at the start and every poll asked a range
    growing for good)."""
    clock = ManualClock()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.claimed = 10
        fake.logs += [order_filled(block=n, tx=n) for n in range(100, 390)]
        for head in range(108, 400, 8):
            clock.advance(16)
            fake.head = fake.indexed = head
            await poller.poll_once()
        cursors.append(store.cursor(WALLET).block)
    cursors: list[int] = []
    sink = run(tmp_path, steps, clock=clock)
    assert trades(sink) == list(range(100, 390))
    assert cursors == [396 - 16]  # the overlap below the last head (before: 99)


def test_a_trade_reorged_away_is_retracted_once_two_polls_show_its_block_replaced(
        tmp_path: Path) -> None:
    """A trade of block 105 delivered; a reorg drops its transaction, and the new block
    105 (another hash) holds another maker's fill. Each poll re-reads the overlap, which
    no longer has the trade: the baseline never retracted it (a phantom the bot kept).
    Now the second poll that shows block 105 with the other hash retracts it, through
    the same Pipeline.retract as the WebSocket path."""
    clock = ManualClock()
    new_hash = "0x" + "ab" * 32

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1),
                      order_filled(block=105, tx=2, wallet=OTHER)]
        fake.head = fake.indexed = 106
        await poller.poll_once()
        fake.replace_block(105, new_hash, keep={"0x" + word(2)})
        for head in (108, 110, 112):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
            counts.append(poller.counters["orphans_retracted"])
    counts: list[int] = []
    sink = run(tmp_path, steps, clock=clock)
    assert trades(sink) == [105]
    assert retracted(sink) == [f"0x{word(1)}:0"]  # before: []
    assert counts == [0, 1, 1]  # the first sight of the other hash is not enough


def test_a_trade_whose_block_holds_no_fill_after_a_reorg_is_retracted(
        tmp_path: Path) -> None:
    """The reorg left height 105 without any fill (its transactions moved on or were
    dropped): no log shows the new block's hash. The index has block 105, and the
    block the trade came from held a fill: this one is another block. It was left
    standing (a phantom in 10 of 855 trades of a polling run with a 24-block reorg)."""
    clock = ManualClock()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1)]
        fake.head = fake.indexed = 106
        await poller.poll_once()
        fake.replace_block(105, "0x" + "ab" * 32, keep=set())
        fake.logs.append(order_filled(block=107, tx=2, wallet=OTHER))  # the chain goes on
        for head in (108, 110, 112):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
        if logs_down:  # a logs index answering nothing at all is no view of block 105
            fake.logs = []
            for head in (114, 116, 118):
                clock.advance(4)
                fake.head = fake.indexed = head
                await poller.poll_once()
    logs_down = False
    sink = run(tmp_path, steps, clock=clock)
    assert retracted(sink) == [f"0x{word(1)}:0"]  # before: []
    logs_down = True
    sink = run(tmp_path / "down", steps, clock=clock)
    assert retracted(sink) == [f"0x{word(1)}:0"]


def test_a_logs_index_that_answers_nothing_retracts_nothing(tmp_path: Path) -> None:
    """Every getLogs answers "No records found" (an index incident) while txlist still
    says the index is at the head: the trade is gone from the answer and its block shows
    no fill, but nothing shows the logs index works at all. No retraction."""
    clock = ManualClock()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1), order_filled(block=107, tx=2)]
        fake.head = fake.indexed = 108
        await poller.poll_once()
        saved, fake.logs = fake.logs, []
        for head in (110, 112, 114, 116):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
        fake.logs = saved
        clock.advance(4)
        fake.head = fake.indexed = 118
        await poller.poll_once()
    sink = run(tmp_path, steps, clock=clock)
    assert trades(sink) == [105, 107] and retracted(sink) == []


def test_a_short_answer_a_lagging_index_or_a_passing_replica_retracts_nothing(
        tmp_path: Path) -> None:
    """The re-read leaves the trade out, but: the block stands with the trade's own hash
    (a short page); the index fell behind the block (a reorg being re-indexed: no view
    of it); the other hash is shown once only (a replica behind another). None of these
    is a reorg the baseline may retract on."""
    clock = ManualClock()
    tid = "0x" + word(1)

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1),
                      order_filled(block=105, tx=2, wallet=OTHER)]
        fake.head = fake.indexed = 106
        await poller.poll_once()
        fake.drop = {tid}  # short answers: the block still has its hash
        for head in (108, 110):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
        fake.drop = set()
        fake.indexed = 104  # the index rolled back below the block
        clock.advance(4)
        await poller.poll_once()
        saved = list(fake.logs)
        fake.indexed = 112
        fake.replace_block(105, "0x" + "cd" * 32, keep={"0x" + word(2)})
        clock.advance(4)
        fake.head = 112
        await poller.poll_once()  # the other hash, once
        fake.logs = saved  # the next answer is the chain as it was
        for head in (114, 116):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
        assert poller.counters["absent_from_standing_block"] >= 2
    sink = run(tmp_path, steps, clock=clock)
    assert trades(sink) == [105] and retracted(sink) == []


def test_a_reorg_while_the_monitor_was_down_is_retracted_after_the_restart(
        tmp_path: Path) -> None:
    """Polling-only mode has no node to ask at a restart. The trades the last process
    delivered above its cursor are re-read by the first polls: one of a block replaced
    while it was down is retracted (the judgement reads the store, not memory)."""
    clock = ManualClock()
    fake = IndexExplorer()

    async def before(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1),
                      order_filled(block=105, tx=2, wallet=OTHER)]
        fake.head = fake.indexed = 106
        await poller.poll_once()

    async def after(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        assert store.cursor(WALLET).block < 105
        fake.replace_block(105, "0x" + "ef" * 32, keep={"0x" + word(2)})
        for head in (110, 112):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
    first = run(tmp_path, before, clock=clock, fake=fake)
    second = run(tmp_path, after, clock=clock, fake=fake)
    assert trades(first) == [105]
    assert retracted(second) == [f"0x{word(1)}:0"]


def test_a_reorg_of_a_wallet_removed_from_the_list_is_retracted_after_the_restart(
        tmp_path: Path) -> None:
    """A wallet's trade delivered, then the wallet taken off the list and the monitor
    restarted, and a reorg drops that trade: no poll of that wallet ran again, so it was
    never retracted (the WebSocket path re-checks such wallets; polling-only did not)."""
    clock = ManualClock()
    fake = IndexExplorer()

    async def before(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1, wallet=OTHER),
                      order_filled(block=105, tx=2)]
        fake.head = fake.indexed = 106
        await poller.poll_once()

    async def after(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.replace_block(105, "0x" + "ef" * 32, keep={"0x" + word(2)})
        for head in (110, 112, 114):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
        fake.queries.clear()
        for head in (200, 210):  # the index past it: the removed wallet is not asked
            clock.advance(20)
            fake.head = fake.indexed = head
            await poller.poll_once()
        asked.extend(q.get("topic2", "") for q in fake.queries)
    asked: list[str] = []
    first = run(tmp_path, before, clock=clock, fake=fake, wallets=(WALLET, OTHER))
    second = run(tmp_path, after, clock=clock, fake=fake, wallets=(WALLET,))
    assert trades(first) == [105, 105]
    assert retracted(second) == [f"0x{word(1)}:0"]  # OTHER's, reorged away
    assert trades(second) == []
    assert not any(OTHER[2:] in t for t in asked)


def test_a_used_up_daily_quota_pauses_polling_alerts_once_and_resumes(
        tmp_path: Path) -> None:
    """"Max daily rate limit reached" was retried as a per-second limit: six calls every
    poll (a retry burst each 15 s) for the rest of the day, never said to anyone. Now
    polling pauses (10 min, doubling to an hour) with one try each pause, one alert
    says so, and polling resumes from the cursor once the quota is back: the trade of
    the pause is delivered."""
    clock = ManualClock()
    alerts = Alerts()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head = fake.indexed = 100
        await poller.poll_once()
        fake.quota_used_up = True
        asked = len(fake.queries)
        for _ in range(int(3 * QUOTA_PAUSE_S / 15)):  # 30 minutes of 15-s polls
            clock.advance(15)
            await poller.poll_once()
        calls.append(len(fake.queries) - asked)
        fake.quota_used_up = False
        fake.logs.append(order_filled(block=150, tx=1))
        fake.head = fake.indexed = 200
        for _ in range(int(2 * QUOTA_PAUSE_S / 15)):
            clock.advance(15)
            await poller.poll_once()
        calls.append(poller.counters["quota_exhausted"])
    calls: list[int] = []
    sink = run(tmp_path, steps, clock=clock, alerts=alerts)
    assert calls == [2, 2]  # calls while used up (before: 720, 6 a poll); pauses
    assert [k for k, _t in alerts.sent] == ["explorer_quota", "explorer_quota_back"]
    assert "daily quota" in alerts.sent[0][1]
    assert trades(sink) == [150]


def test_the_index_head_probe_failing_keeps_the_last_lag_not_the_overlap(
        tmp_path: Path) -> None:
    """The index-head probe (txlist) fails after it measured a lag of 100 blocks: the
    cursor keeps that lag below the proxy head rather than head - overlap."""
    clock = ManualClock()

    class Failing(IndexExplorer):
        async def handle(self, request: web.Request) -> web.Response:
            if request.query.get("module") == "account" and self.fail:
                return web.Response(status=502, text="<html>502</html>",
                                    content_type="text/html")
            return await super().handle(request)
    fake = Failing()
    fake.fail = False

    async def steps(fake_: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head, fake.indexed = 300, 200
        await poller.poll_once()
        fake.fail = True
        fake.logs.append(order_filled(block=230, tx=1))
        for head in (308, 316, 324, 332):
            clock.advance(16)
            fake.head, fake.indexed = head, head - 100
            await poller.poll_once()
        assert poller.counters["index_head_unknown"] == 4
        assert store.cursor(WALLET).block == 332 - 100
    sink = run(tmp_path, steps, clock=clock, fake=fake)
    assert trades(sink) == [230]


def test_the_index_head_is_read_from_the_newest_transaction_and_its_confirmations(
        ) -> None:
    """txlist rows count the newest block as one confirmation: the index head is
    blockNumber + confirmations - 1; a row without them is a bad answer."""
    answers = [
        {"status": "1", "message": "OK", "result": [{"blockNumber": "500",
                                                      "confirmations": "7"}]},
        {"status": "0", "message": "No transactions found", "result": []},
        {"status": "1", "message": "OK", "result": [{"blockNumber": "500"}]},
    ]

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(answers.pop(0)), content_type="application/json")

    async def go() -> list[Any]:
        app = web.Application()
        app.router.add_get("/v2/api", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        out: list[Any] = []
        try:
            async with aiohttp.ClientSession() as session:
                client = ExplorerClient(f"http://127.0.0.1:{runner.addresses[0][1]}/v2/api",
                                        session, rate_per_s=1000)
                out.append(await client.index_head(CTF_EXCHANGE_V2))
                out.append(await client.index_head(CTF_EXCHANGE_V2))
                try:
                    await client.index_head(CTF_EXCHANGE_V2)
                except Exception as exc:  # its kind is the assertion
                    out.append(type(exc).__name__)
        finally:
            await runner.cleanup()
        return out
    assert asyncio.run(go()) == [506, None, "BadResponse"]


def test_the_outbox_left_by_a_crash_goes_out_less_a_trade_of_a_replaced_block(
        tmp_path: Path) -> None:
    """Polling-only mode has no node for the restart check of the outbox a crashed
    process left: explorer_block_hashes gives Pipeline.recover the explorer's view, so a
    trade of a block replaced while the monitor was down is not sent (it is retracted);
    the other goes out."""
    from functools import partial

    from monitor.polling import explorer_block_hashes

    fake = outbox_explorer(IndexExplorer())
    sink = MemorySink()

    async def go() -> None:
        async with served_explorer(fake) as url:
            await crash_leaving_an_outbox(tmp_path / "s.db", fake, replaced=105)
            store = Store(tmp_path / "s.db")
            async with aiohttp.ClientSession() as session:
                client = ExplorerClient(url, session, rate_per_s=1000)
                pipe = Pipeline(store, sink, wallets=[WALLET])
                await pipe.recover(partial(explorer_block_hashes, client))
            store.close()
    asyncio.run(go())
    assert trades(sink) == [106]
    assert retracted(sink) == [f"0x{word(1)}:0"]


def test_polling_that_gets_no_answer_for_minutes_is_alerted_once_and_its_end_too(
        tmp_path: Path) -> None:
    """An explorer refusing every call (a NOTOK text a round; a refused key, "Invalid API
    Key", has its own alert at once: test_explorer_key_refused.py): the baseline polled
    nothing and said so only as a warning a round in the log, for good. Five minutes of
    it now raise one alert (an error, a history row), its end another; the trade of the
    outage is delivered from the cursor."""
    clock = ManualClock()
    alerts = Alerts()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head = fake.indexed = 100
        await poller.poll_once()
        fake.refuse = "Query Timeout occured. Please select a smaller result dataset"
        for _ in range(40):  # 10 minutes of 15-s polls
            clock.advance(15)
            await poller.poll_once()
        fake.refuse = None
        fake.logs.append(order_filled(block=150, tx=1))
        fake.head = fake.indexed = 200
        for _ in range(3):
            clock.advance(15)
            await poller.poll_once()
    sink = run(tmp_path, steps, clock=clock, alerts=alerts)
    assert [k for k, _t in alerts.sent] == ["polling_failing", "polling_recovered"]
    assert "Query Timeout" in alerts.sent[0][1]
    assert trades(sink) == [150]


def test_an_index_minutes_behind_is_alerted_once_and_its_catch_up_too(
        tmp_path: Path) -> None:
    """The index stalls 200 blocks (~400 s) behind the head: the baseline delivered
    nothing for that long, said to nobody (its rounds all "succeeded"). One alert says
    so, another once it is back under half the threshold."""
    clock = ManualClock()
    alerts = Alerts()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        for head, indexed in ((100, 100), (150, 100), (200, 100), (250, 100), (300, 100),
                              (300, 300), (308, 308)):
            clock.advance(max(2 * (head - fake.head), 15))  # 2-s blocks
            fake.head, fake.indexed = head, indexed
            await poller.poll_once()
    run(tmp_path, steps, clock=clock, alerts=alerts)
    assert [k for k, _t in alerts.sent] == ["explorer_index_lag", "explorer_index_caught_up"]
    assert "200 blocks" in alerts.sent[0][1]


def test_a_log_index_another_maker_s_fill_took_in_a_reorg_is_not_swallowed_as_a_move(
        tmp_path: Path) -> None:
    """Trade ids are <tx hash>:<log index>, and a log index counts the logs of the
    block: a reorg that re-includes a transaction can give the index of WALLET's fill
    to OTHER's fill of the same transaction. Polled first, OTHER's fill was taken for
    WALLET's trade moved to the new block (same id, another hash): never delivered,
    and WALLET's orphan of that id was never retracted (its block "stands" with the
    hash the move wrote). Seen in a polling run with a 24-block reorg."""
    clock = ManualClock()
    h2 = "0x" + "ab" * 32

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1, log_index=1)]  # WALLET's
        fake.head = fake.indexed = 106
        await poller.poll_once()
        fake.logs = [order_filled(block=105, tx=1, log_index=0, block_hash=h2),  # WALLET's
                     order_filled(block=105, tx=1, log_index=1, wallet=OTHER, block_hash=h2)]
        for head in (108, 110, 112):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
    sink = run(tmp_path, steps, clock=clock, wallets=(OTHER, WALLET))
    tx = "0x" + word(1)
    got = [(e.kind, e.trade_id, e.trade.wallet if e.trade else None) for e in sink.events]
    assert got == [("trade", f"{tx}:1", WALLET), ("retraction", f"{tx}:1", None),
                   ("trade", f"{tx}:1", OTHER), ("trade", f"{tx}:0", WALLET)], got


def test_an_index_rolled_back_by_a_reorg_retracts_nothing_while_it_re_indexes(
        tmp_path: Path) -> None:
    """A reorg: the index drops blocks 105.. and has the new ones some polls later (the
    trade stayed in its height, under a new hash). Meanwhile block 105 holds nothing:
    taken for a block without a fill, the trade was retracted and then delivered again
    (the bot undid and redid a real trade). The index head is asked again before such a
    judgement, and it is below 105 then."""
    clock = ManualClock()
    h2 = "0x" + "ab" * 32

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1)]
        fake.head = fake.indexed = 106
        await poller.poll_once()
        fake.replace_block(105, h2, keep={"0x" + word(1)})
        for head in (107, 108, 109):  # rolled back: the index at 104 for three polls
            clock.advance(2)
            fake.head, fake.indexed = head, 104
            await poller.poll_once()
        clock.advance(2)
        fake.head = fake.indexed = 110
        await poller.poll_once()
    sink = run(tmp_path, steps, clock=clock)
    assert [e.kind for e in sink.events] == ["trade"]  # moved, never retracted


def test_the_index_head_is_asked_only_when_head_minus_overlap_could_pass_it(
        tmp_path: Path) -> None:
    """The index a few blocks behind (the usual seconds): head - overlap stays below the
    last index head known for several rounds, so the txlist call is made about every
    fourth round (overlap 64, 8 blocks a round), not every round: the baseline pays for
    the index check only what it needs."""
    clock = ManualClock()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        for head in range(100, 100 + 8 * 40, 8):
            clock.advance(16)
            fake.head, fake.indexed = head, head - 2
            await poller.poll_once()
        probes.append(sum(q.get("module") == "account" for q in fake.queries))
        probes.append(poller.polls)
    probes: list[int] = []
    run(tmp_path, steps, clock=clock, overlap=64)
    assert probes[0] <= probes[1] // 3, probes


def test_a_round_paused_for_the_daily_quota_is_not_counted_as_a_poll(
        tmp_path: Path) -> None:
    """The pilot judges the polling path healthy while ``polls`` grows without an error:
    the quota pause's rounds (no call at all) counted as polls, so the path showed
    healthy all the pause. They are counted apart (``quota_paused_polls``)."""
    clock = ManualClock()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        await poller.poll_once()
        fake.quota_used_up = True
        clock.advance(15)
        await poller.poll_once()  # the call that finds the quota used up
        seen.append((poller.polls, poller.counters["errors"]))
        for _ in range(10):
            clock.advance(15)
            await poller.poll_once()
        seen.append((poller.polls, poller.counters["errors"]))
        seen.append((poller.counters["quota_paused_polls"], 0))
    seen: list[tuple[int, int]] = []
    run(tmp_path, steps, clock=clock)
    assert seen[0] == seen[1]  # before: polls 2 -> 12, errors 1: "healthy"
    assert seen[2] == (10, 0)


def test_a_429_that_asks_to_come_back_in_an_hour_pauses_polling_that_long(
        tmp_path: Path) -> None:
    """A 429 with Retry-After: 3600 was retried within the minute (the cap of one
    retry's wait), five times a poll, every poll: 720 calls in 30 minutes. It is a
    quota: polling pauses for the time asked (one call), then resumes."""
    clock = ManualClock()

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        await poller.poll_once()
        fake.retry_after = 3600
        asked = len(fake.queries)
        for _ in range(120):  # 30 minutes of 15-s polls
            clock.advance(15)
            await poller.poll_once()
        calls.append(len(fake.queries) - asked)
        fake.retry_after = None
        fake.logs.append(order_filled(block=150, tx=1))
        fake.head = fake.indexed = 200
        for _ in range(130):
            clock.advance(15)
            await poller.poll_once()
    calls: list[int] = []
    sink = run(tmp_path, steps, clock=clock)
    assert calls == [1]  # before: 720
    assert trades(sink) == [150]
