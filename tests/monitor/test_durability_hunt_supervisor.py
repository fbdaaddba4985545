"""Durability hunt, supervised tasks: nothing dies silently, not even of a CancelledError
that was not meant for it."""

from __future__ import annotations

import asyncio

from monitor.supervisor import Supervisor, TaskState


def test_a_stray_cancelled_error_is_a_crash_restarted_not_a_silent_stop() -> None:
    """A task awaiting a sub-task that something else cancelled gets CancelledError
    although nobody cancelled the task itself. The supervisor took it for stop(): the
    task ended for good, uncounted, unalerted, and out of ``alive()`` (readiness still
    said every task was alive). Only a cancel of the task itself is a stop now."""
    calls = [0]
    started = asyncio.Event

    async def main() -> None:
        second = started()

        async def factory() -> None:
            calls[0] += 1
            if calls[0] == 1:
                inner = asyncio.ensure_future(asyncio.sleep(30))
                inner.cancel()
                await inner  # raises CancelledError into this task
            second.set()
            await asyncio.Event().wait()

        sup = Supervisor(initial=0.01, maximum=0.01)
        sup.spawn("worker", factory)
        await asyncio.wait_for(second.wait(), 10.0)
        assert sup.restarts["worker"] == 1
        assert sup.alive() == {"worker": True}
        await sup.stop()  # a real stop is still a stop
        assert sup.snapshot()["worker"]["state"] == TaskState.STOPPED.value

    asyncio.run(main())
    assert calls[0] == 2
