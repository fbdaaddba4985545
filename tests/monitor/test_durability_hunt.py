"""Durability hunt: crashes and restarts around the outbox and the sink, sinks that fail or
hang. Each test plays one hostile case against the store + pipeline (no network)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor_helpers import WALLET, order_filled

from monitor.pipeline import Pipeline
from monitor.sinks import CallbackSink, SinkEvent
from monitor.store import Store


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
