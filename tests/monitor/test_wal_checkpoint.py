"""The state DB's WAL is checkpointed between batches, never inside a live batch's commit.

SQLite's automatic checkpoint (at 1,000 WAL pages) ran in whichever commit crossed it: a
live batch's, so the trades of one busy block in about fifteen waited for the copy of the
whole WAL into the database (the 100,000-wallet point's p99, docs/BENCHMARKS.md). The
store turns it off; the monitor's outbox round (``Pipeline.redeliver``, every 5 s) runs
it once enough rows were written, and a commit only past a hard bound."""

from __future__ import annotations

import asyncio
import itertools
import struct
from pathlib import Path

import pytest
from monitor_helpers import WALLET, order_filled

from monitor import store as store_module
from monitor.pipeline import Pipeline
from monitor.sinks import MemorySink
from monitor.store import CHECKPOINT_ROWS, Store


def wal_frames(db: Path) -> int:
    """Frames of the current WAL generation (those whose salts match the header's): what
    a checkpoint has not reset yet. Read from the file, without checkpointing it."""
    wal = Path(f"{db}-wal")
    if not wal.exists():
        return 0
    data = wal.read_bytes()
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    n, off = 0, 32
    while off + 24 + page_size <= len(data) and data[off + 8:off + 16] == salts:
        n += 1
        off += 24 + page_size
    return n


def _batch(start: int, n: int = 200) -> list[dict[str, object]]:
    return [order_filled(block=100 + (start + i) // 50, tx=start + i + 1) for i in range(n)]


def test_the_store_leaves_checkpoints_to_the_monitor(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert store.checkpoint_if_due() is False  # nothing written
    finally:
        store.close()


def test_live_batches_never_checkpoint_and_the_outbox_round_does(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    pipeline = Pipeline(Store(db), MemorySink(), wallets={WALLET})

    async def go() -> tuple[int, int, int]:
        frames, done = 0, 0
        while frames <= 1_200 and done < 40_000:  # past SQLite's automatic 1,000 pages
            await pipeline.on_logs(_batch(done), "ws")
            done += 200
            frames = wal_frames(db)
        before = pipeline.counters["wal_checkpoints"]
        await pipeline.redeliver()
        # the next write starts the WAL over: the checkpoint copied every frame back
        await pipeline.on_logs(_batch(done), "ws")
        return frames, before, wal_frames(db)

    try:
        frames, before, after = asyncio.run(go())
    finally:
        pipeline.store.close()
    # before: SQLite checkpointed inside the commit that crossed 1,000 pages, and the WAL
    # started over at the next batch: never more than ~1,000 + one batch's frames
    assert frames > 1_200, frames
    assert before == 0 and pipeline.counters["wal_checkpoints"] == 1
    assert after < frames / 4, (after, frames)


def test_a_commit_checkpoints_past_the_hard_bound(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No outbox round (a monitor whose round is stuck): the WAL still stays bounded."""
    monkeypatch.setattr(store_module, "CHECKPOINT_HARD_ROWS", 300)
    db = tmp_path / "s.db"
    pipeline = Pipeline(Store(db), MemorySink(), wallets={WALLET})

    async def go() -> list[int]:
        seen = []
        for i in range(6):
            await pipeline.on_logs(_batch(i * 200), "ws")
            seen.append(wal_frames(db))
        return seen

    try:
        seen = asyncio.run(go())
    finally:
        pipeline.store.close()
    assert any(b < a for a, b in itertools.pairwise(seen)), seen  # started over


def test_checkpoint_if_due_counts_rows_written(tmp_path: Path) -> None:
    pipeline = Pipeline(Store(tmp_path / "s.db"), MemorySink(), wallets={WALLET})
    store = pipeline.store
    try:
        asyncio.run(pipeline.on_logs(_batch(0, 100), "ws"))
        assert store.checkpoint_if_due() is False  # ~200 rows < CHECKPOINT_ROWS
        assert store.checkpoint_if_due(rows=100) is True
        assert store.checkpoint_if_due(rows=100) is False  # nothing since
        assert CHECKPOINT_ROWS >= 1_000
    finally:
        store.close()
