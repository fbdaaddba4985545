"""experiments.matrix._stop_pool (a Ctrl-C of a virtual run with --jobs > 1) racing
the pool's own manager thread: with ``max_tasks_per_child=1`` that thread replaces the
worker of every finished unit. Stopped just as a unit finished, it replaced it anyway
(a worker started as the run was stopped, missed by the stop) or found the pool's
processes gone and printed 'Exception in thread ... TypeError: object of type
NoneType has no len()' on the terminal (seen at a Ctrl-C of experiments run)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
from typing import Any

import psutil

from experiments.matrix import _stop_pool
from experiments.orphans import die_with_parent


def _quick(x: int) -> int:
    return x


def test_a_pool_stopped_as_a_unit_finishes_starts_no_worker_and_raises_nothing() -> None:
    errors: list[Any] = []
    before_hook = threading.excepthook
    threading.excepthook = errors.append
    try:
        for _ in range(5):
            pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1,
                initializer=die_with_parent, initargs=(os.getpid(),))
            futures = [pool.submit(_quick, i) for i in range(3)]
            futures[0].result(timeout=120)
            _stop_pool(pool)  # the manager thread is joining the worker that ended
            manager = getattr(pool, "_executor_manager_thread", None)
            if manager is not None:
                manager.join(60)
            for t in threading.enumerate():
                if "ExecutorManagerThread" in type(t).__name__:
                    t.join(60)
            left = [p for p in psutil.Process().children(recursive=True)
                    if not any(helper in " ".join(p.cmdline())
                               for helper in ("resource_tracker", "forkserver"))]
            _gone, alive = psutil.wait_procs(left, timeout=30)
            assert alive == [], [p.cmdline() for p in alive]
    finally:
        threading.excepthook = before_hook
    assert errors == [], [repr(e.exc_value) for e in errors]
