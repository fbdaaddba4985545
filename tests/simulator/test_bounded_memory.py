"""Issue 10: what the simulator keeps per block stays bounded over a long (a week's) run.

* :class:`SynthSource` keeps a bounded number of checkpoints however long the chain (the
  sparse ones' spacing doubles past ``sparse_cap``), and still gives every block again
  exactly as it first produced it.
* :class:`Chain` finds published blocks by hash with a few bytes a block (the first 8
  bytes of each hash, checked against the full hash): current, old and orphaned blocks
  answer as before, and two hashes sharing their first 8 bytes are never confused.
"""

from __future__ import annotations

import random
import sys
from array import array
from typing import Any

from simulator.chain import Chain, _HashIndex
from simulator.recording import Recording
from simulator.settings import SimSettings
from simulator.source import SynthSource
from simulator.synth import synthesise

S = 1_000_000_000


def test_synth_checkpoints_stay_under_the_cap_and_every_block_comes_back_the_same() -> None:
    n = 600
    ref = synthesise("default", seed=7, blocks=n)
    src = SynthSource("default", seed=7, blocks=n, checkpoint_every=2, keep_dense=8,
                      sparse_every=2, sparse_cap=5)
    streamed = []
    most = 0
    for _ in range(n):
        block = src.next_block()
        assert block is not None
        streamed.append(block)
        most = max(most, len(src._checkpoints))
    assert src.next_block() is None
    # 4 dense + at most 5 sparse + checkpoint 0, while 300 were saved
    assert most <= 4 + 5 + 1
    kept = sorted(src._checkpoints)
    assert kept[0] == 0 and src.sparse_stride > 2  # the spacing doubled on the way
    sparse = [k for k in kept if 0 < k <= 300 - 1 - 4]
    assert sparse and all(k % src.sparse_stride == 0 for k in sparse)
    assert len(sparse) <= 5
    order = list(range(n))
    random.Random(1).shuffle(order)
    for i in [*order[:60], 0, 1, n - 1, 15, *range(200, 240)]:  # far, near, in a row
        assert src.block_at(i) == ref.blocks[i] == streamed[i], i


def test_default_synth_checkpoints_are_bounded_over_a_long_chain() -> None:
    # a checkpoint every block: 1,500 saved, at most 97 kept (late in the run no more
    # than earlier)
    src = SynthSource("default", seed=2, blocks=1500, checkpoint_every=1, keep_dense=64,
                      sparse_every=4, sparse_cap=32)
    sizes = []
    while src.next_block() is not None:
        sizes.append(len(src._checkpoints))
    assert max(sizes) <= 64 + 32 + 1
    assert max(sizes[-500:]) <= max(sizes[:1000])  # flat: no growth late in the run
    assert src.block_at(1) == synthesise("default", seed=2, blocks=2).blocks[1]


def _size(obj: Any) -> int:
    """Bytes held by ``obj``: a dict with its keys and values, a list with its items, an
    object with its fields."""
    if isinstance(obj, list):
        return sys.getsizeof(obj) + sum(_size(x) for x in obj)
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + sum(_size(k) + _size(v) for k, v in obj.items())
    if hasattr(obj, "__dict__"):
        return sys.getsizeof(obj) + _size(vars(obj))
    if hasattr(obj, "__slots__"):
        return sys.getsizeof(obj) + sum(_size(getattr(obj, a)) for a in obj.__slots__)
    return sys.getsizeof(obj)


def test_the_hash_index_takes_a_few_bytes_a_block() -> None:
    n = 3000
    chain = Chain(SynthSource("default", seed=4, blocks=n), settings=SimSettings(
        window_blocks=16))
    while chain.advance(10**18, limit=500):
        pass
    assert chain.published == n
    per_block = _size(chain._by_hash) / n
    assert per_block <= 32, per_block  # a dict of hash strings: ~180
    # every block is still found by its hash, the old ones regenerated
    for number in (chain.first_number, chain.first_number + 1234, chain.head_number):
        block = chain.block(number)
        assert block is not None
        for h in (block.hash, block.hash.upper().replace("0X", "0x")):
            found = chain.block_by_hash(h)
            assert found is not None and found.hash == block.hash


def _answers(chain: Chain, hashes: list[str]) -> list[int | None]:
    out = []
    for h in hashes:
        block = chain.block_by_hash(h)
        out.append(None if block is None else block.number)
    return out


def test_lookups_by_hash_of_current_old_and_orphaned_blocks() -> None:
    chain = Chain(SynthSource("default", seed=9, blocks=400),
                  settings=SimSettings(window_blocks=8))
    chain.advance(10**18, limit=100)
    first = chain.reorg(3, 10**18, seed=1)
    chain.advance(10**18, limit=100)
    second = chain.reorg(4, 10**18, seed=2)
    again = chain.reorg(2, 10**18, seed=3)  # reorgs the second reorg's blocks
    assert first is not None and second is not None and again is not None
    chain.advance(10**18, limit=50)
    canonical = {b.hash: b.number for b in chain.blocks[:chain.published]}
    orphaned = [b.hash for r in (first, second, again) for b in r.old]
    assert not set(orphaned) & set(canonical) and len(canonical) == chain.published == 250
    for h, number in canonical.items():
        assert _answers(chain, [h, h.upper().replace("0X", "0x")]) == [number, number]
    assert _answers(chain, orphaned) == [None] * len(orphaned)
    assert chain.next_publish_ns() is not None  # reads the next block ahead
    unpublished = chain.blocks[chain.published].hash  # read, not published yet
    assert chain.block_by_hash(unpublished) is None
    for junk in ("", "0x", "0x12", "nothex", "0x" + "f" * 64, "0x" + "0" * 64):
        assert chain.block_by_hash(junk) is None


def _with_hashes(rec: Recording, hashes: dict[int, str]) -> Recording:
    for i, h in hashes.items():
        rec.blocks[i].block["hash"] = h
    return rec


def test_hashes_sharing_their_first_8_bytes_are_never_confused() -> None:
    prefix = "0x" + "ab" * 8
    a, b, c = (prefix + f"{t:048x}" for t in (1, 2, 3))  # c is never published
    rec = _with_hashes(synthesise("default", seed=1, blocks=30), {3: a, 20: b})
    chain = Chain(rec)
    chain.advance(10**18, limit=10)
    first = chain.first_number
    assert _answers(chain, [a, b, c]) == [first + 3, None, None]
    chain.advance(10**18, limit=15)
    assert _answers(chain, [a, b, c, a.upper().replace("0X", "0x")]) == \
        [first + 3, first + 20, None, first + 3]
    result = chain.reorg(6, 10**18, seed=1)  # orphans b (position 20), keeps a
    assert result is not None and b in {x.hash for x in result.old}
    assert _answers(chain, [a, b, c]) == [first + 3, None, None]


def test_hash_index_with_every_key_the_same_and_forgotten_positions() -> None:
    index = _HashIndex()
    hashes = ["0x" + "00" * 8 + f"{i:048x}" for i in range(200)]  # one shared prefix
    for h in hashes:
        index.append(h)
    assert index.positions(hashes[7]) == list(range(200))  # candidates: all share it
    index.truncate(150)
    for h in hashes[150:180]:
        index.append(h)
    assert sorted(index.positions(hashes[0])) == list(range(180))
    assert index.positions("0x" + "11" * 32) == []
    plain = _HashIndex()
    for i in range(1000):
        plain.append(f"0x{random.Random(i).getrandbits(256):064x}")
    assert len(plain._tables) == 1 and isinstance(plain._tables[0], array)
    assert plain.positions(f"0x{random.Random(500).getrandbits(256):064x}") == [500]
    plain.truncate(400)
    assert plain.positions(f"0x{random.Random(500).getrandbits(256):064x}") == []
    assert plain.positions(f"0x{random.Random(399).getrandbits(256):064x}") == [399]


def test_checkpoint_nonces_take_4_bytes_while_they_fit() -> None:
    src = SynthSource("default", seed=3, blocks=40, checkpoint_every=8)
    blocks = [src.next_block() for _ in range(20)]
    assert all(c[4].typecode == "i" for c in src._checkpoints.values())
    nonces = src._renderer.chain.nonces._next
    assert nonces
    key = next(iter(nonces))
    nonces[key] += 2**40  # past 4 bytes: 8 a nonce, and still restored exactly
    blocks += [src.next_block() for _ in range(20)]
    assert [c[4].typecode for _, c in sorted(src._checkpoints.items())] == \
        ["i", "i", "i", "q", "q"]
    assert [src.block_at(i) for i in (3, 17, 39, 25, 31)] == \
        [blocks[i] for i in (3, 17, 39, 25, 31)]


def test_hash_index_across_tables_and_many_forgotten_positions() -> None:
    def h(tag: int, i: int) -> str:
        return f"0x{random.Random(tag * 1_000_003 + i).getrandbits(256):064x}"

    index = _HashIndex()
    names = [h(0, i) for i in range(20_000)]  # three tables
    for name in names:
        index.append(name)
    assert len(index._tables) == 3
    for tag in range(1, 9):  # forget across a table boundary and add others, again and again
        index.truncate(8_000)
        del names[8_000:]
        for i in range(8_000, 15_000):
            names.append(h(tag, i))
            index.append(names[-1])
        assert all(4 * used <= 3 * len(t) for used, t in zip(index._used, index._tables,
                                                               strict=True))
    assert len(index) == len(names) == 15_000
    for pos in (0, 7_999, 8_000, 8_191, 8_192, 12_345, 14_999):
        assert index.positions(names[pos]) == [pos]
    assert index.positions(h(1, 9_000)) == []  # forgotten, never added again
