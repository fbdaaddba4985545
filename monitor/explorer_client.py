"""Etherscan-V2 (Polygonscan, chainid 137) client: aiohttp, client-side rate limit, retries.

One seam: the caller gives the ``aiohttp.ClientSession`` and the base URL (the real
``https://api.etherscan.io/v2/api`` or the simulator's ``http://127.0.0.1:PORT/v2/api``).

Answers are classified the way the real service answers (REFERENCE.md):

- ``status "1"`` -> the result;
- ``status "0"`` with "No records found" / "No transactions found" -> empty success;
- ``NOTOK`` with "Max calls per sec rate limit reached (3/sec)" / "Max rate limit reached"
  -> :class:`~monitor.errors.RateLimited`, retried here with backoff (the limiter is also
  pushed back) up to ``rate_limit_retries`` times;
- ``NOTOK`` with a daily-quota text ("Max daily rate limit reached", any text naming a
  daily limit or quota) -> :class:`QuotaExhausted` (a ``RateLimited``), NOT retried: the
  quota comes back at the next day, not in seconds (it was retried as a per-second limit,
  a burst every few seconds for hours); the poller pauses long and alerts once. So is an
  HTTP 429 whose ``Retry-After`` asks for more than :data:`LONG_RETRY_AFTER_S`;
- ``NOTOK`` "Invalid API Key" (:func:`polyvocab.policies.is_key_refused_text`), or an
  HTTP 401/403 -> :class:`ExplorerKeyRefused` (an ``ExplorerNotOk``), not retried: the
  key must be fixed (the poller alerts at once); but a 401/403 that is Cloudflare's HTML
  block or challenge page -> :class:`~monitor.errors.BadResponse` (``kind="cdn_blocked"``):
  the client is blocked, not the key;
- ``NOTOK`` "You are using a deprecated V1 endpoint" (a V1 URL) or a text naming the
  ``chainid`` ("Missing or unsupported chainid parameter") ->
  :class:`ExplorerSettingRefused` (``setting`` ``explorer_url`` / ``chain_id``; the
  refused key is one too), not retried here: whatever is asked is refused alike (the
  poller says it at once and asks again at a slow pace);
- any other ``NOTOK`` text (bad address, result window, ...) ->
  :class:`ExplorerNotOk`, not retried here;
- a body in a Content-Encoding the client did not ask for (br, zstd) or that is not what
  it says -> :class:`~monitor.errors.BadResponse` (``kind="content_encoding"``), not a
  network fault (:func:`polyvocab.http_read.undecodable_encoding`);
- HTML or other non-JSON pages (502 gateways), HTTP errors -> :class:`~monitor.errors.BadResponse`
  / :class:`~monitor.errors.ServerError`; timeouts -> :class:`~monitor.errors.Timeout`;
  refused connections -> :class:`~monitor.errors.ConnectError`. Not retried here: the
  caller (the poller) counts, logs and tries again next interval without advancing its
  cursor, so nothing is lost.

Every HTTP request is counted (:attr:`ExplorerClient.calls`) and recorded as a history
``api_call`` row with ``kind="explorer"``. The API key never appears in logs, histories or
exceptions (it is registered with :mod:`monitor.redact`).

All rates and delays are in simulated time and scaled by ``speed``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from monitor.bounds import nesting_ok, quantity
from monitor.clock import Clock, SystemClock
from monitor.cores import RateLimiter
from monitor.errors import (
    BadResponse,
    ConnectError,
    MonitorError,
    QuotaExhausted,  # the explorer's daily quota (or a 429 asking > LONG_RETRY_AFTER_S)
    RateLimited,
    ServerError,
    Timeout,
)
from monitor.history import History, NullHistory
from monitor.http_read import read_body, undecodable_encoding
from monitor.metrics import CallCounter
from monitor.redact import redact, register_secret
from monitor.trades import word_hex
from polyvocab.bounds import REDACT_MARGIN, brief, cut, values_ok
from polyvocab.jsonrpc_http import redirect_refused
from polyvocab.policies import (
    TEXT_READ,
    backoff_delay,
    is_key_refused_status,
    is_key_refused_text,
    parse_retry_after,
)

__all__ = ["ExplorerClient", "ExplorerKeyRefused", "ExplorerNotOk", "ExplorerSettingRefused",
           "PartialLogs", "QuotaExhausted", "explorer_log_to_rpc"]

log = logging.getLogger("monitor.explorer")

_RATE_TEXTS = ("max calls per sec rate limit reached", "max rate limit reached",
               "rate limit")
_EMPTY_TEXTS = ("no records found", "no transactions found")
#: a quota of the day used up (REFERENCE: 100,000 calls a day on the free tier): words of
#: which one names the day and one the limit
_DAILY_WORDS = ("daily", "per day", "/day", "day limit")
_LIMIT_WORDS = ("limit", "quota", "exceeded")
RESULT_WINDOW = 10_000
#: records one call answers at most (Etherscan V2 since 2026-07-01, REFERENCE.md): a page
#: asked larger comes back with this many, and was taken for the last page (the rest lost)
MAX_RECORDS = 1_000
#: bytes an answer may have: a page of MAX_RECORDS getLogs rows is ~1.2 MB (an OrderFilled
#: row ~1.2 KB). The 64 MB bound of an eth_getLogs answer let a broken cache or gateway's
#: answer of tiny rows be parsed whole before the row count was checked: ~1.6 GB of memory
#: and 4 s of the event loop for 63 MB
MAX_ANSWER_BYTES = 8 * 1024 * 1024
#: JSON values an answer may hold (:func:`polyvocab.bounds.values_ok`, before parsing):
#: a page of MAX_RECORDS rows has ~15,000. 8 MB of ``[],`` (2.8 M empty lists) still took
#: ~200 MB and a second of the event loop to parse under the byte bound
MAX_ANSWER_VALUES = 200_000
#: a 429's Retry-After (seconds) longer than this is a quota, not a burst: not retried
#: here (:class:`QuotaExhausted`), the poller pauses that long
LONG_RETRY_AFTER_S = 60.0


class ExplorerNotOk(MonitorError):
    """The explorer answered NOTOK with a text that is not a rate limit (``text``)."""

    def __init__(self, text: str) -> None:
        super().__init__(f"explorer NOTOK: {text}")
        self.text = redact(text)


class ExplorerSettingRefused(ExplorerNotOk):
    """The explorer refused the request for a setting of the monitor's, whatever is
    asked (REFERENCE.md): a V1 URL ("You are using a deprecated V1 endpoint, switch to
    Etherscan API V2"), a chain it does not serve ("Missing or unsupported chainid
    parameter (required for v2 api)"), the key (:class:`ExplorerKeyRefused`). Retrying
    soon cannot help (though the text may be a passing one): the caller says it at once,
    naming ``setting`` (the setting to change) and ``remedy`` (what it must be), and asks
    again at a slow pace."""

    def __init__(self, text: str, *, setting: str, remedy: str) -> None:
        super().__init__(text)
        self.setting, self.remedy = setting, remedy


class ExplorerKeyRefused(ExplorerSettingRefused):
    """The explorer refused the API key: NOTOK "Invalid API Key" (Etherscan answers it
    with HTTP 200) or an HTTP 401/403. A setting to fix: no retry helps. ``text`` is the
    explorer's text (redacted; the key is never in it)."""

    def __init__(self, text: str, *, status: int | None = None) -> None:
        super().__init__(text, setting="explorer_api_key",
                         remedy="a key the explorer accepts (the file "
                                "EXPLORER_API_KEY_FILE names)")
        self.status = status


#: words of a NOTOK text that refuse the URL (a V1 path; Polygonscan's own V1 host was
#: shut off 2025-08-15) or the chain id, whatever is asked: (words, setting)
_SETTING_TEXTS = (("deprecated v1 endpoint", "explorer_url"), ("chainid", "chain_id"))


def _setting_refused(low: str, text: str) -> ExplorerSettingRefused | None:
    """The :class:`ExplorerSettingRefused` a lower-case NOTOK text ``low`` says, else
    None."""
    for words, setting in _SETTING_TEXTS:
        if words in low:
            remedy = ("an Etherscan V2 URL (https://api.etherscan.io/v2/api)"
                      if setting == "explorer_url" else
                      "a chain id the explorer serves (137 for Polygon PoS)")
            return ExplorerSettingRefused(text, setting=setting, remedy=remedy)
    return None


def _daily_quota(low: str) -> bool:
    """A lower-case NOTOK text says the day's quota is used up."""
    return any(w in low for w in _DAILY_WORDS) and any(w in low for w in _LIMIT_WORDS)


def _cdn_block_page(raw: bytes) -> bool:
    """An HTML page of Cloudflare's (a block or a challenge: "Attention Required! |
    Cloudflare", "Just a moment...", the "Performance & security by Cloudflare" footer),
    not the explorer's own answer."""
    head = raw[:64 * 1024].lstrip()[:1]
    return head == b"<" and b"cloudflare" in raw[:64 * 1024].lower()


def _proxy_refusal(body: Any) -> dict[str, str] | None:
    """A ``module=proxy`` answer that is a refusal in JSON-RPC clothes, as the Etherscan
    envelope would have said it (``status "0"``, ``NOTOK``, the text), else None.
    Etherscan's proxy answers its rate limit as a JSON-RPC *result*
    (``{"jsonrpc":"2.0","id":1,"result":"Max calls per sec rate limit reached (3/sec)..."}``,
    reth#17140), a key refusal likewise, and a node's error as an ``error`` object."""
    if not isinstance(body, dict) or "status" in body:
        return None
    err = body.get("error")
    if isinstance(err, dict):
        text = err.get("message")
        return {"status": "0", "message": "NOTOK",
                "result": text if isinstance(text, str) else "JSON-RPC error"}
    result = body.get("result")
    if isinstance(result, str) and result.strip() and not result.startswith("0x") \
            and not result.strip().isdigit():  # a number is an answer, not a refusal
        return {"status": "0", "message": "NOTOK", "result": result}
    return None


class PartialLogs(MonitorError):
    """A page of a :meth:`ExplorerClient.get_logs` after the first failed (``cause``).
    ``logs`` are every log of ``from_block..complete_to``, the blocks the pages before it
    hold whole: the caller may use them and ask again from ``complete_to + 1``."""

    def __init__(self, cause: MonitorError, logs: list[dict[str, Any]],
                 complete_to: int) -> None:
        super().__init__(f"{cause.message} (a later page; {len(logs)} logs up to block "
                         f"{complete_to} came whole)", redacted=True)
        self.cause, self.logs, self.complete_to = cause, logs, complete_to


def _partial(exc: MonitorError, out: list[dict[str, Any]], from_block: int,
             ordered: bool, done_to: int | None = None) -> MonitorError:
    """What a paged fetch raises for a page that failed with ``exc``: the rows come in
    block order, so the blocks below the last one seen came whole (:class:`PartialLogs`
    of them), and so did every window of blocks asked to its end (up to ``done_to``).
    Thrown away, a range of more pages than one poll gets through (one call in a few
    failing) was asked again and again, for good. ``exc`` itself when no block came
    whole (rows not in block order prove none past ``done_to``)."""
    whole = (max((int(r["blockNumber"], 16) for r in out), default=from_block) - 1
             if ordered else from_block - 1)
    if done_to is not None:
        whole = max(whole, done_to)
    if whole < from_block:
        return exc
    return PartialLogs(exc, [r for r in out if int(r["blockNumber"], 16) <= whole], whole)


#: words of a NOTOK text saying the query was too heavy for the explorer (Etherscan:
#: "Query Timeout occured. Please select a smaller result dataset"): a smaller block
#: range is the remedy, the same range again never is
_HEAVY_TEXTS = ("query timeout", "smaller result")
#: halvings of a getLogs range one :meth:`ExplorerClient.get_logs` call may make (one
#: call each) before it gives up with the blocks it got whole
MAX_NARROWINGS = 16


def _too_heavy(exc: MonitorError) -> bool:
    """The explorer refused a getLogs as too heavy (a timeout of its query)."""
    return type(exc) is ExplorerNotOk and any(t in exc.text.lower() for t in _HEAVY_TEXTS)


def _hex_int(value: Any) -> int:
    """A bounded quantity: hex (``"0x"`` is 0) or decimal; ``ValueError`` otherwise."""
    if value == "0x":
        return 0
    return quantity(value)


_ROW_HEX = re.compile(r"0[xX][0-9a-fA-F]*\Z")


def _row_int(value: Any) -> int:
    """A getLogs row's number: a ``"0x"`` hex string (``"0x"`` is 0) or a JSON integer;
    ``ValueError`` otherwise. A string without ``0x`` was read as decimal: "120" for
    block 120, where the explorer's hex would be 0x120 (getLogs rows are hex,
    REFERENCE.md): a trade delivered from a block it is not in. After the ``0x`` only hex
    digits: Python's ``int`` read "0x1_0", "0x+10", "0x 10" and other scripts' digits
    (Arabic-Indic one, zero) as 0x10, numbers no explorer writes."""
    if isinstance(value, str) and _ROW_HEX.match(value) is None:
        why = "" if value[:2] in ("0x", "0X") else " (no 0x)"
        raise ValueError(f"not a hex quantity{why}: {value[:24]!r}")
    return _hex_int(value)


def _decimal(value: Any) -> int:
    """An account action's number: a decimal string (``ValueError`` otherwise)."""
    if not (isinstance(value, str) and value.isascii() and value.isdigit()
            and len(value) <= 19):
        raise ValueError(f"not a decimal number: {str(value)[:24]!r}")
    return int(value)


def _text(row: Mapping[str, Any], key: str, default: str = "") -> str:
    value = row.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} is a {type(value).__name__}, not a string")
    if len(value) > _MAX_FIELD:
        raise ValueError(f"{key} has {len(value)} characters")
    return value


_MAX_FIELD = 1 << 16  # a log's data of 7 words is 450 characters
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*\Z")
_REQUIRED = ("address", "blockNumber", "transactionHash")


def explorer_log_to_rpc(row: Mapping[str, Any]) -> dict[str, Any]:
    """A getLogs row -> the ``eth_getLogs`` log shape the decoder takes.

    Hex quantities are normalised (``"0x"`` means 0; ``logIndex`` must be there, the
    other numbers default to 0), ``timeStamp`` becomes ``blockTimestamp`` (none when
    the row has no time, or 0), ``removed`` is False (the explorer only shows the
    canonical chain).
    Raises ``ValueError`` for a row that is not what the explorer sends (a field of the
    wrong type, a number out of range): the caller skips and counts it.
    """
    topics = row.get("topics") or []
    if not isinstance(topics, list) or len(topics) > 4 or not all(
            isinstance(t, str) for t in topics):
        raise ValueError("topics is not a list of at most 4 strings")
    for key in _REQUIRED:  # a row without them is no log (``{}`` was taken as one)
        if not row.get(key):
            raise ValueError(f"no {key}")
    if row.get("logIndex") is None:  # it names the log ("0x" is 0): it was taken for 0, and
        raise ValueError("no logIndex")  # two fills of one transaction for one trade
    data = _text(row, "data", "0x") or "0x"
    if _DATA.match(data) is None:  # a hash or data cut short: counted here, as a bad row,
        raise ValueError(f"data is not whole bytes of hex: {data[:24]!r}")  # not a decode error
    out = {
        "address": _text(row, "address").lower(),
        "topics": [word_hex(t, "a topic") for t in topics if t],
        "data": data,
        "blockNumber": hex(_row_int(row.get("blockNumber", "0x"))),
        "blockHash": word_hex(_text(row, "blockHash"), "blockHash"),
        "transactionHash": word_hex(_text(row, "transactionHash"), "transactionHash"),
        "transactionIndex": hex(_row_int(row.get("transactionIndex", "0x"))),
        "logIndex": hex(_row_int(row.get("logIndex", "0x"))),
        "removed": False,
    }
    stamp = _row_int(row["timeStamp"]) if row.get("timeStamp") is not None else 0
    if stamp:  # no timeStamp (or "0x", 1970: no Polygon block) is no time: it was 0x0,
        # and the trade read as made in 1970 (a latency of 56 years in the pilot's stats)
        out["blockTimestamp"] = hex(stamp)
    return out


class ExplorerClient:
    """Calls the explorer API. Share one client (one limiter) per API key."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        api_key: str = "",
        chain_id: int = 137,
        rate_per_s: float = 3.0,
        speed: float = 1.0,
        timeout: float = 10.0,
        page_size: int = 1000,
        rate_limit_retries: int = 5,
        history: History | None = None,
        clock: Clock | None = None,
    ) -> None:
        register_secret(api_key)
        self.base_url = base_url
        self._session = session
        self._key = api_key
        self.chain_id = chain_id
        self.speed = speed
        self.timeout = max(timeout / speed, 0.5)
        self.page_size = min(page_size, MAX_RECORDS)
        self.rate_limit_retries = rate_limit_retries
        self.history = history or NullHistory()
        self.clock = clock or SystemClock()
        self.limiter = RateLimiter(rate_per_s * speed, burst=1)
        self.calls = CallCounter()
        self.bad_rows = 0
        #: getLogs ranges halved because the explorer timed out on them
        self.narrowings = 0
        #: answers that show the key accepted: an Etherscan envelope or a proxy answer
        #: that is not a key refusal (a rate limit, a quota, "No records found" are: the
        #: explorer knows the key). A refused-key episode ends at the first (the poller)
        self.key_accepted = 0

    # -- public API --------------------------------------------------------------------

    async def block_number(self) -> int:
        """The explorer's current block (``module=proxy&action=eth_blockNumber``)."""
        body = await self._request({"module": "proxy", "action": "eth_blockNumber"},
                                   "proxy.eth_blockNumber")
        refusal = _proxy_refusal(body)
        if refusal is not None:  # "Invalid API Key" as a result: ExplorerNotOk, not a
            self._envelope(refusal)  # number that could not be read
        if isinstance(body, dict) and "result" in body and "status" not in body:
            try:
                return _hex_int(body["result"])
            except (TypeError, ValueError):
                raise BadResponse(f"eth_blockNumber result is not a number: "
                                  f"{brief(body['result'], 80)}") from None
        self._envelope(body)  # raises the right error for NOTOK bodies
        raise BadResponse("eth_blockNumber answer without a result")

    async def index_head(self, address: str) -> int | None:
        """The newest block the explorer's index has, from the newest transaction it holds
        to ``address`` (``txlist``, ``sort=desc``, one row): that row's ``blockNumber`` +
        ``confirmations`` - 1 (Etherscan counts a transaction of the newest block as one
        confirmation). ``eth_blockNumber`` (``module=proxy``) asks a node, not the index:
        the logs actions answer only up to this block. None when ``address`` has no
        transaction. :class:`~monitor.errors.BadResponse` for a row that says no block."""
        rows = self._envelope(await self._request(
            {"module": "account", "action": "txlist", "address": address,
             "startblock": "0", "endblock": "99999999", "page": "1", "offset": "1",
             "sort": "desc"}, "account.txlist"))
        if not isinstance(rows, list):
            raise BadResponse("txlist result is not a list")
        if not rows:
            return None
        row = rows[0]
        try:
            if not isinstance(row, dict):
                raise ValueError(f"row is a {type(row).__name__}")
            number, confirmations = (_decimal(row.get("blockNumber")),
                                     _decimal(row.get("confirmations")))
            if confirmations < 1:
                raise ValueError(f"confirmations {confirmations}")
        except (TypeError, ValueError) as exc:
            raise BadResponse(f"txlist row without a block and confirmations: {exc}"
                              ) from None
        return number + confirmations - 1

    async def block_hash(self, number: int, topics0: tuple[str, ...]) -> str | None:
        """The hash the explorer has for block ``number``: that of the first log of the
        block with one of ``topics0`` (one call a topic, one row, until one answers).
        None when the block holds none of them (or is not indexed yet): no view of it."""
        return (await self.block_view(number, topics0, number))[0]

    async def block_view(self, number: int, topics0: tuple[str, ...], upto: int
                         ) -> tuple[str | None, bool]:
        """What the explorer's logs show of block ``number``: (its hash, from the first
        log of the block with one of ``topics0``, or None; whether a log with one of them
        came from a later block, up to ``upto``). One call a topic (``fromBlock=number``,
        ``toBlock=upto``, one row), until one shows the block. (None, True): the logs
        index answers, and the block holds none of ``topics0`` - not the same as an index
        answering nothing at all (None, False)."""
        later = False
        for t0 in topics0:
            rows = self._envelope(await self._request(
                {"module": "logs", "action": "getLogs", "fromBlock": str(number),
                 "toBlock": str(max(upto, number)), "topic0": t0, "page": "1",
                 "offset": "1"}, "logs.getLogs"))
            if not isinstance(rows, list):
                raise BadResponse("getLogs result is not a list")
            for row in rows[:1]:
                try:
                    if not isinstance(row, dict):
                        raise ValueError(f"row is a {type(row).__name__}")
                    converted = explorer_log_to_rpc(row)
                except (TypeError, ValueError, AttributeError) as exc:
                    raise BadResponse(f"getLogs row of block {number}: {exc}") from None
                got = int(converted["blockNumber"], 16)
                block_hash = converted["blockHash"]
                if not number <= got <= max(upto, number) or len(block_hash) != 66:
                    raise BadResponse(f"getLogs of blocks {number}..{upto} answered block "
                                      f"{got} ({block_hash[:12]!r})")
                if got == number:
                    return block_hash, later
                later = True
        return None, later

    async def get_logs(self, *, from_block: int, to_block: int, address: str | None = None,
                       topics: Mapping[int, str] | None = None,
                       topic_opr: Mapping[tuple[int, int], str] | None = None
                       ) -> list[dict[str, Any]]:
        """All logs in ``from_block..to_block`` matching the filter, in the decoder's shape.

        Pages with ``page``/``offset`` (``page_size`` records a call, never more than
        :data:`MAX_RECORDS`, what one call holds); a full page means more may follow;
        past the explorer's 10,000-record result window it starts again from the last
        block seen. Rows repeated by that restart are dropped, and rows of blocks outside
        ``from_block..to_block`` are skipped as bad rows. A page after the first that fails
        raises :class:`PartialLogs` with the logs of the blocks the pages before it hold
        whole (none whole: the page's error itself).

        Both lean on the rows coming in block order, as Etherscan sends them. Rows that do
        not (newest first, from a cache or proxy in front of it) prove no block whole: a
        later page that fails raises its own error, and the result window raises
        :class:`~monitor.errors.BadResponse`; the caller keeps its cursor. Paged on by the
        highest block seen, the blocks below it not yet seen were skipped for good.
        """
        base: dict[str, str] = {"module": "logs", "action": "getLogs"}
        if address:
            base["address"] = address
        for i, t in (topics or {}).items():
            base[f"topic{i}"] = t
        for (a, b), op in (topic_opr or {}).items():
            base[f"topic{a}_{b}_opr"] = op
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        # the blocks asked: start..end, a window of up to ``width`` blocks; to_block unless
        # the explorer timed out on a range that heavy (then halved, and walked on)
        start, end, page = from_block, to_block, 1
        width = to_block - from_block + 1
        done_to: int | None = None  # every window asked so far came whole up to here
        narrowed = 0
        prev, ordered = from_block, True  # every row so far in block order
        while True:
            params = dict(base, fromBlock=str(start), toBlock=str(end), page=str(page),
                          offset=str(self.page_size))
            try:
                rows = self._envelope(await self._request(params, "logs.getLogs"))
                if not isinstance(rows, list):
                    raise BadResponse("getLogs result is not a list")
                if len(rows) > self.page_size:  # asked for at most page_size: not this API
                    raise BadResponse(f"getLogs answered {len(rows):,} rows for a page of "
                                      f"{self.page_size:,}")
            except MonitorError as exc:
                if page == 1 and end > start and narrowed < MAX_NARROWINGS \
                        and _too_heavy(exc):
                    # "Query Timeout occured": asked again as it was, it timed out again,
                    # every poll, for good (the wallet never polled again)
                    narrowed += 1
                    self.narrowings += 1
                    end = start + (end - start) // 2
                    width = end - start + 1
                    log.info("explorer getLogs of %d..%d too heavy (%s): asking %d..%d",
                             start, to_block, exc.message, start, end)
                    continue
                partial = _partial(exc, out, from_block, ordered, done_to)
                if partial is exc:
                    raise
                raise partial from exc
            bad, first_bad, fresh = 0, None, 0
            for row in rows:
                try:
                    if not isinstance(row, dict):
                        raise ValueError(f"row is a {type(row).__name__}, not an object")
                    converted = explorer_log_to_rpc(row)
                    number = int(converted["blockNumber"], 16)
                    if not from_block <= number <= end:
                        # not what was asked (a broken cache in front of the explorer):
                        # a trade of long ago, its dedup id pruned, went out as new
                        raise ValueError(f"block {number} is outside the range asked, "
                                         f"{from_block}..{end}")
                except (ValueError, TypeError, AttributeError) as exc:
                    bad += 1
                    first_bad = first_bad or exc
                    continue
                ordered = ordered and number >= prev
                prev = number
                key = (converted["transactionHash"], converted["logIndex"])
                if key not in seen:
                    seen.add(key)
                    out.append(converted)
                    fresh += 1
            if first_bad is not None:
                self._bad_rows(bad, first_bad)
            if len(rows) < self.page_size:
                if end >= to_block:
                    return out
                # a window the explorer answered whole: the next one, twice as wide (a
                # timeout halves it again), from the block after it
                done_to, width = end, width * 2
                start, end, page = end + 1, min(to_block, end + width), 1
                continue
            if page > 1 and not fresh:
                # a full later page of rows already read: a cache or proxy in front that
                # ignores ``page``. Paged on, it was asked to the end of the result
                # window (10,000 / page_size calls a wallet a round) for nothing new.
                # The pages before it are used, as for a page that failed
                raise _partial(BadResponse(
                    f"getLogs page {page} of {start}..{end} repeats rows already "
                    "read (the page asked is ignored)"), out, from_block, ordered, done_to)
            if (page + 1) * self.page_size > RESULT_WINDOW:
                if not ordered:
                    raise _partial(BadResponse(
                        f"getLogs rows of {from_block}..{end} are not in block order: "
                        f"cannot page past the {RESULT_WINDOW:,}-record result window"),
                        out, from_block, False, done_to)
                last = max((int(r["blockNumber"], 16) for r in out), default=start)
                if last <= start:  # one block holds more than the window: cannot page on
                    raise _partial(ExplorerNotOk(
                        f"more than {RESULT_WINDOW} logs in block {start}"), out, from_block,
                        False, done_to)
                start, page = last, 1
            else:
                page += 1

    # -- internals ---------------------------------------------------------------------

    def _bad_rows(self, n: int, first: Exception) -> None:
        """Rows of one page that cannot be read: skipped (the valid rows beside them are
        kept), counted by :attr:`bad_rows`, and one ``bad_input`` history row a page says
        how many and why the first was refused (a row each let a page of a million bad
        rows write 750 MB of history)."""
        before = self.bad_rows
        self.bad_rows += n
        reason = f"{type(first).__name__}: {first}"[:200]
        self.history.record("bad_input", kind="explorer_bad_row", source="explorer",
                            rows=n, reason=reason)
        if before < 3 or before // 1000 != self.bad_rows // 1000:
            log.warning("explorer rows skipped: %d in this page (%d so far); the first: %s",
                        n, self.bad_rows, reason)

    def _envelope(self, body: Any) -> Any:
        if not isinstance(body, dict) or "status" not in body:
            raise BadResponse("explorer answer is not an Etherscan envelope")
        status = str(body.get("status"))
        message = str(body.get("message", ""))
        result = body.get("result")
        if status == "1":
            return result
        text = result if isinstance(result, str) else message
        low = f"{message} {text}".lower()
        if any(t in low for t in _EMPTY_TEXTS):
            if isinstance(result, list) and result:
                # "No records found" with records: a contradiction, never data. Taken
                # for empty, the cursor moved over the blocks asked: their trades lost
                raise BadResponse(f"explorer answered {cut(message, 40)!r} with "
                                  f"{len(result):,} rows")
            return []
        if _daily_quota(low):
            raise QuotaExhausted(f"explorer daily quota used up: {text}")
        if any(t in low for t in _RATE_TEXTS):
            raise RateLimited(f"explorer rate limit: {text}")
        if is_key_refused_text(low):
            raise ExplorerKeyRefused(str(text))
        refused = _setting_refused(low[:TEXT_READ], str(text))
        if refused is not None:
            raise refused
        raise ExplorerNotOk(str(text))

    async def _request(self, params: dict[str, str], method: str) -> Any:
        """One logical call: rate limit, GET, parse; retries rate-limit answers."""
        attempt = 0
        while True:
            wait = self.limiter.reserve(self.clock.now())
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                body = await self._get(params, method)
                refusal = _proxy_refusal(body)
                if refusal is not None:
                    self._envelope(refusal)  # a rate limit is retried as the envelope's
                if isinstance(body, dict) and str(body.get("status")) == "0":
                    self._envelope(body)  # raises RateLimited for rate-limit texts
                return body
            except QuotaExhausted:
                raise  # the next day, not the next second: the caller pauses
            except ExplorerSettingRefused:
                raise  # the key, the URL or the chain must be fixed: the caller says so
            except RateLimited as exc:
                attempt += 1
                if attempt > self.rate_limit_retries:
                    raise
                # the server's Retry-After when it gives one (capped at a minute), else
                # doubling from 1 s
                asked = min(exc.retry_after, 60.0) if exc.retry_after is not None else 0.0
                delay = max(backoff_delay(attempt - 1, initial=1.0, maximum=30.0),
                            asked) / self.speed
                self.limiter.penalise(self.clock.now(), delay)
                self.calls.retries += 1
                log.info("explorer %s rate limited (%s), retry %d in %.2fs", method,
                         exc.message, attempt, delay)
            except ExplorerNotOk:
                return body

    async def _get(self, params: dict[str, str], method: str) -> Any:
        query = {"chainid": str(self.chain_id), **params}
        if self._key:
            query["apikey"] = self._key
        ok, kind = False, "error"
        try:
            try:
                async with self._session.get(
                    self.base_url, params=query, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    if 300 <= status < 400:  # the key is in the query: never sent on
                        raise redirect_refused(status, resp.headers)
                    raw = await read_body(resp, what=f"explorer {method}",
                                          limit=MAX_ANSWER_BYTES)
            except TimeoutError:
                kind = "timeout"
                raise Timeout(f"explorer {method} timed out after {self.timeout:.2f}s") from None
            except aiohttp.ClientConnectorError as exc:
                kind = "connect"
                raise ConnectError(f"explorer {method}: cannot connect: {exc.strerror or exc}"
                                   ) from None
            except aiohttp.ClientError as exc:
                undecodable = undecodable_encoding(exc, what=f"explorer {method}")
                if undecodable is not None:  # br / zstd never asked for, or a body not
                    kind = "bad_response"  # the gzip it says: the explorer's (or a CDN's)
                    raise undecodable from None  # configuration, not a network fault
                kind = "transport"
                raise ConnectError(f"explorer {method}: {type(exc).__name__}: {exc}") from None
            except BadResponse:
                kind = "bad_response"
                raise
            if status == 429:  # whatever the body says (a CDN's page, plain text)
                kind = "rate_limited"
                wait = parse_retry_after(retry_after)
                if wait is not None and wait > LONG_RETRY_AFTER_S:
                    # told to come back in minutes or hours: retried within the minute
                    # (the cap of a retry's wait), every poll hammered it meanwhile
                    raise QuotaExhausted(f"explorer {method}: HTTP 429, Retry-After "
                                         f"{wait:.0f} s", retry_after=wait)
                raise RateLimited(f"explorer {method}: HTTP 429", retry_after=wait)
            if is_key_refused_status(status) and _cdn_block_page(raw):
                # Cloudflare's "Attention Required! | Cloudflare" / "Sorry, you have been
                # blocked" page (Etherscan sits behind it): this client's address or
                # User-Agent is blocked or challenged. It was a refused key: an alert to
                # fix a key that is good
                kind = "blocked"
                raise BadResponse(f"explorer {method}: HTTP {status}, a Cloudflare page: "
                                  "the explorer's CDN blocks or challenges this client (its "
                                  "address or User-Agent); the API key is not what is "
                                  "refused", status=status, kind="cdn_blocked")
            if is_key_refused_status(status):  # whatever else the body says
                kind = "http"
                raise ExplorerKeyRefused(f"HTTP {status} to {method}", status=status)
            try:
                text = raw.decode("utf-8", "replace")
                if not nesting_ok(text):
                    raise RecursionError  # deep JSON must never reach the C parser
                if not values_ok(text, MAX_ANSWER_VALUES):
                    kind = "bad_response"
                    raise BadResponse(f"explorer {method}: HTTP {status}, more than "
                                      f"{MAX_ANSWER_VALUES:,} JSON values", status=status,
                                      kind="too_large")
                body = json.loads(raw)
            except RecursionError:
                kind = "bad_response"
                raise BadResponse(f"explorer {method}: JSON nested too deep", status=status,
                                  kind="too_deep") from None
            except ValueError:
                kind = "bad_response"
                # secrets masked before the cut: a page echoing a URL showed the head of
                # the key the cut halved
                snippet = cut(raw[:60 + REDACT_MARGIN].decode("utf-8", "replace"),
                              60).replace("\n", " ")
                if status >= 500:
                    raise ServerError(f"explorer {method}: HTTP {status} {snippet!r}",
                                      status=status) from None
                raise BadResponse(f"explorer {method}: HTTP {status}, not JSON: {snippet!r}",
                                  status=status) from None
            if status >= 500:
                kind = "server"
                raise ServerError(f"explorer {method}: HTTP {status}", status=status)
            if status >= 400:
                kind = "http"
                raise BadResponse(f"explorer {method}: HTTP {status}", status=status)
            if not isinstance(body, dict):
                # an array, a string, a number: no Etherscan or JSON-RPC answer (a
                # gateway's or cache's). Counted a success, then failed by the caller
                kind = "bad_response"
                raise BadResponse(f"explorer {method}: HTTP {status}, a JSON "
                                  f"{type(body).__name__}, not an object", status=status)
            envelope = _proxy_refusal(body) or body
            if isinstance(envelope, dict) and str(envelope.get("status")) == "0":
                low = f"{envelope.get('message')} {envelope.get('result')}".lower()
                if not is_key_refused_text(low):
                    self.key_accepted += 1
                if _daily_quota(low) or any(t in low for t in _RATE_TEXTS):
                    kind = "rate_limited"
                elif not any(t in low for t in _EMPTY_TEXTS):
                    kind = "notok"
                else:
                    ok = True
            elif (isinstance(body, dict) and str(body.get("status")) == "1"
                  and str(body.get("message", "")).upper().startswith("NOTOK")):
                kind = "bad_response"  # status 1 with NOTOK: a contradiction, never data
                raise BadResponse(f"explorer {method}: status 1 with message "
                                  f"{body.get('message')!r}", status=status)
            else:
                ok = True
                if isinstance(body, dict) and ("status" in body or "jsonrpc" in body):
                    self.key_accepted += 1
            return body
        finally:
            self.calls.call(method, ok, None if ok else kind)
            self.history.record("api_call", kind="explorer", method=method, ok=ok)
            if kind == "bad_response":  # garbage from the explorer: counted by kind
                self.history.record("bad_input", kind="explorer_bad_response",
                                    source="explorer", reason=method)
            if not ok:
                log.warning("explorer %s failed (%s)", method, kind)
