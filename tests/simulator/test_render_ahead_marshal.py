"""The render-ahead helper's messages are marshal data (cheaper to write and read than
pickles): what it sends reads back as the blocks rendered here, with a filter index over
the block's own logs that shares their strings, and its error report is read as one."""

from __future__ import annotations

import json
import marshal
import multiprocessing
import threading

import pytest

import simulator.render_ahead as render_ahead
from simulator.chain import ChainBlock
from simulator.filters import BlockIndex
from simulator.render_ahead import AheadSynthSource
from simulator.source import SynthSource

N = 40


def test_a_message_reads_back_as_the_blocks_with_an_index_over_their_own_logs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_ahead.signal, "signal", lambda *a: None)  # keep Ctrl-C
    monkeypatch.setattr(render_ahead.gc, "freeze", lambda: None)
    monkeypatch.setattr(render_ahead.gc, "set_threshold", lambda *a: None)
    reader, writer = multiprocessing.Pipe(duplex=False)
    profile = SynthSource("default", seed=5, blocks=1).profile
    helper = threading.Thread(target=render_ahead._render_loop,
                              args=(writer, profile, 5, N, 8, 16), daemon=True)
    helper.start()
    raws = []
    try:
        while len(raws) < 3:  # 16 + 16 + 8 blocks
            assert reader.poll(120)
            raws.append(reader.recv_bytes())
    finally:
        reader.close()
        helper.join(120)
    items = [item for raw in raws for item in render_ahead._decode(raw)]
    ref = SynthSource("default", seed=5, blocks=N, checkpoint_every=8)
    assert len(items) == N
    for i, item in enumerate(items):
        want = ref.next_block()
        assert want is not None
        got = render_ahead._block_of(item)
        assert (got.block, got.logs, got.transactions) == (
            want.block, want.logs, want.transactions), i
        # in the same key order too: what is served is JSON of these dicts
        assert json.dumps([got.block, got.logs, got.transactions]) == json.dumps(
            [want.block, want.logs, want.transactions]), i
        built = BlockIndex(want.logs)
        assert got.index is not None and got.index.logs is got.logs
        assert got.index.parts() == built.parts()
        for k, lg in enumerate(got.logs):  # lowercase already: the log's own strings
            assert got.index.addresses[k] is lg["address"]
        mine = ChainBlock(want)
        assert got.fills == mine.fills and got.tx_hashes == mine.tx_hashes
        assert got.header_json == mine.header_json()
        # a checkpoint's state comes with the block it falls on, and only then
        assert (item[render_ahead._BLOCK_FIELDS] is not None) == (i % 8 == 0)


def test_the_helpers_error_report_is_read_as_its_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    ref = SynthSource("default", seed=7, blocks=60, checkpoint_every=8)
    want = [ref.next_block() for _ in range(60)]
    ahead = AheadSynthSource("default", seed=7, blocks=60, checkpoint_every=8)
    try:
        got = [ahead.next_block() for _ in range(16)]
        ahead._items.clear()
        reader, writer = multiprocessing.Pipe(duplex=False)
        writer.send_bytes(marshal.dumps(("error", "ValueError: boom")))
        ahead._conn.close()  # type: ignore[union-attr]
        ahead._conn = reader
        got += [ahead.next_block() for _ in range(44)]
        assert ahead.next_block() is None
        assert [(b.block, b.logs) for b in got] == [  # type: ignore[union-attr]
            (b.block, b.logs) for b in want]  # type: ignore[union-attr]
        assert ahead.helper_failures == 1 and not ahead.helper_alive
        assert "failed: ValueError: boom" in caplog.text
    finally:
        ahead.close()
