"""Durability hunt: crashes and restarts around the outbox and the sink, sinks that fail or
hang. Each test plays one hostile case against the store + pipeline (no network)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from monitor_helpers import WALLET, order_filled

from monitor.history import History
from monitor.pipeline import Pipeline
from monitor.sinks import CallbackSink, SinkEvent
from monitor.store import Store
from monitor.trades import Trade


class _Bot:
    """The bot's executor: records (key, uncertain) of each call; raises on the calls
    named in ``fail``."""

    def __init__(self, fail: tuple[int, ...] = ()) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.fail = fail

    async def __call__(self, event: SinkEvent) -> None:
        self.calls.append((event.key, event.uncertain))
        if len(self.calls) in self.fail:
            raise ConnectionError("executor unreachable")


def _logs(n: int) -> list[dict[str, object]]:
    return [order_filled(tx=i) for i in range(1, n + 1)]


def test_outbox_events_of_a_crashed_process_stay_uncertain_when_the_sink_fails_at_recovery(
        tmp_path: Path) -> None:
    """The process died after its callback acted on three trades, before their "sent"
    marks were written. After the restart the executor is down for the first call of the
    recovery: the three events wait in the outbox and go out later by redelivery. Each of
    them may have been acted on by the dead process, so each must come ``uncertain`` (the
    bot looks before acting again), not only the one the new process saw raise."""
    db = tmp_path / "s.db"
    first = _Bot()

    async def first_life() -> None:
        p = Pipeline(Store(db), CallbackSink(first), wallets=[WALLET])
        await p.on_logs(_logs(3), "ws")
        # no close(): killed before the marks rode with a next transaction

    second = _Bot(fail=(1,))

    async def second_life() -> None:
        p = Pipeline(Store(db), CallbackSink(second), wallets=[WALLET])
        await p.recover()
        assert p.sink_failing
        await p.redeliver()
        await p.on_logs(_logs(4), "ws")  # a new trade: certain

    asyncio.run(first_life())
    asyncio.run(second_life())
    assert [u for _, u in first.calls] == [False, False, False]
    keys = [k for k, _ in first.calls]
    again = [(k, u) for k, u in second.calls if k in keys]
    assert [k for k, _ in again] == [keys[0], keys[0], keys[1], keys[2]]
    assert all(u for _, u in again), again
    assert second.calls[-1][1] is False and second.calls[-1][0] not in keys


class _HangingBot(_Bot):
    """An executor whose first call never returns (a request without a timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = 0

    async def __call__(self, event: SinkEvent) -> None:
        await super().__call__(event)
        if len(self.calls) == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise


def test_a_sink_that_never_returns_is_timed_out_not_waited_on_for_ever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A callback that hangs held the pipeline's send lock for good: every later batch
    of every source waited behind it, nothing was delivered, counted or logged, and the
    supervised tasks still looked alive. It is now a sink failure after
    ``Pipeline.SINK_TIMEOUT_S``: counted, the event kept in the outbox and sent again
    (``uncertain``: the cut-off call may have acted) by the redelivery."""
    monkeypatch.setattr(Pipeline, "SINK_TIMEOUT_S", 0.2, raising=False)
    bot = _HangingBot()
    store = Store(tmp_path / "s.db")
    p = Pipeline(store, CallbackSink(bot), wallets=[WALLET])

    async def go() -> None:
        await asyncio.wait_for(p.on_logs(_logs(2), "ws"), 10.0)
        assert p.sink_failing and p.counters["sink_errors"] == 1
        await asyncio.wait_for(p.on_logs([order_filled(tx=3)], "ws"), 10.0)
        await asyncio.wait_for(p.redeliver(), 10.0)

    asyncio.run(go())
    assert bot.cancelled == 1 and p.counters["sink_timeouts"] == 1
    keys = [k for k, _ in bot.calls]
    assert len(keys) == 4 and keys[0] == keys[1] and len(set(keys)) == 3
    assert [u for _, u in bot.calls] == [False, True, False, False]
    assert not p.sink_failing and not store.has_pending()


def test_a_batch_of_slow_sink_calls_each_within_the_limit_is_not_cut_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's one deadline moves on with every call: five calls of 0.1 s each
    (0.5 s in all) under a 0.3-s limit are all delivered, none cut off as a hang."""
    monkeypatch.setattr(Pipeline, "SINK_TIMEOUT_S", 0.3, raising=False)
    got: list[str] = []

    async def slow(event: SinkEvent) -> None:
        await asyncio.sleep(0.1)
        got.append(event.trade_id)

    store = Store(tmp_path / "s.db")
    p = Pipeline(store, CallbackSink(slow), wallets=[WALLET])
    asyncio.run(asyncio.wait_for(p.on_logs(_logs(5), "ws"), 10.0))
    assert len(got) == 5 and p.counters["sink_errors"] == 0 and not p.sink_failing


def test_an_event_whose_sink_call_was_cancelled_comes_again_uncertain(
        tmp_path: Path) -> None:
    """``stop()`` cancels the tasks (a shard's delivery inside the bot's callback), then
    redelivers what the outbox holds. The cancelled call may have acted (an order sent,
    its answer not yet read): the event must come again ``uncertain``, as after a raise."""
    bot = _HangingBot()
    store = Store(tmp_path / "s.db")
    p = Pipeline(store, CallbackSink(bot), wallets=[WALLET])

    async def go() -> None:
        task = asyncio.ensure_future(p.on_logs(_logs(1), "ws"))
        while not bot.calls:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(p.redeliver(), 10.0)

    asyncio.run(go())
    assert bot.cancelled == 1
    assert [u for _, u in bot.calls] == [False, True]
    assert not store.has_pending()


def test_a_history_torn_by_a_crash_is_repaired_not_glued_to_the_next_run(
        tmp_path: Path) -> None:
    """A process killed with part of a row written (a write cut short by a full disk,
    the rest still buffered) left a torn last line; the restarted monitor appended its
    ``start`` row to it: one line that is not JSON in the middle of the history, which
    the analysis refuses whole (a bad line that is not the last). The torn tail is cut
    at open, as the detections file's is."""
    path = tmp_path / "history.jsonl"
    path.write_bytes(b'{"t_ns":1,"event":"start"}\n{"t_ns":2,"event":"deliv')
    h = History(path)
    h.record("start", mode="websocket")
    h.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["start", "start"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_the_torn_tail_scan_agrees_with_rfind(chunk: int, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.private_files as pf

    monkeypatch.setattr(pf, "_CHUNK", chunk, raising=False)
    for data in (b"", b"a", b"a\n", b"a\nbb\n", b"\n\n", b"a\nbb\nccc", b"x\n" * 9 + b"y"):
        f = tmp_path / "f"
        f.write_bytes(data)
        with open(f, "rb") as fh:
            assert pf.end_of_last_line(fh.fileno(), len(data)) == data.rfind(b"\n") + 1
        with pf.open_private(f) as out:
            out.write("z\n")
        assert f.read_bytes() == data[:data.rfind(b"\n") + 1] + b"z\n"


class _Alerts:
    """An alerter that records (kind, text)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    async def send(self, kind: str, text: str) -> bool:
        self.got.append((kind, text))
        return True


def test_a_failing_sink_is_alerted_once_a_streak_and_its_recovery_too(
        tmp_path: Path) -> None:
    """The bot's executor down (or the detections disk full): trades pile up in the
    outbox, copied by no one, and only a log line and a counter said so: no alert reached
    the operator. The first failure of a streak is alerted, the redeliveries that fail
    again are not, and the recovery is."""
    bot = _Bot(fail=(1, 2, 3))
    alerts = _Alerts()
    p = Pipeline(Store(tmp_path / "s.db"), CallbackSink(bot), wallets=[WALLET])
    p.alerts = alerts

    async def go() -> None:
        await p.on_logs(_logs(2), "ws")
        await p.redeliver()
        await p.redeliver()
        await p.redeliver()  # the executor is back
        await p.flush_alerts(10.0)

    asyncio.run(go())
    assert [k for k, _ in alerts.got] == ["sink_failed", "sink_recovered"]
    assert "ConnectionError" in alerts.got[0][1] and "outbox" in alerts.got[0][1]
    assert not p.sink_failing


def test_a_redelivery_to_a_failing_sink_reads_a_page_of_the_outbox_not_all_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor down for a while: every ``outbox_retry_interval`` the redelivery read
    and decoded the WHOLE outbox to fail on its first event (100,000 waiting trades: 3.5 s
    of the event loop every 5 s; heartbeats missed, the live path stalled). It now reads
    a page at a time, the next only once the one before went through; order and the
    uncertain marks of a crashed process's events are kept across pages."""
    monkeypatch.setattr(Pipeline, "REDELIVER_PAGE", 100, raising=False)
    decoded = [0]
    real = Trade.from_dict.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Trade], d: dict[str, object]) -> Trade:
        decoded[0] += 1
        return real(cls, d)  # type: ignore[no-any-return]

    monkeypatch.setattr(Trade, "from_dict", classmethod(counting))
    db = tmp_path / "s.db"
    first = _Bot()

    async def first_life() -> None:
        p = Pipeline(Store(db), CallbackSink(first), wallets=[WALLET])
        await p.on_logs(_logs(250), "ws")  # killed before the marks were written

    bot = _Bot(fail=(1, 2, 3))

    async def second_life() -> None:
        p = Pipeline(Store(db), CallbackSink(bot), wallets=[WALLET])
        await p.recover()
        await p.on_logs([order_filled(tx=i) for i in range(251, 1001)], "ws")
        decoded[0] = 0
        await p.redeliver()
        await p.redeliver()
        assert decoded[0] <= 2 * 100, decoded[0]
        await p.redeliver()  # the executor is back: everything, in order
        assert not p.sink_failing and not p.store.has_pending()

    asyncio.run(first_life())
    asyncio.run(second_life())
    want = [f"trade:0x{i:064x}:0:1" for i in range(1, 1001)]
    keys = [k for k, _ in bot.calls[3:]]
    assert keys == want
    assert all(u for _, u in bot.calls[3:253]) and not any(u for _, u in bot.calls[253:])
