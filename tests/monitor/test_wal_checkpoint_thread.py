"""In real time the outbox round's WAL checkpoint runs on a worker thread, through a second
connection, while the event loop goes on committing live batches.

On the loop, the checkpoint's copy of ~2,000 rows' pages and its fsync held every task for
its whole length (~10 ms at 100,000 wallets on a loaded machine): the trades that arrived
meanwhile waited behind it. Under a virtual clock it stays on the loop (a thread would let
the clock jump while it works): ``Pipeline(checkpoint_in_thread=False)``, the default."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled
from test_reliability import settings
from test_wal_checkpoint import wal_frames

from monitor.clock import Clock, LoopClock
from monitor.errors import StoreError
from monitor.pipeline import Pipeline
from monitor.sinks import MemorySink
from monitor.store import CHECKPOINT_ROWS, Store
from monitor.wallet_monitor import WalletMonitor

_WAIT_S = 30.0  # generous: a loaded machine


def _batch(start: int, n: int = 200) -> list[dict[str, object]]:
    return [order_filled(block=100 + (start + i) // 50, tx=start + i + 1) for i in range(n)]


class _Gate:
    """Wraps the worker's checkpoint: says when it started, on which thread, and holds it
    until released."""

    def __init__(self, store: Store, fail: bool = False) -> None:
        self.real = store._checkpoint_on_second_connection
        self.started = threading.Event()
        self.release = threading.Event()
        self.thread: int | None = None
        self.fail = fail
        store._checkpoint_on_second_connection = self  # type: ignore[method-assign]

    def __call__(self) -> None:
        self.thread = threading.get_ident()
        self.started.set()
        if not self.release.wait(_WAIT_S):
            raise AssertionError("never released")
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")
        self.real()


async def _until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, _WAIT_S), "the worker never started"


def test_the_checkpoint_runs_on_a_worker_while_the_loop_commits_live_batches(
        tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = Store(db)
    pipeline = Pipeline(store, MemorySink(), wallets={WALLET}, checkpoint_in_thread=True)
    gate = _Gate(store)

    async def go() -> tuple[int, int, int]:
        done = 0
        while done <= CHECKPOINT_ROWS:  # ~3 rows a trade: well past the round's bound
            await pipeline.on_logs(_batch(done), "ws")
            done += 200
        frames = wal_frames(db)
        round_ = asyncio.create_task(pipeline.redeliver())
        await _until(gate.started)
        # the checkpoint is under way on its thread: the loop is free, a live batch commits
        delivered = len(pipeline.sink.events)  # type: ignore[attr-defined]
        await pipeline.on_logs(_batch(done), "ws")
        assert len(pipeline.sink.events) == delivered + 200  # type: ignore[attr-defined]
        assert not round_.done()
        gate.release.set()
        await asyncio.wait_for(round_, _WAIT_S)
        # the next write starts the WAL over: every frame was copied back
        await pipeline.on_logs(_batch(done + 200), "ws")
        return frames, wal_frames(db), threading.get_ident()

    try:
        frames, after, loop_thread = asyncio.run(go())
        assert gate.thread is not None and gate.thread != loop_thread
        assert pipeline.counters["wal_checkpoints"] == 1
        assert store.last_checkpoint is not None
        busy, log_frames, copied = store.last_checkpoint
        assert busy == 0 and log_frames >= frames and copied == log_frames, store.last_checkpoint
        assert after < frames / 4, (after, frames)
        assert store.checkpoint_if_due() is False  # counted as done
    finally:
        store.close()
    assert store._ckpt_db is None  # the second connection closed with the store


def test_no_second_checkpoint_starts_while_a_cancelled_ones_thread_still_works(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, MemorySink(), wallets={WALLET}, checkpoint_in_thread=True)
    gate = _Gate(store)

    async def go() -> tuple[bool, bool, bool]:
        await pipeline.on_logs(_batch(0, 50), "ws")
        first = asyncio.create_task(store.checkpoint_in_thread(rows=0))
        await _until(gate.started)
        first.cancel()  # the monitor stopping: its outbox round cancelled
        with pytest.raises(asyncio.CancelledError):
            await first
        again = await store.checkpoint_in_thread(rows=0)  # the thread still copies
        inline = store._checkpointing
        gate.release.set()
        while store._checkpointing:  # the worker's end resets it
            await asyncio.sleep(0.01)
        return again, inline, await asyncio.wait_for(store.checkpoint_in_thread(rows=0),
                                                     _WAIT_S)

    try:
        again, flagged, later = asyncio.run(go())
    finally:
        store.close()
    assert again is False and flagged is True
    assert later is True


def test_a_failed_checkpoint_is_a_store_error_and_the_next_one_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, MemorySink(), wallets={WALLET}, checkpoint_in_thread=True)
    gate = _Gate(store, fail=True)
    gate.release.set()

    async def go() -> bool:
        await pipeline.on_logs(_batch(0, 50), "ws")
        with pytest.raises(StoreError, match="checkpoint failed: disk I/O error"):
            await store.checkpoint_in_thread(rows=0)
        gate.fail = False
        return await store.checkpoint_in_thread(rows=0)

    try:
        assert asyncio.run(go()) is True
    finally:
        store.close()


def test_a_closed_store_opens_no_connection_for_a_late_worker(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.close()
    store._checkpoint_on_second_connection()  # a worker that started after the close
    assert store._ckpt_db is None and store.last_checkpoint is None


def test_a_store_in_memory_checkpoints_inline(tmp_path: Path) -> None:
    store = Store(":memory:")
    try:
        assert asyncio.run(store.checkpoint_in_thread(rows=0)) in (True, False)
        assert store._ckpt_db is None
    finally:
        store.close()


def test_the_monitor_checkpoints_on_a_thread_in_real_time_only(tmp_path: Path) -> None:
    """The wiring: ``WalletMonitor`` asks for the thread with the system clock (its
    default), never with another (a virtual run's ``LoopClock``, a test's clock)."""

    async def go(clock: Clock | None, sub: str) -> bool:
        async with HostileNode() as node:
            node.head = 100
            mon = WalletMonitor(settings(node, tmp_path / sub), sink=MemorySink(),
                                clock=clock)
            await mon.start()
            try:
                assert mon.pipeline is not None
                return mon.pipeline.checkpoint_in_thread
            finally:
                await mon.stop()

    assert asyncio.run(asyncio.wait_for(go(None, "real"), 4 * _WAIT_S)) is True
    assert asyncio.run(asyncio.wait_for(go(LoopClock(), "virtual"), 4 * _WAIT_S)) is False
