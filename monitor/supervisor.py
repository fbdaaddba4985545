"""Supervised tasks: nothing in the monitor dies silently.

Every long-lived coroutine of the monitor (live delivery, sync, health, polling, the
fallback poller, outbox redelivery) runs under a :class:`Supervisor`. When one raises
anything but ``CancelledError``:

1. the exception is logged with its traceback (redacted by the CLI's log filter);
2. it is counted (:attr:`Supervisor.restarts`) and written to the history as a
   ``task_crash`` row (task, error type, redacted reason, restart count);
3. an alert goes out, at most one a minute per task (the next says how many crashes
   were not alerted);
4. the task restarts after a backoff (``initial`` doubling to ``maximum``, in simulated
   seconds divided by ``speed``), reset once the task has run ``healthy_after``.

A task that returns normally is ``done`` (not restarted). :meth:`Supervisor.alive` says,
per task, whether it is running now; :meth:`Supervisor.all_alive` is what readiness reads;
:meth:`Supervisor.snapshot` is the end-of-run ``tasks`` history row.

:func:`crash_delay` is the pure backoff policy (time as an argument, no I/O).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from monitor.alerts import Alerter
from monitor.clock import Clock, SystemClock
from monitor.history import History, NullHistory
from monitor.redact import redact
from polyvocab.policies import backoff_delay

__all__ = ["Supervisor", "TaskState", "crash_delay"]

log = logging.getLogger("monitor.supervisor")

TaskFactory = Callable[[], Awaitable[None]]

_STRAY_CANCEL = ("CancelledError: the task was not cancelled; a cancelled sub-task it "
                 "awaited raised it")


class TaskState(enum.Enum):
    RUNNING = "running"
    RESTARTING = "restarting"  # crashed; waiting out its backoff
    DONE = "done"              # returned normally
    STOPPED = "stopped"        # cancelled by stop()
    STUCK = "stuck"            # cancelled, and still running past the stop's timeout


def crash_delay(consecutive: int, *, initial: float, maximum: float) -> float:
    """Seconds to wait before restart number ``consecutive`` (1, 2, ...) of a streak."""
    if consecutive < 1:
        return 0.0
    return float(backoff_delay(consecutive - 1, initial=initial, maximum=maximum))


@dataclass(slots=True)
class _Entry:
    name: str
    factory: TaskFactory
    task: asyncio.Task[None] | None = None
    state: TaskState = TaskState.RUNNING
    streak: int = 0
    last_error: str | None = None
    last_alert_at: float = float("-inf")
    unalerted: int = 0  # crashes since the last alert, not alerted (the pace)


class Supervisor:
    """Runs named coroutines and restarts them when they crash. One per monitor."""

    def __init__(self, *, history: History | None = None, clock: Clock | None = None,
                 alerts: Alerter | None = None, speed: float = 1.0, initial: float = 1.0,
                 maximum: float = 60.0, healthy_after: float = 30.0,
                 alert_every: float = 60.0) -> None:
        self.history = history or NullHistory()
        self.clock = clock or SystemClock()
        self.alerts = alerts
        self.speed = speed
        self.initial = initial
        self.maximum = maximum
        self.healthy_after = healthy_after
        self.alert_every = alert_every
        self.restarts: Counter[str] = Counter()
        self._entries: dict[str, _Entry] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self._stopping = False  # stop() began: nothing is restarted any more

    def spawn(self, name: str, factory: TaskFactory) -> asyncio.Task[None]:
        """Start ``factory()`` under supervision. ``name`` must be unique while running."""
        old = self._entries.get(name)
        if old is not None and old.task is not None and not old.task.done():
            raise ValueError(f"task {name!r} is already running")
        entry = _Entry(name, factory)
        entry.task = asyncio.create_task(self._guard(entry), name=name)
        self._entries[name] = entry
        return entry.task

    async def cancel(self, name: str, timeout: float = 10.0) -> None:
        """Stop one task (cancel it and wait for it, ``timeout`` seconds at most: one
        that goes on running is told as an error and is ``stuck``)."""
        entry = self._entries.get(name)
        if entry is None or entry.task is None:
            return
        entry.task.cancel()
        # asyncio.wait, not wait_for: wait_for waits for the cancelled task to end, for
        # ever for one that catches CancelledError and runs on (and a cancel of the
        # caller was swallowed)
        await asyncio.wait({entry.task}, timeout=timeout)
        if entry.task.done():
            entry.state = TaskState.STOPPED
        else:
            self._stuck([entry], timeout)

    def cancel_all(self) -> list[asyncio.Task[Any]]:
        """Cancel every task, restart none, and return them, not waiting (a kill)."""
        self._stopping = True
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for t in tasks:
            t.cancel()
        return tasks

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel every task and wait for them."""
        self._stopping = True
        tasks = {e.task for e in self._entries.values() if e.task is not None}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while tasks and (left := deadline - loop.time()) > 0:
            # again while one runs: a cancel can be lost (Python 3.11's asyncio.wait_for
            # returns the result of an awaitable that finished in the cancel's loop turn),
            # and the task went on running on a monitor that had stopped
            for t in tasks:
                t.cancel()
            _, tasks = await asyncio.wait(tasks, timeout=min(left, 1.0))
        for e in self._entries.values():
            if e.state is not TaskState.DONE:
                e.state = TaskState.STOPPED
        self._stuck([e for e in self._entries.values() if e.task in tasks], timeout)
        if self._bg:
            await asyncio.wait(set(self._bg), timeout=5.0)

    def _stuck(self, entries: list[_Entry], timeout: float) -> None:
        """Tasks still running ``timeout`` s after their cancel: an error and a history
        row each (they were marked ``stopped``, and said nothing)."""
        for e in entries:
            e.state = TaskState.STUCK
            log.error("task %s did not stop within %.1f s of its cancel: it is still "
                      "running (it catches the cancel)", e.name, timeout)
            self.history.record("task_stuck", task=e.name, timeout_s=timeout)

    def alive(self) -> dict[str, bool]:
        """Task name -> running right now (a crashed task waiting to restart is not)."""
        return {n: e.state is TaskState.RUNNING for n, e in self._entries.items()
                if e.state is not TaskState.DONE and e.state is not TaskState.STOPPED
                and e.state is not TaskState.STUCK}

    def all_alive(self) -> bool:
        return all(self.alive().values())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per task: state, restarts, last error (for the history and ``/readyz``)."""
        return {n: {"state": e.state.value, "restarts": self.restarts[n],
                    "last_error": e.last_error} for n, e in self._entries.items()}

    async def _guard(self, entry: _Entry) -> None:
        while True:
            entry.state = TaskState.RUNNING
            started = self.clock.now()
            try:
                await entry.factory()
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is None or task.cancelling():  # stop() / cancel(): a real stop
                    entry.state = TaskState.STOPPED
                    raise
                # nobody cancelled this task: a sub-task's cancellation it awaited came
                # through. As a stop it ended the task for good, silently, and out of
                # alive(); it is a crash like any other
                await self._crashed(entry, started, exc)
                continue
            except Exception as exc:  # the point of a supervisor
                if self._stopping:  # it failed on its way out (its cancel lost): stopped
                    entry.state = TaskState.STOPPED
                    return
                await self._crashed(entry, started, exc)
                continue
            entry.state = TaskState.DONE
            return

    async def _crashed(self, entry: _Entry, started: float, exc: BaseException) -> None:
        """Count, log, record and alert one crash of ``entry``; wait out its backoff."""
        now = self.clock.now()
        if now - started >= self.healthy_after / self.speed:
            entry.streak = 0
        entry.streak += 1
        self.restarts[entry.name] += 1
        stray = isinstance(exc, asyncio.CancelledError)
        entry.last_error = _STRAY_CANCEL if stray else redact(f"{type(exc).__name__}: {exc}")[:300]
        entry.state = TaskState.RESTARTING
        delay = crash_delay(entry.streak, initial=self.initial,
                            maximum=self.maximum) / self.speed
        log.error("task %s crashed (%s); restart %d in %.2fs", entry.name,
                  entry.last_error, self.restarts[entry.name], delay, exc_info=exc)
        self.history.record("task_crash", task=entry.name, error=type(exc).__name__,
                            reason=entry.last_error,
                            restarts=self.restarts[entry.name])
        self._alert(entry, now)
        await asyncio.sleep(delay)

    def _alert(self, entry: _Entry, now: float) -> None:
        if self.alerts is None:
            return
        # the pace holds across streaks: a task that crashed after each healthy spell
        # began a new streak every time, and every crash was an alert
        if now - entry.last_alert_at < self.alert_every / self.speed:
            entry.unalerted += 1
            return
        entry.last_alert_at = now
        more = (f"; {entry.unalerted} more crashes since the last alert"
                if entry.unalerted else "")
        entry.unalerted = 0
        text = (f"monitor task {entry.name} crashed ({entry.last_error}); restarting "
                f"(restart {self.restarts[entry.name]}{more})")
        task = asyncio.create_task(self._send(text), name=f"alert-{entry.name}")
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _send(self, text: str) -> None:
        assert self.alerts is not None
        try:
            await self.alerts.send("task_crash", text)
        except Exception as exc:  # an Alerter must not raise; be safe anyway
            log.warning("alert failed: %s", redact(str(exc)))
