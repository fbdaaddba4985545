"""CallbackSink with the pipeline: each event reaches the bot's callback once; an event that
may have reached it before (the process died inside the callback, or the callback raised)
comes again marked ``uncertain``, never silently twice."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
from monitor_helpers import WALLET, order_filled

from monitor.pipeline import Pipeline
from monitor.sinks import CallbackSink, SinkEvent
from monitor.store import Store


class _Executor:
    """Records (key, uncertain) of each call; raises on a chosen call, or hangs inside it
    (where a SIGKILL would find the process)."""

    def __init__(self, raise_on: int | None = None, hang_on: int | None = None) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.raise_on = raise_on
        self.hang_on = hang_on
        self.inside = asyncio.Event()

    async def __call__(self, event: SinkEvent) -> None:
        self.calls.append((event.key, event.uncertain))
        if len(self.calls) == self.raise_on:
            raise RuntimeError("executor said no")
        if len(self.calls) == self.hang_on:
            self.inside.set()
            await asyncio.Event().wait()


def _logs(n: int) -> list[dict[str, object]]:
    return [order_filled(tx=i) for i in range(1, n + 1)]


def test_an_event_whose_callback_raised_comes_again_uncertain_and_only_it(
        tmp_path: Path) -> None:
    ex = _Executor(raise_on=2)
    p = Pipeline(Store(tmp_path / "s.db"), CallbackSink(ex), wallets=[WALLET])

    async def go() -> None:
        await p.on_logs(_logs(3), "ws")  # 1 ok, 2 raises, 3 waits behind it
        assert p.sink_failing
        await p.redeliver()
        await p.redeliver()

    asyncio.run(go())
    keys = [k for k, _ in ex.calls]
    assert keys[0] != keys[1] and keys[1] == keys[2] and len(set(keys)) == 3
    assert [u for _, u in ex.calls] == [False, False, True, False]


def test_after_a_crash_inside_the_callback_the_outbox_events_come_again_uncertain(
        tmp_path: Path) -> None:
    db, keys_db = tmp_path / "s.db", tmp_path / "keys.db"
    first = _Executor(hang_on=2)

    async def first_life() -> None:
        p = Pipeline(Store(db), CallbackSink(first, keys_db=keys_db), wallets=[WALLET])
        task = asyncio.ensure_future(p.on_logs(_logs(3), "ws"))
        await first.inside.wait()
        task.cancel()  # nothing after the 2nd callback's start runs: as a SIGKILL
        with pytest.raises(asyncio.CancelledError):
            await task
        # no close(): the process is gone

    second = _Executor()

    async def second_life() -> None:
        p = Pipeline(Store(db), CallbackSink(second, keys_db=keys_db), wallets=[WALLET])
        assert await p.recover() == 3
        await p.on_logs(_logs(4), "ws")  # the chain again, plus one new trade

    asyncio.run(first_life())
    asyncio.run(second_life())
    done, hung = first.calls[0][0], first.calls[1][0]
    # the finished one never again; the one it died inside, and the one never tried, come
    # marked uncertain (the executor looks them up); the new trade comes plainly
    assert done not in [k for k, _ in second.calls]
    assert [(k, u) for k, u in second.calls if k == hung] == [(hung, True)]
    assert len(second.calls) == 3
    assert second.calls[-1][1] is False
    assert all(u for _, u in second.calls[:-1])
    with sqlite3.connect(keys_db) as conn:
        assert conn.execute("SELECT count(*) FROM sent").fetchone() == (4,)


def test_the_keys_held_in_memory_are_bounded_and_the_file_answers_for_the_rest(
        tmp_path: Path) -> None:
    calls: list[str] = []

    async def cb(event: SinkEvent) -> None:
        calls.append(event.key)

    sink = CallbackSink(cb, keys_db=tmp_path / "keys.db", remember=10)

    async def go() -> None:
        for _ in range(2):
            for i in range(25):
                await sink.emit(SinkEvent("retraction", f"t{i}", 1, "ws", "0x00"))
        assert len(sink._keys) <= 10

    asyncio.run(go())
    sink.close()
    assert len(calls) == 25


def test_the_keys_file_is_created_private(tmp_path: Path) -> None:
    """It was 0644 under umask 022: it names the trades the bot acted on."""
    import os

    async def cb(event: SinkEvent) -> None:
        pass

    old = os.umask(0o022)
    try:
        CallbackSink(cb, keys_db=tmp_path / "sub" / "keys.db").close()
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "keys.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("content", [b"not a database at all, " * 200,
                                     "CREATE TABLE sent (other TEXT)"])
def test_a_damaged_keys_file_is_a_sink_error_naming_it(tmp_path: Path,
                                                       content: bytes | str) -> None:
    """Was a raw sqlite3 traceback."""
    from monitor.sinks import SinkError

    keys = tmp_path / "keys.db"
    if isinstance(content, bytes):
        keys.write_bytes(content)
    else:
        with contextlib.closing(sqlite3.connect(keys)) as conn:
            conn.execute(content)
            conn.commit()

    async def cb(event: SinkEvent) -> None:
        pass

    with pytest.raises(SinkError, match=r"keys_db .*keys\.db: "):
        CallbackSink(cb, keys_db=keys)
