"""Chaos schedules with the monitor itself restarted mid-run, its state kept: stopped
cleanly, or killed (every task cancelled, nothing drained, sent or marked sent: the
store's connection closed under them), then started again on the same store and
detections file, in virtual time. The scenario format has no restart (the runner starts
one monitor), so the monitor class the runner builds is replaced by one that restarts
itself at the times given. What a restart must not do: lose a trade of the blocks that
passed while it was down, send one the sink already had, or leave one of a block the
chain replaced meanwhile standing."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

import monitor.wallet_monitor as wm
from experiments.chaos import broken, chaos_scenario
from experiments.runner import RunnerOptions
from experiments.virtual import run_scenario_virtual
from monitor.history import History

_Monitor = wm.WalletMonitor


def restarting(plan: list[tuple[float, str, float]], done: list[float]) -> type:
    """A WalletMonitor stand-in that, ``at`` simulated seconds after the replay starts
    (30 s after its own start), stops (``"graceful"``) or is killed (``"kill"``), stays
    down ``down`` seconds and starts a new monitor with the same settings."""

    class Restarting:
        def __init__(self, settings: Any, *, clock: Any, **kw: Any) -> None:
            self._args = (settings, clock, dict(kw))
            self.inner = _Monitor(settings, clock=clock, **kw)
            self._task: asyncio.Task[None] | None = None

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def start(self) -> None:
            await self.inner.start()
            self._task = asyncio.create_task(self._cycle(self._args[1].now()))

        async def _cycle(self, t0: float) -> None:
            settings, clock, kw = self._args
            for at, how, down in plan:
                await asyncio.sleep(max(0.0, t0 + 30.0 + at - clock.now()))
                await (self.inner.stop() if how == "graceful" else self.inner.abort())
                done.append(at)
                await asyncio.sleep(down)
                if "history" in kw:  # the runner's, closed with the monitor: a new
                    kw["history"] = History(settings.history_path, clock=clock)  # process
                self.inner = _Monitor(settings, clock=clock, **kw)
                await self.inner.start()

        async def stop(self) -> None:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
            await self.inner.stop()

    return Restarting


@pytest.mark.slow
def test_a_chaos_schedule_with_the_monitor_killed_and_restarted_holds_every_invariant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 302 (a 1.75-s chain, WebSocket, a 200-entry dedup, a 10-s fallback): killed
    with no downtime, stopped for 30 s, killed for 120 s (the explorer fallback's and
    the backfill's blocks), stopped and started at once; the schedule's own faults
    beside."""
    plan = [(90.0, "kill", 0.0), (160.0, "graceful", 30.0), (220.0, "kill", 120.0),
            (400.0, "graceful", 0.0)]
    done: list[float] = []
    monkeypatch.setattr(wm, "WalletMonitor", restarting(plan, done))
    sc = chaos_scenario(302, 900.0)
    summary = run_scenario_virtual(sc, tmp_path / sc.name,
                                   RunnerOptions(cache_dir=tmp_path / "cache"))
    assert done == [at for at, _, _ in plan]
    assert summary["trades"] > 100
    assert broken(summary) == []
