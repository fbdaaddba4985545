"""The supervisor against a task that never returns from its cancel (it catches
CancelledError and runs on): a stop is bounded and tells it, never hangs or lies."""

from __future__ import annotations

import asyncio
import logging

import pytest

from monitor.history import History
from monitor.supervisor import Supervisor, TaskState


class _Rows(History):
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, object]]] = []

    def record(self, event: str, **fields: object) -> dict[str, object]:  # type: ignore[override]
        self.rows.append((event, fields))
        return {"event": event, **fields}


class _Stubborn:
    """A bad task: a cancel is caught and it runs on, until the test lets it go."""

    def __init__(self) -> None:
        self.let_go = asyncio.Event()

    async def __call__(self) -> None:
        while not self.let_go.is_set():
            try:
                await self.let_go.wait()
            except asyncio.CancelledError:
                continue


def test_cancel_of_a_task_that_never_ends_returns_after_its_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    """Supervisor.cancel(name, timeout) waited through asyncio.wait_for, which waits for
    the cancelled task to end: for ever (the timeout was never honoured), and it swallowed
    a cancel of its caller. It returns after ``timeout``, says the task is stuck (an
    error, a history row, state ``stuck``)."""
    rows = _Rows()

    async def main() -> None:
        sup, stubborn = Supervisor(history=rows), _Stubborn()
        sup.spawn("stubborn", stubborn)
        try:
            await check(sup)
        finally:  # a failure here must not hang asyncio.run's end on the bad task
            stubborn.let_go.set()
            await sup.stop(timeout=5.0)

    async def check(sup: Supervisor) -> None:
        await asyncio.sleep(0)
        await asyncio.wait_for(sup.cancel("stubborn", timeout=0.2), 5.0)
        assert sup.snapshot()["stubborn"]["state"] == TaskState.STUCK.value
        # the caller's own cancel goes through
        caller = asyncio.ensure_future(sup.cancel("stubborn", timeout=30.0))
        await asyncio.sleep(0.05)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(caller, 5.0)

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert "stubborn did not stop" in caplog.text
    assert ("task_stuck", {"task": "stubborn", "timeout_s": 0.2}) in rows.rows


def test_stop_tells_a_task_that_runs_on_past_its_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    """stop() gave up after its timeout (good) and marked the task ``stopped`` with not a
    word, a task of the monitor left running behind its stop."""
    async def main() -> None:
        sup, stubborn = Supervisor(), _Stubborn()
        sup.spawn("stubborn", stubborn)
        sup.spawn("polite", lambda: asyncio.sleep(3600))
        try:
            await asyncio.sleep(0)
            await asyncio.wait_for(sup.stop(timeout=0.3), 5.0)
            snap = sup.snapshot()
            assert snap["stubborn"]["state"] == TaskState.STUCK.value
            assert snap["polite"]["state"] == TaskState.STOPPED.value
        finally:
            stubborn.let_go.set()
            await asyncio.wait(sup.cancel_all(), timeout=5.0)

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert "stubborn did not stop" in caplog.text and "polite" not in caplog.text
