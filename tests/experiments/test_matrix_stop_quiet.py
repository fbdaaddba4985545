"""An interrupted matrix (SIGTERM, Ctrl-C) terminates its pool's workers under the pool's
manager thread, which then ended with ``OSError: handle is closed`` printed as a ~30-line
traceback of Python's concurrent.futures after "interrupted" (a chaos hunt stopped by
``timeout``). A stopped pool's manager thread now ends with one debug line; any other
thread's exception still reaches the hook installed before."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from experiments import matrix


def _fail_in(thread_name: str, exc: BaseException) -> threading.Thread:
    def boom() -> None:
        raise exc
    t = threading.Thread(target=boom, name=thread_name)
    return t


def test_a_stopped_pools_manager_thread_ends_quietly(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    seen: list[str] = []

    def before(args: Any) -> None:
        seen.append(f"{args.thread.name}: {args.exc_value}")
    monkeypatch.setattr(threading, "excepthook", before)
    monkeypatch.setattr(matrix, "_STOPPED_MANAGERS", set())
    manager = _fail_in("manager", OSError("handle is closed"))
    matrix._quiet_when_stopped(manager)
    matrix._quiet_when_stopped(manager)  # (a second stop: one hook)
    other = _fail_in("other", RuntimeError("a real failure"))
    manager.start()
    manager.join()
    other.start()
    other.join()
    assert seen == ["other: a real failure"]
    assert "handle is closed" not in capsys.readouterr().err
