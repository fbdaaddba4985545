"""Turn a Polymarket Data-API ``/trades`` export (CSV, or the API's JSON answer saved as
a file: a list of trade objects with the same names) into a recording.

``python -m simulator import-trades CSV --out PATH [--seed S]``

Each CSV row is one fill of ``proxyWallet``'s order. It becomes an ``OrderFilled`` log with
``maker = proxyWallet`` that decodes back to the same wallet, side, token, size (shares,
rounded to 6 decimals) and price (within what 6-decimal amounts can express), inside the
real transaction (``transactionHash``) with the match around it: rows of one transaction
on the same token and side are the maker orders of one match against a synthetic
counterparty taker, whose own fill (``taker = exchange``) and ``OrdersMatched`` follow.

A row identical in every column to an earlier row is read once: the Data-API ``/trades``
has no fill id, and a paged export repeats rows (offsets past the API's cap answer the
same page again: the real Nobel 2025 export is 1,500 fills, its pages 3 to 10 one page
eight times). Importing each copy made fills that never happened, in transactions whose
real wallet then traded eight times. The header's ``source.repeated_rows`` counts them.

Blocks lie on a 2-s grid from the first trade's timestamp to the last; blocks without
trades carry background noise, so a replay keeps the real timing. Trades before
2026-04-28 use the V1 layout (CTF Exchange, USDC.e), later ones V2 (CTFExchangeV2, pUSD);
an optional ``negRisk`` column (true/false) picks the NegRisk exchange.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from eth_utils import keccak

from polyvocab import (
    CTF_EXCHANGE_V1,
    CTF_EXCHANGE_V2,
    NEG_RISK_EXCHANGE_V1,
    NEG_RISK_EXCHANGE_V2,
    is_address,
)
from polyvocab.bounds import guard_c_parser
from polyvocab.small_files import SmallFileError, read_small_text
from simulator.chainshape import BlockBuilder, MakerFill, data_words, match_logs
from simulator.errors import SimulatorError
from simulator.profiles import V2_LIVE_TIMESTAMP, Profile, estimate_block_number
from simulator.recording import FORMAT_NAME, FORMAT_VERSION, RecordedBlock
from simulator.synth import (
    MATCH_ORDERS_SELECTOR,
    ChainRenderer,
    add_background_tx,
    build_universe,
    poisson,
    wallets_extra,
)

__all__ = [
    "BLOCK_INTERVAL_S",
    "MAX_BLOCKS",
    "REQUIRED_COLUMNS",
    "TradeRow",
    "TradeRows",
    "TradesCsvError",
    "import_trades",
    "read_trades_csv",
]

REQUIRED_COLUMNS = ("proxyWallet", "side", "asset", "conditionId", "size", "price",
                    "timestamp", "outcomeIndex", "transactionHash")
BLOCK_INTERVAL_S = 2
#: the most trades an import keeps (~350 MB in memory); the file is streamed, so repeated
#: rows (a paged export's) and its size in bytes do not count
MAX_TRADE_ROWS = 1_000_000
#: the largest JSON export (read whole: ~150,000 trades)
TRADES_JSON_BYTES = 64 << 20
#: the longest line of an export (a Data-API row is ~400 characters; a title may be long)
MAX_LINE_CHARS = 1 << 20
#: the most blocks a recording file is written with (import-trades, synth): ~11.5 days of
#: 2-s blocks; beyond that the noise alone is gigabytes
MAX_BLOCKS = 500_000
_UNIT = Decimal(1_000_000)
_HASH32 = re.compile(r"0x[0-9a-fA-F]{64}")
_SCIENTIFIC = re.compile(r"[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+")
# Background noise between the trades: a few transactions per block, as in the default
# profile (the Nobel CSV has no chain context to copy).
_NOISE = Profile(name="import", description="noise around imported trades",
                 background_tx_mean=4.0, wallets=500, markets=20)


class TradesCsvError(SimulatorError, ValueError):
    """A CSV that cannot be imported; the message names file and line."""


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One checked CSV row; amounts are raw 6-decimal integers."""

    line: int
    wallet: str
    side: str
    token_id: int
    shares: int
    usdc: int
    timestamp: int
    tx_hash: str
    negrisk: bool


class TradeRows(list[TradeRow]):
    """The checked rows of one export, less its repeated rows (the lines of those in
    ``repeated_lines``)."""

    repeated_lines: tuple[int, ...] = ()


def _fail(at: str, message: str) -> TradesCsvError:
    """The error of a row at ``at`` (``FILE:LINE``, or ``FILE: item N`` of a JSON export)."""
    return TradesCsvError(f"{at}: {message}")


#: no size or price reaches 10**30 (a whole market's day is ~1e9 shares); past it an
#: amount in 6-decimal units would overflow Decimal's context or wrap past uint256
_DECIMAL_DIGITS = 30


def _decimal(at: str, column: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise _fail(at, f"column {column}: not a number: {text!r}") from None
    if not value.is_finite():
        raise _fail(at, f"column {column}: not a finite number: {text!r}")
    if value and value.adjusted() >= _DECIMAL_DIGITS:  # exact: abs() would overflow
        raise _fail(at, f"column {column}: out of range: {text[:40]!r}")
    return value


def _integer(at: str, column: str, text: str, *, upper: int) -> int:
    t = text.strip()
    if _SCIENTIFIC.fullmatch(t):  # a spreadsheet's 1.52835E+76 for a 77-digit token id
        raise _fail(at, f"column {column}: {t!r} is in scientific notation, its digits "
                        "lost (a spreadsheet saved the file so): use the export as "
                        "downloaded, or format the column as text")
    if not t.isdigit():
        raise _fail(at, f"column {column}: not a non-negative integer: {text!r}")
    value = int(t)
    if value >= upper:
        raise _fail(at, f"column {column}: out of range: {text!r}")
    return value


#: a trade's timestamp lies in [2020-01-01, 2100-01-01) UTC, in seconds (Polygon PoS and
#: Polymarket began in 2020); past 10**11 it is milliseconds (10**11 s is the year 5138)
FIRST_TIMESTAMP, LAST_TIMESTAMP = 1_577_836_800, 4_102_444_800
_MS_FROM = 10**11


def _timestamp(at: str, text: str) -> int:
    """A trade's Unix time in seconds. A time in milliseconds (another export's, a
    spreadsheet's) was read as seconds: a year 2001 in ms became a block 445 billion in
    the year 33658; a 1970 time became block 1. Either is an error naming the line."""
    value = _integer(at, "timestamp", text, upper=1 << 64)
    if value >= _MS_FROM:
        raise _fail(at, f"column timestamp: {text.strip()!r} looks like milliseconds; "
                                "the Data-API's are seconds (divide the column by 1000)")
    if not FIRST_TIMESTAMP <= value < LAST_TIMESTAMP:
        raise _fail(at, f"column timestamp: {text.strip()!r} is not a time of the "
                                "chain (Unix seconds from 2020-01-01 to 2100-01-01 UTC)")
    return value


def _not_a_csv(path: Path, text: str) -> str | None:
    """Why ``text`` (a file's beginning) is plainly no export: an HTML page (a download's
    error page saved as .csv); else None."""
    head = text.lstrip()[:512].lower()
    if head.startswith(("<!doctype html", "<html", "<?xml", "<head", "<body")) or (
            head.startswith("<") and "<html" in head):
        return (f"{path}:1: an HTML page, not a CSV (a download that failed and saved its "
                "error page?): download the Data-API /trades export again")
    return None


def _row(at: str, line: int, rec: dict[str, str], negrisk_col: bool) -> TradeRow:
    wallet = rec["proxyWallet"].strip()
    if not is_address(wallet):
        raise _fail(at, f"column proxyWallet: not a 20-byte hex address: {wallet!r}")
    side = rec["side"].strip().upper()
    if side not in ("BUY", "SELL"):
        raise _fail(at, f"column side: expected BUY or SELL, got {rec['side']!r}")
    token_id = _integer(at, "asset", rec["asset"], upper=1 << 256)
    if token_id == 0:
        raise _fail(at, "column asset: token id 0 is the collateral, not an outcome")
    condition = rec["conditionId"].strip()
    if not _HASH32.fullmatch(condition):
        raise _fail(at, f"column conditionId: not a 32-byte hex value: {condition!r}")
    size = _decimal(at, "size", rec["size"])
    price = _decimal(at, "price", rec["price"])
    if size <= 0:
        raise _fail(at, f"column size: must be positive, got {rec['size']!r}")
    if not 0 < price <= 1:
        raise _fail(at, f"column price: must be in (0, 1], got {rec['price']!r}")
    shares = int((size * _UNIT).to_integral_value(ROUND_HALF_EVEN))
    usdc = int((size * price * _UNIT).to_integral_value(ROUND_HALF_EVEN))
    if shares == 0 or usdc == 0:
        raise _fail(at, f"size {rec['size']} at price {rec['price']} rounds to zero "
                                "at 6 decimals")
    timestamp = _timestamp(at, rec["timestamp"])
    _integer(at, "outcomeIndex", rec["outcomeIndex"], upper=1 << 8)
    tx_hash = rec["transactionHash"].strip()
    if not _HASH32.fullmatch(tx_hash):
        raise _fail(at, f"column transactionHash: not a 32-byte hex hash: {tx_hash!r}")
    negrisk = negrisk_col and rec.get("negRisk", "").strip().lower() in ("true", "1", "yes")
    return TradeRow(line=line, wallet=wallet.lower(), side=side, token_id=token_id,
                    shares=shares, usdc=usdc, timestamp=timestamp, tx_hash=tx_hash.lower(),
                    negrisk=negrisk)


class _Lines:
    """The lines of an export open in binary, each at most :data:`MAX_LINE_CHARS`
    characters (a 2-GB file of one line was read whole before the CSV reader saw it),
    ended by LF, CRLF or a lone CR (an old Mac spreadsheet's; quoted newlines come
    through as LF). A byte that is not UTF-8 is an error naming its line (decoded with
    ``surrogateescape``, then looked for: a strict decoder fails a chunk ahead of the
    line); a leading byte-order mark (a spreadsheet's) is dropped. ``n`` counts the lines
    read."""

    def __init__(self, path: Path, fh: BinaryIO) -> None:
        self.path, self.n = path, 0
        self.text = io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape",
                                     newline=None)

    def __iter__(self) -> Iterator[str]:
        while line := self.text.readline(MAX_LINE_CHARS + 1):
            self.n += 1
            if len(line) > MAX_LINE_CHARS:
                raise _fail(f"{self.path}:{self.n}", f"a line longer than "
                            f"{MAX_LINE_CHARS:,} characters: not a trades export")
            if self.n == 1:
                line = line.removeprefix("\ufeff")
            bad = _UNDECODED.search(line)
            if bad is not None:
                raise _fail(f"{self.path}:{self.n}", f"not UTF-8 text (character "
                            f"{bad.start() + 1} of the line is byte "
                            f"0x{ord(bad.group()) - 0xDC00:02x}): not a readable CSV")
            yield line


#: what ``surrogateescape`` decodes a byte that is not UTF-8 to
_UNDECODED = re.compile("[\udc80-\udcff]")


def read_trades_csv(path: str | Path) -> TradeRows:
    """Read and check every row, streaming (memory grows with the trades kept, at most
    :data:`MAX_TRADE_ROWS`, not with the file); raise :class:`TradesCsvError` naming file
    and line. A row identical in every column to an earlier one is checked, then left out
    (its line in ``repeated_lines``): a paged export's repeat, not another fill."""
    path = Path(path)
    rows = TradeRows()
    seen: set[bytes] = set()  # a digest of each row kept (a tuple of its texts: ~700 B)
    repeated: list[int] = []
    lines: _Lines | None = None
    try:
        if not path.is_file():  # /dev/zero, a FIFO: not an export (and never-ending)
            raise TradesCsvError(f"{path}: not a regular file" if path.exists() else
                                 f"{path}: no such file")
        with open(path, "rb") as fh:
            raw = fh.read(512)
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # a spreadsheet's "Unicode text"
                raise TradesCsvError(f"{path}:1: UTF-16 text, not UTF-8: save it as "
                                     "'CSV UTF-8', or use the export as downloaded")
            head = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
            why = _not_a_csv(path, head)
            if why is not None:
                raise TradesCsvError(why)
            if head.lstrip().startswith(("[", "{")):  # the Data-API's own answer, saved
                return _read_trades_json(path)
            fh.seek(0)
            lines = _Lines(path, fh)
            reader = csv.DictReader(lines)
            fields = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in fields]
            if missing:
                raise _fail(f"{path}:1", f"missing column(s) {', '.join(missing)} (a Data-API "
                                     f"/trades export has {', '.join(REQUIRED_COLUMNS)})")
            negrisk_col = "negRisk" in fields
            for rec in reader:
                line = reader.line_num
                at = f"{path}:{line}"
                if None in rec or any(rec.get(c) is None for c in REQUIRED_COLUMNS):
                    raise _fail(at, f"expected {len(fields)} fields")
                if [v.lstrip("\ufeff") for v in rec.values()] == fields:  # `cat`-joined:
                    continue  # a header again, BOM and all ('not a 20-byte hex address')
                row = _row(at, line, rec, negrisk_col)
                key = hashlib.blake2b("\x1f".join(rec.values()).encode(),
                                      digest_size=16).digest()
                if key in seen:
                    repeated.append(line)
                    continue
                if len(rows) >= MAX_TRADE_ROWS:
                    raise _fail(at, f"more than {MAX_TRADE_ROWS:,} trades: split the "
                                            "export (by time)")
                seen.add(key)
                rows.append(row)
    except FileNotFoundError:
        raise TradesCsvError(f"{path}: no such file") from None
    except csv.Error as exc:
        at = f"{path}:{lines.n}" if lines is not None else str(path)
        raise TradesCsvError(f"{at}: not a readable CSV ({exc})") from None
    except OSError as exc:  # a folder raced in, no permission
        raise TradesCsvError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not rows:
        raise TradesCsvError(f"{path}: no trades in the file")
    rows.repeated_lines = tuple(repeated)
    return rows


def _json_text(value: Any) -> str | None:
    """A JSON export's value as the CSV export writes it; None for what no column holds
    (an object, a list, null, true/false but for negRisk)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that is the same number: 0.53, 1e-07
    return None


def _read_trades_json(path: Path) -> TradeRows:
    """The trades of a Data-API ``/trades`` answer saved as JSON (a list of trade objects
    with the CSV export's column names as keys), at most :data:`TRADES_JSON_BYTES`; each
    checked as a CSV row is, an error naming ``FILE: item N``."""
    try:
        text = read_small_text(path, TRADES_JSON_BYTES)
        guard_c_parser(text)
        items = json.loads(text)
    except SmallFileError as exc:
        raise TradesCsvError(f"{path}: {exc.strerror} (a JSON export is read whole: convert "
                             "a larger one to CSV, or split it)") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5000-digit number
        raise TradesCsvError(f"{path}: not a JSON list of trades ({str(exc)[:80]})") from None
    if not isinstance(items, list):
        raise TradesCsvError(f"{path}: a JSON {type(items).__name__}, not a list of trades "
                             "(the Data-API /trades answer is a list)")
    rows = TradeRows()
    seen: set[str] = set()
    repeated: list[int] = []
    for n, item in enumerate(items, 1):
        at = f"{path}: item {n}"
        if not isinstance(item, dict):
            raise _fail(at, f"a {type(item).__name__}, not a trade object")
        rec = {k: t for k, v in item.items() if (t := _json_text(v)) is not None}
        missing = [c for c in REQUIRED_COLUMNS if rec.get(c) is None]
        if missing:
            raise _fail(at, f"missing or not a text or number: {', '.join(missing)} (a "
                            f"Data-API /trades trade has {', '.join(REQUIRED_COLUMNS)})")
        row = _row(at, n, rec, "negRisk" in rec)
        key = json.dumps(item, sort_keys=True)
        if key in seen:
            repeated.append(n)
            continue
        if len(rows) >= MAX_TRADE_ROWS:
            raise _fail(at, f"more than {MAX_TRADE_ROWS:,} trades: split the export")
        seen.add(key)
        rows.append(row)
    if not rows:
        raise TradesCsvError(f"{path}: no trades in the file")
    rows.repeated_lines = tuple(repeated)
    return rows


@dataclass(frozen=True, slots=True)
class _Match:
    version: int
    exchange: str
    token_id: int
    taker: str
    taker_side: str
    taker_order_hash: int
    makers: tuple[MakerFill, ...]


def _hash_int(text: str) -> int:
    return int.from_bytes(keccak(text=text), "big")


def _matches(tx_hash: str, rows: Sequence[TradeRow]) -> list[_Match]:
    groups: dict[tuple[int, str], list[TradeRow]] = {}
    for r in rows:
        groups.setdefault((r.token_id, r.side), []).append(r)
    out = []
    for g, ((token_id, side), members) in enumerate(groups.items()):
        ts = min(r.timestamp for r in members)
        version = 1 if ts < V2_LIVE_TIMESTAMP else 2
        neg = members[0].negrisk
        if version == 1:
            exchange = NEG_RISK_EXCHANGE_V1 if neg else CTF_EXCHANGE_V1
        else:
            exchange = NEG_RISK_EXCHANGE_V2 if neg else CTF_EXCHANGE_V2
        counterparty = "0x" + keccak(text=f"counterparty:{tx_hash}:{g}")[-20:].hex()
        makers = tuple(MakerFill(wallet=r.wallet, order_hash=_hash_int(f"order:{tx_hash}:{r.line}"),
                                 shares=r.shares, usdc=r.usdc) for r in members)
        out.append(_Match(version=version, exchange=exchange, token_id=token_id,
                          taker=counterparty, taker_side="SELL" if side == "BUY" else "BUY",
                          taker_order_hash=_hash_int(f"taker:{tx_hash}:{g}"), makers=makers))
    return out


def _add_trade_tx(bb: BlockBuilder, chain: ChainRenderer, tx_hash: str,
                  matches: Sequence[_Match], operator: str) -> None:
    logs = []
    words: list[int] = []
    for m in matches:
        logs.extend(match_logs(version=m.version, exchange=m.exchange, token_id=m.token_id,
                               taker=m.taker, taker_side=m.taker_side,  # type: ignore[arg-type]
                               taker_order_hash=m.taker_order_hash, makers=m.makers))
        words += [m.taker_order_hash, len(m.makers)] + [x.order_hash for x in m.makers]
    makers = sum(len(m.makers) for m in matches)
    bb.add_tx(sender=operator, to=matches[0].exchange, nonce=chain.nonces.take(operator),
              gas_used=120_000 + 95_000 * makers,
              input_hex="0x" + MATCH_ORDERS_SELECTOR + data_words(*words)[2:], logs=logs,
              tx_hash=tx_hash)


def import_trades(rows: Sequence[TradeRow], *, seed: int = 0, source_name: str = "trades.csv"
                  ) -> tuple[dict[str, Any], Iterator[RecordedBlock]]:
    """The header and lazy blocks of the recording made from checked ``rows``."""
    ordered = sorted(rows, key=lambda r: r.timestamp)
    by_tx: dict[str, list[TradeRow]] = {}
    for r in ordered:
        by_tx.setdefault(r.tx_hash, []).append(r)
    t0 = ordered[0].timestamp
    n_blocks = (ordered[-1].timestamp - t0) // BLOCK_INTERVAL_S + 1
    if n_blocks > MAX_BLOCKS:
        raise TradesCsvError(f"{source_name}: the trades span {n_blocks} blocks; at most "
                           f"{MAX_BLOCKS} (split the export)")
    per_block: dict[int, list[tuple[str, list[_Match]]]] = {}
    counts: Counter[str] = Counter()
    for tx_hash, members in by_tx.items():
        matches = _matches(tx_hash, members)
        index = (members[0].timestamp - t0) // BLOCK_INTERVAL_S
        per_block.setdefault(index, []).append((tx_hash, matches))
        for m in matches:
            counts[m.taker] += 1
            for x in m.makers:
                counts[x.wallet] += 1
    first = estimate_block_number(t0)
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "chain_id": 137,
        "source": {"kind": "imported", "csv": source_name, "rows": len(rows),
                   "repeated_rows": len(getattr(rows, "repeated_lines", ())),
                   "transactions": len(by_tx), "seed": seed,
                   "interval_s": BLOCK_INTERVAL_S},
        "first_block": first,
        "last_block": first + n_blocks - 1,
        "blocks": n_blocks,
        "wallets": wallets_extra(counts),
    }

    def blocks() -> Iterator[RecordedBlock]:
        universe = build_universe(_NOISE, seed)
        rng = random.Random(f"import:{seed}")
        chain = ChainRenderer(rng=rng, universe=universe,
                              genesis_parent="0x" + keccak(text=f"parent:import:{seed}").hex(),
                              first_number=first)
        for i in range(n_blocks):
            bb = chain.new_block(first + i, t0 + i * BLOCK_INTERVAL_S)
            trades = per_block.get(i, [])
            kinds = [False] * poisson(rng, _NOISE.background_tx_mean) + [True] * len(trades)
            rng.shuffle(kinds)
            it = iter(trades)
            for is_trade in kinds:
                if is_trade:
                    tx_hash, matches = next(it)
                    _add_trade_tx(bb, chain, tx_hash, matches, rng.choice(universe.operators))
                else:
                    add_background_tx(bb, rng, universe, chain.nonces, fee_logs=True)
            yield chain.seal(bb)

    return header, blocks()
