"""A task that crashes in a loop, each time after running a while: its alerts keep the
supervisor's pace (at most one every ``alert_every``), every crash still counted."""

from __future__ import annotations

import asyncio

from monitor.clock import ManualClock
from monitor.supervisor import Supervisor


def test_a_task_crashing_after_each_healthy_spell_alerts_once_a_minute_not_each_time(
        ) -> None:
    """A task that runs 31 s (past healthy_after, 30 s) and crashes, over and over (a
    provider cutting every connection after half a minute): each crash began a new streak
    and the 'at most one a minute' was kept only within a streak, so every crash was an
    alert, 120 an hour. One alert a minute at most; each crash counted and recorded."""
    clock = ManualClock(1000.0)
    sent: list[str] = []

    class _Alerts:
        async def send(self, kind: str, text: str) -> bool:
            sent.append(text)
            return True

    async def main() -> Supervisor:
        sup = Supervisor(clock=clock, alerts=_Alerts(), initial=0.001, maximum=0.001,
                         healthy_after=30.0, alert_every=60.0)
        crashed = asyncio.Event()

        async def flaky() -> None:
            clock.advance(31.0)  # ran a healthy spell
            if sup.restarts["flaky"] >= 9:
                crashed.set()
                await asyncio.Event().wait()
            raise ConnectionError("cut after half a minute")

        sup.spawn("flaky", flaky)
        await asyncio.wait_for(crashed.wait(), 10)
        await sup.stop(timeout=5)
        return sup

    sup = asyncio.run(main())
    assert sup.restarts["flaky"] == 9
    # crashes at 31, 62, ..., 279 s: alerts at 31, 93, 155, 217, 279 (60 s apart at least)
    assert len(sent) == 5, sent
    assert "restart 3; 1 more crashes since the last alert" in sent[1]
