"""Log filters (``eth_getLogs`` / ``eth_subscribe logs``) and per-block indexes.

:class:`LogFilter` parses and checks the JSON-RPC filter object (address string or list,
topics with ``null`` = any and lists = OR). :class:`BlockIndex` is built once per block
(logs by address and by topic at each position) so a filter picks its matches with a few
dict look-ups instead of scanning every log: the replay's per-block fan-out to many
subscribers depends on it. :class:`PollFilters` holds the filters clients install and
poll (``eth_newFilter``, ``eth_newBlockFilter``, ``eth_getFilterChanges``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from polyvocab import TRANSFER, TRANSFER_SINGLE

if TYPE_CHECKING:
    from simulator.recording import RecordedBlock

__all__ = ["FILTER_TIMEOUT_S", "MAX_ADDRESSES", "MAX_TOPIC_ALTERNATIVES", "BlockIndex",
           "FilterError", "LogFilter", "PollFilters", "archive_keys", "go_json_type",
           "over_query_limit", "parse_address", "parse_topic"]

#: geth's bounds on one filter (eth/filters, v1.17): ``maxSubTopics`` alternatives at one
#: topic position ("exceed max topics", while the filter decodes: invalid params) and the
#: ``LogQueryLimit`` of addresses (:func:`over_query_limit`, checked once it decoded):
#: a filter of 1,000,000 addresses cost memory and, at every block, a look-up per
#: address per subscription
MAX_ADDRESSES = 1000
MAX_TOPIC_ALTERNATIVES = 1000


class FilterError(ValueError):
    """A filter the caller must fix (JSON-RPC -32602 invalid params)."""


#: ASCII hex digits only, as geth reads them (an empty body is left to the length check).
#: ``int(body, 16)`` also took tabs, NBSP and non-ASCII digits; one C-level match per
#: value (a filter of 20 wallets is parsed at every eth_getLogs)
_HEX = re.compile(r"[0-9a-fA-F]*")


def _is_hex(body: str) -> bool:
    return _HEX.fullmatch(body) is not None


def parse_address(value: Any) -> str:
    if not isinstance(value, str):
        raise FilterError(f"address must be a hex string, got {type(value).__name__}")
    if not value.startswith(("0x", "0X")):
        raise FilterError("hex string without 0x prefix")
    body = value[2:]
    if not _is_hex(body):
        raise FilterError(f"invalid hex string {value!r}")
    if len(body) != 40:
        raise FilterError(f"hex string has length {len(body)}, want 40 for common.Address")
    return "0x" + body.lower()


def parse_topic(value: Any) -> str:
    if not isinstance(value, str):
        raise FilterError(f"topic must be a hex string, got {type(value).__name__}")
    if not value.startswith(("0x", "0X")):
        raise FilterError("hex string without 0x prefix")
    body = value[2:]
    if not _is_hex(body):
        raise FilterError(f"invalid hex string {value!r}")
    if len(body) != 64:
        raise FilterError(f"hex string has length {len(body)}, want 64 for common.Hash")
    return "0x" + body.lower()


def go_json_type(value: Any) -> str:
    """The JSON type of ``value`` as Go's encoding/json names it in an
    UnmarshalTypeError (the filter's and the JSON-RPC handler's argument texts)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _decode_fixed(value: str, size: int, what: str, context: str) -> str:
    """geth's decodeAddress / decodeTopic of a filter: ``hexutil.Decode`` (its texts,
    syntax before odd length) and then the length in bytes; lower-case hex."""
    if not value:
        raise FilterError(context + "empty hex string")
    if not value.startswith(("0x", "0X")):
        raise FilterError(context + "hex string without 0x prefix")
    body = value[2:]
    if not _is_hex(body):
        raise FilterError(context + "invalid hex string")
    if len(body) % 2:
        raise FilterError(context + "hex string of odd length")
    if len(body) != 2 * size:
        raise FilterError(f"{context}hex has invalid length {len(body) // 2} after decoding; "
                          f"expected {size} for {what}")
    return "0x" + body.lower()


def over_query_limit(obj: Any) -> bool:
    """Whether a filter object has more addresses than geth's ``LogQueryLimit`` (1,000 by
    default), counted as sent: a caller refuses it with -32000 "exceed max addresses or
    topics per search position" once :meth:`LogFilter.parse` took it (geth v1.16.4+;
    v1.16.1-3 refused it while decoding, -32602 "exceed max addresses")."""
    raw = obj.get("address") if isinstance(obj, dict) else None
    return isinstance(raw, list) and len(raw) > MAX_ADDRESSES


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which logs a query or a subscription wants. ``None`` means "any"."""

    addresses: frozenset[str] | None = None
    topics: tuple[frozenset[str] | None, ...] = ()

    @classmethod
    def parse(cls, obj: Any) -> LogFilter:
        """Parse the ``address``/``topics`` part of a filter object (other keys ignored)."""
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise FilterError("filter must be an object")
        # geth's FilterCriteria.UnmarshalJSON (eth/filters/api.go, v1.17), its texts
        addresses: frozenset[str] | None = None
        raw = obj.get("address")
        if isinstance(raw, list):
            for i, a in enumerate(raw):
                if not isinstance(a, str):
                    raise FilterError(f"non-string address at index {i}")
            addresses = frozenset(_decode_fixed(a, 20, "address", f"invalid address at "
                                                               f"index {i}: ")
                                  for i, a in enumerate(raw)) if raw else None
        elif isinstance(raw, str):
            addresses = frozenset([_decode_fixed(raw, 20, "address", "invalid address: ")])
        elif raw is not None:
            raise FilterError("invalid addresses in query")
        topics_raw = obj.get("topics")
        topics: list[frozenset[str] | None] = []
        if topics_raw is not None:
            if not isinstance(topics_raw, list):
                raise FilterError(f"json: cannot unmarshal {go_json_type(topics_raw)} into Go "
                                  f"struct field input.topics of type []interface {{}}")
            if len(topics_raw) > 4:
                raise FilterError("exceed max topics")  # geth's maxTopics, its text
            for entry in topics_raw:
                if entry is None:
                    topics.append(None)
                elif isinstance(entry, str):
                    topics.append(frozenset([_decode_fixed(entry, 32, "topic", "")]))
                elif isinstance(entry, list):
                    if len(entry) > MAX_TOPIC_ALTERNATIVES:
                        raise FilterError("exceed max topics")
                    alternatives: set[str] = set()
                    for e in entry:  # geth stops at a null (any): what follows is not read
                        if e is None:
                            alternatives.clear()
                            break
                        if not isinstance(e, str):
                            raise FilterError("invalid topic(s)")
                        alternatives.add(_decode_fixed(e, 32, "topic", ""))
                    # [] or a null inside an OR list = any
                    topics.append(frozenset(alternatives) if alternatives else None)
                else:
                    raise FilterError("invalid topic(s)")
        while topics and topics[-1] is None:
            topics.pop()
        return cls(addresses=addresses, topics=tuple(topics))

    @property
    def size(self) -> int:
        """Addresses and topic alternatives together: what holding it and checking it at
        every block cost (a connection's subscriptions are bounded by their sum)."""
        return len(self.addresses or ()) + sum(len(t) for t in self.topics if t is not None)

    def matches(self, log: dict[str, Any]) -> bool:
        """Does one log object match? (Reference implementation; the index is the fast path.)"""
        if self.addresses is not None and str(log.get("address", "")).lower() \
                not in self.addresses:
            return False
        log_topics = log.get("topics", [])
        if len(log_topics) < len(self.topics):
            return False
        for want, have in zip(self.topics, log_topics, strict=False):
            if want is not None and str(have).lower() not in want:
                return False
        return True

    def select(self, index: BlockIndex) -> list[int]:
        """Positions (in block order) of the logs of ``index`` that match."""
        # pick the most selective dimension by counting before building any list; a
        # dimension's keys present in the block are found from the smaller side (a filter
        # of 1,000 maker topics against a block's few makers: the block's keys). A
        # dimension with no match in the block answers at once: the filter is an AND. Run
        # for every subscription at every block, so loops rather than generators.
        best_size = -1
        best_table: dict[str, list[int]] = {}
        best_keys: list[str] = []
        dims = 0
        addresses = self.addresses
        if addresses is not None:
            dims = 1
            table = index.by_address
            keys = _present(table, addresses)
            if not keys:
                return []
            size = 0
            for k in keys:
                size += len(table[k])
            best_size, best_table, best_keys = size, table, keys
        for pos, want in enumerate(self.topics):
            if want is not None:
                dims += 1
                table = index.by_topic[pos]
                keys = _present(table, want)
                if not keys:
                    return []
                size = 0
                for k in keys:
                    size += len(table[k])
                if best_size < 0 or size < best_size:
                    best_size, best_table, best_keys = size, table, keys
        if best_size < 0:
            return list(range(len(index.logs)))
        if len(best_keys) == 1:
            hits = best_table[best_keys[0]]
        else:
            hits = sorted({i for k in best_keys for i in best_table[k]})
        if dims == 1:
            return list(hits)
        check = self._check
        return [i for i in hits if check(index, i)]

    def _check(self, index: BlockIndex, i: int) -> bool:
        if self.addresses is not None and index.addresses[i] not in self.addresses:
            return False
        topics = index.topics[i]
        if len(topics) < len(self.topics):
            return False
        for want, have in zip(self.topics, topics, strict=False):
            if want is not None and have not in want:
                return False
        return True


def _present(table: dict[str, list[int]], want: frozenset[str]) -> list[str]:
    """The keys of ``want`` that ``table`` holds, looked up from the smaller of the two."""
    if len(want) > len(table):
        return [k for k in table if k in want]
    return [k for k in want if k in table]


def _low(value: Any) -> str:
    """``str(value).lower()``, the log's own string when it is lowercase already (the
    index then shares the log's strings: less to pickle, unpickle and hold)."""
    text = str(value)
    low = text.lower()
    return text if low == text else low


class BlockIndex:
    """One block's logs, indexed by address and by topic at positions 0..3."""

    __slots__ = ("addresses", "by_address", "by_topic", "logs", "topics")

    def __init__(self, logs: Sequence[dict[str, Any]]) -> None:
        self.logs = logs
        self.addresses: list[str] = []
        self.topics: list[list[str]] = []
        self.by_address: dict[str, list[int]] = {}
        self.by_topic: tuple[dict[str, list[int]], ...] = ({}, {}, {}, {})
        for i, log in enumerate(logs):
            address = _low(log.get("address", ""))
            topics = [_low(t) for t in log.get("topics", [])]
            self.addresses.append(address)
            self.topics.append(topics)
            self.by_address.setdefault(address, []).append(i)
            for pos, topic in enumerate(topics[:4]):
                self.by_topic[pos].setdefault(topic, []).append(i)

    def parts(self) -> tuple[Any, ...]:
        """What the index holds besides the logs (plain lists, dicts and strings: what a
        render-ahead helper sends, :mod:`marshal`-able); :meth:`of_parts` puts it back."""
        return self.addresses, self.topics, self.by_address, self.by_topic

    @classmethod
    def of_parts(cls, logs: Sequence[dict[str, Any]], addresses: list[str],
                 topics: list[list[str]], by_address: dict[str, list[int]],
                 by_topic: tuple[dict[str, list[int]], ...]) -> BlockIndex:
        """The index of ``logs`` whose :meth:`parts` these are (built from those logs)."""
        index = cls.__new__(cls)
        index.logs = logs
        index.addresses, index.topics = addresses, topics
        index.by_address, index.by_topic = by_address, by_topic
        return index


#: a topic holding an address (left-padded to 32 bytes)
_ADDRESS_TOPIC_PREFIX = "0x" + "0" * 24
_TOKEN_TOPICS = (TRANSFER, TRANSFER_SINGLE)


def _low_str(value: Any) -> str:
    """``value`` lowercased, the same object when it already is; "" for a non-string."""
    if not isinstance(value, str):
        return ""
    low = value.lower()
    return value if low == value else low


def archive_keys(rb: RecordedBlock) -> frozenset[str]:
    """The explorer archive's keys of a block (``simulator.explorer``): every address its
    rows can be asked by (senders, recipients, log addresses, address topics) and its
    event signatures. A superset of the index lists' keys is harmless: a block built
    again is filtered as the lists are. A pure function of the block, so a render-ahead
    helper builds it (``simulator.chain.PreparedBlock.archive_keys``)."""
    keys: set[str] = set()
    prefix = _ADDRESS_TOPIC_PREFIX
    for tx in rb.transactions:
        keys.add(_low_str(tx.get("from")))
        keys.add(_low_str(tx.get("to")))
    for lg in rb.logs:
        if lg.get("removed"):
            continue
        keys.add(_low_str(lg.get("address")))
        topics = lg.get("topics") or ()
        if topics:
            t0 = _low_str(topics[0])
            # an address topic is archived as its address
            keys.add("0x" + t0[-40:] if len(t0) == 66 and t0.startswith(prefix) else t0)
            token = t0 in _TOKEN_TOPICS  # its parties, whatever their form
            for t in topics[1:]:
                t = _low_str(t)
                if token or t.startswith(prefix):
                    keys.add("0x" + t[-40:])
    keys.discard("")
    return frozenset(keys)


# -- installed filters (eth_newFilter / eth_newBlockFilter / eth_getFilterChanges) ---------

#: geth's filter timeout (``filters.Config.Timeout``, 5 minutes; Alchemy and Infura document
#: the same): a filter not polled for this long (simulated seconds) is removed, and the
#: next ``eth_getFilterChanges`` of it answers "filter not found"
FILTER_TIMEOUT_S = 300.0
#: installed filters on the node (geth has no cap; a client installing filters in a loop
#: cost memory at every block): past it eth_newFilter is refused (-32005)
MAX_POLL_FILTERS = 1000
#: what one filter holds between two polls (logs or block hashes): a filter whose client
#: stopped polling is dropped past it, as geth drops a subscriber that does not read
MAX_FILTER_BACKLOG = 10_000


class PublishedBlock(Protocol):
    """What a filter reads of a published block (``simulator.chain.ChainBlock``)."""

    @property
    def number(self) -> int: ...

    @property
    def hash(self) -> str: ...

    @property
    def index(self) -> BlockIndex: ...

    def log_json(self, i: int) -> str: ...

    def removed_log_json(self, i: int) -> str: ...


@dataclass(slots=True)
class _Installed:
    """One installed filter: ``flt`` None for a block filter (``eth_newBlockFilter``)."""

    flt: LogFilter | None
    lo: int | None  # block range of a log filter (None: open)
    hi: int | None
    criteria: dict[str, Any] | None  # the filter object, for eth_getFilterLogs
    deadline_ns: int
    backlog: list[str]


class PollFilters:
    """The node's installed filters, as geth keeps them (sans-I/O: times are passed in).

    A log filter collects the JSON of the logs of every block published after it was
    installed that match it (and, on a reorg, the orphaned ones again with ``removed:
    true``), within its ``fromBlock``/``toBlock`` when they are numbers; a block filter the
    hashes of the blocks published. :meth:`changes` hands them over and empties the list.
    Filters belong to the node, not to a connection (an id works over HTTP and WebSocket).
    """

    def __init__(self, *, timeout_ns: int, new_id: Callable[[], str],
                 max_filters: int = MAX_POLL_FILTERS,
                 max_backlog: int = MAX_FILTER_BACKLOG) -> None:
        self.timeout_ns = timeout_ns
        self.new_id = new_id
        self.max_filters = max_filters
        self.max_backlog = max_backlog
        self._filters: dict[str, _Installed] = {}

    def __len__(self) -> int:
        return len(self._filters)

    def install(self, flt: LogFilter | None, now_ns: int, *, lo: int | None = None,
                hi: int | None = None, criteria: dict[str, Any] | None = None) -> str | None:
        """A new filter's id (None: :attr:`max_filters` are installed)."""
        self.expire(now_ns)
        if len(self._filters) >= self.max_filters:
            return None
        fid = self.new_id()
        self._filters[fid] = _Installed(flt, lo, hi, criteria, now_ns + self.timeout_ns, [])
        return fid

    def uninstall(self, fid: str, now_ns: int) -> bool:
        self.expire(now_ns)
        return self._filters.pop(fid.lower(), None) is not None

    def changes(self, fid: str, now_ns: int) -> list[str] | None:
        """What filter ``fid`` collected since the last call (JSON texts), None when there
        is no such filter (never installed, uninstalled, expired or dropped)."""
        self.expire(now_ns)
        f = self._filters.get(fid.lower())
        if f is None:
            return None
        f.deadline_ns = now_ns + self.timeout_ns
        out, f.backlog = f.backlog, []
        return out

    def log_criteria(self, fid: str, now_ns: int) -> dict[str, Any] | None:
        """The filter object of log filter ``fid`` (None: no such log filter)."""
        self.expire(now_ns)
        f = self._filters.get(fid.lower())
        if f is None or f.flt is None:
            return None
        f.deadline_ns = now_ns + self.timeout_ns
        return f.criteria if f.criteria is not None else {}

    def expire(self, now_ns: int) -> None:
        for fid in [k for k, f in self._filters.items() if f.deadline_ns <= now_ns]:
            del self._filters[fid]

    def on_block(self, block: PublishedBlock, *, head: bool = True, logs: bool = True
                 ) -> None:
        """A block was published (in order; a reorg's new blocks too): its hash to block
        filters when it is announced as a head (``head``), its logs to log filters
        (``logs``). geth v1.17 feeds them apart (eth/filters filter_system.go: a block
        filter is a BlocksSubscription fed by core's ChainEvent, a log filter by its
        logs feed); core/blockchain.go sends ChainEvent only for the block it sets as
        head (writeBlockAndSetHead, SetCanonical), and reorg() sends the logs of the
        new branch's blocks below it but no ChainEvent: a side chain imported at once
        gives a block filter the new top's hash only."""
        self._collect(block, removed=False, hashes=head, logs=logs)

    def on_removed(self, block: PublishedBlock) -> None:
        """A reorg orphaned ``block`` (newest first): log filters get its logs again with
        ``removed: true``."""
        self._collect(block, removed=True)

    def _collect(self, block: PublishedBlock, *, removed: bool, hashes: bool = True,
                 logs: bool = True) -> None:
        if not self._filters:
            return
        dropped = []
        for fid, f in self._filters.items():
            if f.flt is None:
                if not removed and hashes:
                    f.backlog.append('"' + block.hash + '"')
            elif logs and (f.lo is None or block.number >= f.lo) and (f.hi is None
                                                                      or block.number <= f.hi):
                text = block.removed_log_json if removed else block.log_json
                f.backlog.extend(text(i) for i in f.flt.select(block.index))
            if len(f.backlog) > self.max_backlog:
                dropped.append(fid)
        for fid in dropped:
            del self._filters[fid]
