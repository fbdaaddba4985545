"""SQLite state, the JSON-lines sink and the delivery pipeline: exactly once across crashes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fs_helpers import read_only
from monitor_helpers import OTHER, WALLET, order_filled
from monitor_sim import ROOT

from monitor.cores import Deduplicator
from monitor.errors import StoreError
from monitor.history import History
from monitor.pipeline import Pipeline
from monitor.sinks import JsonlSink, MemorySink, SinkEvent
from monitor.store import SCHEMA_VERSION, Store
from monitor.trades import decode_order_filled


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cursor_per_wallet_round_trips(tmp_path: Path) -> None:
    s = Store(tmp_path / "m.db")
    assert s.cursor(WALLET) is None
    s.set_cursors([WALLET, OTHER], 10, "0xaa", "websocket")
    s.set_cursors([OTHER], 12, "0xbb", "polling")
    s.close()
    s = Store(tmp_path / "m.db")
    c = s.cursors()
    assert (c[WALLET].block, c[WALLET].hash, c[WALLET].group) == (10, "0xaa", "websocket")
    assert (c[OTHER].block, c[OTHER].group) == (12, "polling")


def test_block_hashes_keep_a_window(tmp_path: Path) -> None:
    s = Store(tmp_path / "m.db", keep_blocks=4)
    s.save_blocks({n: f"0x{n}" for n in range(1, 11)})
    assert sorted(s.blocks()) == [7, 8, 9, 10]


def test_cursors_and_block_hashes_commit_together_or_not_at_all(tmp_path: Path) -> None:
    s = Store(tmp_path / "m.db", keep_blocks=4)
    s.set_cursors([WALLET], 10, "0xaa", "websocket", blocks={n: f"0x{n}" for n in range(1, 11)})
    assert sorted(s.blocks()) == [7, 8, 9, 10] and s.cursor(WALLET).block == 10  # type: ignore[union-attr]
    with pytest.raises(StoreError):  # a hash SQLite cannot bind: the cursor stays too
        s.set_cursors([WALLET], 12, "0xbb", "websocket", blocks={12: object()})  # type: ignore[dict-item]
    assert s.cursor(WALLET).block == 10 and 12 not in s.blocks()  # type: ignore[union-attr]


def test_block_hashes_already_held_are_not_written_again(tmp_path: Path) -> None:
    """The sync saves the ~128 hashes it tracks every 30 s: only the ones the table does not
    hold as given are written (a reopened store knows what the file holds); a transaction
    that fails leaves what the store believes the table holds as it was."""
    s = Store(tmp_path / "m.db", keep_blocks=8)
    s.save_blocks({n: f"0x{n}" for n in range(1, 6)})
    before = s._db.total_changes
    s.set_cursors([WALLET], 5, "0x5", "websocket", blocks={n: f"0x{n}" for n in range(1, 6)})
    assert s._db.total_changes - before == 1  # the cursor's row only
    before = s._db.total_changes
    s.save_blocks({4: "0x4", 5: "0xfive", 6: "0x6"})  # one changed, one new
    assert s._db.total_changes - before == 2
    assert s.blocks() == {1: "0x1", 2: "0x2", 3: "0x3", 4: "0x4", 5: "0xfive", 6: "0x6"}
    with pytest.raises(StoreError):  # rolled back: 3's new hash is not in the table
        s.set_cursors([WALLET], 7, "0x7", "websocket",
                      blocks={3: "0xthree", 7: object()})  # type: ignore[dict-item]
    s.save_blocks({3: "0x3"})
    assert s.blocks()[3] == "0x3"
    s.save_blocks({3: "0xthree"})  # so this one is written
    assert s.blocks()[3] == "0xthree"
    s.save_blocks({12: "0x12"})  # the window moves: 1..4 go, and are forgotten
    assert sorted(s.blocks()) == [5, 6, 12]
    before = s._db.total_changes
    s.save_blocks({4: "0x4", 12: "0x12"})  # below the window: dropped as it is written
    assert sorted(s.blocks()) == [5, 6, 12] and s._db.total_changes - before == 2
    s.close()
    s = Store(tmp_path / "m.db", keep_blocks=8)
    before = s._db.total_changes
    s.save_blocks({5: "0xfive", 6: "0x6", 12: "0x12"})
    assert s._db.total_changes == before and sorted(s.blocks()) == [5, 6, 12]


def test_commit_then_crash_before_mark_is_redelivered_once(tmp_path: Path) -> None:
    """kill -9 between 'written to the sink' and 'marked sent': no loss, no duplicate."""
    db, det = tmp_path / "m.db", tmp_path / "det.jsonl"
    trade = decode_order_filled(order_filled(tx=5))
    s = Store(db)
    d = Deduplicator()
    item = s.commit(d.offer(trade.id, trade.block_hash), trade_id=trade.id, source="ws",
                    trade=trade)
    assert item is not None
    sink = JsonlSink(det)
    sink.write(SinkEvent(item.kind, item.trade_id, item.generation, "ws", item.block_hash, trade))
    # crash: neither mark_sent nor a clean close; the file even ends with a torn line
    with open(det, "a") as fh:
        fh.write('{"t_ns": 1, "kind": "tra')
    del sink, s
    s2 = Store(db)
    assert [p.trade_id for p in s2.pending()] == [trade.id]
    p = Pipeline(s2, JsonlSink(det), wallets=[WALLET])
    assert asyncio.run(p.recover()) == 1
    assert s2.pending() == []
    got = rows(det)
    assert [r["trade"]["id"] for r in got] == [trade.id]
    assert got[0]["source"] == "ws" and got[0]["kind"] == "trade"
    # and the restarted dedup state refuses the same trade from another source
    assert asyncio.run(p.on_log(order_filled(tx=5), "backfill")) is None


def test_crash_before_write_delivers_on_restart(tmp_path: Path) -> None:
    db, det = tmp_path / "m.db", tmp_path / "det.jsonl"
    trade = decode_order_filled(order_filled(tx=6))
    s = Store(db)
    s.commit(Deduplicator().offer(trade.id, trade.block_hash), trade_id=trade.id,
             source="poll", trade=trade)
    s.close()
    p = Pipeline(Store(db), JsonlSink(det), wallets=[WALLET])
    asyncio.run(p.recover())
    assert [r["trade"]["id"] for r in rows(det)] == [trade.id]
    assert rows(det)[0]["source"] == "poll"


def test_pipeline_dedups_retracts_and_redelivers(tmp_path: Path) -> None:
    hist = tmp_path / "h.jsonl"
    det = tmp_path / "det.jsonl"
    p = Pipeline(Store(tmp_path / "m.db"), JsonlSink(det), wallets=[WALLET],
                 history=History(hist))

    async def go() -> None:
        a = order_filled(tx=1, block=100)
        assert await p.on_log(a, "ws") is not None
        assert await p.on_log(a, "backfill") is None            # same trade, other source
        await p.on_log(dict(a, removed=True), "ws")              # reorg removes it
        moved = order_filled(tx=1, block=101)                    # re-mined in block 101
        assert await p.on_log(moved, "ws") is not None           # delivered again
        await p.on_log(dict(a, removed=True), "ws")              # stale removed: ignored
        b = order_filled(tx=2, block=100)
        await p.on_log(b, "ws")
        await p.on_log(order_filled(tx=2, block=101), "backfill")  # moved, no retraction
        await p.on_log(order_filled(tx=3, wallet=OTHER), "ws")     # not watched
        await p.on_log({"topics": "garbage"}, "ws")                # decode error
    asyncio.run(go())
    got = rows(det)
    kinds = [(r["kind"], r.get("trade", {}).get("block_number") or r.get("trade_id"))
             for r in got]
    assert kinds == [("trade", 100), ("retraction", got[1]["trade_id"]), ("trade", 101),
                     ("trade", 100)]
    assert p.counters["decode_errors"] == 1 and p.counters["moved"] == 1
    events = [json.loads(line)["event"] for line in hist.read_text().splitlines()]
    assert events.count("delivered") == 3 and events.count("retracted") == 1
    assert events.count("decode_error") == 1
    d = json.loads(hist.read_text().splitlines()[0])
    assert set(d) >= {"t_ns", "event", "trade_id", "source", "block_number", "block_hash"}


def test_one_batch_gives_the_events_and_state_of_one_log_at_a_time(tmp_path: Path) -> None:
    """The store writes a batch with two statements (not two a trade): a batch holding a
    trade, its duplicate, its retraction, its re-mined copy and another trade gives the
    same sink events, outbox order and dedup rows as the logs offered one at a time."""
    a = order_filled(tx=1, block=100)
    logs = [a, dict(a), dict(a, removed=True), order_filled(tx=1, block=101),
            order_filled(tx=2, block=100), order_filled(tx=3, wallet=OTHER),
            order_filled(tx=2, block=101)]

    def run(name: str, batched: bool) -> tuple[list[tuple], list[tuple], list[int]]:
        store, sink = Store(tmp_path / f"{name}.db"), MemorySink()
        p = Pipeline(store, sink, wallets=[WALLET])

        async def go() -> None:
            if batched:
                await p.on_logs(logs, "ws")
            else:
                for entry in logs:
                    await p.on_logs([entry], "ws")
        asyncio.run(go())
        events = [(e.kind, e.trade_id, e.generation, e.block_hash) for e in sink.events]
        state = sorted(store._db.execute(
            "SELECT trade_id, wallet, block_number, block_hash, retracted, deliveries, "
            "retractions FROM delivered"))
        seqs = [r[0] for r in store._db.execute("SELECT seq FROM outbox ORDER BY seq")]
        assert not store.has_pending()
        return events, state, seqs

    one, batch = run("one", False), run("batch", True)
    assert batch == one
    assert [e[0] for e in batch[0]] == ["trade", "retraction", "trade", "trade"]
    assert batch[2] == [1, 2, 3, 4]


def test_jsonl_sink_rows_follow_the_contract(tmp_path: Path) -> None:
    det = tmp_path / "d.jsonl"
    sink = JsonlSink(det, fsync=True)
    trade = decode_order_filled(order_filled())
    assert sink.write(SinkEvent("trade", trade.id, 1, "backfill", trade.block_hash, trade))
    assert not sink.write(SinkEvent("trade", trade.id, 1, "ws", trade.block_hash, trade))
    assert sink.write(SinkEvent("retraction", trade.id, 1, "ws", trade.block_hash))
    sink.close()
    r = rows(det)
    assert set(r[0]) == {"t_ns", "wall_ns", "kind", "source", "trade"}
    assert r[0]["trade"]["id"] == trade.id
    assert r[1] == {"t_ns": r[1]["t_ns"], "wall_ns": r[1]["wall_ns"], "kind": "retraction",
                    "trade_id": trade.id, "block_hash": trade.block_hash}
    # wall_ns is UTC (time.time_ns), beside the monotonic t_ns
    assert abs(r[0]["wall_ns"] - time.time_ns()) < 60 * 10**9
    reopened = JsonlSink(det)
    assert reopened.written("trade", trade.id) == 1
    assert reopened.written("retraction", trade.id) == 1


def test_jsonl_sink_remembers_a_bounded_number_of_ids(tmp_path: Path) -> None:
    """Weeks of trades must not grow the sink's memory: it counts rows for the most recent
    ``remember`` ids only, recent ids stay idempotent, and a reopened file is bounded too."""
    det = tmp_path / "d.jsonl"
    sink = JsonlSink(det, remember=3)
    trades = [decode_order_filled(order_filled(block=100 + i, tx=i + 1)) for i in range(5)]
    for t in trades:
        assert sink.write(SinkEvent("trade", t.id, 1, "ws", t.block_hash, t))
    assert len(sink._counts) == 3
    assert sink.written("trade", trades[-1].id) == 1 and sink.written("trade", trades[0].id) == 0
    newest = trades[-1]
    assert not sink.write(SinkEvent("trade", newest.id, 1, "ws", newest.block_hash, newest))
    sink.close()
    reopened = JsonlSink(det, remember=2)
    assert len(reopened._counts) == 2 and reopened.written("trade", newest.id) == 1
    reopened.close()
    assert len(rows(det)) == 5


def test_a_reopened_sink_reads_only_the_rows_it_remembers(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A week's detections file is 400 MB: it was read whole (then split) at each start.
    Now only the last ``remember`` lines are read, from the back, a line at a time: older
    lines (here a 3 MB garbage line, past the row bound too) are never read, a torn last
    line is still cut, and the counts are those of the recent rows."""
    import monitor.sinks as sinks

    monkeypatch.setattr(sinks, "_CHUNK", 64)  # many chunks: the backward scans' seams
    det = tmp_path / "d.jsonl"
    sink = JsonlSink(det)
    trades = [decode_order_filled(order_filled(block=100 + i, tx=i + 1)) for i in range(6)]
    sink.write(SinkEvent("trade", trades[0].id, 1, "ws", trades[0].block_hash, trades[0]))
    sink.close()
    with open(det, "ab") as fh:
        fh.write(b"x" * (3 << 20) + b"\n")  # old garbage, far from the tail
    sink = JsonlSink(det)
    for t in trades[1:]:
        assert sink.write(SinkEvent("trade", t.id, 1, "ws", t.block_hash, t))
    sink.close()
    with open(det, "ab") as fh:
        fh.write(b'{"kind": "trade", "tr')  # torn
    reopened = JsonlSink(det, remember=3)
    assert reopened.skipped_lines == 0  # the garbage line was never read
    assert [reopened.written("trade", t.id) for t in trades] == [0, 0, 0, 1, 1, 1]
    assert det.read_bytes().endswith(b"\n")  # the torn line was cut
    reopened.close()
    whole = JsonlSink(det, remember=100)  # reaches back past it: one skipped line
    assert whole.skipped_lines == 1
    assert [whole.written("trade", t.id) for t in trades] == [1] * 6
    whole.close()


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_the_backward_line_scans_agree_with_splitting(chunk: int, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.sinks as sinks

    monkeypatch.setattr(sinks, "_CHUNK", chunk)
    for data in (b"", b"a", b"a\n", b"a\nbb\n", b"\n\n", b"a\nbb\nccc", b"x\n" * 9 + b"y"):
        f = tmp_path / "f"
        f.write_bytes(data)
        with open(f, "rb") as fh:
            end = sinks._after_last_newline(fh, len(data))
            assert end == data.rfind(b"\n") + 1
            lines = data[:end].splitlines(keepends=True)
            for n in range(len(lines) + 2):
                start = sinks._start_of_last_lines(fh, end, n)
                want = sum(len(x) for x in lines[:max(0, len(lines) - n)])
                assert start == want, (data, n)


def test_memory_sink_is_idempotent() -> None:
    m = MemorySink()
    e = SinkEvent("retraction", "t", 1, "ws", "0x")
    asyncio.run(m.emit(e))
    asyncio.run(m.emit(e))
    assert len(m.events) == 1


def test_dedup_capacity_bounds_the_ids_in_memory_and_the_sink_window(tmp_path: Path) -> None:
    """The ``dedup_capacity`` setting reaches the detections sink's window, and a pipeline
    with that capacity keeps no more ids in memory while an evicted id is still a duplicate
    (looked up in the store)."""
    from monitor.config import load_settings
    from monitor.wallet_monitor import WalletMonitor

    s = load_settings({"websocket_url": "ws://127.0.0.1:1/", "rpc_url": "http://127.0.0.1:1/",
                       "wallets": [WALLET], "dedup_capacity": 3,
                       "detections_path": str(tmp_path / "det.jsonl"),
                       "state_db": str(tmp_path / "s.db")}, environ={})
    mon = WalletMonitor(s)
    assert isinstance(mon.sink, JsonlSink) and mon.sink._remember == 3
    p = Pipeline(Store(tmp_path / "m.db"), MemorySink(), wallets=[WALLET],
                 dedup_capacity=s.dedup_capacity)

    async def go() -> None:
        for tx in range(1, 11):
            assert await p.on_log(order_filled(tx=tx), "ws") is not None
        assert await p.on_log(order_filled(tx=1), "backfill") is None  # evicted, remembered
    asyncio.run(go())
    assert len(p.dedup) <= 3


def test_standing_in_range_of_many_wallets_scans_the_blocks_once(tmp_path: Path) -> None:
    """Issue 11: a firehose shard's sync asked for its 100,000 wallets' standing trades
    with one scan of the block range per 500 wallets (0.5 s on the event loop for 15 busy
    blocks). Many wallets: one scan, filtered by the wallet set; same answer."""
    store = Store(tmp_path / "s.db")
    pipe = Pipeline(store, MemorySink(), wallets=[WALLET, OTHER])
    logs = [order_filled(block=100 + i, tx=i + 1, wallet=WALLET if i % 2 else OTHER)
            for i in range(10)]
    asyncio.run(pipe.on_logs(logs, "ws"))
    many = [f"0x{i:040x}" for i in range(1, 2000)] + [WALLET]
    selects: list[str] = []
    store._db.set_trace_callback(
        lambda sql: selects.append(sql) if sql.lstrip().upper().startswith("SELECT") else None)
    got = store.standing_in_range(many, 102, 107)
    store._db.set_trace_callback(None)
    assert len(selects) == 1
    want = store.standing_in_range([WALLET], 102, 107)
    assert sorted(got) == sorted(want) and [n for _, n, _ in sorted(want, key=lambda r: r[1])] \
        == [103, 105, 107]


def _dedup_selects(store: Store) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(
        lambda sql: seen.append(sql) if "FROM delivered" in sql else None)
    return seen


def test_ids_are_not_looked_up_while_the_whole_store_is_in_memory(tmp_path: Path) -> None:
    """Issue 11: every new trade id cost one SELECT (a fifth of the pipeline's CPU). While
    the store holds fewer ids than memory keeps, a new id is known absent without SQL."""
    store = Store(tmp_path / "s.db")
    p = Pipeline(store, MemorySink(), wallets=[WALLET], dedup_capacity=100)
    selects = _dedup_selects(store)
    delivered = asyncio.run(p.on_logs([order_filled(tx=n) for n in range(1, 41)], "ws"))
    assert len(delivered) == 40 and selects == []
    # a restart loads them all (40 < 100): still no look-ups, and they are duplicates
    p2 = Pipeline(store, MemorySink(), wallets=[WALLET], dedup_capacity=100)
    selects.clear()
    assert asyncio.run(p2.on_logs([order_filled(tx=n) for n in range(1, 61)], "ws")) \
        == [decode_order_filled(order_filled(tx=n)) for n in range(41, 61)]
    assert selects == []


def test_once_memory_evicts_a_batch_asks_the_store_once(tmp_path: Path) -> None:
    """Past ``dedup_capacity`` ids, a batch's unknown ids are fetched in one query; an
    evicted id is still a duplicate, a retracted one is delivered again."""
    store = Store(tmp_path / "s.db")
    p = Pipeline(store, MemorySink(), wallets=[WALLET], dedup_capacity=5)
    asyncio.run(p.on_logs([order_filled(tx=n) for n in range(1, 21)], "ws"))
    assert len(p.dedup) == 5
    t3 = decode_order_filled(order_filled(tx=3))
    assert asyncio.run(p.retract(t3.id, t3.block_hash))
    for n in range(6, 16):  # push tx 3 out of memory again
        asyncio.run(p.on_logs([order_filled(tx=100 + n)], "ws"))
    selects = _dedup_selects(store)
    batch = [order_filled(tx=n) for n in (1, 2, 3, 4, 21, 22)]
    delivered = asyncio.run(p.on_logs(batch, "ws"))
    assert [t.id for t in delivered] == [decode_order_filled(order_filled(tx=n)).id
                                         for n in (3, 21, 22)]
    assert len(selects) == 1, selects


def test_a_batch_costs_one_commit_its_sent_marks_ride_with_the_next(tmp_path: Path) -> None:
    """Issue 11: each batch was two fsync'd commits (outbox, then "sent"). Now one: the
    marks of a batch are written in the next batch's transaction."""
    store = Store(tmp_path / "s.db")
    p = Pipeline(store, MemorySink(), wallets=[WALLET])
    commits: list[str] = []
    store._db.set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    for b in range(3):
        asyncio.run(p.on_logs([order_filled(tx=10 * b + n) for n in range(1, 6)], "ws"))
        assert store.stats()["pending"] == 0 and not store.has_pending()
    assert len(commits) == 3
    # the last batch's marks are written by the prune (every outbox_retry_interval)
    assert store.prune_outbox() == 15 and store.outbox_size() == 0


def test_marks_not_yet_written_when_the_process_dies_mean_a_resend_the_sink_skips(
        tmp_path: Path) -> None:
    """kill -9 after the sink wrote a batch and before its marks were written: the events
    are pending after the restart, redelivered, and the detections file holds each once."""
    db, det = tmp_path / "s.db", tmp_path / "det.jsonl"
    p = Pipeline(Store(db), JsonlSink(det), wallets=[WALLET])
    asyncio.run(p.on_logs([order_filled(tx=n) for n in range(1, 4)], "ws"))
    asyncio.run(p.on_logs([order_filled(tx=n) for n in range(4, 6)], "ws"))
    # "crash": the first process's memory is gone; a second process opens the files
    s2 = Store(db)
    assert [i.trade_id for i in s2.pending()] == \
        [decode_order_filled(order_filled(tx=n)).id for n in (4, 5)]
    p2 = Pipeline(s2, JsonlSink(det), wallets=[WALLET])
    assert asyncio.run(p2.recover()) == 2
    ids = [r["trade"]["id"] for r in rows(det)]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert s2.pending() == [] and not s2.has_pending()


def test_close_writes_the_marks_and_a_refused_batch_keeps_them(tmp_path: Path) -> None:
    import dataclasses

    from monitor.cores import Decision, DedupEntry

    store = Store(tmp_path / "s.db")
    p = Pipeline(store, MemorySink(), wallets=[WALLET])
    asyncio.run(p.on_logs([order_filled(tx=1), order_filled(tx=2)], "ws"))
    bad = dataclasses.replace(decode_order_filled(order_filled(tx=3)), block_number=2**70)
    entry = DedupEntry(bad.block_hash, False, 1, 0)
    try:
        store.commit_many([(Decision(True, "trade", 1, entry), bad.id, "ws", bad)])
    except OverflowError:
        pass
    else:
        raise AssertionError("SQLite took a 70-bit integer")
    assert store.stats()["pending"] == 0  # the marks survived the rolled-back transaction
    store.close()
    assert Store(tmp_path / "s.db").pending() == []


class _Clock:
    def __init__(self) -> None:
        self.ns = 0

    def now_ns(self) -> int:
        return self.ns


def test_stored_ids_far_below_their_wallets_cursor_are_pruned_and_the_rest_kept(
        tmp_path: Path) -> None:
    """The state DB kept every trade id ever delivered (a simulated week: 444,032 rows,
    138 MB). Ids of blocks more than ``dedup_retention_blocks`` below their own wallet's
    cursor go; ids near the cursor, and ids of a wallet without a cursor, stay; an id that
    stays is still a duplicate after a restart."""
    store = Store(tmp_path / "m.db")
    clock = _Clock()
    p = Pipeline(store, MemorySink(), wallets=[WALLET, OTHER], dedup_retention_blocks=2000,
                 clock=clock)

    async def go() -> None:
        for n, block in enumerate((1_000, 5_000, 9_000, 9_500), start=1):
            await p.on_log(order_filled(tx=n, block=block), "ws")
        await p.on_log(order_filled(tx=9, block=1_000, wallet=OTHER), "ws")
        store.set_cursors([WALLET], 10_000, None, "websocket")  # OTHER: no cursor
        await p.redeliver()
    asyncio.run(go())
    assert p.counters["dedup_pruned"] == 2  # WALLET's blocks 1,000 and 5,000
    kept = {tid for tid, _ in store.dedup_entries()}
    tid = decode_order_filled
    assert kept == {tid(order_filled(tx=3, block=9_000)).id,
                    tid(order_filled(tx=4, block=9_500)).id,
                    tid(order_filled(tx=9, block=1_000, wallet=OTHER)).id}
    store.close()
    p2 = Pipeline(Store(tmp_path / "m.db"), MemorySink(), wallets=[WALLET])
    assert asyncio.run(p2.on_log(order_filled(tx=4, block=9_500), "backfill")) is None


def test_dedup_prune_runs_once_an_interval_unless_a_slice_was_full(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.db")
    clock = _Clock()
    p = Pipeline(store, MemorySink(), wallets=[WALLET], dedup_retention_blocks=1024,
                 clock=clock)
    p.DEDUP_PRUNE_LIMIT = 2

    async def go() -> list[int]:
        for n in range(1, 6):
            await p.on_log(order_filled(tx=n, block=n), "ws")
        store.set_cursors([WALLET], 5_000, None, "websocket")
        counts = []
        for _ in range(4):  # no time passes: full slices go on, then the interval holds
            await p.redeliver()
            counts.append(p.counters["dedup_pruned"])
        clock.ns += int(p.DEDUP_PRUNE_INTERVAL_S * 1e9)
        await p.on_log(order_filled(tx=6, block=6), "ws")
        await p.redeliver()
        counts.append(p.counters["dedup_pruned"])
        return counts
    assert asyncio.run(go()) == [2, 4, 5, 5, 6]


def test_no_retention_keeps_every_id(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.db")
    p = Pipeline(store, MemorySink(), wallets=[WALLET])  # dedup_retention_blocks=0

    async def go() -> None:
        await p.on_log(order_filled(tx=1, block=1), "ws")
        store.set_cursors([WALLET], 10**6, None, "websocket")
        await p.redeliver()
    asyncio.run(go())
    assert len(list(store.dedup_entries())) == 1 and p.counters["dedup_pruned"] == 0


def test_a_retention_inside_the_look_back_windows_is_refused() -> None:
    import pytest

    from monitor.config import load_settings
    from monitor.errors import ConfigError
    base = {"websocket_url": "ws://127.0.0.1:1/", "rpc_url": "http://127.0.0.1:1/",
            "wallets": [WALLET]}
    assert load_settings(base, environ={}).dedup_retention_blocks == 10_000
    assert load_settings(base | {"dedup_retention_blocks": 0},
                         environ={}).dedup_retention_blocks == 0
    with pytest.raises(ConfigError, match="at least 1024"):
        load_settings(base | {"dedup_retention_blocks": 128}, environ={})


# -- one process at a time -----------------------------------------------------------------

_HOLD = """
import sys
from monitor.store import Store
s = Store(sys.argv[1])
print("open", flush=True)
sys.stdin.readline()
"""


def _holder(db: Path) -> subprocess.Popen[str]:
    """Another process with ``db`` open (until its stdin closes or it is killed)."""
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(db)], cwd=ROOT, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == "open"
    return p


def test_a_store_another_process_holds_is_refused_naming_its_pid(tmp_path: Path) -> None:
    """Two monitors on one state_db shared the outbox and dedup table: a shared detections
    file got 30 of 84 trades twice; separate files lost 73 of 718 to the other sink."""
    db = tmp_path / "s.db"
    holder = _holder(db)
    try:
        with pytest.raises(StoreError, match=rf"s\.db is in use by another monitor "
                                             rf"\(pid {holder.pid}\)"):
            Store(db)
    finally:
        holder.kill()  # kill -9: the lock goes with the process
        holder.wait(timeout=30)
    s = Store(db)
    s.set_cursors([WALLET], 5, None, "polling")
    s.close()
    assert (tmp_path / "s.db.lock").stat().st_mode & 0o777 == 0o600


def test_a_closed_store_lets_another_process_open_it(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Store(db).close()
    holder = _holder(db)  # would fail to open if close() had kept the lock
    holder.communicate("\n", timeout=30)
    assert holder.returncode == 0


# -- a file this code can use, or a one-line refusal ----------------------------------------

def test_a_state_db_that_cannot_be_written_is_refused_at_open(tmp_path: Path) -> None:
    """A read-only file whose tables exist: READY, then every commit failed (nothing was
    ever delivered, WARNING lines only)."""
    db = tmp_path / "s.db"
    Store(db).close()
    with read_only(db), pytest.raises(StoreError, match=r"s\.db cannot be written \("
                                                        r"attempt to write a readonly"):
        Store(db)
    Store(db).close()  # writable again: taken


def test_a_new_state_db_is_stamped_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    """Nothing recorded the schema: a newer file (here an extra NOT NULL column) was
    taken, and every sync then failed on it."""
    db = tmp_path / "s.db"
    Store(db).close()
    assert _user_version(db) == SCHEMA_VERSION == 2
    newer = tmp_path / "newer.db"
    with contextlib.closing(sqlite3.connect(newer)) as c:
        c.execute("PRAGMA user_version = 99")
        c.execute("CREATE TABLE cursors (wallet TEXT PRIMARY KEY, block INTEGER NOT NULL, "
                  "hash TEXT, grp TEXT NOT NULL, extra TEXT NOT NULL)")
    with pytest.raises(StoreError, match=r"newer\.db was written by a newer monitor "
                                         r"\(schema 99 > 2\)"):
        Store(newer)


@pytest.mark.parametrize(("ddl", "needle"), [
    ("CREATE TABLE cursors (x INTEGER)", "table cursors: no column wallet"),
    ("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, kind TEXT, trade_id TEXT, generation "
     "INTEGER, source TEXT, block_hash TEXT, payload TEXT, sent INTEGER, extra TEXT NOT NULL)",
     "table outbox: unknown column extra"),
    ("CREATE TABLE meta (key TEXT, value TEXT)", "it holds meta"),
])
def test_a_state_db_of_another_schema_is_refused_naming_the_table(
        tmp_path: Path, ddl: str, needle: str) -> None:
    """``cursors(x)`` was an ``OperationalError`` traceback from ``Store.cursors()``; a
    database of another program (here a pilot store's ``meta``) got the monitor's tables
    added to it."""
    db = tmp_path / "s.db"
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.execute(ddl)
        c.commit()
    with pytest.raises(StoreError, match="not a monitor state database") as err:
        Store(db)
    assert needle in err.value.message and str(db) in err.value.message
    with contextlib.closing(sqlite3.connect(db)) as c:  # left as it was
        assert {t for (t,) in c.execute("SELECT name FROM sqlite_master")} <= \
            {"cursors", "outbox", "meta"}


def test_a_state_db_from_before_the_stamp_is_taken_with_its_data(tmp_path: Path) -> None:
    """Users' files have no version (0): the same columns mean the same schema."""
    from monitor import store as store_module

    db = tmp_path / "s.db"
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.executescript(store_module._SCHEMA)
        c.execute("INSERT INTO cursors VALUES (?, 7, '0x7', 'polling')", (WALLET,))
        c.commit()
    assert _user_version(db) == 0
    s = Store(db)
    assert s.cursors()[WALLET].block == 7
    s.close()
    assert _user_version(db) == SCHEMA_VERSION


def _user_version(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as c:
        return int(c.execute("PRAGMA user_version").fetchone()[0])


@pytest.mark.parametrize("read", [
    lambda s: s.cursor(WALLET), lambda s: s.cursors(), lambda s: s.blocks(),
    lambda s: list(s.dedup_entries()), lambda s: list(s.dedup_entries(limit=5)),
    lambda s: s.dedup_entry("t"), lambda s: s.dedup_entries_of(["t"]),
    lambda s: s.standing_in_range([WALLET], 1, 2), lambda s: s.has_pending(),
    lambda s: s.pending(), lambda s: s.outbox_size(), lambda s: s.stats(),
], ids=["cursor", "cursors", "blocks", "dedup_entries", "dedup_entries_limit", "dedup_entry",
        "dedup_entries_of", "standing_in_range", "has_pending", "pending", "outbox_size",
        "stats"])
def test_a_read_sqlite_refuses_is_a_store_error(tmp_path: Path, read: Any) -> None:
    """Reads let ``sqlite3.OperationalError`` through (a traceback at the CLI); writes
    were already :class:`StoreError`."""
    db = tmp_path / "s.db"
    store = Store(db)
    with contextlib.closing(sqlite3.connect(db)) as other:  # the tables go under it
        for table in ("cursors", "blocks", "delivered", "outbox"):
            other.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
        other.commit()
    with pytest.raises(StoreError, match=r"state_db .*s\.db: no such table"):
        read(store)
