"""Virtual units' workers are forks of a server that imported their modules once
(experiments.matrix._unit_context): a spawned worker imported the run's modules again
for every unit (~1.5-1.7 CPU s each, of 100 seed-days). A worker still sees the runner's
environment as it is when the pool starts (a spawned one did), and ends with the runner."""

from __future__ import annotations

import concurrent.futures
import os
import sys
from typing import Any

import pytest

from experiments import matrix

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="the fork server is Linux's here")]


def _what_the_worker_has() -> dict[str, Any]:
    from experiments import virtual

    return {"preloaded": [m for m in matrix.UNIT_PRELOAD if m not in sys.modules],
            "ppid": os.getppid(), "env": os.environ.get("H16_UNIT_ENV"),
            "noop_cycles": virtual.NOOP_CYCLES}


def test_a_unit_worker_is_a_fork_of_a_server_with_its_modules(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, server = matrix._unit_context()
    assert ctx.get_start_method() == "forkserver" and server is not None
    # set after the server started: the worker has it all the same, as a spawned one had
    monkeypatch.setenv("H16_UNIT_ENV", "seen")
    monkeypatch.setenv("EXPERIMENTS_NOOP_CYCLES", "3")
    with concurrent.futures.ProcessPoolExecutor(
            1, mp_context=ctx, max_tasks_per_child=1, initializer=matrix._unit_worker_start,
            initargs=(server, os.getpid(), dict(os.environ))) as pool:
        got = [pool.submit(_what_the_worker_has).result(timeout=120) for _ in range(2)]
    for one in got:
        assert one["preloaded"] == []  # none left to import
        assert one["ppid"] == server
        assert one["env"] == "seen" and one["noop_cycles"] == 3
