"""CallbackSink: each event reaches the bot's callback once, and an event whose callback may
have acted before a crash comes again marked ``uncertain``, never silently twice."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from monitor.sinks import CallbackSink, SinkEvent


def _event(tid: str, generation: int = 1) -> SinkEvent:
    return SinkEvent("retraction", tid, generation, "ws", "0x" + "ab" * 32)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.fail_next = False

    async def __call__(self, event: SinkEvent) -> None:
        self.calls.append((event.key, event.uncertain))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("executor said no")


def test_an_event_is_passed_once_and_a_failed_one_comes_again_as_uncertain() -> None:
    rec = _Recorder()
    sink = CallbackSink(rec)

    async def go() -> None:
        await sink.emit(_event("a"))
        await sink.emit(_event("a"))
        rec.fail_next = True
        with pytest.raises(RuntimeError):
            await sink.emit(_event("b"))
        await sink.emit(_event("b"))  # the outbox retries it
        await sink.emit(_event("b"))
        await sink.emit(_event("a", 2))  # a new generation is a new event

    asyncio.run(go())
    assert rec.calls == [("retraction:a:1", False), ("retraction:b:1", False),
                         ("retraction:b:1", True), ("retraction:a:2", False)]


def test_across_a_crash_done_keys_are_skipped_and_a_started_one_is_uncertain(
        tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    rec = _Recorder()

    async def first_life() -> None:
        inside = asyncio.Event()

        async def hangs(event: SinkEvent) -> None:
            await rec(event)
            if event.trade_id == "hang":
                inside.set()
                await asyncio.Event().wait()  # the process dies in here

        sink = CallbackSink(hangs, keys_db=db)
        await sink.emit(_event("done"))
        task = asyncio.ensure_future(sink.emit(_event("hang")))
        await inside.wait()
        task.cancel()  # nothing after the callback's start runs: as a SIGKILL
        with pytest.raises(asyncio.CancelledError):
            await task
        # no close(): the process is gone

    async def second_life() -> None:
        sink = CallbackSink(rec, keys_db=db)
        for tid in ("done", "hang", "new", "hang"):
            await sink.emit(_event(tid))
        sink.close()

    asyncio.run(first_life())
    asyncio.run(second_life())
    assert rec.calls == [("retraction:done:1", False), ("retraction:hang:1", False),
                         ("retraction:hang:1", True), ("retraction:new:1", False)]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM started").fetchone() == (0,)


def test_a_keys_file_from_before_the_started_table_is_read(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE sent (key TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO sent VALUES ('retraction:old:1')")
    rec = _Recorder()

    async def go() -> None:
        sink = CallbackSink(rec, keys_db=db)
        await sink.emit(_event("old"))
        await sink.emit(_event("fresh"))
        sink.close()

    asyncio.run(go())
    assert rec.calls == [("retraction:fresh:1", False)]


def test_the_keys_held_in_memory_are_bounded_and_the_file_answers_for_the_rest(
        tmp_path: Path) -> None:
    rec = _Recorder()
    sink = CallbackSink(rec, keys_db=tmp_path / "keys.db", remember=10)

    async def go() -> None:
        for i in range(25):
            await sink.emit(_event(f"t{i}"))
        assert len(sink._done) < 10
        for i in range(25):
            await sink.emit(_event(f"t{i}"))

    asyncio.run(go())
    sink.close()
    assert len(rec.calls) == 25
