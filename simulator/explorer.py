"""An Etherscan-V2-compatible explorer API (chainid 137) over the replayed chain.

Pure core, thin shell:

* :class:`Explorer` answers one request, ``handle(path, params, now_ns)``, with an
  :class:`ExplorerReply` (HTTP status, body bytes, and an ``outcome`` the server counts).
  It reads the blocks the explorer has already indexed from an :class:`IndexedChain`
  and keeps per-address and per-topic indexes, extended once per newly indexed block
  (and rolled back on a reorg), so a hundred wallets polling stay cheap.
* :func:`make_explorer_handler` wraps it for aiohttp (``GET /v2/api`` and the
  deprecated ``GET /api``), including the ``timeout`` fault's hang.

Conventions copied from the real service (REFERENCE.md): every value a string;
``{"status":"1","message":"OK","result":[...]}``; errors are HTTP 200 with
``{"status":"0","message":"NOTOK","result":"<text>"}``; an empty answer is
``{"status":"0","message":"No transactions found","result":[]}`` ("No records found"
for getLogs). account actions use decimal strings, getLogs hex strings with zero as
``"0x"``, proxy answers raw JSON-RPC bodies. ``module=proxy`` is Etherscan's Geth proxy: it
asks a node, so its ``eth_blockNumber`` is the chain's head, ahead of the index by the index
lag (a poller that reads its head must query the last blocks again: what the index did not
have yet), and its ``eth_getBlockByNumber`` (``tag=0x..``, ``boolean=true|false``) the
chain's block (one not indexed yet, or long gone from an archiving index's lists, too), a
bad ``tag`` the node's JSON-RPC ``error`` object; the account and logs actions answer from
the index only.

Texts marked UNCONFIRMED below are not in REFERENCE.md (the real service's wording for
these rarer errors is not documented); the rest are verbatim.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import re
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import pairwise
from typing import Any, Literal, Protocol

from aiohttp import web

from polyvocab import CONDITIONAL_TOKENS, PUSD, TRANSFER, TRANSFER_SINGLE, USDC_E
from simulator.filters import archive_keys
from simulator.hexutil import parse_uint64
from simulator.history import mask_key
from simulator.ratelimit import KeyedRateLimiter, Limit
from simulator.recording import RecordedBlock, compact_json

__all__ = [
    "TEXT_ACTION",
    "TEXT_ADDRESS",
    "TEXT_CHAINID",
    "TEXT_INVALID_KEY",
    "TEXT_KEYLESS",
    "TEXT_MISSING_KEY",
    "TEXT_MODULE",
    "TEXT_V1",
    "Explorer",
    "ExplorerFaults",
    "ExplorerReply",
    "ExplorerSettings",
    "IndexedChain",
    "Outcome",
    "TokenInfo",
    "make_explorer_handler",
    "mask_key",
    "rate_text",
    "window_text",
]

log = logging.getLogger("simulator.explorer")

# -- texts (REFERENCE.md, verbatim) ---------------------------------------------------
TEXT_KEYLESS = "Max rate limit reached, please use API Key for higher rate limit"
TEXT_INVALID_KEY = "Invalid API Key"
TEXT_MISSING_KEY = "Missing/Invalid API Key"
TEXT_CHAINID = ("Missing or unsupported chainid parameter (required for v2 api), please see "
                "chainlist for the list of supported chainids")
TEXT_ACTION = "Error! Missing Or invalid Action name"
TEXT_ADDRESS = "Error! Invalid address format"
TEXT_V1 = "You are using a deprecated V1 endpoint, switch to Etherscan API V2."
TEXT_NO_TX = "No transactions found"
TEXT_NO_RECORDS = "No records found"
# -- texts UNCONFIRMED (plausible wording, same envelope) ----------------------------
TEXT_MODULE = "Error! Missing Or invalid Module name"
TEXT_DAILY = "Max daily rate limit reached"
TEXT_INTERNAL = "Error! Unexpected error, please try again later"

Outcome = Literal["ok", "empty", "error", "rate_limited", "down", "timeout"]
DownMode = Literal["html502", "timeout"]

CHAIN_ID = 137
MAX_BLOCK = 99_999_999  # the explorer's default endblock

_JSON = "application/json; charset=utf-8"
_HTML = "text/html"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TOPIC = re.compile(r"^0x[0-9a-fA-F]{64}$")
_DECIMAL = re.compile(r"^[0-9]{1,30}$")
_HEXNUM = re.compile(r"^0x[0-9a-fA-F]{1,30}$")

HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
            b"</body>\r\n</html>\r\n")
HTML_504 = (b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
            b"<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>cloudflare</center>"
            b"\r\n</body>\r\n</html>\r\n")


def rate_text(rate: float) -> str:
    """``Max calls per sec rate limit reached (3/sec)`` for a configured rate."""
    return f"Max calls per sec rate limit reached ({_fmt_rate(rate)}/sec)"


def window_text(window: int) -> str:
    return ("Result window is too large, PageNo x Offset size must be less than or equal "
            f"to {window}")


def _fmt_rate(rate: float) -> str:
    return str(int(rate)) if float(rate).is_integer() else f"{rate:g}"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    symbol: str
    decimals: int


# Token metadata the explorer shows in tokentx / token1155tx rows. The pUSD and
# Conditional Tokens names are UNCONFIRMED; unknown tokens show empty names.
DEFAULT_TOKENS: Mapping[str, TokenInfo] = {
    USDC_E: TokenInfo("USD Coin (PoS)", "USDC", 6),
    PUSD: TokenInfo("Polymarket USD", "pUSD", 6),
    CONDITIONAL_TOKENS: TokenInfo("Conditional Tokens", "", 0),
}
_UNKNOWN_TOKEN = TokenInfo("", "", 18)


class IndexedChain(Protocol):
    """What the explorer reads: canonical blocks already indexed, ascending, contiguous."""

    def indexed_blocks(self, now_ns: int) -> Sequence[RecordedBlock]: ...


@dataclass(frozen=True, slots=True)
class ExplorerSettings:
    """Explorer behaviour. Rates and quotas are per simulated second/day (scaled by speed).

    ``api_keys``: None accepts any non-empty key, else only these. ``require_key``: when
    False, key-less calls are allowed at ``keyless_rate_per_s`` per client address.
    ``timeout_hang_s``: how long (simulated) a ``timeout`` fault holds a request before a
    504; None holds it until the client gives up. ``max_tracked_keys``: rate-limit state
    is kept for at most this many API keys (and as many client addresses); the least
    recently seen is forgotten first.
    """

    api_keys: frozenset[str] | set[str] | None = None
    rate_per_s: float = 3.0
    daily_limit: int | None = 100_000
    max_records: int = 1000
    result_window: int = 10_000
    speed: float = 1.0
    require_key: bool = True
    keyless_rate_per_s: float = 0.2
    timeout_hang_s: float | None = 30.0
    max_tracked_keys: int = 10_000
    #: indexed blocks kept for queries, newest first (None: every one). A streamed chain
    #: sets its window: rows of older blocks are then no longer answered (bounded memory).
    retain_blocks: int | None = None
    #: with ``retain_blocks``: the blocks let go are still answered (what keys each holds
    #: is kept, a few bytes a key; rows are built again from the chain's block), as
    #: Etherscan answers every block it indexed. The server keeps such an index up with
    #: the chain (:meth:`Explorer.keep_up`), so no block goes unindexed while nobody asks
    archive: bool = False
    tokens: Mapping[str, TokenInfo | Mapping[str, Any]] = field(
        default_factory=lambda: dict(DEFAULT_TOKENS))

    def __post_init__(self) -> None:
        tokens: dict[str, TokenInfo] = {}
        for address, info in dict(self.tokens).items():
            if isinstance(info, Mapping):  # from a TOML table
                try:
                    info = TokenInfo(str(info["name"]), str(info["symbol"]),
                                     int(info["decimals"]))
                except (KeyError, TypeError, ValueError):
                    raise ValueError(f"explorer token {address}: expected name, symbol, "
                                     "decimals") from None
            if not isinstance(info, TokenInfo):
                raise ValueError(f"explorer token {address}: expected name, symbol, decimals")
            tokens[str(address).lower()] = info
        object.__setattr__(self, "tokens", tokens)
        if self.api_keys is not None:
            object.__setattr__(self, "api_keys", frozenset(self.api_keys))
        for name in ("rate_per_s", "speed", "keyless_rate_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"explorer setting {name} must be positive")
        if self.max_records < 1 or self.result_window < 1:
            raise ValueError("explorer max_records and result_window must be >= 1")
        if isinstance(self.max_tracked_keys, bool) or not isinstance(
                self.max_tracked_keys, int) or self.max_tracked_keys < 1:
            raise ValueError("explorer max_tracked_keys must be an integer >= 1")
        if self.timeout_hang_s is not None and self.timeout_hang_s < 0:
            raise ValueError("explorer timeout_hang_s must be >= 0 or None")


def explorer_settings_from(table: Mapping[str, Any], *, speed: float = 1.0,
                           retain_blocks: int | None = None,
                           archive: bool | None = None) -> ExplorerSettings:
    """:class:`ExplorerSettings` from a config's ``[explorer]`` table (``speed`` and, when
    the table does not set them, ``retain_blocks`` and ``archive`` come from the node). Raises
    ``ValueError`` naming the setting: an unknown one, or a value of the wrong kind."""
    known = sorted(f.name for f in fields(ExplorerSettings) if f.name != "speed")
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"explorer.{unknown[0]}: unknown setting (known: "
                         f"{', '.join(known)})")
    opts = dict(table)
    if opts.get("api_keys") is not None:
        opts["api_keys"] = frozenset(opts["api_keys"])
    opts["speed"] = speed
    if retain_blocks is not None:
        opts.setdefault("retain_blocks", retain_blocks)
    if archive is not None:
        opts.setdefault("archive", archive)
    try:
        return ExplorerSettings(**opts)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"explorer: {exc}") from None


class ExplorerFaults:
    """Faults switched on at run time: a tighter rate limit, or the service being down."""

    __slots__ = ("_down", "_rate_limit")

    def __init__(self) -> None:
        self._rate_limit: float | None = None
        self._down: DownMode | None = None

    @property
    def rate_limit(self) -> float | None:
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"explorer rate_limit fault must be positive, got {value!r}")
        self._rate_limit = value

    @property
    def down(self) -> DownMode | None:
        return self._down

    @down.setter
    def down(self, value: DownMode | None) -> None:
        if value not in (None, "html502", "timeout"):
            raise ValueError(f"explorer down fault must be 'html502' or 'timeout', got {value!r}")
        self._down = value

    def clear(self) -> None:
        self._rate_limit = None
        self._down = None


@dataclass(frozen=True, slots=True)
class ExplorerReply:
    """One answer, ready to send, with what the server counts it under."""

    http_status: int
    content_type: str
    body: bytes
    outcome: Outcome
    module: str
    action: str
    key_masked: str

    def json(self) -> Any:
        """The decoded body (tests and the server's history)."""
        return json.loads(self.body)


class _BadRequest(Exception):
    """A request the explorer answers with a NOTOK text."""

    def __init__(self, text: str, outcome: Outcome = "error") -> None:
        super().__init__(text)
        self.text = text
        self.outcome = outcome


# -- indexes -----------------------------------------------------------------------------

@dataclass(slots=True)
class _Block:
    """What rows need from their block: number, hash, time, and per-tx gas figures."""

    number: int
    hash: str
    timestamp: int
    logs: list[dict[str, Any]]
    txs: dict[str, dict[str, Any]]  # full transaction by lower-case hash
    gas: dict[str, tuple[int, int]]  # lower-case hash -> (gasUsed, cumulativeGasUsed)
    keys: frozenset[str] = frozenset()  # the archive's keys (an archiving index only)


_Item = tuple[_Block, dict[str, Any]]
_Table = dict[str, list[_Item]]


def _item_block(item: _Item) -> int:
    return item[0].number


def _scan(items: Sequence[_Item], lo_block: int, hi_block: int, desc: bool) -> Iterator[_Item]:
    """Items of blocks ``lo_block..hi_block`` from a block-ordered list."""
    lo = bisect_left(items, lo_block, key=_item_block)
    hi = bisect_right(items, hi_block, key=_item_block)
    if desc:
        for i in range(hi - 1, lo - 1, -1):
            yield items[i]
    else:
        for i in range(lo, hi):
            yield items[i]


def _qty(value: Any, default: int = 0) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value:
        try:
            return int(value, 16) if value[:2] in ("0x", "0X") else int(value)
        except ValueError:
            return default
    return default


def _hex0(n: int) -> str:
    """getLogs style: hex with zero as ``"0x"``."""
    return hex(n) if n else "0x"


def _lower(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def _topic_addr(topic: str) -> str:
    return "0x" + topic[-40:].lower()


_ADDRESS_TOPIC_PREFIX = "0x" + "0" * 24


_TABLES = ("txs", "tok", "tok_contract", "nft", "nft_contract", "logs_addr", "logs_topic")
_Entries = dict[str, dict[str, list[_Item]]]  # table -> key -> the block's items


def _archive_key(table: str, key: str) -> str:
    """The archive's key of an index key: an address topic is its address."""
    if table == "logs_topic" and len(key) == 66 and key.startswith(_ADDRESS_TOPIC_PREFIX):
        return "0x" + key[-40:]
    return key


def _hash64(block_hash: str) -> int:
    try:
        return int(block_hash[2:18], 16)
    except ValueError:
        return 0


def _block_keys(rb: RecordedBlock) -> frozenset[str]:
    """The archive's keys of a block (:func:`simulator.filters.archive_keys`): as the
    render-ahead helper built them (``simulator.chain.PreparedBlock``), or built here."""
    keys: frozenset[str] | None = getattr(rb, "archive_keys", None)
    return keys if keys is not None else archive_keys(rb)


def _entries(rb: RecordedBlock) -> tuple[_Block, _Entries]:
    """One block's rows, by table and key, as the index lists them."""
    txs: dict[str, dict[str, Any]] = {}
    gas: dict[str, tuple[int, int]] = {}
    cumulative = 0
    for tx in rb.transactions:
        h = _lower(tx.get("hash"))
        used = _qty(tx.get("gasUsed", tx.get("gas")))
        cumulative += used
        txs[h] = tx
        gas[h] = (used, cumulative)
    logs = [lg for lg in rb.logs if not lg.get("removed")]
    blk = _Block(rb.number, rb.hash, rb.timestamp, logs, txs, gas)
    out: _Entries = {t: {} for t in _TABLES}

    def put(table: dict[str, list[_Item]], key: str, item: _Item) -> None:
        items = table.get(key)
        if items is None:
            table[key] = [item]
        else:
            items.append(item)

    t_txs, t_tok, t_tokc = out["txs"], out["tok"], out["tok_contract"]
    t_nft, t_nftc = out["nft"], out["nft_contract"]
    t_addr, t_topic = out["logs_addr"], out["logs_topic"]
    for tx in rb.transactions:
        item = (blk, tx)
        frm, to = _lower(tx.get("from")), _lower(tx.get("to"))
        if frm:
            put(t_txs, frm, item)
        if to and to != frm:
            put(t_txs, to, item)
    prefix = _ADDRESS_TOPIC_PREFIX
    for lg in logs:
        item = (blk, lg)
        addr = _lower(lg.get("address"))
        put(t_addr, addr, item)
        topics = [_lower(t) for t in lg.get("topics") or ()]
        if not topics:
            continue
        t0 = topics[0]
        put(t_topic, t0, item)
        seen = {t0}
        for t in topics[1:]:
            if t.startswith(prefix) and t not in seen:
                seen.add(t)
                put(t_topic, t, item)
        if t0 == TRANSFER and len(topics) == 3 and _word_count(lg) == 1:
            frm, to = _topic_addr(topics[1]), _topic_addr(topics[2])
            put(t_tok, frm, item)
            if to != frm:
                put(t_tok, to, item)
            put(t_tokc, addr, item)
        elif t0 == TRANSFER_SINGLE and len(topics) == 4 and _word_count(lg) == 2:
            frm, to = _topic_addr(topics[2]), _topic_addr(topics[3])
            put(t_nft, frm, item)
            if to != frm:
                put(t_nft, to, item)
            put(t_nftc, addr, item)
    return blk, out


#: blocks built again for archive queries kept for the next ones: at most this many, and
#: this many logs together (a busy block holds ~700), but always the last few
_REGEN_BLOCKS = 64
_REGEN_LOGS = 16_384
_REGEN_MIN = 4


class _Archive:
    """The blocks a window-bound index let go of, as which keys (addresses, event
    signatures) each block holds: 4 bytes a (key, block) pair and 8 bytes a block (its
    hash's prefix, to find where a deep reorg or a rewind starts). Their rows are built
    again from the chain's block when a query reaches them: Etherscan answers old blocks
    too, and rows kept whole (~1 kB a log, ~700 logs a busy block) would not fit a day."""

    __slots__ = ("first", "hashes", "keys")

    def __init__(self) -> None:
        self.first: int | None = None  # number of the first archived block
        self.hashes = array("Q")
        self.keys: dict[str, array[int]] = {}

    @property
    def end(self) -> int | None:
        """The number after the last archived block (None: nothing archived)."""
        return None if self.first is None else self.first + len(self.hashes)

    def add(self, number: int, block_hash: str, block_keys: frozenset[str]) -> None:
        if self.first is None or not self.hashes:
            self.first = number
        elif number != self.first + len(self.hashes):  # not contiguous: start again
            self.keys.clear()
            del self.hashes[:]
            self.first = number
        self.hashes.append(_hash64(block_hash))
        keys = self.keys
        for key in block_keys:
            numbers = keys.get(key)
            if numbers is None:
                keys[key] = array("I", (number,))
            else:
                numbers.append(number)

    def hash_at(self, number: int) -> int | None:
        if self.first is None or not 0 <= number - self.first < len(self.hashes):
            return None
        return self.hashes[number - self.first]

    def truncate(self, number: int) -> None:
        """Forget archived blocks from ``number`` on (rare: walks every key)."""
        if self.first is None or number >= self.first + len(self.hashes):
            return
        keep = max(number - self.first, 0)
        del self.hashes[keep:]
        for key in list(self.keys):
            numbers = self.keys[key]
            if numbers[-1] >= number:
                del numbers[bisect_left(numbers, number):]
                if not numbers:
                    del self.keys[key]

    def count(self, key: str) -> int:
        numbers = self.keys.get(key)
        return 0 if numbers is None else len(numbers)

    def numbers(self, key: str | None, lo: int, hi: int, desc: bool) -> Iterator[int]:
        """Archived blocks of ``lo..hi`` holding ``key`` (None: every one)."""
        if self.first is None or not self.hashes:
            return iter(())
        if key is None:
            lo, hi = max(lo, self.first), min(hi, self.first + len(self.hashes) - 1)
            return iter(range(hi, lo - 1, -1) if desc else range(lo, hi + 1))
        numbers = self.keys.get(key)
        if numbers is None:
            return iter(())
        a, b = bisect_left(numbers, lo), bisect_right(numbers, hi)
        return iter(numbers[a:b][::-1] if desc else numbers[a:b])

    def nbytes(self) -> int:
        """Bytes the archive holds (its arrays; the keys' strings and dict slots apart)."""
        return (self.hashes.itemsize * len(self.hashes)
                + sum(a.itemsize * len(a) for a in self.keys.values()))


class _Index:
    """Per-address and per-topic lists over the indexed blocks, extended once per block.

    Every list is in block order, so a block range is two bisections. Topics are indexed
    when they are a topic0 (event signature) or hold an address (a wallet, a maker): the
    selective filters clients use. Other topic values (order hashes, unique per log) are
    matched by scanning the smaller candidate list, or the blocks of the range.

    With ``retain`` the lists hold the last ``retain`` blocks (to 1.5 times that); with
    ``archive`` too, the blocks let go go to an :class:`_Archive` and are still answered
    (their rows built again from the chain), as Etherscan answers every block it indexed.
    """

    def __init__(self, retain: int | None = None, *, archive: bool = False) -> None:
        self.retain = retain
        self.base = 0  # position in the chain of blocks[0] (older ones were let go)
        self.blocks: list[_Block] = []
        self.txs: _Table = {}
        self.tok: _Table = {}
        self.tok_contract: _Table = {}
        self.nft: _Table = {}
        self.nft_contract: _Table = {}
        self.logs_addr: _Table = {}
        self.logs_topic: _Table = {}
        self.tables: dict[str, _Table] = {t: getattr(self, t) for t in _TABLES}
        self.n_logs = 0
        self.archive = _Archive() if archive and retain is not None else None
        self.chain: Sequence[RecordedBlock] = ()
        self.offset = 0  # block number - chain position
        self._regen: OrderedDict[int, tuple[_Block, _Entries]] = OrderedDict()
        self._regen_logs = 0
        self.rebuilt = 0  # archived blocks built again for queries

    @property
    def head(self) -> int | None:
        return self.blocks[-1].number if self.blocks else None

    def sync(self, chain: Sequence[RecordedBlock]) -> None:
        """Make the index match ``chain``: roll back what changed, add what is new."""
        self._reconcile(chain)
        base = self.base
        arch = self.archive
        if not self.blocks and self.retain is not None and (
                arch is None or arch.end is None):
            self.base = base = max(base, len(chain) - self.retain)
        retain = self.retain
        if retain is not None and self.blocks and arch is None:
            new = len(chain) - base - len(self.blocks)
            if new >= retain and len(self.blocks) + new >= retain + max(retain // 2, 1):
                # the prune below would keep only the last ``retain`` blocks, all of them
                # new: index just those (an explorer left idle for hours would otherwise
                # index every block since, re-reading those that left the chain's window)
                self.prune(len(self.blocks))
                self.base = base = len(chain) - retain
        for rb in chain[base + len(self.blocks):]:
            self.add(rb)
        if self.retain is not None and len(self.blocks) >= self.retain + max(
                self.retain // 2, 1):
            self.prune(len(self.blocks) - self.retain)

    def keep_up(self, chain: Sequence[RecordedBlock]) -> None:
        """An archiving index nobody asks: archive (keys only, no lists) the blocks about
        to leave the chain's window, so none is lost and none is built again; a query
        lists the recent ones (:meth:`sync`)."""
        arch, retain = self.archive, self.retain
        if arch is None or retain is None:
            return
        start = self.base + len(self.blocks)
        if len(chain) - start < max(retain - retain // 4, 1):
            return
        self._reconcile(chain)
        if arch.end is None and not self.blocks:  # the first blocks: where it starts
            self.base = max(self.base, len(chain) - retain)
        self.prune(len(self.blocks))
        stop = len(chain) - retain // 2
        for pos in range(self.base, stop):
            rb = chain[pos]
            self.offset = rb.number - pos
            arch.add(rb.number, rb.hash, _block_keys(rb))
        self.base = max(self.base, stop)

    def _reconcile(self, chain: Sequence[RecordedBlock]) -> None:
        """Roll back what ``chain`` changed (a reorg, a rewind), the archive included."""
        self.chain = chain
        mine = self.blocks
        base = self.base
        arch = self.archive
        if mine and base == 0 and (not chain or chain[0].number != mine[0].number):
            self.rollback(0)
        elif mine or (arch is not None and arch.end is not None):
            i = min(len(mine), len(chain) - base)
            while i > 0 and chain[base + i - 1].hash != mine[i - 1].hash:
                i -= 1
            if i < len(mine):
                self.rollback(max(i, 0))
            if i <= 0:
                # nothing kept matches: a rewind or a reorg may reach below the lists
                p = min(base, len(chain))
                if arch is not None:
                    while p > 0:
                        have = arch.hash_at(p - 1 + self.offset)
                        if have is None or have == _hash64(chain[p - 1].hash):
                            break
                        p -= 1
                    arch.truncate(p + self.offset)
                    self._regen.clear()
                    self._regen_logs = 0
                self.base = p

    def prune(self, n: int) -> None:
        """Let go of the oldest ``n`` indexed blocks (in batches: it walks every list);
        an archiving index keeps which keys they hold."""
        if n <= 0:
            return
        if self.archive is not None:
            for blk in self.blocks[:n]:
                self.archive.add(blk.number, blk.hash, blk.keys)
        if n >= len(self.blocks):
            self.base += len(self.blocks)
            self.rollback(0)
            return
        first = self.blocks[n].number
        for table in self.tables.values():
            for key in list(table):
                items = table[key]
                if items[0][0].number < first:
                    del items[:bisect_left(items, first, key=_item_block)]
                    if not items:
                        del table[key]
        self.n_logs -= sum(len(b.logs) for b in self.blocks[:n])
        del self.blocks[:n]
        self.base += n

    def rollback(self, keep: int) -> None:
        """Drop indexed blocks from position ``keep`` on (a reorg, or a rewind). Rare, so
        it walks every list rather than making each append pay for bookkeeping."""
        if keep >= len(self.blocks):
            return
        first = self.blocks[keep].number
        for table in self.tables.values():
            for key in list(table):
                items = table[key]
                if items[-1][0].number >= first:
                    del items[bisect_left(items, first, key=_item_block):]
                    if not items:
                        del table[key]
        self.n_logs -= sum(len(b.logs) for b in self.blocks[keep:])
        del self.blocks[keep:]

    def add(self, rb: RecordedBlock) -> None:
        blk, entries = _entries(rb)
        self.offset = rb.number - (self.base + len(self.blocks))
        for name, rows in entries.items():
            table = self.tables[name]
            for key, items in rows.items():
                have = table.get(key)
                if have is None:
                    table[key] = items
                else:
                    have.extend(items)
        if self.archive is not None:
            blk.keys = _block_keys(rb)
        self.n_logs += len(blk.logs)
        self.blocks.append(blk)

    # -- reading: the lists, then (older) the archive -----------------------------------

    def count(self, table: str, key: str) -> int:
        """How many rows ``key`` has in ``table`` (archived blocks count one each)."""
        n = len(self.tables[table].get(key, ()))
        if self.archive is not None:
            n += self.archive.count(_archive_key(table, key))
        return n

    def items(self, table: str, key: str, lo: int, hi: int, desc: bool) -> Iterator[_Item]:
        """``key``'s rows of ``table`` in blocks ``lo..hi``, in (reverse) chain order."""
        listed = self.tables[table].get(key)
        recent = _scan(listed, lo, hi, desc) if listed else iter(())
        if self.archive is None:
            return recent
        old = self._archived(table, key, lo, hi, desc)
        return itertools.chain(recent, old) if desc else itertools.chain(old, recent)

    def _archived(self, table: str, key: str, lo: int, hi: int,
                  desc: bool) -> Iterator[_Item]:
        assert self.archive is not None
        for number in self.archive.numbers(_archive_key(table, key), lo, hi, desc):
            entries = self._rebuild(number)
            if entries is None:
                continue
            rows = entries[1][table].get(key, ())
            yield from (reversed(rows) if desc else rows)

    def _rebuild(self, number: int) -> tuple[_Block, _Entries] | None:
        """An archived block's rows, built again from the chain's block (a few kept)."""
        got = self._regen.get(number)
        if got is not None:
            self._regen.move_to_end(number)
            return got
        pos = number - self.offset
        if not 0 <= pos < len(self.chain):
            return None
        got = _entries(self.chain[pos])
        self.rebuilt += 1
        self._regen[number] = got
        self._regen_logs += len(got[0].logs)
        while len(self._regen) > _REGEN_MIN and (
                len(self._regen) > _REGEN_BLOCKS or self._regen_logs > _REGEN_LOGS):
            _, (old, _) = self._regen.popitem(last=False)
            self._regen_logs -= len(old.logs)
        return got

    def scan_logs(self, lo_block: int, hi_block: int, desc: bool) -> Iterator[_Item]:
        """Every indexed log of blocks ``lo_block..hi_block``, in (reverse) chain order."""
        recent = self._scan_listed(lo_block, hi_block, desc)
        if self.archive is None:
            return recent
        old = self._scan_archived(lo_block, hi_block, desc)
        return itertools.chain(recent, old) if desc else itertools.chain(old, recent)

    def _scan_archived(self, lo_block: int, hi_block: int, desc: bool) -> Iterator[_Item]:
        assert self.archive is not None
        for number in self.archive.numbers(None, lo_block, hi_block, desc):
            got = self._rebuild(number)
            if got is None:
                continue
            blk = got[0]
            for lg in (reversed(blk.logs) if desc else blk.logs):
                yield blk, lg

    def _scan_listed(self, lo_block: int, hi_block: int, desc: bool) -> Iterator[_Item]:
        blocks = self.blocks
        lo = bisect_left(blocks, lo_block, key=lambda b: b.number)
        hi = bisect_right(blocks, hi_block, key=lambda b: b.number)
        order = range(hi - 1, lo - 1, -1) if desc else range(lo, hi)
        for i in order:
            blk = blocks[i]
            logs = reversed(blk.logs) if desc else blk.logs
            for lg in logs:
                yield blk, lg



def _word_count(lg: dict[str, Any]) -> int:
    data = lg.get("data")
    if not isinstance(data, str) or not data.startswith("0x"):
        return -1
    body = len(data) - 2
    return body // 64 if body % 64 == 0 else -1


def _word(lg: dict[str, Any], i: int) -> int:
    data: str = lg["data"]
    return int(data[2 + 64 * i: 2 + 64 * (i + 1)], 16)


# -- request parsing ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Paging:
    page: int
    offset: int
    desc: bool

    @property
    def skip(self) -> int:
        return (self.page - 1) * self.offset


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name.lower(), "").strip()
    if not raw:
        return default
    if _DECIMAL.match(raw):
        return int(raw)
    raise _BadRequest(f"Error! Invalid {name}")  # UNCONFIRMED wording


def _block_param(params: Mapping[str, str], name: str, default: int, head: int) -> int:
    raw = params.get(name.lower(), "").strip().lower()
    if not raw:
        return default
    if raw == "latest":
        return head
    if raw == "earliest":
        return 0
    if _DECIMAL.match(raw):
        return int(raw)
    if _HEXNUM.match(raw):
        return int(raw, 16)
    raise _BadRequest(f"Error! Invalid {name}")  # UNCONFIRMED wording


def _address_param(params: Mapping[str, str], name: str, required: bool) -> str | None:
    raw = params.get(name, "").strip()
    if not raw:
        if required:
            raise _BadRequest(TEXT_ADDRESS)
        return None
    if not _ADDRESS.match(raw):
        raise _BadRequest(TEXT_ADDRESS)
    return raw.lower()


# -- the explorer ----------------------------------------------------------------------


_ACCOUNT_ACTIONS = ("txlist", "tokentx", "token1155tx")
_PROXY_ACTIONS = ("eth_blockNumber", "eth_getBlockByNumber")
_MODULES = {"account": _ACCOUNT_ACTIONS, "logs": ("getLogs",), "proxy": _PROXY_ACTIONS}
#: ``tag`` names the proxy takes besides a hex number (geth's; ``pending``: the head)
_PROXY_TAGS = ("latest", "pending", "earliest")


class Explorer:
    """The explorer core: one request in, one :class:`ExplorerReply` out."""

    def __init__(self, settings: ExplorerSettings, chain: IndexedChain, *,
                 node_head: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.chain = chain
        #: the head of the node behind ``module=proxy`` (Etherscan's Geth proxy forwards
        #: to a node, which has blocks the index does not have yet); None: the index's
        self.node_head = node_head
        self.faults = ExplorerFaults()
        self._index = _Index(settings.retain_blocks, archive=settings.archive)
        self._keyed = KeyedRateLimiter(settings.rate_per_s, daily_limit=settings.daily_limit,
                                       speed=settings.speed,
                                       max_keys=settings.max_tracked_keys)
        self._keyless = KeyedRateLimiter(settings.keyless_rate_per_s, speed=settings.speed,
                                         max_keys=settings.max_tracked_keys)

    # -- public ----------------------------------------------------------------------

    def handle(self, path: str, params: Mapping[str, str], now_ns: int, *,
               client: str = "-") -> ExplorerReply:
        """Answer ``GET path?params`` at ``now_ns``. Never raises for bad input."""
        p = {str(k).lower(): str(v) for k, v in params.items()}
        module_raw, action_raw = p.get("module", ""), p.get("action", "")
        module = module_raw if module_raw in _MODULES else ("" if not module_raw else "invalid")
        action = action_raw if module and action_raw in _MODULES.get(module, ()) else (
            "" if not action_raw else "invalid")
        key = p.get("apikey", "").strip()
        masked = mask_key(key)

        def reply(status: int, ctype: str, body: bytes, outcome: Outcome) -> ExplorerReply:
            return ExplorerReply(status, ctype, body, outcome, module, action, masked)

        down = self.faults.down
        if down == "html502":
            return reply(502, _HTML, HTML_502, "down")
        if down == "timeout":
            return reply(504, _HTML, HTML_504, "timeout")
        try:
            if path.rstrip("/") == "/api":
                raise _BadRequest(TEXT_V1)
            self._check_chain_id(p)
            self._check_key_and_rate(key, client, now_ns)
            if module not in _MODULES:
                raise _BadRequest(TEXT_MODULE)
            if action not in _MODULES[module]:
                raise _BadRequest(TEXT_ACTION)
            self._index.sync(self.chain.indexed_blocks(now_ns))
            if module == "proxy":
                if action == "eth_blockNumber":
                    return reply(200, _JSON, self._block_number(p), "ok")
                body, outcome = self._block_by_number(p, now_ns)
                return reply(200, _JSON, body, outcome)
            rows = (self._get_logs(p) if module == "logs" else self._account(action, p))
        except _BadRequest as exc:
            return reply(200, _JSON, _envelope("0", "NOTOK", exc.text), exc.outcome)
        if not rows:
            empty = TEXT_NO_RECORDS if module == "logs" else TEXT_NO_TX
            return reply(200, _JSON, _envelope("0", empty, []), "empty")
        return reply(200, _JSON, _envelope("1", "OK", rows), "ok")

    def internal_error(self, path: str, params: Mapping[str, str]) -> ExplorerReply:
        """The reply when :meth:`handle` itself failed (a bug): NOTOK, never a 500."""
        return ExplorerReply(200, _JSON, _envelope("0", "NOTOK", TEXT_INTERNAL), "error",
                             "", "", mask_key(str(params.get("apikey", ""))))

    def tracked_keys(self) -> int:
        """API keys with rate-limit state now (bounded by ``max_tracked_keys``)."""
        return len(self._keyed)

    def reset(self) -> None:
        """Forget rate-limit state and faults (``/_sim/reset``)."""
        self._keyed.reset()
        self._keyless.reset()
        self.faults.clear()

    @property
    def indexed_head(self) -> int | None:
        return self._index.head

    def keep_up(self, now_ns: int) -> None:
        """Index the blocks indexed by ``now_ns`` (the server calls it as blocks are
        indexed): an archiving index must see every block while it is in the chain's
        window, whether or not anyone asks (an outage, a quiet hour), or it would have
        to build the blocks that left the window again."""
        if self._index.archive is not None:
            self._index.keep_up(self.chain.indexed_blocks(now_ns))

    def archive_stats(self) -> dict[str, int] | None:
        """What the archive of an archiving index holds (None: it has none)."""
        arch = self._index.archive
        if arch is None:
            return None
        return {"blocks": len(arch.hashes), "keys": len(arch.keys),
                "postings": sum(len(a) for a in arch.keys.values()),
                "bytes": arch.nbytes(), "rebuilt": self._index.rebuilt}

    # -- checks ----------------------------------------------------------------------

    @staticmethod
    def _check_chain_id(p: Mapping[str, str]) -> None:
        raw = p.get("chainid", "").strip()
        if not _DECIMAL.match(raw) or int(raw) != CHAIN_ID:
            raise _BadRequest(TEXT_CHAINID)

    def _check_key_and_rate(self, key: str, client: str, now_ns: int) -> None:
        s = self.settings
        fault_rate = self.faults.rate_limit
        if not key:
            if s.require_key:
                raise _BadRequest(TEXT_MISSING_KEY)
            rate = s.keyless_rate_per_s if fault_rate is None else min(
                s.keyless_rate_per_s, fault_rate)
            if not self._keyless.check(client, now_ns, rate_per_s=rate).allowed:
                raise _BadRequest(TEXT_KEYLESS, "rate_limited")
            return
        if s.api_keys is not None and key not in s.api_keys:
            raise _BadRequest(TEXT_INVALID_KEY)
        rate = s.rate_per_s if fault_rate is None else min(s.rate_per_s, fault_rate)
        decision = self._keyed.check(key, now_ns, rate_per_s=rate)
        if not decision.allowed:
            text = TEXT_DAILY if decision.limit is Limit.DAILY else rate_text(rate)
            raise _BadRequest(text, "rate_limited")

    def _paging(self, p: Mapping[str, str]) -> _Paging:
        s = self.settings
        page = max(1, _int_param(p, "page", 1))
        offset = _int_param(p, "offset", 0) or s.max_records
        if page * offset > s.result_window:
            raise _BadRequest(window_text(s.result_window))
        sort = p.get("sort", "asc").strip().lower()
        return _Paging(page, min(offset, s.max_records), sort == "desc")

    # -- actions ---------------------------------------------------------------------

    @staticmethod
    def _rpc_id(p: Mapping[str, str]) -> int | str:
        """The ``id`` of the proxy's JSON-RPC body: the request's, else Etherscan's 83."""
        raw_id = p.get("id", "").strip()
        return int(raw_id) if _DECIMAL.match(raw_id) else (raw_id or 83)

    def _proxy_head(self) -> int:
        head = self._index.head or 0
        if self.node_head is not None:
            head = max(head, self.node_head())
        return head

    def _block_number(self, p: Mapping[str, str]) -> bytes:
        return _dumps({"jsonrpc": "2.0", "id": self._rpc_id(p), "result": hex(self._proxy_head())})

    def _block_by_number(self, p: Mapping[str, str], now_ns: int) -> tuple[bytes, Outcome]:
        """``action=eth_getBlockByNumber&tag=0x..&boolean=true|false``: the node's block as
        geth gives it (``boolean=true``: full transaction objects, else their hashes) in a
        raw JSON-RPC body; ``"result": null`` for a block the node does not have (above
        its head). Etherscan's proxy forwards to a node, so the block comes from the chain
        - a block not indexed yet, or one an archiving index let go of, too -, not from
        the index. A bad ``tag`` (or ``boolean``) is the node's JSON-RPC error object in
        the body (HTTP 200, no ``status``/``message`` envelope), code -32602 with geth's
        texts (``invalid argument 0: hex string without 0x prefix``). UNCONFIRMED: that
        Etherscan passes geth's texts through, and the texts for ``boolean`` (missing:
        geth's "missing value for required argument 1"; not true/false: Go's "cannot
        unmarshal" text)."""
        rid = self._rpc_id(p)
        try:
            tag = p.get("tag", "").strip()
            if tag.lower() in _PROXY_TAGS:
                number = (self._first_block(now_ns) if tag.lower() == "earliest"
                          else self._proxy_head())
            else:
                number = _tag_number(tag)
            flag = p.get("boolean", "").strip().lower()
            if not flag:
                raise _RpcParamError("missing value for required argument 1")
            if flag not in ("true", "false"):
                raise _RpcParamError("invalid argument 1: json: cannot unmarshal string into "
                                     "Go value of type bool")
        except _RpcParamError as exc:
            return _dumps({"jsonrpc": "2.0", "id": rid,
                           "error": {"code": -32602, "message": str(exc)}}), "error"
        block = None if number is None else self._node_block(number, now_ns)
        if block is None:
            return _dumps({"jsonrpc": "2.0", "id": rid, "result": None}), "empty"
        rb, full = block
        result = {**rb.block, "transactions": full()} if flag == "true" else rb.block
        return _dumps({"jsonrpc": "2.0", "id": rid, "result": result}), "ok"

    def _node_block(self, number: int, now_ns: int
                    ) -> tuple[RecordedBlock, Callable[[], list[dict[str, Any]]]] | None:
        """Block ``number`` as the node behind the proxy has it, and how to get its full
        transaction objects: from the simulator's chain (its ``block``: every published
        block, one that left the window given again by the source; the transactions as
        its JSON-RPC node gives them), else (a chain that offers only
        :meth:`IndexedChain.indexed_blocks`) the indexed blocks and their recorded
        transactions. None above the node's head."""
        block_of = getattr(self.chain, "block", None)
        if callable(block_of):
            got = block_of(number)
            rb = getattr(got, "rb", None)
            if not isinstance(rb, RecordedBlock):
                return None
            return rb, got.transactions
        view = self.chain.indexed_blocks(now_ns)
        pos = number - view[0].number if len(view) else -1
        if not 0 <= pos < len(view):
            return None
        rb = view[pos]
        return rb, lambda: list(rb.transactions)

    def _first_block(self, now_ns: int) -> int | None:
        first = getattr(self.chain, "first_number", None)
        if isinstance(first, int):
            return first
        view = self.chain.indexed_blocks(now_ns)
        return view[0].number if len(view) else None

    def _account(self, action: str, p: Mapping[str, str]) -> list[dict[str, Any]]:
        idx = self._index
        tables = {"txlist": ("txs", None), "tokentx": ("tok", "tok_contract"),
                  "token1155tx": ("nft", "nft_contract")}
        by_addr, by_contract = tables[action]
        contract = (_address_param(p, "contractaddress", required=False)
                    if by_contract is not None else None)
        address = _address_param(p, "address", required=contract is None)
        start = _int_param(p, "startblock", 0)
        end = _int_param(p, "endblock", MAX_BLOCK)
        paging = self._paging(p)
        if address is not None:
            table, key = by_addr, address
        else:
            assert by_contract is not None and contract is not None
            table, key = by_contract, contract
        if not idx.count(table, key):
            return []
        if address is not None and contract is not None:
            def keep(item: _Item) -> bool:
                return _lower(item[1].get("address")) == contract
        else:
            keep = _always
        items = _take(idx.items(table, key, start, end, paging.desc), keep, paging)
        head = idx.head or 0
        render = {"txlist": self._txlist_row, "tokentx": self._tokentx_row,
                  "token1155tx": self._t1155_row}[action]
        return [render(blk, obj, head) for blk, obj in items]

    def _get_logs(self, p: Mapping[str, str]) -> list[dict[str, Any]]:
        idx = self._index
        address = _address_param(p, "address", required=False)
        head = idx.head or 0
        start = _block_param(p, "fromBlock", 0, head)
        end = _block_param(p, "toBlock", MAX_BLOCK, head)
        topics: dict[int, str] = {}
        for i in range(4):
            raw = p.get(f"topic{i}", "").strip()
            if not raw:
                continue
            if not _TOPIC.match(raw):
                raise _BadRequest(f"Error! Invalid topic{i} format")  # UNCONFIRMED wording
            topics[i] = raw.lower()
        if address is None and not topics:
            raise _BadRequest(TEXT_ADDRESS)
        order = sorted(topics)
        ops: list[str] = []
        for a, b in pairwise(order):
            op = p.get(f"topic{a}_{b}_opr", "and").strip().lower() or "and"
            if op not in ("and", "or"):
                raise _BadRequest(f"Error! Invalid topic{a}_{b}_opr")  # UNCONFIRMED wording
            ops.append(op)
        paging = self._paging(p)

        candidates: list[tuple[int, str, str]] = []  # (rows, table, key)
        if address is not None:
            candidates.append((idx.count("logs_addr", address), "logs_addr", address))
        if "or" not in ops:
            candidates.extend((idx.count("logs_topic", t), "logs_topic", t)
                              for i, t in topics.items()
                              if i == 0 or t.startswith(_ADDRESS_TOPIC_PREFIX))
        if any(n == 0 for n, _, _ in candidates):
            return []
        base = min(candidates, default=None)

        def keep(item: _Item) -> bool:
            lg = item[1]
            if address is not None and _lower(lg.get("address")) != address:
                return False
            if not order:
                return True
            have = lg.get("topics") or ()

            def hit(i: int) -> bool:
                return i < len(have) and _lower(have[i]) == topics[i]

            result = hit(order[0])
            for op, i in zip(ops, order[1:], strict=True):
                result = (result or hit(i)) if op == "or" else (result and hit(i))
            return result

        indexable = all(i == 0 or t.startswith(_ADDRESS_TOPIC_PREFIX)
                        for i, t in topics.items())
        if base is None and ops and "and" not in ops and indexable:
            # topicA or topicB or ...: merge the topics' lists instead of scanning blocks
            scan = _merge([idx.items("logs_topic", t, start, end, paging.desc)
                           for t in topics.values() if idx.count("logs_topic", t)],
                          paging.desc)
        elif base is None:
            scan = idx.scan_logs(start, end, paging.desc)
        else:
            scan = idx.items(base[1], base[2], start, end, paging.desc)
        items = _take(scan, keep, paging)
        return [self._log_row(blk, lg) for blk, lg in items]

    # -- rows ------------------------------------------------------------------------

    def _token(self, address: str) -> TokenInfo:
        info = self.settings.tokens.get(address, _UNKNOWN_TOKEN)
        return info if isinstance(info, TokenInfo) else _UNKNOWN_TOKEN

    @staticmethod
    def _txlist_row(blk: _Block, tx: dict[str, Any], head: int) -> dict[str, Any]:
        h = _lower(tx.get("hash"))
        used, cumulative = blk.gas.get(h, (0, 0))
        data = tx.get("input") or "0x"
        to = _lower(tx.get("to"))
        return {
            "blockNumber": str(blk.number),
            "timeStamp": str(blk.timestamp),
            "hash": h,
            "nonce": str(_qty(tx.get("nonce"))),
            "blockHash": blk.hash,
            "transactionIndex": str(_qty(tx.get("transactionIndex"))),
            "from": _lower(tx.get("from")),
            "to": to,
            "value": str(_qty(tx.get("value"))),
            "gas": str(_qty(tx.get("gas"))),
            "gasPrice": str(_qty(tx.get("gasPrice"))),
            "isError": "0",
            "txreceipt_status": "1",
            "input": data,
            "contractAddress": _lower(tx.get("creates")) if not to else "",
            "cumulativeGasUsed": str(cumulative),
            "gasUsed": str(used),
            "confirmations": str(head - blk.number + 1),
            "methodId": data[:10] if len(data) >= 10 else "0x",
            "functionName": "",
        }

    def _tx_fields(self, blk: _Block, lg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        h = _lower(lg.get("transactionHash"))
        return h, blk.txs.get(h, {})

    def _tokentx_row(self, blk: _Block, lg: dict[str, Any], head: int) -> dict[str, Any]:
        h, tx = self._tx_fields(blk, lg)
        used, cumulative = blk.gas.get(h, (0, 0))
        contract = _lower(lg.get("address"))
        token = self._token(contract)
        topics = lg["topics"]
        return {
            "blockNumber": str(blk.number),
            "timeStamp": str(blk.timestamp),
            "hash": h,
            "nonce": str(_qty(tx.get("nonce"))),
            "blockHash": blk.hash,
            "from": _topic_addr(topics[1]),
            "contractAddress": contract,
            "to": _topic_addr(topics[2]),
            "value": str(_word(lg, 0)),
            "tokenName": token.name,
            "tokenSymbol": token.symbol,
            "tokenDecimal": str(token.decimals),
            "transactionIndex": str(_qty(lg.get("transactionIndex"))),
            "gas": str(_qty(tx.get("gas"))),
            "gasPrice": str(_qty(tx.get("gasPrice"))),
            "gasUsed": str(used),
            "cumulativeGasUsed": str(cumulative),
            "input": "deprecated",
            "confirmations": str(head - blk.number + 1),
        }

    def _t1155_row(self, blk: _Block, lg: dict[str, Any], head: int) -> dict[str, Any]:
        h, tx = self._tx_fields(blk, lg)
        used, cumulative = blk.gas.get(h, (0, 0))
        contract = _lower(lg.get("address"))
        token = self._token(contract)
        topics = lg["topics"]
        return {
            "blockNumber": str(blk.number),
            "timeStamp": str(blk.timestamp),
            "hash": h,
            "nonce": str(_qty(tx.get("nonce"))),
            "blockHash": blk.hash,
            "transactionIndex": str(_qty(lg.get("transactionIndex"))),
            "gas": str(_qty(tx.get("gas"))),
            "gasPrice": str(_qty(tx.get("gasPrice"))),
            "gasUsed": str(used),
            "cumulativeGasUsed": str(cumulative),
            "input": "deprecated",
            "contractAddress": contract,
            "from": _topic_addr(topics[2]),
            "to": _topic_addr(topics[3]),
            "tokenID": str(_word(lg, 0)),
            "tokenValue": str(_word(lg, 1)),
            "tokenName": token.name,
            "tokenSymbol": token.symbol,
            "confirmations": str(head - blk.number + 1),
        }

    def _log_row(self, blk: _Block, lg: dict[str, Any]) -> dict[str, Any]:
        h, tx = self._tx_fields(blk, lg)
        used, _ = blk.gas.get(h, (0, 0))
        return {
            "address": _lower(lg.get("address")),
            "topics": [_lower(t) for t in lg.get("topics") or ()],
            "data": lg.get("data", "0x"),
            "blockNumber": _hex0(blk.number),
            "blockHash": blk.hash,
            "timeStamp": _hex0(blk.timestamp),
            "gasPrice": _hex0(_qty(tx.get("gasPrice"))),
            "gasUsed": _hex0(used),
            "logIndex": _hex0(_qty(lg.get("logIndex"))),
            "transactionHash": h,
            "transactionIndex": _hex0(_qty(lg.get("transactionIndex"))),
        }


def _log_position(item: _Item) -> tuple[int, int]:
    return item[0].number, _qty(item[1].get("logIndex"))


def _merge(scans: list[Iterator[_Item]], desc: bool) -> Iterator[_Item]:
    """Merge block-ordered scans of log lists into one, each log once. A log two lists
    hold is the same object only while its block is listed or its rebuilt rows are kept:
    an archived block each list built again holds equal logs, not the same ones (the log
    was answered twice), so the logs of one position are compared, not their objects."""
    pos: tuple[int, int] | None = None
    here: list[dict[str, Any]] = []  # the logs answered at ``pos``
    for item in heapq.merge(*scans, key=_log_position, reverse=desc):
        at, lg = _log_position(item), item[1]
        if at != pos:
            pos, here = at, []
        elif any(lg is seen or lg == seen for seen in here):
            continue
        here.append(lg)
        yield item


def _always(item: _Item) -> bool:
    return True


def _take(items: Iterator[_Item], keep: Callable[[_Item], bool], paging: _Paging) -> list[_Item]:
    """Skip ``paging.skip`` matching items, then return up to ``paging.offset``."""
    skip, out = paging.skip, []
    for item in items:
        if not keep(item):
            continue
        if skip:
            skip -= 1
            continue
        out.append(item)
        if len(out) >= paging.offset:
            break
    return out


class _RpcParamError(ValueError):
    """A proxy parameter the node refuses (JSON-RPC -32602, the text as geth's)."""


#: ASCII hex digits, as geth's hexutil reads them


def _tag_number(tag: str) -> int:
    """The proxy's ``tag`` as a block number, checked as geth's ``hexutil.Uint64`` is (the
    node behind the proxy parses it)."""
    try:
        return parse_uint64(tag)
    except ValueError as exc:
        raise _RpcParamError(f"invalid argument 0: {exc}") from None


def _dumps(obj: Any) -> bytes:
    return compact_json(obj).encode()


def _envelope(status: str, message: str, result: Any) -> bytes:
    return _dumps({"status": status, "message": message, "result": result})


# -- aiohttp shell -------------------------------------------------------------------


def make_explorer_handler(
    explorer: Explorer, *, now_ns: Callable[[], int],
    on_request: Callable[[ExplorerReply], None] | None = None,
    transform: Callable[[ExplorerReply], ExplorerReply] | None = None,
) -> Callable[[web.Request], Any]:
    """An aiohttp handler for ``GET /v2/api`` and ``GET /api`` around ``explorer``.

    Calls ``on_request`` once per request with the reply (the server counts it), then
    ``transform`` (the server's faults may change what is sent). A
    ``timeout`` reply is held for ``timeout_hang_s / speed`` wall seconds (or until the
    client goes away) and then answered with a 504 page.
    """

    async def handler(request: web.Request) -> web.StreamResponse:
        params: dict[str, str] = {}
        try:
            for k, v in request.query.items():
                params.setdefault(k, v)
            reply = explorer.handle(request.path, params, now_ns(),
                                    client=request.remote or "-")
        except Exception as exc:  # a bug in the core: answer like the service, log it
            log.error("explorer failed on %s: %s", request.path, type(exc).__name__)
            reply = explorer.internal_error(request.path, params)
        if on_request is not None:
            on_request(reply)
        if transform is not None:
            reply = transform(reply)
        if reply.outcome == "timeout":
            hang = explorer.settings.timeout_hang_s
            await _hang(request, None if hang is None else hang / explorer.settings.speed)
        return web.Response(status=reply.http_status, body=reply.body,
                            headers={"Content-Type": reply.content_type})

    return handler


async def _hang(request: web.Request, seconds: float | None) -> None:
    """Hold a request like a stuck gateway: until ``seconds`` pass or the client leaves."""
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return
        await asyncio.sleep(0.05 if remaining is None else min(0.05, remaining))
