"""Sans-I/O decision cores of the wallet monitor. No sockets, no clocks: time is an argument.

- :class:`Deduplicator` - deliver each trade id once across sources (WebSocket, backfill,
  explorer), with retractions: a trade retracted and then seen again is delivered again;
  a trade that moved to another block without a retraction is not.
- :class:`BlockTracker` - recent block hashes; classifies each new head as the next block,
  a repeat, a gap (heads skipped) or a reorg (changed parent / repeated height with a new
  hash), and finds the fork point from canonical hashes.
- :class:`ChainChanges` - whether logs fetched from the node went stale while they were
  fetched: a reorg the heads showed, or a ``removed`` log of a block they are in.
- :func:`backfill_ranges` - the block ranges to fetch after an interruption, any length,
  in chunks.
- :class:`FallbackDecider` - when to start polling the explorer and when to hand back.
- :class:`RateLimiter` - token bucket for client-side rate limits.
- :func:`rollout_bucket` / :func:`assign_source` - stable gradual-rollout assignment.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from eth_hash.auto import keccak

from polyvocab.policies import TokenBucket

__all__ = [
    "BlockTracker",
    "ChainChanges",
    "ChangeMark",
    "Decision",
    "DedupEntry",
    "Deduplicator",
    "FallbackAction",
    "FallbackDecider",
    "FallbackState",
    "HeadEvent",
    "HeadKind",
    "RateLimiter",
    "assign_source",
    "backfill_ranges",
    "check_twin",
    "decision",
    "dedup_entry",
    "plausible_head",
    "rollout_bucket",
]


# --------------------------------------------------------------------------------------
# Dedup
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DedupEntry:
    """What is known about one trade id: where it was last delivered and whether it stands.

    ``deliveries`` / ``retractions`` count how many times each went to the sink; they
    number the sink events (the sink's idempotency key is ``(kind, id, generation)``).
    ``wallet``: the watched maker whose fill the id was last delivered as (None: not
    known, a row of an older state DB).
    """

    block_hash: str
    retracted: bool
    deliveries: int
    retractions: int
    wallet: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The deduplicator's answer. ``emit`` False: nothing goes to the sink."""

    emit: bool
    kind: str  # "trade" | "retraction" | "duplicate" | "moved" | "ignored"
    generation: int
    entry: DedupEntry | None


def check_twin(twin: type, cls: type) -> None:
    """Import-time guard of a fast constructor (:func:`dedup_entry` and the like): ``twin``
    holds the slots of the frozen dataclass ``cls`` and its ``__init__`` takes the fields
    in their order, so a field added to ``cls`` and not to ``twin`` fails at import."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    init = twin.__init__  # type: ignore[misc]
    if (twin.__slots__ != cls.__slots__  # type: ignore[attr-defined]
            or init.__code__.co_varnames[1:len(names) + 1] != names):
        raise ImportError(f"{twin.__name__} does not list the fields of {cls.__name__}")


class _DedupEntrySlots:
    """A :class:`DedupEntry`'s slots without the frozen ``__setattr__``: filled with plain
    stores, then made a ``DedupEntry`` (the same slot layout, so CPython allows the
    ``__class__`` assignment; as :class:`monitor.trades._TradeFields`). A frozen
    dataclass's ``__init__`` calls ``object.__setattr__`` once a field (~4x slower), and
    the pipeline makes an entry and a decision a trade."""

    __slots__ = DedupEntry.__slots__

    def __init__(self, block_hash: str, retracted: bool, deliveries: int, retractions: int,
                 wallet: str | None) -> None:
        self.block_hash = block_hash
        self.retracted = retracted
        self.deliveries = deliveries
        self.retractions = retractions
        self.wallet = wallet


class _DecisionSlots:
    """:class:`Decision`'s slots, as :class:`_DedupEntrySlots`."""

    __slots__ = Decision.__slots__

    def __init__(self, emit: bool, kind: str, generation: int,
                 entry: DedupEntry | None) -> None:
        self.emit = emit
        self.kind = kind
        self.generation = generation
        self.entry = entry


check_twin(_DedupEntrySlots, DedupEntry)
check_twin(_DecisionSlots, Decision)


def dedup_entry(block_hash: str, retracted: bool, deliveries: int, retractions: int,
                wallet: str | None = None) -> DedupEntry:
    """``DedupEntry(...)``, the same object, made ~4x faster (:class:`_DedupEntrySlots`)."""
    entry = _DedupEntrySlots(block_hash, retracted, deliveries, retractions, wallet)
    entry.__class__ = DedupEntry  # type: ignore[assignment]
    return entry  # type: ignore[return-value]


def decision(emit: bool, kind: str, generation: int, entry: DedupEntry | None) -> Decision:
    """``Decision(...)``, the same object, made ~4x faster (:class:`_DecisionSlots`)."""
    made = _DecisionSlots(emit, kind, generation, entry)
    made.__class__ = Decision  # type: ignore[assignment]
    return made  # type: ignore[return-value]


class Deduplicator:
    """Delivery decisions by trade id. State can be preloaded from the store (``load``).

    Rules:
    - unseen id -> deliver (generation 1);
    - seen, standing -> duplicate; if its block hash changed, it *moved* (record the new
      hash so a late ``removed`` for the old block is ignored), nothing emitted;
    - seen, retracted -> deliver again (next generation);
    - seen, standing for ANOTHER wallet in another block (:meth:`taken`): not a move - a
      reorg re-included the transaction and its log index (ids are ``<tx>:<logIndex>``,
      and an index counts the block's logs) now names another maker's fill. The caller
      retracts the old trade, then offers the new one (delivered: next generation);
    - retract(id, hash) -> emitted only if the id stands and its recorded hash is ``hash``
      (a ``removed`` for a block the trade already left is stale).
    """

    def __init__(self, *, capacity: int | None = None,
                 lookup: Callable[[str], DedupEntry | None] | None = None) -> None:
        """``capacity``: at most this many entries stay in memory (the most recently used);
        older ones are asked of ``lookup`` (the store) when a trade id comes back. Without
        ``lookup`` every entry stays (tests, short runs)."""
        if capacity is not None and capacity < 1:
            raise ValueError("capacity must be positive")
        self._entries: OrderedDict[str, DedupEntry] = OrderedDict()
        self.capacity = capacity if lookup is not None else None
        self._lookup_fn = lookup

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, trade_id: object) -> bool:
        return isinstance(trade_id, str) and self.get(trade_id) is not None

    def get(self, trade_id: str) -> DedupEntry | None:
        return self._lookup(trade_id, None)

    def in_memory(self, trade_id: str) -> bool:
        """Held in memory (no look-up)."""
        return trade_id in self._entries

    def load(self, entries: Iterable[tuple[str, DedupEntry]]) -> None:
        for tid, entry in entries:
            self._put(tid, entry)

    def _put(self, trade_id: str, entry: DedupEntry) -> None:
        self._entries[trade_id] = entry
        self._entries.move_to_end(trade_id)
        if self.capacity is not None:
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def offer(self, trade_id: str, block_hash: str,
              staged: dict[str, DedupEntry] | None = None, *,
              wallet: str | None = None) -> Decision:
        """A trade seen by some source (``wallet``: its watched maker): the decision.

        With ``staged`` (the pipeline's way) the new entry goes into ``staged`` and the
        decision sees earlier staged entries; the deduplicator itself changes only when the
        caller :meth:`apply` s them after the durable commit. Without it, applied at once."""
        block_hash = block_hash.lower()
        old = self._lookup(trade_id, staged)
        wallet = _wallet(wallet) if wallet is not None else None
        if old is None:
            new = dedup_entry(block_hash, False, 1, 0, wallet)
            self._stage(trade_id, new, staged)
            return decision(True, "trade", 1, new)
        if old.retracted:
            new = dedup_entry(block_hash, False, old.deliveries + 1, old.retractions,
                             wallet or old.wallet)
            self._stage(trade_id, new, staged)
            return decision(True, "trade", new.deliveries, new)
        if old.block_hash != block_hash:
            new = dedup_entry(block_hash, False, old.deliveries, old.retractions,
                             wallet or old.wallet)
            self._stage(trade_id, new, staged)
            return decision(False, "moved", old.deliveries, new)
        return decision(False, "duplicate", old.deliveries, old)

    def offer_unknown(self, trade_id: str, block_hash: str, wallet: str,
                      staged: dict[str, DedupEntry]) -> Decision | None:
        """:meth:`offer` (staged) of an id neither staged nor known (in memory or to the
        look-up): its first delivery, decided as ``offer`` decides it. None when the id
        is known: the caller asks :meth:`taken`, then :meth:`offer`. The pipeline's usual
        case, with one look-up where ``taken`` and ``offer`` made two."""
        if trade_id in staged or trade_id in self._entries:
            return None
        if self._lookup_fn is not None:
            entry = self._lookup_fn(trade_id)
            if entry is not None:
                self._put(trade_id, entry)
                return None
        new = dedup_entry(block_hash.lower(), False, 1, 0, _wallet(wallet))
        staged[trade_id] = new
        return decision(True, "trade", 1, new)

    def taken(self, trade_id: str, block_hash: str, wallet: str,
              staged: dict[str, DedupEntry] | None = None) -> DedupEntry | None:
        """The entry of ``trade_id`` when it stands for another wallet than ``wallet`` in
        another block than ``block_hash`` (see the rules): that trade is an orphan, to be
        retracted before this fill is offered. None otherwise (unknown, retracted, the
        same block, the same wallet - a move -, or a wallet not known)."""
        old = self._lookup(trade_id, staged)
        if (old is None or old.retracted or old.wallet is None
                or old.block_hash == block_hash.lower() or old.wallet == wallet.lower()):
            return None
        return old

    def _stage(self, trade_id: str, entry: DedupEntry,
               staged: dict[str, DedupEntry] | None) -> None:
        if staged is None:
            self._put(trade_id, entry)
        else:
            staged[trade_id] = entry

    def retract(self, trade_id: str, block_hash: str,
                staged: dict[str, DedupEntry] | None = None) -> Decision:
        """A trade's log was removed from block ``block_hash``: the decision (``staged`` as
        in :meth:`offer`)."""
        block_hash = block_hash.lower()
        old = self._lookup(trade_id, staged)
        if old is None or old.retracted or old.block_hash != block_hash:
            return decision(False, "ignored", 0, old)
        new = dedup_entry(block_hash, True, old.deliveries, old.retractions + 1, old.wallet)
        self._stage(trade_id, new, staged)
        return decision(True, "retraction", new.retractions, new)

    def apply(self, staged: dict[str, DedupEntry]) -> None:
        """Make staged decisions current: call only after they were committed to disk."""
        for tid, entry in staged.items():
            self._put(tid, entry)

    def _lookup(self, trade_id: str, staged: dict[str, DedupEntry] | None) -> DedupEntry | None:
        if staged is not None:
            entry = staged.get(trade_id)
            if entry is not None:
                return entry
        entry = self._entries.get(trade_id)
        if entry is None and self._lookup_fn is not None:
            entry = self._lookup_fn(trade_id)  # evicted earlier: the store remembers it
            if entry is not None:
                self._put(trade_id, entry)
        return entry


def _wallet(wallet: str) -> str:
    """One string object a wallet, whatever entry holds it (200,000 entries in memory)."""
    return sys.intern(wallet.lower())


# --------------------------------------------------------------------------------------
# Blocks: heads, gaps, reorgs
# --------------------------------------------------------------------------------------

class HeadKind(enum.Enum):
    FIRST = "first"        # the first head seen
    NEXT = "next"          # number == last + 1 and parent matches
    REPEAT = "repeat"      # a height and hash already known (duplicate notification)
    GAP = "gap"            # number > last + 1: heads were skipped (missed notifications)
    REORG = "reorg"        # parent does not match, or a known height with a new hash
    OLD = "old"            # below the window we keep: cannot judge, ignored


@dataclass(frozen=True, slots=True)
class HeadEvent:
    """What a new head means. For GAP, ``start``..``end`` is the missed range. For REORG,
    blocks from ``start`` up may have changed: confirm with :meth:`BlockTracker.fork_point`."""

    kind: HeadKind
    number: int
    start: int = 0
    end: int = 0


class BlockTracker:
    """Recent block hashes (the last ``keep``) and head classification."""

    def __init__(self, keep: int = 128) -> None:
        if keep < 2:
            raise ValueError("keep must be >= 2")
        self.keep = keep
        self._hashes: OrderedDict[int, str] = OrderedDict()
        self.head: int | None = None
        self._changed: int | None = None  # lowest height a REORG event proved changed

    def hash_at(self, number: int) -> str | None:
        return self._hashes.get(number)

    @property
    def oldest(self) -> int | None:
        return next(iter(self._hashes), None)

    def known(self) -> dict[int, str]:
        return dict(self._hashes)

    def _set(self, number: int, block_hash: str) -> None:
        # Heights above ``number`` belong to a replaced branch: drop them.
        for n in [n for n in self._hashes if n > number]:
            del self._hashes[n]
        self._hashes[number] = block_hash
        self._hashes.move_to_end(number)
        while len(self._hashes) > self.keep:
            self._hashes.popitem(last=False)
        self.head = number

    def on_head(self, number: int, block_hash: str, parent_hash: str) -> HeadEvent:
        """Record a head and classify it."""
        block_hash, parent_hash = block_hash.lower(), parent_hash.lower()
        head = self.head
        if head is None:
            self._set(number, block_hash)
            return HeadEvent(HeadKind.FIRST, number)
        known = self._hashes.get(number)
        if known == block_hash:
            return HeadEvent(HeadKind.REPEAT, number)
        oldest = self.oldest
        if oldest is not None and number < oldest:
            return HeadEvent(HeadKind.OLD, number)
        parent_known = self._hashes.get(number - 1)
        if number <= head or (parent_known is not None and parent_known != parent_hash):
            # A height we had with another hash, or a parent we do not have: reorg.
            start = number if parent_known == parent_hash else number - 1
            self._set(number, block_hash)
            if parent_known != parent_hash:
                self._hashes.pop(number - 1, None)
            start = max(start, 0)
            self._changed = start if self._changed is None else min(self._changed, start)
            return HeadEvent(HeadKind.REORG, number, start=max(start, 0), end=number)
        self._set(number, block_hash)
        if number == head + 1:
            return HeadEvent(HeadKind.NEXT, number)
        return HeadEvent(HeadKind.GAP, number, start=head + 1, end=number - 1)

    def fork_point(self, canonical: dict[int, str]) -> int:
        """The lowest height whose recorded hash differs from (or is missing for) the node's
        current hash in ``canonical`` (number -> hash); one past the highest compared if none
        differs. Records the canonical hashes. The shell builds ``canonical`` by walking down
        from a REORG event's ``start`` until a height matches (see wallet_monitor)."""
        canonical = {n: h.lower() for n, h in canonical.items()}
        differs = [n for n, h in canonical.items() if self._hashes.get(n) != h]
        if self._changed is not None:
            differs.append(self._changed)
            self._changed = None
        floor = self.oldest
        for n, h in canonical.items():
            if floor is None or n >= floor:
                self._hashes[n] = h
        self._hashes = OrderedDict(sorted(self._hashes.items()))
        while len(self._hashes) > self.keep:
            self._hashes.popitem(last=False)
        if differs:
            return min(differs)
        return max(canonical) + 1 if canonical else (self.head or 0) + 1


@dataclass(frozen=True, slots=True)
class ChangeMark:
    """Where :class:`ChainChanges` stood when a fetch began."""
    reorgs: int
    removals: int


class ChainChanges:
    """Did the chain change under logs fetched from the node, while they were fetched?

    A reorg the feed's heads show makes any fetched log suspect (it may be of the
    replaced chain). A ``removed`` log makes suspect only the fetched logs of its own
    block: counting every removal as a chain change let a node that floods them (broken
    or hostile, removing blocks that never were) cut every sync for good, and a gap was
    never backfilled. The removed block hashes are kept, the last ``keep`` of them; a
    mark older than a forgotten one is judged stale (nothing is trusted unchecked)."""

    def __init__(self, keep: int = 16_384) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.keep = keep
        self.reorgs = 0
        self.removals = 0
        self._removed: OrderedDict[str, int] = OrderedDict()  # block hash -> last removal
        self._forgotten = 0  # the newest removal no longer in ``_removed``

    def mark(self) -> ChangeMark:
        return ChangeMark(self.reorgs, self.removals)

    def on_reorg(self) -> None:
        self.reorgs += 1

    def on_removed(self, block_hash: str) -> None:
        """A ``removed`` log of the block ``block_hash`` (a 32-byte hex string)."""
        self.removals += 1
        key = block_hash.lower()
        self._removed[key] = self.removals
        self._removed.move_to_end(key)
        while len(self._removed) > self.keep:
            _h, seq = self._removed.popitem(last=False)
            self._forgotten = max(self._forgotten, seq)

    def reorged_since(self, mark: ChangeMark) -> bool:
        return self.reorgs != mark.reorgs

    def stale(self, mark: ChangeMark, logs: Iterable[dict[str, object]]) -> bool:
        """True if a reorg came after ``mark``, or a removal of a block one of ``logs``
        is in (or a removal since forgotten: it may have been one)."""
        if self.reorgs != mark.reorgs:
            return True
        if self.removals == mark.removals:
            return False
        if self._forgotten > mark.removals:
            return True
        removed = self._removed
        for lg in logs:
            h = lg.get("blockHash")
            if isinstance(h, str) and removed.get(h.lower(), 0) > mark.removals:
                return True
        return False


def backfill_ranges(cursor: int, head: int, chunk: int) -> Iterator[tuple[int, int]]:
    """Inclusive ranges covering ``cursor+1 .. head`` in chunks of at most ``chunk`` blocks,
    yielded one at a time (a hostile head 2^62 blocks ahead costs nothing until fetched)."""
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    return _ranges(cursor + 1, head, chunk)


def _ranges(start: int, head: int, chunk: int) -> Iterator[tuple[int, int]]:
    while start <= head:
        end = min(head, start + chunk - 1)
        yield start, end
        start = end + 1


# --------------------------------------------------------------------------------------
# Fallback
# --------------------------------------------------------------------------------------

class FallbackState(enum.Enum):
    LIVE = "live"              # feed healthy, WebSocket is the source
    UNHEALTHY = "unhealthy"    # feed unhealthy, not yet for ``fallback_after``
    POLLING = "polling"        # explorer polling is the source
    HANDBACK = "handback"      # feed healthy again; backfilling before polling stops


class FallbackAction(enum.Enum):
    NONE = "none"
    START_POLLING = "start_polling"
    BACKFILL = "backfill"          # feed back: backfill from the cursor, then handed_back()
    STOP_POLLING = "stop_polling"


# (state, healthy) -> (next state, action); UNHEALTHY->POLLING is decided by time.
_FALLBACK_TABLE: dict[tuple[FallbackState, bool], tuple[FallbackState, FallbackAction]] = {
    (FallbackState.LIVE, True): (FallbackState.LIVE, FallbackAction.NONE),
    (FallbackState.LIVE, False): (FallbackState.UNHEALTHY, FallbackAction.NONE),
    (FallbackState.UNHEALTHY, True): (FallbackState.LIVE, FallbackAction.NONE),
    (FallbackState.UNHEALTHY, False): (FallbackState.UNHEALTHY, FallbackAction.NONE),
    (FallbackState.POLLING, True): (FallbackState.HANDBACK, FallbackAction.BACKFILL),
    (FallbackState.POLLING, False): (FallbackState.POLLING, FallbackAction.NONE),
    (FallbackState.HANDBACK, True): (FallbackState.HANDBACK, FallbackAction.NONE),
    (FallbackState.HANDBACK, False): (FallbackState.POLLING, FallbackAction.NONE),
}


class FallbackDecider:
    """Unhealthy for longer than ``fallback_after`` -> poll; healthy again -> backfill, then
    hand back. ``update(healthy, now)`` is called on every health change and periodically."""

    def __init__(self, fallback_after: float) -> None:
        if fallback_after <= 0:
            raise ValueError("fallback_after must be positive")
        self.fallback_after = fallback_after
        self.state = FallbackState.LIVE
        self.unhealthy_since: float | None = None

    @property
    def polling(self) -> bool:
        return self.state in (FallbackState.POLLING, FallbackState.HANDBACK)

    def update(self, healthy: bool, now: float) -> FallbackAction:
        state, action = _FALLBACK_TABLE[(self.state, healthy)]
        if self.state is FallbackState.LIVE and not healthy:
            self.unhealthy_since = now
        if healthy and state is FallbackState.LIVE:
            self.unhealthy_since = None
        if (state is FallbackState.UNHEALTHY and self.unhealthy_since is not None
                and now - self.unhealthy_since >= self.fallback_after):
            state, action = FallbackState.POLLING, FallbackAction.START_POLLING
        self.state = state
        return action

    def handed_back(self, now: float) -> FallbackAction:
        """The hand-back backfill finished. Stop polling if still healthy."""
        if self.state is not FallbackState.HANDBACK:
            return FallbackAction.NONE
        self.state = FallbackState.LIVE
        self.unhealthy_since = None
        return FallbackAction.STOP_POLLING

    def deadline(self) -> float | None:
        """When an UNHEALTHY feed will switch to polling (None if not pending)."""
        if self.state is FallbackState.UNHEALTHY and self.unhealthy_since is not None:
            return self.unhealthy_since + self.fallback_after
        return None


# --------------------------------------------------------------------------------------
# Rate limit
# --------------------------------------------------------------------------------------

#: the client-side token bucket (one implementation, in :mod:`polyvocab.policies`)
RateLimiter = TokenBucket


# --------------------------------------------------------------------------------------
# Gradual rollout
# --------------------------------------------------------------------------------------

def rollout_bucket(address: str) -> int:
    """0..99, stable for an address: first 8 bytes of keccak256(address bytes) mod 100."""
    body = address.lower().removeprefix("0x")
    digest = keccak(bytes.fromhex(body))
    return int.from_bytes(digest[:8], "big") % 100


def plausible_head(number: int, last: int | None, elapsed: float, *, block_interval: float,
                   slack: int) -> bool:
    """Can the chain be at ``number`` when it was at ``last`` ``elapsed`` clock seconds ago?

    Blocks come every ``block_interval`` clock seconds; allow twice that rate plus
    ``slack`` blocks. A head beyond it (a node sending a height that never materialises)
    must not steer backfill toward it."""
    if last is None:
        return True
    return number <= last + slack + 2.0 * max(elapsed, 0.0) / block_interval


def assign_source(address: str, websocket_share: float) -> str:
    """``"websocket"`` if the address's bucket is below ``websocket_share`` (0..100)."""
    return "websocket" if rollout_bucket(address) < websocket_share else "polling"
