"""A chain rendered by a helper process is the chain rendered here, block for block, and
stays so when the helper dies, fails or cannot start (this side goes on from the
checkpoints the helper shipped)."""

from __future__ import annotations

import multiprocessing
import pickle
from typing import Any

import pytest

import simulator.render_ahead as render_ahead
from simulator.chain import ChainBlock, PreparedBlock
from simulator.recording import RecordedBlock
from simulator.render_ahead import AheadSynthSource
from simulator.source import SynthSource

N = 300
# small spans and a small dense window: checkpoints are shipped, thinned and used often
SMALL = {"checkpoint_every": 8, "keep_dense": 64, "sparse_every": 2, "sparse_cap": 4}


def _rows(block: RecordedBlock) -> tuple[Any, ...]:
    return block.block, block.logs, block.transactions


def _all(src: SynthSource) -> list[tuple[Any, ...]]:
    out = []
    while (b := src.next_block()) is not None:
        out.append(_rows(b))
    return out


@pytest.fixture(scope="module")
def reference() -> SynthSource:
    src = SynthSource("default", seed=7, blocks=N, **SMALL)
    src.blocks = _all(src)  # type: ignore[attr-defined]
    return src


def test_a_helper_renders_the_same_chain_and_its_checkpoints_regenerate_old_blocks(
        reference: SynthSource, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_ahead, "_RAW_BYTES", 0)  # only the last message kept as sent
    ahead = AheadSynthSource("default", seed=7, blocks=N, **SMALL)
    try:
        assert ahead.helper_alive
        assert _all(ahead) == reference.blocks  # type: ignore[attr-defined]
        assert ahead.helper_failures == 0
        # old blocks come from this side's generator, restored from the shipped states
        assert ahead._checkpoints.keys() == reference._checkpoints.keys()
        for i in (0, 1, 9, 100, 150, N - 70, N - 1):
            assert _rows(ahead.block_at(i)) == _rows(reference.block_at(i)), i
    finally:
        ahead.close()
    assert not ahead.helper_alive
    ahead.close()  # twice: nothing left to do


def test_old_blocks_are_given_again_from_the_helpers_messages_without_a_render(
        reference: SynthSource, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """The helper's last messages are kept as bytes (bounded): a block asked for again, past
    the source's small cache, is unpickled from them, with what serving it needs; older
    ones are rendered from the checkpoints as before."""
    ahead = AheadSynthSource("default", seed=7, blocks=N, **SMALL)
    try:
        _all(ahead)
        renders = request.getfixturevalue("renders")  # counted from here
        for i in range(N - 1, -1, -1):  # a walk down the whole chain: all kept (~4 MB)
            got = ahead.block_at(i)
            assert isinstance(got, PreparedBlock) and got.index is not None, i
            assert _rows(got) == reference.blocks[i]  # type: ignore[attr-defined], i
        assert renders.n == 0
        kept = ahead._raw_bytes
        assert 0 < kept == sum(len(raw) for _n, raw in ahead._raw.values())
    finally:
        ahead.close()
    monkeypatch.setattr(render_ahead, "_RAW_BYTES", kept // 2)  # half of them kept
    ahead = AheadSynthSource("default", seed=7, blocks=N, **SMALL)
    try:
        _all(ahead)
        assert ahead._raw_bytes <= kept // 2 and min(ahead._raw) > 0
        first = min(ahead._raw)
        assert _rows(ahead.block_at(first)) == reference.blocks[first]  # type: ignore[attr-defined]
        assert renders.n == 0
        assert _rows(ahead.block_at(first - 1)) == reference.blocks[first - 1]  # type: ignore[attr-defined]
        assert renders.n > 0  # not kept: rendered from a checkpoint, the same block
    finally:
        ahead.close()


def test_a_helper_killed_mid_chain_leaves_the_chain_unchanged(
        reference: SynthSource) -> None:
    ahead = AheadSynthSource("default", seed=7, blocks=N, batch=4, **SMALL)
    try:
        got = [_rows(ahead.next_block()) for _ in range(50)]  # type: ignore[union-attr]
        proc = ahead._proc
        proc.kill()
        proc.join(30)
        got += _all(ahead)
        assert got == reference.blocks  # type: ignore[attr-defined]
        assert ahead.helper_failures == 1 and not ahead.helper_alive
        for i in (3, N - 2):
            assert _rows(ahead.block_at(i)) == _rows(reference.block_at(i))
    finally:
        ahead.close()


@pytest.mark.parametrize("message", [pickle.dumps(("error", "ValueError: boom")),
                                     b"\x80\x05 not a pickle", b"\x80\x09", b"",
                                     pickle.dumps({"x": 1}), pickle.dumps([]),
                                     pickle.dumps([(1, 2, 3)])])
def test_an_error_or_a_message_it_cannot_read_means_rendering_here(
        reference: SynthSource, message: bytes, caplog: pytest.LogCaptureFixture) -> None:
    ahead = AheadSynthSource("default", seed=7, blocks=N, **SMALL)
    try:
        got = [_rows(ahead.next_block()) for _ in range(40)]  # type: ignore[union-attr]
        ahead._items.clear()  # what was received and not used is dropped with the helper
        reader, writer = multiprocessing.Pipe(duplex=False)
        writer.send_bytes(message)
        ahead._conn.close()  # type: ignore[union-attr]
        ahead._conn = reader
        # the blocks cleared above are rendered here again, from the checkpoints
        ahead.produced = 40
        got += _all(ahead)
        assert got == reference.blocks  # type: ignore[attr-defined]
        assert ahead.helper_failures == 1
        assert "rendering here from block 40" in caplog.text
    finally:
        ahead.close()


@pytest.mark.parametrize("refusal", [
    OSError(11, "Resource temporarily unavailable"),
    # what multiprocessing raises in a daemonic process (a pool or cluster worker)
    AssertionError("daemonic processes are not allowed to have children"),
])
def test_a_helper_that_cannot_start_means_rendering_here(
        reference: SynthSource, monkeypatch: pytest.MonkeyPatch, refusal: Exception) -> None:
    real = multiprocessing.get_context

    class NoProcesses:
        def __init__(self, method: str) -> None:
            self.ctx = real(method)
            self.Pipe = self.ctx.Pipe

        def Process(self, **kwargs: Any) -> Any:  # multiprocessing's name
            class Refused:
                def start(self) -> None:
                    raise refusal
            return Refused()

    monkeypatch.setattr(render_ahead.multiprocessing, "get_context", NoProcesses)
    ahead = AheadSynthSource("default", seed=7, blocks=N, **SMALL)
    assert not ahead.helper_alive and ahead.helper_failures == 1
    assert _all(ahead) == reference.blocks  # type: ignore[attr-defined]


def test_an_unbounded_chain_stops_its_helper_on_close() -> None:
    ahead = AheadSynthSource("default", seed=2, blocks=None)
    proc = ahead._proc
    for _ in range(100):
        assert ahead.next_block() is not None
    ahead.close()
    assert proc is not None and not proc.is_alive() and proc.exitcode is not None


def test_a_helper_builds_what_serving_a_block_needs_as_the_chain_would(
        reference: SynthSource) -> None:
    ahead = AheadSynthSource("default", seed=7, blocks=N, **SMALL)
    try:
        for i in range(N):
            got = ahead.next_block()
            assert isinstance(got, PreparedBlock)
            mine = ChainBlock(reference.block_at(i))  # built here, from nothing prepared
            served = ChainBlock(got)
            assert served.header_json() == mine.header_json()
            assert served.fills == mine.fills and served.tx_hashes == mine.tx_hashes
            assert served._header_json is got.header_json  # taken, not built again
            # the filter index came over the block's own logs, and selects as one built here
            assert served._index is got.index and got.index is not None
            assert got.index.logs is got.logs
            for attr in ("addresses", "topics", "by_address", "by_topic"):
                assert getattr(got.index, attr) == getattr(mine.index, attr), attr
    finally:
        ahead.close()
