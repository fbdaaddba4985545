"""The replayed chain: which blocks are visible, to the node and to the explorer, at ``now``.

:class:`Chain` is a sans-I/O core. The server's replay loop calls :meth:`Chain.advance`
with the clock's ``now_ns`` and fans out what it returns; queries (JSON-RPC, explorer) only
ever see blocks published so far. :meth:`Chain.reorg` replaces the last ``k`` published
blocks with a deterministic fork (trades move to later blocks or vanish).

The explorer (``simulator.explorer``) reads :meth:`Chain.indexed_blocks`: the canonical
blocks whose index lag has passed, ascending.

A chain built from a :class:`~simulator.source.BlockSource` (``serve --profile``,
``serve --recording``) is streamed: blocks are read one ahead of the replay and only the
last ``window_blocks`` published ones (and any not yet published) stay in memory. An
older block is regenerated or re-read on demand (:class:`_Window`), so queries still
answer it; reorged-in blocks that leave the window are kept (they cannot be regenerated).
Transaction lookups by hash cover the window only: an older transaction answers ``null``,
like a node whose transaction index is limited (geth ``--history.transactions``).
Block lookups by hash cover every published block, through a compact index
(:class:`_HashIndex`, ~12 bytes a block: a week of blocks is a few MB).
A chain built from a :class:`Recording` keeps every block, as before.

The blocks the latest reorgs replaced are kept a little while (:meth:`Chain.replaced_at`,
at most :data:`KEEP_REPLACED_BLOCKS` blocks, no older than :data:`KEEP_REPLACED_HEIGHTS`
below the head): a node that lags the head (fault ``rpc_lag``) still answers from them.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import random
import tempfile
import zlib
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, overload

from polyvocab import DEFAULT_EXCHANGES, ORDER_FILLED_TOPICS, trade_id
from simulator.filters import BlockIndex, LogFilter, archive_keys
from simulator.recording import RecordedBlock, Recording, RecordingError, compact_json
from simulator.schedule import IndexLag, ReplaySchedule
from simulator.settings import DEFAULT_WINDOW_BLOCKS, SimSettings
from simulator.source import BlockSource

__all__ = ["KEEP_REPLACED_HEIGHTS", "Chain", "ChainBlock", "PreparedBlock", "ReorgResult",
           "Steps", "order_filled", "run_steps"]

log = logging.getLogger("simulator.chain")

#: work done in steps: the generator yields where the caller may let others run, and returns
#: the result (the server runs the steps on the event loop, other callers at once)
Steps = Generator[None, None, Any]

#: how far behind the head a lagging view may be and still see the blocks a reorg replaced
KEEP_REPLACED_HEIGHTS = 64
#: most replaced blocks kept over all recent reorgs (the oldest reorgs' are let go first)
KEEP_REPLACED_BLOCKS = 64


def run_steps(steps: Steps) -> Any:
    """Run ``steps`` to the end at once; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


_HEADER_DROP = frozenset({"transactions", "uncles", "size", "totalDifficulty", "withdrawals"})
_EXCHANGES = frozenset(DEFAULT_EXCHANGES)
_OF_TOPICS = frozenset(ORDER_FILLED_TOPICS)


def order_filled(logs: Sequence[dict[str, Any]]) -> list[list[str]]:
    """``[trade_id, maker]`` for every OrderFilled log of a default exchange in ``logs``."""
    out: list[list[str]] = []
    for log in logs:
        topics = log.get("topics") or []
        if len(topics) < 3 or str(topics[0]).lower() not in _OF_TOPICS:
            continue
        if str(log.get("address", "")).lower() not in _EXCHANGES:
            continue
        maker = "0x" + str(topics[2]).lower()[-40:]
        out.append([trade_id(str(log["transactionHash"]), int(log["logIndex"], 16)), maker])
    return out


@dataclass(slots=True)
class PreparedBlock(RecordedBlock):
    """A recorded block with what serving it needs built already (the header's JSON, its
    OrderFilled ``[trade_id, maker]`` pairs, its transaction hashes, its filter index over
    ``logs``, the explorer archive's keys): by a render-ahead helper process
    (:mod:`simulator.render_ahead`), so the replay's process does not. :class:`ChainBlock`
    and the explorer take them as their caches; they are what each would build itself."""

    header_json: str | None = None
    fills: list[list[str]] | None = None
    tx_hashes: list[str] | None = None
    index: BlockIndex | None = None
    archive_keys: frozenset[str] | None = None

    @classmethod
    def of(cls, rb: RecordedBlock) -> PreparedBlock:
        block = ChainBlock(rb)
        return cls(rb.block, rb.logs, rb.transactions, block.header_json(), block.fills,
                   block.tx_hashes, block.index, archive_keys(rb))


class ChainBlock:
    """One block as served, with its filter index and JSON caches (built once)."""

    __slots__ = ("_fills", "_header_json", "_index", "_log_json", "_removed_json",
                 "_tx_hashes", "indexed_ns", "rb", "visible_ns")

    def __init__(self, rb: RecordedBlock) -> None:
        self.rb = rb
        self._index: BlockIndex | None = None  # built on first use: a long recording
        self._fills: list[list[str]] | None = None  # starts at once
        self._tx_hashes: list[str] | None = None
        self.visible_ns: int | None = None
        self.indexed_ns: int | None = None
        self._header_json: str | None = None
        self._log_json: list[str | None] | None = None
        self._removed_json: list[str | None] | None = None
        if isinstance(rb, PreparedBlock):
            self._header_json, self._fills, self._tx_hashes = (
                rb.header_json, rb.fills, rb.tx_hashes)
            if rb.index is not None and rb.index.logs is rb.logs:  # an index of these logs
                self._index = rb.index

    @property
    def index(self) -> BlockIndex:
        """The block's filter index (built once, on first use)."""
        if self._index is None:
            self._index = BlockIndex(self.rb.logs)
        return self._index

    @property
    def fills(self) -> list[list[str]]:
        """``[trade_id, maker]`` of the block's OrderFilled logs (built once)."""
        if self._fills is None:
            self._fills = order_filled(self.rb.logs)
        return self._fills

    @property
    def tx_hashes(self) -> list[str]:
        if self._tx_hashes is None:
            self._tx_hashes = _tx_hashes(self.rb)
        return self._tx_hashes

    @property
    def number(self) -> int:
        return self.rb.number

    @property
    def hash(self) -> str:
        return self.rb.hash

    @property
    def logs(self) -> list[dict[str, Any]]:
        return self.rb.logs

    def header(self) -> dict[str, Any]:
        """The block as ``newHeads`` sends it: the header without transactions."""
        return {k: v for k, v in self.rb.block.items() if k not in _HEADER_DROP}

    def header_json(self) -> str:
        if self._header_json is None:
            self._header_json = compact_json(self.header())
        return self._header_json

    def log_json(self, i: int) -> str:
        """Log ``i`` serialised once, however many subscribers get it."""
        cache = self._log_json
        if cache is None:
            cache = self._log_json = [None] * len(self.rb.logs)
        text = cache[i]
        if text is None:
            text = cache[i] = compact_json(self.rb.logs[i])
        return text

    def removed_log_json(self, i: int) -> str:
        """Log ``i`` as a reorg re-sends it (``removed: true``), serialised once."""
        cache = self._removed_json
        if cache is None:
            cache = self._removed_json = [None] * len(self.rb.logs)
        text = cache[i]
        if text is None:
            text = cache[i] = compact_json({**self.rb.logs[i], "removed": True})
        return text

    def order_filled(self) -> list[list[str]]:
        return self.fills

    def shed(self) -> None:
        """Let go of the filter index and JSON caches (rebuilt, the same, if asked again):
        a reorged-in block kept behind the window costs its logs, not twice them."""
        self._index = self._header_json = self._log_json = self._removed_json = None

    def transactions(self) -> list[dict[str, Any]]:
        """Full transaction objects (from the recording, or minimal ones built from logs)."""
        if self.rb.transactions:
            return self.rb.transactions
        out: list[dict[str, Any]] = []
        first_log: dict[str, dict[str, Any]] = {}
        for log in self.rb.logs:
            first_log.setdefault(str(log["transactionHash"]), log)
        for i, h in enumerate(self.tx_hashes):
            first = first_log.get(h)
            out.append({
                "hash": h, "blockHash": self.hash, "blockNumber": self.rb.block["number"],
                "transactionIndex": hex(i), "from": "0x" + "00" * 20,
                "to": first["address"] if first else None, "input": "0x", "value": "0x0",
                "gas": "0x0", "gasPrice": "0x0", "nonce": "0x0", "type": "0x0",
                "chainId": "0x89", "v": "0x0", "r": "0x0", "s": "0x0",
            })
        return out


def _tx_hashes(rb: RecordedBlock) -> list[str]:
    seen: dict[str, None] = {}
    for tx in rb.block.get("transactions", []):
        seen[str(tx if isinstance(tx, str) else tx.get("hash"))] = None
    for log in rb.logs:
        seen.setdefault(str(log["transactionHash"]), None)
    return list(seen)


class _RecordedView(Sequence[RecordedBlock]):
    """The first ``n`` chain blocks as recorded blocks, without copying them."""

    __slots__ = ("_blocks", "_n")

    def __init__(self, blocks: Sequence[ChainBlock], n: int) -> None:
        self._blocks = blocks
        self._n = n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> RecordedBlock: ...

    @overload
    def __getitem__(self, i: slice) -> list[RecordedBlock]: ...

    def __getitem__(self, i: int | slice) -> RecordedBlock | list[RecordedBlock]:
        if isinstance(i, slice):
            return [self._blocks[k].rb for k in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("indexed block out of range")
        return self._blocks[i].rb


class _Tail(Sequence[int]):
    """``values[offset:]`` without copying (it grows as ``values`` does)."""

    __slots__ = ("_values", "offset")

    def __init__(self, values: Sequence[int], offset: int) -> None:
        self._values = values
        self.offset = offset

    def __len__(self) -> int:
        return len(self._values) - self.offset

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...

    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self._values) - self.offset  # read twice a published block: no len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("timestamp index out of range")
        return self._values[i + self.offset]


class _Window(Sequence[ChainBlock]):
    """The blocks of a streamed chain by position: the recent ones held, older ones given
    again by the source (``restore`` puts back their publish and index times)."""

    def __init__(self, source: BlockSource, on_produce: Callable[[ChainBlock], None],
                 restore: Callable[[int, ChainBlock], None]) -> None:
        self.source = source
        self.produced = 0
        self.done = False
        self.error: str | None = None  # why the stream ended early
        self.floor = 0  # positions below are not held (unless replaced by a reorg)
        self.rebuilt = 0  # blocks given again by the source (each a render or a read)
        self._held: dict[int, ChainBlock] = {}
        self._replaced: set[int] = set()
        # reorged-in blocks below the floor: the source cannot give them again, so they are
        # spilled to a temporary file (zlib'd JSON) and read back when asked for; memory
        # keeps where each one is and its publish and index times
        self._kept: dict[int, tuple[int, int, int | None, int | None]] = {}
        self._spill: IO[bytes] | None = None
        self._spilled: OrderedDict[int, ChainBlock] = OrderedDict()  # a few read back
        self._on_produce = on_produce
        self._restore = restore

    def ensure(self, pos: int) -> bool:
        """Read blocks up to position ``pos``; False when the chain ends before it."""
        while self.produced <= pos:
            if self.done:
                return False
            try:
                rb = self.source.next_block()
            except RecordingError as exc:  # a defect in a streamed file: the chain ends there
                if self.produced == 0:
                    raise
                log.error("recording: %s; the replay ends at block position %d",
                          exc, self.produced)
                self.error = str(exc)
                rb = None
            if rb is None:
                self.done = True
                return False
            block = ChainBlock(rb)
            self._held[self.produced] = block
            self.produced += 1
            self._on_produce(block)
        return True

    def evict(self, floor: int) -> list[ChainBlock]:
        """Stop holding positions below ``floor``; return the blocks let go (reorged-in
        ones too: they are spilled, and nothing else may keep them alive)."""
        out = []
        for pos in range(self.floor, floor):
            block = self._held.pop(pos, None)
            if block is None:
                continue
            if pos in self._replaced:
                self._keep(pos, block)
            else:  # the source's own block: it may keep it rather than give it again
                self.source.retain(pos, block.rb)
            out.append(block)
        self.floor = max(self.floor, floor)
        return out

    def __len__(self) -> int:
        count = self.source.count
        return self.produced if self.done or count is None else max(count, self.produced)

    @overload
    def __getitem__(self, i: int) -> ChainBlock: ...

    @overload
    def __getitem__(self, i: slice) -> list[ChainBlock]: ...

    def __getitem__(self, i: int | slice) -> ChainBlock | list[ChainBlock]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self.produced))]
        if i < 0:
            i += self.produced
        block = self._held.get(i)
        if block is None and i in self._kept:
            block = self._read_kept(i)
        if block is not None:
            return block
        if not 0 <= i < self.produced:
            raise IndexError("block position out of range")
        block = ChainBlock(self.source.block_at(i))
        self.rebuilt += 1
        self._restore(i, block)
        return block

    def __setitem__(self, i: int, block: ChainBlock) -> None:
        if not 0 <= i < self.produced:
            raise IndexError("block position out of range")
        self._replaced.add(i)
        if i >= self.floor:
            self._held[i] = block
        else:
            self._keep(i, block)

    def _keep(self, pos: int, block: ChainBlock) -> None:
        """Spill a reorged-in block that leaves the window (its JSON, compressed)."""
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="sim-kept-")  # noqa: SIM115
        rb = block.rb
        data = zlib.compress(json.dumps(
            {"block": rb.block, "logs": rb.logs, "transactions": rb.transactions},
            separators=(",", ":")).encode(), 1)
        offset = self._spill.seek(0, 2)
        self._spill.write(data)
        self._kept[pos] = (offset, len(data), block.visible_ns, block.indexed_ns)
        self._spilled.pop(pos, None)

    def _read_kept(self, pos: int) -> ChainBlock:
        block = self._spilled.get(pos)
        if block is not None:
            self._spilled.move_to_end(pos)
            return block
        offset, size, visible_ns, indexed_ns = self._kept[pos]
        assert self._spill is not None
        self._spill.seek(offset)
        row = json.loads(zlib.decompress(self._spill.read(size)))
        block = ChainBlock(RecordedBlock(block=row["block"], logs=row["logs"],
                                         transactions=row["transactions"]))
        block.visible_ns, block.indexed_ns = visible_ns, indexed_ns
        self._spilled[pos] = block
        if len(self._spilled) > 4:
            self._spilled.popitem(last=False)
        return block


_MASK64 = (1 << 64) - 1
_SLOT_BITS = 14
_SLOTS = 1 << _SLOT_BITS  # slots of one hash-index table
_CHUNK = _SLOTS // 2  # the positions it covers: at most half its slots hold one
_EMPTY, _GONE = 0xFFFF, 0xFFFE  # slots never used, and of a forgotten position


def _hash_key(block_hash: str) -> int:
    """The first 8 bytes of a (lowercase) block hash as an int; for a string that is no
    hash, any int (a position found by it is checked against the full hash anyway)."""
    try:
        return int(block_hash[2:18], 16) & _MASK64
    except ValueError:
        return hash(block_hash) & _MASK64


class _HashIndex:
    """Block hash -> position, for every published canonical block, in ~12 bytes a block
    (a dict of hash strings took ~170, ~45 MB over a simulated week): the first 8 bytes
    of each position's hash (:func:`_hash_key`), and for every 8,192 positions a table
    of 16,384 2-byte slots (open addressing, linear probing) holding their offsets by
    that key. Tables never grow, so there is no rehash pause; a lookup probes each one
    (~35 over a week of the default profile, ~30 us). A position found is a candidate only:
    :meth:`Chain.block_by_hash` compares the block's full hash, so a hash sharing its
    first 8 bytes with a published one is never taken for it. Positions are added in
    order and forgotten from the end (a reorg's orphaned blocks)."""

    def __init__(self) -> None:
        self._keys = array("Q")  # by position
        self._tables: list[array[int]] = []  # table c: positions c * _CHUNK + offset
        self._used: list[int] = []  # per table: slots not _EMPTY

    def __len__(self) -> int:
        return len(self._keys)

    @staticmethod
    def _home(key: int) -> int:
        return ((key * 0x9E3779B97F4A7C15) & _MASK64) >> (64 - _SLOT_BITS)

    def _place(self, pos: int) -> None:
        c, off = divmod(pos, _CHUNK)
        table = self._tables[c]
        i = self._home(self._keys[pos])
        while table[i] < _GONE:
            i = (i + 1) % _SLOTS
        if table[i] == _EMPTY:
            self._used[c] += 1
        table[i] = off

    def append(self, block_hash: str) -> None:
        """Add the next position, named ``block_hash``."""
        pos = len(self._keys)
        self._keys.append(_hash_key(block_hash.lower()))
        c = pos // _CHUNK
        if c == len(self._tables):
            self._tables.append(array("H", [_EMPTY]) * _SLOTS)
            self._used.append(0)
        self._place(pos)
        if 4 * self._used[c] > 3 * _SLOTS:  # mostly forgotten positions: start afresh
            self._tables[c] = array("H", [_EMPTY]) * _SLOTS
            self._used[c] = 0
            for p in range(c * _CHUNK, pos + 1):
                self._place(p)

    def truncate(self, n: int) -> None:
        """Forget positions ``n`` and after."""
        for pos in range(n, len(self._keys)):
            c, off = divmod(pos, _CHUNK)
            table = self._tables[c]
            i = self._home(self._keys[pos])
            while table[i] != off:
                i = (i + 1) % _SLOTS
            table[i] = _GONE
        del self._keys[n:]

    def positions(self, block_hash: str) -> list[int]:
        """The positions whose hash starts like ``block_hash`` (usually one or none)."""
        key = _hash_key(block_hash.lower())
        keys = self._keys
        home = self._home(key)
        out = []
        for c, table in enumerate(self._tables):
            base = c * _CHUNK
            i = home
            while (off := table[i]) != _EMPTY:
                if off != _GONE and keys[base + off] == key:
                    out.append(base + off)
                i = (i + 1) % _SLOTS
        return out


@dataclass(frozen=True, slots=True)
class ReorgResult:
    """What a reorg did: the blocks it took off the chain and those it put on."""

    depth: int
    from_number: int
    old: tuple[ChainBlock, ...]
    new: tuple[ChainBlock, ...]


class Chain:
    """The canonical chain of a replay, and what is visible of it at a given time."""

    def __init__(self, recording: Recording | BlockSource, *,
                 settings: SimSettings | None = None, speed: float = 1.0,
                 t0_ns: int = 0, defer_history: bool = False) -> None:
        """``defer_history``: a streamed chain reads its history blocks only at
        :meth:`prime` (the server listens first, then primes before any request)."""
        self.recording = recording
        self.settings = settings or SimSettings()
        self.chain_id = recording.chain_id
        self.blocks: list[ChainBlock] | _Window
        #: blocks kept behind the head (None: every block, for an in-memory recording)
        self.window: int | None = None
        self._visible_ns = array("q")  # per published canonical block
        self._indexed_ns = array("q")  # per published canonical block, non-decreasing
        want_history = self.settings.history_blocks or 0
        self.lag = IndexLag(self.settings.lag)
        self.lag_extra_s = 0.0  # explorer_lag fault: added to blocks published meanwhile
        self.published = 0
        self._reported_indexed = 0
        self._by_hash = _HashIndex()  # hash -> position, every published block
        self._tx: dict[str, tuple[ChainBlock, int]] = {}
        self._generation = 0
        self._reorgs: deque[ReorgResult] = deque()  # recent ones, for replaced_at
        if isinstance(recording, Recording):
            if not recording.blocks:
                raise ValueError("the recording has no blocks")
            self.blocks = [ChainBlock(b) for b in recording.blocks]
            self.first_number = self.blocks[0].number
            # blocks [0, history) are published from the start; the replay schedule covers
            # the rest: the first replayed block is due at t0, as block 0 was without history
            self.history = min(want_history, len(recording.blocks) - 1)
            self.schedule = ReplaySchedule.build(
                t0_ns, [b.timestamp for b in recording.blocks[self.history:]], speed)
            while self.published < self.history:
                self._publish_history()
        else:
            self.window = self.settings.window_blocks or DEFAULT_WINDOW_BLOCKS
            timestamps = array("q")  # of every block read so far (8 bytes a block)
            window = _Window(recording, lambda b: timestamps.append(b.rb.timestamp),
                             self._restore)
            self.blocks = window
            if not window.ensure(0):
                raise ValueError("the recording has no blocks")
            self.first_number = window[0].number
            self._replay_ts = _Tail(timestamps, 0)
            self.schedule = ReplaySchedule(t0_ns=t0_ns, timestamps=self._replay_ts,
                                           speed=speed)
            count = recording.count
            self.history = want_history if count is None else min(want_history, count - 1)
            self._primed = False
            if not defer_history:
                self.prime()
        self._reported_indexed = self.history

    @property
    def primed(self) -> bool:
        """Whether the history is published (a chain not streamed has it from the start)."""
        return getattr(self, "_primed", True)

    def prime(self, on_history: Callable[[ChainBlock], None] | None = None) -> None:
        """Publish a streamed chain's history (once): its blocks are read, published and
        let go one by one; at least one block is replayed. ``on_history`` sees each block
        while it is in hand (a second pass would regenerate or re-read every one)."""
        if self.primed:
            return
        self._primed = True
        assert isinstance(self.blocks, _Window)
        while self.published < self.history and self.blocks.ensure(self.published + 1):
            if on_history is not None:
                on_history(self.blocks[self.published])
            self._publish_history()
        self.history = self._replay_ts.offset = self._reported_indexed = self.published
        self.blocks.ensure(self.published)

    def _publish_history(self) -> None:
        """Publish the next block as history: visible and indexed already."""
        block = self.blocks[self.published]
        self._publish(block, 0, 0)
        block.indexed_ns = 0
        self._indexed_ns[-1] = 0
        self.published += 1
        self._evict()

    # -- time ---------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self.schedule.speed

    @property
    def t0_ns(self) -> int:
        return self.schedule.t0_ns

    @property
    def first_replayed(self) -> int:
        """The number of the first block the replay publishes (after the history)."""
        return self.first_number + self.history

    def _ensure(self, pos: int) -> bool:
        """Whether block position ``pos`` exists (a streamed chain reads up to it)."""
        if isinstance(self.blocks, _Window):
            return self.blocks.ensure(pos)
        return pos < len(self.blocks)

    def next_publish_ns(self) -> int | None:
        self._ensure(self.published)  # one block ahead of the replay
        return self.schedule.next_due_ns(self.published - self.history)

    def exhausted(self) -> bool:
        return not self._ensure(self.published)

    def upcoming(self) -> ChainBlock | None:
        """The block the replay publishes next (None when the chain is exhausted): what
        the node may prepare while it waits for it to be due."""
        return self.blocks[self.published] if self._ensure(self.published) else None

    def replay_span_s(self) -> float | None:
        """Simulated seconds from the first replayed block to the last (None: not known
        yet, a streamed chain)."""
        if isinstance(self.blocks, _Window):
            return None
        ts = self.schedule.timestamps
        return float(ts[-1] - ts[0])

    def advance(self, now_ns: int, limit: int | None = None) -> list[ChainBlock]:
        """Publish every block due at ``now_ns`` (at most ``limit``); return them in order."""
        out: list[ChainBlock] = []
        while limit is None or len(out) < limit:
            if not self._ensure(self.published):
                break
            due_ns = self.schedule.due_ns(self.published - self.history)
            if due_ns > now_ns:
                break
            block = self.blocks[self.published]
            self._publish(block, due_ns, now_ns)
            self.published += 1
            out.append(block)
        if out:
            self._evict()
        return out

    def _evict(self) -> None:
        """A streamed chain lets go of blocks more than ``window`` behind the head (their
        transactions leave the lookup table with them)."""
        if self.window is None or not isinstance(self.blocks, _Window):
            return
        for block in self.blocks.evict(self.published - self.window):
            self._forget_txs(block)

    def _forget_txs(self, block: ChainBlock) -> None:
        """Drop ``block``'s entries from the transaction lookup (those still pointing at
        it: a moved transaction points at its new block)."""
        tx = self._tx
        for h in block.tx_hashes:
            found = tx.get(h.lower())
            if found is not None and found[0] is block:
                del tx[h.lower()]

    def _restore(self, pos: int, block: ChainBlock) -> None:
        """Put back what publishing set on a block given again by the source."""
        if pos < len(self._visible_ns):
            block.visible_ns = self._visible_ns[pos]
            block.indexed_ns = self._indexed_ns[pos]

    def _publish(self, block: ChainBlock, due_ns: int, now_ns: int) -> None:
        block.visible_ns = max(due_ns, now_ns)
        lag = self.lag.lag_ns(block.hash, self.speed, self.lag_extra_s)
        prev = self._indexed_ns[-1] if self._indexed_ns else 0
        block.indexed_ns = max(prev, block.visible_ns + lag)
        self._visible_ns.append(block.visible_ns)
        self._indexed_ns.append(block.indexed_ns)
        self._by_hash.append(block.hash)  # at its position: len(self._visible_ns) - 1
        tx = self._tx
        for i, h in enumerate(block.tx_hashes):
            tx[h.lower()] = (block, i)

    def newly_indexed(self, now_ns: int) -> list[ChainBlock]:
        """Canonical blocks whose index time passed since the last call (for the history)."""
        n = bisect.bisect_right(self._indexed_ns, now_ns)
        out = self.blocks[self._reported_indexed:n]
        self._reported_indexed = max(self._reported_indexed, n)
        return out

    def next_index_ns(self) -> int | None:
        if self._reported_indexed < len(self._indexed_ns):
            return self._indexed_ns[self._reported_indexed]
        return None

    def indexed_blocks(self, now_ns: int) -> Sequence[RecordedBlock]:
        """Canonical blocks the explorer has indexed by ``now_ns``, ascending (a view)."""
        return _RecordedView(self.blocks, bisect.bisect_right(self._indexed_ns, now_ns))

    @property
    def stream_error(self) -> str | None:
        """Why a streamed recording ended before its end (a defect found mid-file), else
        None: the blocks before it are replayed, none after."""
        return self.blocks.error if isinstance(self.blocks, _Window) else None

    # -- queries (published blocks only) ------------------------------------------------
    @property
    def head(self) -> ChainBlock | None:
        return self.blocks[self.published - 1] if self.published else None

    @property
    def head_number(self) -> int:
        """The latest visible height (the one before the first block until one is out)."""
        return self.first_number + self.published - 1

    def block(self, number: int) -> ChainBlock | None:
        i = number - self.first_number
        return self.blocks[i] if 0 <= i < self.published else None

    def block_by_hash(self, block_hash: str) -> ChainBlock | None:
        key = block_hash.lower()
        for pos in self._by_hash.positions(key):
            block = self.block(self.first_number + pos)
            if block is not None and block.hash.lower() == key:
                return block
        return None

    def tx(self, tx_hash: str) -> tuple[ChainBlock, int] | None:
        found = self._tx.get(tx_hash.lower())
        if found is None or self.block(found[0].number) is not found[0]:
            return None
        return found

    @property
    def rebuilt(self) -> int:
        """Blocks a streamed chain had given again since it started (they had left the
        window: each cost a render or a read, ~0.3 ms a default block, ~26 ms a busy
        one); 0 for an in-memory chain."""
        return self.blocks.rebuilt if isinstance(self.blocks, _Window) else 0

    def outside_window(self, start: int, stop: int) -> int:
        """How many published blocks of ``[start, stop]`` have left the window: asking for
        them rebuilds them (0 for an in-memory chain)."""
        if not isinstance(self.blocks, _Window):
            return 0
        lo = max(start - self.first_number, 0)
        hi = min(stop - self.first_number, self.published - 1)
        return max(0, min(hi + 1, self.blocks.floor) - lo)

    def iter_range(self, start: int, stop: int) -> Iterator[ChainBlock]:
        """Published canonical blocks with ``start <= number <= stop``."""
        lo = max(start - self.first_number, 0)
        hi = min(stop - self.first_number, self.published - 1)
        for i in range(lo, hi + 1):
            yield self.blocks[i]

    def logs(self, flt: LogFilter, start: int, stop: int,
             limit: int | None = None) -> list[dict[str, Any]] | None:
        """Matching logs in ``[start, stop]``; ``None`` when more than ``limit`` match."""
        out: list[dict[str, Any]] = []
        for block in self.iter_range(start, stop):
            logs = block.logs
            out.extend(logs[i] for i in flt.select(block.index))
            if limit is not None and len(out) > limit:
                return None
        return out

    def logs_json(self, flt: LogFilter, start: int, stop: int,
                  limit: int | None = None) -> list[str] | None:
        """:meth:`logs` as the JSON texts the subscriptions already send (cached per
        block): an ``eth_getLogs`` answer of 10,000 logs is spliced, not re-encoded."""
        texts, _ = run_steps(self.logs_json_steps(flt, start, stop, limit))
        return texts

    def logs_json_steps(self, flt: LogFilter, start: int, stop: int,
                        limit: int | None = None) -> Steps:
        """:meth:`logs_json` in steps, one after each block it had rebuilt (a walk over
        2,000 old busy blocks held the event loop for 51 s). Returns ``(texts, last)``:
        ``texts`` None when more than ``limit`` match, and ``last`` the last block such
        that ``[start, last]`` matches at most ``limit`` (``start`` at least), the range a
        provider suggests in its error."""
        return (yield from self.select_json_steps(self.iter_range(start, stop), flt, start,
                                                  stop, limit))

    def select_json_steps(self, blocks: Iterable[ChainBlock], flt: LogFilter, start: int,
                          stop: int, limit: int | None = None) -> Steps:
        """:meth:`logs_json_steps` over ``blocks`` (this chain's, or a view's of it, in
        order): a step after each block whose reading rebuilt one."""
        out: list[str] = []
        rebuilt = self.rebuilt
        for block in blocks:
            out.extend(block.log_json(i) for i in flt.select(block.index))
            if limit is not None and len(out) > limit:
                return None, max(block.number - 1, start)
            if self.rebuilt != rebuilt:
                rebuilt = self.rebuilt
                yield
        return out, stop

    # -- reorg ----------------------------------------------------------------------------
    def reorg(self, depth: int, now_ns: int, *, seed: int = 0, move_share: float = 0.3,
              vanish_share: float = 0.2) -> ReorgResult | None:
        """Replace the last ``depth`` published blocks with a fork (deterministic in ``seed``).

        Each transaction of the replaced blocks stays in its block, moves to a later block
        (possibly the next, not yet published one) or vanishes. Returns ``None`` when no
        block is published yet.
        """
        depth = min(max(depth, 1), self.published)
        if depth == 0:
            return None
        self._generation += 1
        rng = random.Random(f"{seed}:{self._generation}:{self.head_number}:{depth}")
        start = self.published - depth
        old = self.blocks[start:self.published]
        has_next = self._ensure(self.published)
        slots: list[list[tuple[str, list[dict[str, Any]], dict[str, Any] | None]]] = [
            [] for _ in range(depth + 1)]
        for j, block in enumerate(old):
            txs = {str(t.get("hash")): t for t in block.rb.transactions}
            groups: dict[str, list[dict[str, Any]]] = {h: [] for h in _tx_hashes(block.rb)}
            for log in block.logs:
                groups[str(log["transactionHash"])].append(log)
            for h, logs in groups.items():
                r = rng.random()
                if r < vanish_share:
                    continue
                target = j
                if r < vanish_share + move_share:
                    last = depth if has_next else depth - 1
                    if j < last:
                        target = rng.randint(j + 1, last)
                    elif not has_next:
                        continue  # nowhere later to go: it vanishes
                slots[target].append((h, logs, txs.get(h)))
        new: list[ChainBlock] = []
        parent = old[0].rb.parent_hash
        for j, block in enumerate(old):
            digest = hashlib.blake2b(f"fork:{seed}:{self._generation}:{block.hash}".encode(),
                                     digest_size=32).hexdigest()
            rb = _rebuild(block.rb, "0x" + digest, parent, slots[j], keep_own=False)
            parent = rb.hash
            new.append(ChainBlock(rb))
        if has_next:
            nxt = self.blocks[self.published]
            self.blocks[self.published] = ChainBlock(
                _rebuild(nxt.rb, nxt.hash, parent, slots[depth], keep_own=True))
        # swap in the fork
        del self._indexed_ns[start:]
        del self._visible_ns[start:]
        self._reported_indexed = min(self._reported_indexed, start)
        self._by_hash.truncate(start)  # the old blocks' hashes: orphaned, not found
        self.published = start
        for j, block in enumerate(new):
            self.blocks[start + j] = block
            self._publish(block, now_ns, now_ns)
            self.published += 1
        for block in old:  # its vanished transactions must not keep it alive
            self._forget_txs(block)
        result = ReorgResult(depth=depth, from_number=old[0].number, old=tuple(old),
                             new=tuple(new))
        self._reorgs.append(result)
        self._prune_reorgs()
        kept = sum(len(r.old) for r in self._reorgs)
        while kept > KEEP_REPLACED_BLOCKS and len(self._reorgs) > 1:
            kept -= len(self._reorgs.popleft().old)
        return result

    def _prune_reorgs(self) -> None:
        """Forget reorgs made while the head was :data:`KEEP_REPLACED_HEIGHTS` or more
        below today's: no lagging view is that far behind."""
        while self._reorgs and (self._reorgs[0].old[-1].number
                                <= self.head_number - KEEP_REPLACED_HEIGHTS):
            self._reorgs.popleft()

    def replaced_at(self, head: int) -> dict[int, ChainBlock]:
        """Height -> block, for the heights up to ``head`` where a node whose head is
        ``head`` (at most :data:`KEEP_REPLACED_HEIGHTS` behind this chain's) still has a
        block a later reorg replaced. A reorg is later when it was made while this chain's
        head was above ``head`` (a reorg leaves the head's height as it was: it was made at
        the height of its last replaced block); where several replaced one height, the
        node has the block the earliest of them replaced. Empty when no reorg is kept."""
        self._prune_reorgs()
        out: dict[int, ChainBlock] = {}
        for result in self._reorgs:
            if result.old[-1].number <= head:
                continue  # made while the head was at most ``head``: that node has seen it
            for block in result.old:
                if block.number <= head:
                    out.setdefault(block.number, block)
        return out


def _rebuild(rb: RecordedBlock, new_hash: str, parent: str,
             moved: list[tuple[str, list[dict[str, Any]], dict[str, Any] | None]],
             *, keep_own: bool) -> RecordedBlock:
    """A copy of ``rb`` named ``new_hash`` holding ``moved`` txs (after its own if kept)."""
    items: list[tuple[str, list[dict[str, Any]], dict[str, Any] | None]] = []
    if keep_own:
        txs = {str(t.get("hash")): t for t in rb.transactions}
        groups: dict[str, list[dict[str, Any]]] = {h: [] for h in _tx_hashes(rb)}
        for log in rb.logs:
            groups[str(log["transactionHash"])].append(log)
        items.extend((h, logs, txs.get(h)) for h, logs in groups.items())
    items.extend(moved)
    number = rb.block["number"]
    ts = rb.block["timestamp"]
    block = {**rb.block, "hash": new_hash, "parentHash": parent,
             "transactions": [h for h, _, _ in items]}
    logs: list[dict[str, Any]] = []
    transactions: list[dict[str, Any]] = []
    for ti, (_h, group, tx) in enumerate(items):
        for log in group:
            moved_log = {**log, "blockHash": new_hash, "blockNumber": number,
                         "transactionIndex": hex(ti), "logIndex": hex(len(logs)),
                         "removed": False}
            if "blockTimestamp" in log:
                moved_log["blockTimestamp"] = ts
            logs.append(moved_log)
        if tx is not None:
            transactions.append({**tx, "blockHash": new_hash, "blockNumber": number,
                                 "transactionIndex": hex(ti)})
    return RecordedBlock(block=block, logs=logs, transactions=transactions)
