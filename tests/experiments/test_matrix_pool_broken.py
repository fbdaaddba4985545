"""A worker pool whose manager thread could not start a worker (the fork server's socket
folder, ``/tmp/pymp-*``, deleted under a long run) left its units pending for ever: the
matrix waited with no progress and no error. :func:`experiments.matrix.collect` says so."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Any

import pytest

from experiments.matrix import collect
from experiments.runner import HarnessError


def _square(x: int) -> int:
    return x * x


_SPAWN = multiprocessing.get_context("spawn")
_STARTS = {"n": 0, "ok": 1}


class _FailingProcess(_SPAWN.Process):  # type: ignore[name-defined,misc]
    """A ``spawn`` process that fails to start after the first ``_STARTS["ok"]``, as a
    fork server whose socket is gone fails them."""

    def start(self) -> None:
        _STARTS["n"] += 1
        if _STARTS["n"] > _STARTS["ok"]:
            raise FileNotFoundError(2, "No such file or directory")
        super().start()


class _FailingStarts:
    """The ``spawn`` context, its processes :class:`_FailingProcess`."""

    Process = _FailingProcess

    def __getattr__(self, name: str) -> Any:
        return getattr(_SPAWN, name)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_pool_that_cannot_start_its_workers_is_said_not_waited_for() -> None:
    _STARTS.update(n=0, ok=1)
    ctx = _FailingStarts()
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx,  # type: ignore[arg-type]
                                                  max_tasks_per_child=1)
    try:
        futures = [pool.submit(_square, n) for n in range(3)]
        done: list[int] = []
        with pytest.raises(HarnessError, match="worker pool stopped with"):
            collect(pool, futures, lambda f: done.append(f.result()), check_s=0.2)
        assert done == [0]  # the unit its one worker ran, then the starts failed
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def test_a_healthy_pool_is_collected_whole() -> None:
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=2, mp_context=multiprocessing.get_context("spawn"),
            max_tasks_per_child=1) as pool:
        futures = [pool.submit(_square, n) for n in range(4)]
        done: list[int] = []
        collect(pool, futures, lambda f: done.append(f.result()), check_s=0.2)
    assert sorted(done) == [0, 1, 4, 9]
