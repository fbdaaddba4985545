"""A streamed chain (serve --profile / serve --recording): lazy, windowed, and the same chain.

The in-memory chain of the same recording is the reference: a streamed chain with a small
window must answer every query the same, old blocks included (regenerated or re-read).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from simulator.chain import Chain
from simulator.filters import LogFilter
from simulator.recording import RecordingError, load_recording, save_recording
from simulator.settings import SimSettings
from simulator.source import FileSource, SynthSource
from simulator.synth import synthesise
from tests.simulator.node_fixtures import WALLETS, make_recording

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000


def _canon(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _run_to_end(chain: Chain) -> None:
    # one big step of time: the replay publishes everything (in batches, like the server)
    while chain.advance(10**18, limit=5):
        pass


def test_streamed_synth_chain_answers_like_the_in_memory_one_old_blocks_included() -> None:
    settings = SimSettings(history_blocks=3, window_blocks=6)
    ref = Chain(synthesise("default", seed=5, blocks=60), settings=settings)
    src = SynthSource("default", seed=5, blocks=60, checkpoint_every=8)
    chain = Chain(src, settings=settings)
    _run_to_end(ref)
    _run_to_end(chain)
    assert chain.exhausted() and chain.published == ref.published == 60
    assert isinstance(chain.blocks, type(chain.blocks)) and chain.window == 6
    held = len(chain.blocks._held)  # type: ignore[union-attr]
    assert held <= 6  # only the window stays in memory
    for number in (ref.first_number, ref.first_number + 17, ref.head_number):
        a, b = ref.block(number), chain.block(number)
        assert a is not None and b is not None
        assert _canon(a.rb.block) == _canon(b.rb.block) and a.logs == b.logs
        assert (a.visible_ns, a.indexed_ns) == (b.visible_ns, b.indexed_ns)
        assert chain.block_by_hash(a.hash) is not None
    flt = LogFilter.parse({})
    assert chain.logs(flt, ref.first_number, ref.head_number) == \
        ref.logs(flt, ref.first_number, ref.head_number)
    assert [b.hash for b in chain.indexed_blocks(10**18)] == \
        [b.hash for b in ref.indexed_blocks(10**18)]


def test_old_synth_checkpoints_are_thinned_and_every_block_comes_back_the_same() -> None:
    ref = synthesise("default", seed=3, blocks=200)
    src = SynthSource("default", seed=3, blocks=200, checkpoint_every=4, keep_dense=16,
                      sparse_every=8)
    streamed = [src.next_block() for _ in range(200)]
    kept = sorted(src._checkpoints)
    # the last 16 blocks (184..199) keep one checkpoint in 4 blocks; before them, one
    # checkpoint in 8 is kept (one every 32 blocks)
    assert kept == [0, 8, 16, 24, 32, 40, *range(46, 50)]
    for i in (199, 3, 150, 37, 0, 183, 100, 101):  # out of order, near and far
        assert src.block_at(i) == ref.blocks[i] == streamed[i]


def test_transactions_older_than_the_window_are_not_found_by_hash() -> None:
    chain = Chain(SynthSource("default", seed=5, blocks=40),
                  settings=SimSettings(window_blocks=4))
    _run_to_end(chain)
    old = next(b for b in chain.blocks[:10] if b.tx_hashes)
    new = next(b for b in chain.blocks[-4:] if b.tx_hashes)
    assert chain.tx(new.tx_hashes[0]) is not None
    assert chain.tx(old.tx_hashes[0]) is None  # like a node with a limited tx index


def test_a_reorged_in_block_that_leaves_the_window_is_kept() -> None:
    chain = Chain(SynthSource("default", seed=1, blocks=30), settings=SimSettings(
        window_blocks=3))
    chain.advance(10**18, limit=10)
    result = chain.reorg(2, 10**18, seed=4)
    assert result is not None
    new_hashes = [b.hash for b in result.new]
    _run_to_end(chain)
    assert [chain.block(b.number).hash for b in result.new] == new_hashes  # type: ignore[union-attr]
    assert all(chain.block_by_hash(h) is not None for h in new_hashes)
    assert all(chain.block_by_hash(b.hash) is None for b in result.old)
    window = chain.blocks
    kept = window._kept  # type: ignore[union-attr]
    # the fork's blocks and the next block (it took moved transactions)
    assert sorted(kept) == list(range(result.new[0].number - chain.first_number,
                                      result.new[-1].number - chain.first_number + 2))
    # nothing keeps the fork's or the orphaned blocks alive: not the transaction lookup
    # (vanished transactions pointed at orphaned blocks, and reorged-in blocks kept theirs)
    fork = {id(b) for b in (*result.old, *result.new)}
    assert not any(id(found[0]) in fork for found in chain._tx.values())
    window._spilled.clear()  # type: ignore[union-attr]
    for b in result.new:  # spilled to disk (memory keeps an offset), it answers the same
        again = chain.block(b.number)
        assert again is not None and again.logs == b.logs
        assert [again.log_json(i) for i in range(len(b.logs))] == \
            [json.dumps(lg, separators=(",", ":")) for lg in b.logs]


def test_streamed_file_chain_answers_like_the_loaded_one(tmp_path: Path) -> None:
    path = save_recording(make_recording(50), tmp_path / "r.jsonl.gz")
    settings = SimSettings(history_blocks=2, window_blocks=5)
    ref = Chain(load_recording(path), settings=settings)
    chain = Chain(FileSource(path, checkpoint_every=4), settings=settings)
    _run_to_end(ref)
    _run_to_end(chain)
    assert chain.published == ref.published == 50
    flt = LogFilter.parse({"topics": [None, None, "0x" + "0" * 24 + WALLETS[0][2:]]})
    assert chain.logs(flt, 1000, 1049) == ref.logs(flt, 1000, 1049)
    for number in range(1000, 1050, 7):
        a, b = ref.block(number), chain.block(number)
        assert a is not None and b is not None and a.rb.block == b.rb.block


def test_a_truncated_file_ends_the_streamed_chain_where_it_breaks(tmp_path: Path) -> None:
    path = save_recording(make_recording(40), tmp_path / "r.jsonl.gz")
    raw = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b"".join(raw[:21])))  # header + 20 of 40 blocks
    chain = Chain(FileSource(cut), settings=SimSettings(window_blocks=4))
    _run_to_end(chain)
    assert chain.published == 20 and chain.exhausted()
    assert "truncated" in (chain.blocks.error or "")  # type: ignore[union-attr]
    with pytest.raises(RecordingError, match="not a polygon-recording header"):
        bad = tmp_path / "bad.jsonl.gz"
        bad.write_bytes(gzip.compress(b'{"x": 1}\n'))
        FileSource(bad)



def test_a_line_nested_too_deep_ends_the_streamed_chain_there_not_the_process(
        tmp_path: Path) -> None:
    """A recording line nested 100,000 deep past the first block raised RecursionError
    out of the replay (serve crashed after READY); it is a defect of the file like any
    other: the chain ends there, the error named."""
    path = save_recording(make_recording(40), tmp_path / "r.jsonl.gz")
    raw = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    bad = tmp_path / "deep.jsonl.gz"
    bad.write_bytes(gzip.compress(b"".join([*raw[:21], b"[" * 100_000 + b"\n", *raw[22:]])))
    chain = Chain(FileSource(bad), settings=SimSettings(window_blocks=4))
    _run_to_end(chain)
    assert chain.published == 20 and chain.exhausted()
    assert "nested too deep" in (chain.blocks.error or "")  # type: ignore[union-attr]

# -- over loopback: python -m simulator serve ---------------------------------------------------

def _serve(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY "), line + (proc.stderr.read() if proc.stderr else "")
    return proc, json.loads(line[6:])


def _rpc(url: str, method: str, *params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": list(params)}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["result"]


def test_serve_profile_streams_the_chain_synth_writes_byte_for_byte(tmp_path: Path) -> None:
    n = 40
    out = tmp_path / "s.jsonl.gz"
    subprocess.run([sys.executable, "-m", "simulator", "synth", "--profile", "default",
                    "--blocks", str(n), "--seed", "7", "--out", str(out)], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    lines = gzip.decompress(out.read_bytes()).splitlines()[1:]
    want = [json.loads(line)["block"] for line in lines]
    # a window of 8: most of the 40 blocks are regenerated by seed when asked for
    proc, urls = _serve("--profile", "default", "--seed", "7", "--blocks", "0",
                        "--window", "8", "--speed", "400", "--history-blocks", "4")
    try:
        first = int(want[0]["number"], 16)
        deadline = time.monotonic() + 60
        while int(_rpc(urls["http"], "eth_blockNumber"), 16) < first + n:
            assert time.monotonic() < deadline, "the replay did not get past block N"
            time.sleep(0.05)  # polling the node, not synchronising on a sleep
        for i, block in enumerate(want):
            got = _rpc(urls["http"], "eth_getBlockByNumber", hex(first + i), False)
            assert _canon(got) == _canon(block), f"block {first + i} differs"
        status = json.loads(urllib.request.urlopen(urls["status"], timeout=10).read())
        assert status["window"] == 8 and status["exhausted"] is False  # unbounded
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_a_walk_back_over_old_blocks_renders_each_checkpoint_span_once(
        monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    # the monitor's re-check asks for blocks just past the window one at a time, from the
    # highest down: each used to reload the checkpoint and render up to 32 blocks again
    import simulator.source as source

    n = 200
    ref = synthesise("default", seed=4, blocks=n)
    src = SynthSource("default", seed=4, blocks=n, checkpoint_every=32)
    for _ in range(n):
        src.next_block()
    renders = request.getfixturevalue("renders")  # counted from here
    for _ in range(3):  # the same walk again, a few blocks on: from the cache
        for i in range(150, 99, -1):
            assert src.block_at(i) == ref.blocks[i], i
    # 150 renders 128..150, 127 renders 96..127; every other ask is kept from those
    assert renders.n == 23 + 32
    # the cache is bounded by blocks and by logs (but keeps the last few)
    assert len(src._cache) <= source._CACHE_BLOCKS
    monkeypatch.setattr(source, "_CACHE_LOGS", 50)
    src.block_at(20)
    held = src._cache.blocks()
    assert len(held) == source._CACHE_MIN or sum(len(b.logs) for b in held) <= 50
    assert src._cache.held == sum(len(b.logs) for b in held)
    assert src._cache.positions()[-1] == 20 and src.block_at(20) == ref.blocks[20]


@pytest.mark.parametrize("kind", ["synth", "file"])
def test_blocks_just_behind_the_window_are_answered_without_a_render_or_a_read(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the blocks the window lets go are kept by the source for a while: the monitor's
    # re-check asks for blocks ~100-130 behind the head (the window holds 96)
    from simulator.synth import Renderer

    n, window = 400, 96
    ref = synthesise("default", seed=5, blocks=n)
    if kind == "synth":
        src: SynthSource | FileSource = SynthSource("default", seed=5, blocks=n)
    else:
        path = tmp_path / "rec.jsonl.gz"
        save_recording(ref, path)
        src = FileSource(path)
    chain = Chain(src, settings=SimSettings(window_blocks=window), t0_ns=0)
    chain.advance(10**18, limit=300)
    head = chain.head_number
    given: list[int] = []
    orig = type(src).block_at

    def counted(self: Any, i: int) -> Any:
        if i not in self._cache:
            given.append(i)
        return orig(self, i)

    monkeypatch.setattr(type(src), "block_at", counted)
    monkeypatch.setattr(Renderer, "render", lambda *a: pytest.fail("rendered again"))
    for number in range(head - window - 1, head - window - 41, -1):  # 97..136 behind
        block = chain.block(number)
        assert block is not None and block.rb == ref.blocks[number - ref.blocks[0].number]
    assert given == []


def test_a_streamed_chain_s_history_rows_come_without_reading_its_blocks_again(
        tmp_path: Path) -> None:
    """``serve --history-blocks N``: the history rows of a streamed chain are written from
    the blocks while they are primed. A second pass regenerated (or re-read from the
    recording's file) every history block older than the window: 1,400 busy blocks of a
    recording took 135 s before the first block was replayed. The rows are the same as
    an in-memory chain's, in the same order."""
    import asyncio

    from simulator.server import Simulator

    settings = SimSettings(history_blocks=40, window_blocks=6)

    async def rows_of(source: Any) -> tuple[list[dict[str, Any]], int]:
        sim = Simulator(source, settings=settings, autostart=False)
        async with sim:
            sim.begin()
            rows = [{k: v for k, v in r.items() if k != "t_ns"}
                    for r in sim.history.events("block_published") if r.get("history")]
            return rows, getattr(sim.chain.blocks, "rebuilt", 0)

    ref, _ = asyncio.run(rows_of(synthesise("default", seed=5, blocks=60)))
    streamed, rebuilt = asyncio.run(rows_of(SynthSource("default", seed=5, blocks=60,
                                                        checkpoint_every=8)))
    assert len(ref) == 40 and streamed == ref
    assert rebuilt == 0
    rec = tmp_path / "rec.jsonl.gz"
    save_recording(synthesise("default", seed=5, blocks=60), rec)
    from_file, rebuilt = asyncio.run(rows_of(FileSource(rec)))
    assert from_file == ref and rebuilt == 0


def test_deep_lines_are_refused_even_under_a_raised_recursion_limit(tmp_path: Path) -> None:
    """py_ecc (imported with web3 or eth-account) raises the recursion limit to 100,000;
    json's C parser then overflowed the C stack on a recording line nested 100,000 deep: a
    segmentation fault (the test above killed its pytest worker in CI). The readers of
    recordings (their header line too) and of a run's JSON-lines files check the nesting
    first when the limit no longer protects the parser. In a child process, so a crash
    fails this test only."""
    path = save_recording(make_recording(10), tmp_path / "r.jsonl.gz")
    raw = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    bad = tmp_path / "deep.jsonl.gz"
    bad.write_bytes(gzip.compress(b"".join([*raw[:4], b"[" * 300_000 + b"\n", *raw[5:]])))
    deep_head = tmp_path / "deep_head.jsonl.gz"
    deep_head.write_bytes(gzip.compress(b"[" * 300_000 + b"\n" + b"".join(raw[1:])))
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"t_ns": 1}\n' + "[" * 300_000 + "\n")
    code = f"""
import sys
sys.setrecursionlimit(1_000_000)
from simulator.chain import Chain
from simulator.recording import RecordingError, iter_recording
from simulator.settings import SimSettings
from simulator.source import FileSource
from experiments.store import JsonlError, read_jsonl
chain = Chain(FileSource({str(bad)!r}), settings=SimSettings(window_blocks=4))
while chain.advance(10**18, limit=5):
    pass
assert "nested too deep" in chain.blocks.error, chain.blocks.error
try:
    list(iter_recording({str(bad)!r}))
except RecordingError as exc:
    assert "nested too deep" in str(exc), exc
try:
    FileSource({str(deep_head)!r})
    raise SystemExit("a header nested 300,000 deep was taken")
except RecordingError as exc:
    assert "nested too deep" in str(exc), exc
try:
    read_jsonl({str(rows)!r})
except (JsonlError, RecursionError, ValueError) as exc:
    print(type(exc).__name__)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        proc.returncode, proc.stderr[-2000:])
