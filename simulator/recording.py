"""Recordings: a chain segment as a node served it, in compressed JSON lines.

Format (version 1), gzip-compressed UTF-8 JSON lines:

    line 1   {"format": "polygon-recording", "version": 1, "chain_id": 137,
              "source": {"kind": "recorded"|"imported"|"synthetic", ...},
              "first_block": N, "last_block": M, "blocks": K}
    line 2.. {"block": <eth_getBlockByNumber(n, false) result>,
              "logs": [<eth_getLogs entries of that block>]}

Blocks are stored exactly as a node returns them (hex quantities, Polygon's long
``extraData``), logs exactly as ``eth_getLogs`` returns them (with ``blockTimestamp`` and
``removed``), so replay is byte-faithful. Loading a corrupt or truncated file raises
:class:`RecordingError` naming the file and line.
"""

from __future__ import annotations

import gzip
import json
import queue
import stat
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyvocab import is_address
from polyvocab.bounds import guard_c_parser

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_LINE_BYTES",
    "RecordedBlock",
    "Recording",
    "RecordingError",
    "block_defect",
    "check_follows",
    "check_gzip_head",
    "check_header",
    "check_last",
    "compact_json",
    "iter_recording",
    "load_recording",
    "log_defect",
    "save_recording",
    "write_recording",
]

FORMAT_NAME = "polygon-recording"
FORMAT_VERSION = 1
#: the longest line a recording may have: a block of Polygon's busiest kind is a few MB;
#: a gzip "bomb" of one endless line (800 MB from a 0.8 MB file) took 1.7 GB to refuse
MAX_LINE_BYTES = 64 << 20


class RecordingError(ValueError):
    """A recording that cannot be used; the message names the file and line."""


@dataclass(slots=True)
class RecordedBlock:
    """One block header (hashes-only form) and its logs, as JSON-RPC objects."""

    block: dict[str, Any]
    logs: list[dict[str, Any]]
    transactions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.block["number"], 16)

    @property
    def hash(self) -> str:
        return str(self.block["hash"])

    @property
    def parent_hash(self) -> str:
        return str(self.block["parentHash"])

    @property
    def timestamp(self) -> int:
        return int(self.block["timestamp"], 16)


@dataclass(slots=True)
class Recording:
    """A contiguous run of blocks with the header that says where they came from."""

    source: dict[str, Any]
    blocks: list[RecordedBlock]
    chain_id: int = 137
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first_block(self) -> int:
        return self.blocks[0].number if self.blocks else 0

    @property
    def last_block(self) -> int:
        return self.blocks[-1].number if self.blocks else -1

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "chain_id": self.chain_id,
            "source": self.source,
            "first_block": self.first_block,
            "last_block": self.last_block,
            "blocks": len(self.blocks),
            **self.extra,
        }


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


#: ``json.dumps(obj, separators=(",", ":"))`` without building an encoder per call (~0.7 us
#: of ~3 for a log): the node's headers, logs and answers (chain, JSON-RPC, explorer)
compact_json = json.JSONEncoder(separators=(",", ":")).encode


def save_recording(recording: Recording, path: str | Path, *, compresslevel: int = 9) -> Path:
    """Write ``recording`` to ``path`` (gzip JSON lines), deterministically (mtime 0)."""
    return write_recording(path, recording.header(), recording.blocks,
                           compresslevel=compresslevel)


def write_recording(path: str | Path, header: dict[str, Any], blocks: Iterable[RecordedBlock],
                    *, compresslevel: int = 9) -> Path:
    """Stream ``header`` then ``blocks`` to ``path`` without holding them all in memory.

    The header must already carry ``first_block``/``last_block``/``blocks`` (see
    :meth:`Recording.header`); a count that does not match the rows written raises
    :class:`RecordingError` and leaves no file behind. Written atomically (``.tmp`` then
    rename), deterministically (gzip mtime 0).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    # zlib releases the GIL: a writer thread compresses row i while the caller builds and
    # encodes row i+1 (~1.3x faster on large files). Same writes in the same order, so the
    # bytes do not change.
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=32)
    failure: list[BaseException] = []

    def compress(gz: gzip.GzipFile) -> None:
        while (chunk := chunks.get()) is not None:
            if not failure:
                try:
                    gz.write(chunk)
                except BaseException as exc:  # re-raised in the caller's thread
                    failure.append(exc)

    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0,
                                                   compresslevel=compresslevel) as gz:
            # filename "" and mtime 0: the bytes depend on the content only, not on the path.
            writer = threading.Thread(target=compress, args=(gz,), name="recording-writer",
                                      daemon=True)
            writer.start()
            try:
                chunks.put((_dumps(header) + "\n").encode())
                for b in blocks:
                    row: dict[str, Any] = {"block": b.block, "logs": b.logs}
                    if b.transactions:
                        row["transactions"] = b.transactions
                    chunks.put((_dumps(row) + "\n").encode())
                    count += 1
                    if failure:
                        break
            finally:
                chunks.put(None)
                writer.join()
            if failure:
                raise failure[0]
        if header.get("blocks") != count:
            raise RecordingError(f"{path}: header promises {header.get('blocks')} blocks, "
                                 f"{count} were written")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


GZIP_MAGIC = b"\x1f\x8b"


def check_gzip_head(path: Path, head: bytes) -> None:
    """Raise a :class:`RecordingError` that says what the file is when ``head`` (its
    first bytes) is not a gzip header: a plain JSON-lines file read as "corrupt or
    truncated (incorrect header check)", which sent its owner looking for damage."""
    if head[:2] == GZIP_MAGIC:
        return
    if not head:
        raise RecordingError(f"{path}: an empty file, not a recording (.jsonl.gz)")
    plain = head.lstrip()[:1] in (b"{", b"[")
    raise RecordingError(
        f"{path}: not gzip-compressed ("
        + ("it looks like plain JSON lines; " if plain else "")
        + f"a recording is gzip-compressed JSON lines, .jsonl.gz: `gzip -k {path.name}` "
          "makes one)")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:  # a FIFO (or a device) is refused, not opened: the open waits for a writer
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such recording") from None
    except OSError as exc:  # a symlink loop, no permission on the folder
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise RecordingError(f"{path}: {what}, not a recording (.jsonl.gz)")
    lineno = 0
    try:
        with open(path, "rb") as raw:
            check_gzip_head(path, raw.read(64))
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            while line := fh.readline(MAX_LINE_BYTES + 1):
                lineno += 1
                if len(line) > MAX_LINE_BYTES:
                    raise RecordingError(f"{path}:{lineno}: a line longer than "
                                         f"{MAX_LINE_BYTES:,} bytes: not a recording line")
                yield lineno, line
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such recording") from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}:{lineno + 1}: corrupt or truncated recording, after "
                             f"{lineno} whole line(s) ({exc})") from None


_MAX_NUMBER = 1 << 63


def check_header(path: str | Path, head: Any) -> dict[str, Any]:
    """Line 1 of a recording, checked: the format and version this build reads, and the
    type of each field it uses (``chain_id``, ``first_block``, ``last_block``, ``blocks``:
    integers in range; ``source``: an object; ``wallets``: a list of addresses or of
    ``[address, trades]`` pairs). Raises :class:`RecordingError` naming the file and the
    field."""
    if not isinstance(head, dict) or head.get("format") != FORMAT_NAME:
        raise RecordingError(f"{path}:1: not a {FORMAT_NAME} header")
    if head.get("version") != FORMAT_VERSION:
        raise RecordingError(f"{path}:1: format version {head.get('version')!r} is not "
                             f"supported (this build reads version {FORMAT_VERSION})")
    for key in ("chain_id", "first_block", "last_block", "blocks"):
        value = head.get(key)
        if key in head and not (type(value) is int and 0 <= value < _MAX_NUMBER):
            raise RecordingError(f"{path}:1: header field {key} must be a non-negative "
                                 f"integer, not {str(value)[:40]!r}")
    if "source" in head and not isinstance(head["source"], dict):
        raise RecordingError(f"{path}:1: header field source must be an object")
    wallets = head.get("wallets")
    if "wallets" in head and not (isinstance(wallets, list) and all(map(_wallet, wallets))):
        raise RecordingError(f"{path}:1: header field wallets must be a list of addresses "
                             f"(or of [address, trades] pairs)")
    return head


def _wallet(item: Any) -> bool:
    """A header's wallet: an address, or ``[address, trades]`` (synth's, busiest first)."""
    if isinstance(item, list) and len(item) == 2 and type(item[1]) is int:
        item = item[0]
    return isinstance(item, str) and is_address(item)


def _check_block(path: Path, lineno: int, row: Any) -> RecordedBlock:
    where = f"{path}:{lineno}"
    if not isinstance(row, dict) or not isinstance(row.get("block"), dict):
        raise RecordingError(f"{where}: expected {{\"block\": ..., \"logs\": [...]}}")
    logs = row.get("logs", [])
    if not isinstance(logs, list):
        raise RecordingError(f"{where}: 'logs' is not a list")
    block = row["block"]
    if (defect := block_defect(block)) is not None:
        raise RecordingError(f"{where}: {defect}")
    for i, log in enumerate(logs):  # a log of another type was a traceback in inspect,
        # and in serve once the replay reached it (after READY)
        if (defect := log_defect(log) or _log_elsewhere(block, log)) is not None:
            raise RecordingError(f"{where}: logs[{i}]{defect}")
    txs = row.get("transactions", [])
    if not isinstance(txs, list):
        raise RecordingError(f"{where}: 'transactions' is not a list")
    if not all(isinstance(tx, dict) for tx in txs):
        raise RecordingError(f"{where}: 'transactions' holds an item that is not an object")
    return RecordedBlock(block=block, logs=logs, transactions=txs)


def block_defect(block: dict[str, Any]) -> str | None:
    """Why ``block`` (a header object) cannot be a recording's block, or None: the fields
    the node and ``inspect`` read (number, hash, parentHash, timestamp) must be hex."""
    for key in ("number", "hash", "parentHash", "timestamp"):
        value = block.get(key)
        if not isinstance(value, str) or not value.startswith("0x"):
            return f"block field {key!r} is not hex: {repr(value)[:80]}"
        try:
            number = int(value, 16)
        except ValueError:
            return f"block field {key!r} is not hex: {value[:80]!r}"
        # a number or time of 2**256 (a damaged or hand-made file) replayed as a block
        # no client reads, or a wait of 10**69 years: past 2**63 no chain has them
        if key in ("number", "timestamp") and number >= _MAX_NUMBER:
            return f"block field {key!r} is out of range: {value[:80]!r}"
    return None


def _log_elsewhere(block: dict[str, Any], log: dict[str, Any]) -> str | None:
    """Why a log does not belong to ``block`` (its ``blockNumber`` or ``blockHash``
    another block's), or None: it was served as it stood, a trade of a block the chain
    never had."""
    number = log.get("blockNumber")
    if number is not None:
        try:
            other = int(number, 16) != int(block["number"], 16)
        except ValueError:
            return f".blockNumber is not hex: {number[:40]!r}"
        if other:
            return f".blockNumber {number[:40]} is not its block's ({block['number']})"
    bhash = log.get("blockHash")
    if bhash is not None and bhash.lower() != str(block["hash"]).lower():
        return f".blockHash {bhash[:20]}.. is not its block's hash"
    return None


def log_defect(log: Any) -> str | None:
    """Why ``log`` cannot be a recording's log, or None; the reason starts where a
    ``logs[i]`` would be named (`` is not an object``, ``.topics ...``)."""
    if not isinstance(log, dict):
        return " is not an object"
    topics = log.get("topics", [])
    if not (isinstance(topics, list) and all(isinstance(t, str) for t in topics)):
        return ".topics is not a list of hex strings"
    for key in _LOG_TEXT_FIELDS:
        if key in log and not isinstance(log[key], str):
            return f".{key} is not a string: {str(log[key])[:40]!r}"
    return None


#: a log's fields that are hex text in eth_getLogs (and that the node and inspect read so)
_LOG_TEXT_FIELDS = ("address", "data", "transactionHash", "blockHash", "logIndex",
                    "blockTimestamp", "transactionIndex", "blockNumber")


def check_follows(path: str | Path, lineno: int, block: RecordedBlock,
                  previous: RecordedBlock | None,
                  header: dict[str, Any] | None = None) -> None:
    """A chain's next block: the next number, its parent the previous block's hash, a
    timestamp that does not go back; the first block the ``header``'s ``first_block``
    when given (``serve --start-at`` counts from it). Raises :class:`RecordingError`
    naming the line (a broken link would replay as a reorg at every block)."""
    if previous is None:
        if header is not None and header.get("first_block", block.number) != block.number:
            raise RecordingError(f"{path}:{lineno}: the first block is {block.number}, the "
                                 f"header says first_block {header['first_block']}")
        return
    if block.number != previous.number + 1:
        raise RecordingError(f"{path}:{lineno}: block {block.number} does not follow "
                             f"block {previous.number}")
    if block.parent_hash.lower() != previous.hash.lower():
        raise RecordingError(f"{path}:{lineno}: block {block.number}'s parentHash is not "
                             f"block {previous.number}'s hash")
    if block.timestamp < previous.timestamp:
        raise RecordingError(f"{path}:{lineno}: block {block.number}'s timestamp goes back "
                             f"before block {previous.number}'s")


def iter_recording(path: str | Path) -> Iterator[dict[str, Any] | RecordedBlock]:
    """Yield the header dict, then each :class:`RecordedBlock`, checking as it goes."""
    path = Path(path)
    expected: int | None = None
    head: dict[str, Any] = {}
    count = 0
    previous: RecordedBlock | None = None
    for lineno, line in _lines(path):
        try:
            guard_c_parser(line)
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordingError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
        except RecursionError:  # [[[[...]]]]: was a traceback
            raise RecordingError(f"{path}:{lineno}: not a recording line (JSON nested too "
                                 "deep)") from None
        if lineno == 1:
            head = check_header(path, row)
            expected = head.get("blocks")
            yield row
            continue
        block = _check_block(path, lineno, row)
        check_follows(path, lineno, block, previous, head)
        previous = block
        count += 1
        yield block
    if expected is None:
        raise RecordingError(f"{path}: empty file, no header")
    if isinstance(expected, int) and count != expected:
        raise RecordingError(f"{path}: truncated: header promises {expected} blocks, "
                             f"file has {count}")
    check_last(path, previous, head)


def check_last(path: str | Path, last: RecordedBlock | None, header: dict[str, Any]) -> None:
    """The last block read is the ``header``'s ``last_block`` (when both are there)."""
    if last is not None and header.get("last_block", last.number) != last.number:
        raise RecordingError(f"{path}: the last block is {last.number}, the header says "
                             f"last_block {header['last_block']}")


def load_recording(path: str | Path) -> Recording:
    """Load and check a whole recording. Raises :class:`RecordingError` on any defect."""
    items: Iterable[dict[str, Any] | RecordedBlock] = iter_recording(path)
    header: dict[str, Any] = {}
    blocks: list[RecordedBlock] = []
    for item in items:
        if isinstance(item, RecordedBlock):
            blocks.append(item)
        else:
            header = item
    known = {"format", "version", "chain_id", "source", "first_block", "last_block", "blocks"}
    return Recording(
        source=header.get("source", {}),
        blocks=blocks,
        chain_id=int(header.get("chain_id", 137)),
        extra={k: v for k, v in header.items() if k not in known},
    )
