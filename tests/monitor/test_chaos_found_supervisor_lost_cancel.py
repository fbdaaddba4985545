"""A supervised task whose cancel was lost (Python 3.11's ``asyncio.wait_for`` returns the
result of an awaitable that finished in the cancel's loop turn) went on running after
``Supervisor.stop``: stop gave up after its 10-s wait, and the task - a shard's sync loop
- kept going on a monitor that had closed its store; when it then failed, the supervisor
restarted it, for as long as the process lived. ``stop`` now cancels until the task ends,
and a task that ends, by any error, once its stop began is not restarted."""

from __future__ import annotations

import asyncio

from monitor.supervisor import Supervisor, TaskState


def test_a_task_that_lost_its_cancel_is_stopped_and_never_restarted() -> None:
    runs = [0]
    after_stop = [0]

    async def main() -> None:
        async def factory() -> None:
            runs[0] += 1
            if runs[0] > 1:
                after_stop[0] += 1
            if runs[0] > 1:
                await asyncio.sleep(3600)
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass  # lost, as wait_for loses it in a race
            await asyncio.sleep(0.5)  # goes on a little, then its next write fails
            raise RuntimeError("state_db: cannot operate on a closed database")

        sup = Supervisor(initial=0.01, maximum=0.01)
        task = sup.spawn("sync", factory)
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await sup.stop(timeout=30.0)
        assert loop.time() - began < 5.0, "stop() waited for the task"
        assert task.done()
        await asyncio.sleep(0.1)  # a restart would have come by now
        assert sup.snapshot()["sync"]["state"] == TaskState.STOPPED.value

    asyncio.run(main())
    assert after_stop[0] == 0, "the task ran again after stop()"
