"""Build realistic Polygon JSON-RPC objects: blocks, transactions, logs, Polymarket matches.

Shapes follow real Polygon PoS answers (the polygon-etl RPC fixtures: blocks 29353457 and
35678770, receipts of blocks 0x898a00..0x898a07 and 0x16c7d38):

* a block is ``eth_getBlockByNumber(n, false)``: the 21 header fields in the order geth
  prints them, a 97-byte ``extraData`` (32-byte Bor vanity + 65-byte signer seal), a real
  ``logsBloom`` computed from the block's logs (keccak of address and topics, 3 bits each);
* a transaction is an EIP-1559 (type 0x2) object as ``eth_getBlockByNumber(n, true)``
  lists it;
* a log is an ``eth_getLogs`` entry with ``blockTimestamp`` and ``removed: false``; every
  transaction ends with Polygon's ``LogFeeTransfer`` from ``0x...1010`` as real receipts do.

:class:`BlockBuilder` collects transactions and their logs and seals the block (hash,
parent link, bloom, roots), filling ``blockHash`` into every log and transaction.
:func:`match_logs` renders one Polymarket match (V1 or V2) as the exchange emits it.
Pure functions of their arguments (randomness comes in as a ``random.Random``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

# keccak-256 straight from pycryptodome (eth-hash's backend, ~30% faster direct); eth_utils
# is not imported: it pulls in pydantic and eth_typing (~0.2 s of `serve` start-up)
from Crypto.Hash import keccak as _pycryptodome_keccak

from polyvocab import (
    CONDITIONAL_TOKENS,
    ORDER_FILLED_V1,
    ORDER_FILLED_V2,
    ORDERS_MATCHED_V1,
    ORDERS_MATCHED_V2,
    PUSD,
    TRANSFER,
    TRANSFER_SINGLE,
    USDC_E,
)
from simulator.recording import RecordedBlock

__all__ = [
    "BOR_VANITY",
    "EMPTY_TRIE_ROOT",
    "EMPTY_UNCLES_HASH",
    "LOG_FEE_TRANSFER",
    "MATIC_TOKEN",
    "BlockBuilder",
    "LogSpec",
    "MakerFill",
    "address_topic_fast",
    "bloom_bits",
    "collateral_for",
    "data_words",
    "keccak256",
    "logs_bloom",
    "match_logs",
]

Side = Literal["BUY", "SELL"]
LogSpec = tuple[str, list[str], str]  # (address, topics, data) of one log, hex strings

# keccak256(rlp([])) and keccak256(rlp(empty trie)): what every post-merge-style header carries.
EMPTY_UNCLES_HASH = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
EMPTY_TRIE_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
# The 32-byte vanity of Bor's extraData (rlp of [version, "bor", "go1.19.2", "linux"]), copied
# from the real header of block 35678770 (polygon-etl fixture); the 65-byte seal follows it.
BOR_VANITY = "d682021083626f7288676f312e31392e32856c696e7578000000000000000000"
# Polygon's system "MRC20" contract for the native token and its LogFeeTransfer event
# (topic0 as in every real receipt of the fixtures: 0x4dfe1bbb...1d63).
MATIC_TOKEN = "0x0000000000000000000000000000000000001010"
LOG_FEE_TRANSFER = "0x4dfe1bbbcf077ddc3e01291eea2d5c70c2b422b415d95645b9adcfd678cb1d63"
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
_ZERO32 = "0x" + "0" * 64
_S_RANGE = _SECP256K1_HALF_N - 1  # randrange(1, half n) is 1 + a draw below this
assert _S_RANGE.bit_length() == 255


def address_topic_fast(address: str) -> str:
    """An already lower-case ``0x`` address as a 32-byte topic (no checks: hot path)."""
    return "0x000000000000000000000000" + address[2:]


_MATIC_TOPIC = address_topic_fast(MATIC_TOKEN)


def data_words(*words: int) -> str:
    """ABI head of static words: ``0x`` + 64 hex digits per word."""
    fmt = _WORDS_FORMAT.get(len(words))
    if fmt is None:
        fmt = _WORDS_FORMAT[len(words)] = "0x" + "%064x" * len(words)
    return fmt % words


_WORDS_FORMAT: dict[int, str] = {}  # word count -> "0x%064x%064x..." (one % per call)


def _keccak256_object(data: bytes) -> bytes:
    return _pycryptodome_keccak.new(data=data, digest_bits=256).digest()


def _raw_keccak256() -> Callable[[bytes], bytes] | None:
    """keccak-256 through pycryptodome's C functions with one reused state and output
    buffer (~2.6 us a hash instead of ~7.7: no hash object, no buffers per call), or None
    when its backend is not cffi or the functions are missing. Safe without threads (the
    simulator has none); checked against a known digest before use."""
    try:
        from Crypto.Util import _raw_api

        lib: Any = getattr(_pycryptodome_keccak, "_raw_keccak_lib")  # noqa: B009
        if _raw_api.backend != "cffi":
            return None
        ffi = _raw_api.ffi
        holder = ffi.new("void **")
        if lib.keccak_init(holder, 64, 24):
            return None
        state = ffi.gc(holder[0], lib.keccak_destroy)
        out = ffi.new("uint8_t[32]")
        buf = ffi.buffer(out)
        reset, absorb, digest = lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest
    except (AttributeError, ImportError, TypeError):
        return None

    def keccak(data: bytes) -> bytes:
        if type(data) is not bytes:  # bytearray, memoryview: cffi takes bytes only
            data = bytes(data)
        reset(state)
        absorb(state, data, len(data))
        digest(state, out, 32, 1)
        return bytes(buf[:])

    try:
        ok = keccak(b"abc") == _keccak256_object(b"abc")
    except (AttributeError, TypeError):
        ok = False
    return keccak if ok else None


#: keccak-256 of some bytes (Ethereum's hash, as ``eth_utils.keccak``)
keccak256: Callable[[bytes], bytes] = _raw_keccak256() or _keccak256_object


@lru_cache(maxsize=1 << 16)
def bloom_bits(value_hex: str) -> int:
    """The three bloom bits of one address or topic (yellow paper M3:2048)."""
    h = keccak256(bytes.fromhex(value_hex[2:]))
    return (1 << (((h[0] << 8) | h[1]) & 2047)) | (1 << (((h[2] << 8) | h[3]) & 2047)) | (
        1 << (((h[4] << 8) | h[5]) & 2047))


def _bloom_uncached(value_hex: str) -> int:
    return bloom_bits.__wrapped__(value_hex)


def logs_bloom(logs: Sequence[dict[str, Any]]) -> str:
    """``logsBloom`` of a block (or receipt) holding ``logs``."""
    # each distinct value once: addresses, topic0 and address topics repeat a lot (cached);
    # order hashes are unique to a block (hashed uncached: not worth a cache slot)
    common: set[str] = set()
    others: set[str] = set()
    add_common, add_other, prefix = common.add, others.add, _ADDR_TOPIC_PREFIX
    for log in logs:
        add_common(log["address"])
        topics = log["topics"]
        if topics:
            add_common(topics[0])
            for t in topics[1:]:
                if t.startswith(prefix):
                    add_common(t)
                else:
                    add_other(t)
    bloom = 0
    for item in common:
        bloom |= bloom_bits(item)
    for item in others - common:
        bloom |= _bloom_uncached(item)
    return "0x" + format(bloom, "0512x")


_ADDR_TOPIC_PREFIX = "0x000000000000000000000000"
#: ``json.dumps(obj, separators=(",", ":"), sort_keys=True)`` without an encoder per call
_PREIMAGE_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def collateral_for(version: int) -> str:
    """The collateral token of an exchange generation: USDC.e for V1, pUSD for V2."""
    return USDC_E if version == 1 else PUSD


@dataclass(frozen=True, slots=True)
class MakerFill:
    """One maker order's part of a match: raw 6-decimal amounts (shares, collateral)."""

    wallet: str
    order_hash: int
    shares: int
    usdc: int
    fee: int = 0


def _order_filled(version: int, exchange: str, order_hash: int, maker: str, taker: str,
                  side: Side, token_id: int, shares: int, usdc: int, fee: int,
                  builder: int) -> LogSpec:
    if side == "BUY":  # the maker gives collateral, takes outcome tokens
        maker_amount, taker_amount = usdc, shares
    else:
        maker_amount, taker_amount = shares, usdc
    topics = [ORDER_FILLED_V1 if version == 1 else ORDER_FILLED_V2, f"0x{order_hash:064x}",
              address_topic_fast(maker), address_topic_fast(taker)]
    if version == 1:
        maker_asset, taker_asset = (0, token_id) if side == "BUY" else (token_id, 0)
        data = data_words(maker_asset, taker_asset, maker_amount, taker_amount, fee)
    else:
        data = data_words(0 if side == "BUY" else 1, token_id, maker_amount, taker_amount, fee,
                          builder, 0)
    return exchange, topics, data


def match_logs(*, version: int, exchange: str, token_id: int, taker: str, taker_side: Side,
               taker_order_hash: int, makers: Sequence[MakerFill], taker_fee: int = 0,
               builder: int = 0) -> list[LogSpec]:
    """The logs one ``matchOrders`` call emits (a COMPLEMENTARY match), in order.

    The taker's making asset goes to the exchange; per maker order: the maker's asset to the
    exchange, the exchange's payment to the maker, ``OrderFilled(maker=maker wallet,
    taker=taker wallet)``; then the taker's proceeds, ``OrderFilled(maker=taker wallet,
    taker=exchange)`` and ``OrdersMatched``. Filtering on ``maker == wallet`` therefore
    counts each fill once.
    """
    collateral = collateral_for(version)
    ex_t = address_topic_fast(exchange)
    taker_t = address_topic_fast(taker)
    total_shares = sum(m.shares for m in makers)
    total_usdc = sum(m.usdc for m in makers)
    maker_side: Side = "SELL" if taker_side == "BUY" else "BUY"
    out: list[LogSpec] = []

    def erc20(frm_t: str, to_t: str, amount: int) -> LogSpec:
        return collateral, [TRANSFER, frm_t, to_t], data_words(amount)

    def erc1155(frm_t: str, to_t: str, amount: int) -> LogSpec:
        return CONDITIONAL_TOKENS, [TRANSFER_SINGLE, ex_t, frm_t, to_t], data_words(
            token_id, amount)

    if taker_side == "BUY":
        out.append(erc20(taker_t, ex_t, total_usdc))
    else:
        out.append(erc1155(taker_t, ex_t, total_shares))
    for m in makers:
        m_t = address_topic_fast(m.wallet)
        if maker_side == "SELL":
            out.append(erc1155(m_t, ex_t, m.shares))
            out.append(erc20(ex_t, m_t, m.usdc - m.fee))
        else:
            out.append(erc20(m_t, ex_t, m.usdc))
            out.append(erc1155(ex_t, m_t, m.shares))
        out.append(_order_filled(version, exchange, m.order_hash, m.wallet, taker, maker_side,
                                 token_id, m.shares, m.usdc, m.fee, builder))
    if taker_side == "BUY":
        out.append(erc1155(ex_t, taker_t, total_shares))
    else:
        out.append(erc20(ex_t, taker_t, total_usdc - taker_fee))
    out.append(_order_filled(version, exchange, taker_order_hash, taker, exchange, taker_side,
                             token_id, total_shares, total_usdc, taker_fee, builder))
    if taker_side == "BUY":
        maker_amount, taker_amount = total_usdc, total_shares
    else:
        maker_amount, taker_amount = total_shares, total_usdc
    if version == 1:
        assets = (0, token_id) if taker_side == "BUY" else (token_id, 0)
        data = data_words(assets[0], assets[1], maker_amount, taker_amount)
        t0 = ORDERS_MATCHED_V1
    else:
        data = data_words(0 if taker_side == "BUY" else 1, token_id, maker_amount, taker_amount)
        t0 = ORDERS_MATCHED_V2
    out.append((exchange, [t0, f"0x{taker_order_hash:064x}", taker_t], data))
    return out


class BlockBuilder:
    """Collects one block's transactions and logs, then :meth:`seal` s it.

    ``add_tx`` appends a type-2 transaction with its logs (and the trailing
    ``LogFeeTransfer`` when ``fee_log`` is set); log indexes are block-wide.
    """

    __slots__ = ("_gas_used", "_logs", "_rng", "_txs", "base_fee", "number", "number_hex",
                 "timestamp", "ts_hex", "validator", "validator_topic")

    def __init__(self, *, number: int, timestamp: int, base_fee: int, validator: str,
                 rng: random.Random) -> None:
        self.number = number
        self.timestamp = timestamp
        self.number_hex = hex(number)
        self.ts_hex = hex(timestamp)
        self.base_fee = base_fee
        self.validator = validator
        self.validator_topic = address_topic_fast(validator)
        self._rng = rng
        self._logs: list[dict[str, Any]] = []
        self._txs: list[dict[str, Any]] = []
        self._gas_used = 0

    @property
    def tx_count(self) -> int:
        return len(self._txs)

    def add_tx(self, *, sender: str, to: str, nonce: int, gas_used: int, input_hex: str,
               logs: Sequence[LogSpec], value: int = 0, tip: int = 30_000_000_000,
               tx_hash: str | None = None, fee_log: bool = True) -> str:
        """Append one transaction and its logs; return its hash (made up unless given)."""
        rng = self._rng
        if tx_hash is None:
            tx_hash = "0x" + keccak256(bytes.fromhex(sender[2:]) + nonce.to_bytes(8, "big")
                                       + bytes.fromhex(input_hex[2:])).hex()
        index = len(self._txs)
        index_hex = hex(index)
        gas_price = self.base_fee + tip
        gas_limit = gas_used * 13 // 10
        parity = rng.getrandbits(1)
        r = hex(rng.getrandbits(255) | 1)
        # rng.randrange(1, _SECP256K1_HALF_N), drawn as it draws (the same numbers)
        k = rng.getrandbits(255)
        while k >= _S_RANGE:
            k = rng.getrandbits(255)
        self._txs.append({
            "blockHash": None,
            "blockNumber": self.number_hex,
            "from": sender,
            "gas": hex(gas_limit),
            "gasPrice": hex(gas_price),
            "maxFeePerGas": hex(self.base_fee * 2 + tip),
            "maxPriorityFeePerGas": hex(tip),
            "hash": tx_hash,
            "input": input_hex,
            "nonce": hex(nonce),
            "to": to,
            "transactionIndex": index_hex,
            "value": hex(value),
            "type": "0x2",
            "accessList": [],
            "chainId": "0x89",
            "v": hex(parity),
            "r": r,
            "s": hex(1 + k),
            "yParity": hex(parity),
        })
        self._gas_used += gas_used
        specs = list(logs)
        if fee_log:
            fee = gas_used * gas_price
            before = rng.getrandbits(70) + fee
            vbal = rng.getrandbits(72)
            specs.append((MATIC_TOKEN, [LOG_FEE_TRANSFER, _MATIC_TOPIC,
                                        address_topic_fast(sender), self.validator_topic],
                          data_words(fee, before, vbal, before - fee, vbal + fee)))
        logs_out = self._logs
        for address, topics, data in specs:
            logs_out.append({
                "address": address,
                "topics": topics,
                "data": data,
                "blockNumber": self.number_hex,
                "blockHash": None,
                "blockTimestamp": self.ts_hex,
                "transactionHash": tx_hash,
                "transactionIndex": index_hex,
                "logIndex": hex(len(logs_out)),
                "removed": False,
            })
        return tx_hash

    def seal(self, *, parent_hash: str, difficulty: int, total_difficulty: int,
             gas_limit: int = 30_000_000) -> RecordedBlock:
        """Finish the header, hash it, and fill ``blockHash`` into logs and transactions."""
        rng = self._rng
        tx_hashes = [t["hash"] for t in self._txs]
        bloom = logs_bloom(self._logs)
        if tx_hashes:
            tx_root = "0x" + keccak256("".join(tx_hashes).encode()).hex()
            receipts_root = "0x" + keccak256((bloom + tx_root).encode()).hex()
        else:
            tx_root = receipts_root = EMPTY_TRIE_ROOT
        size = 620 + sum(110 + len(t["input"]) // 2 for t in self._txs)
        header: dict[str, Any] = {
            "baseFeePerGas": hex(self.base_fee),
            "difficulty": hex(difficulty),
            "extraData": "0x" + BOR_VANITY + format(rng.getrandbits(512), "0128x") + "0"
                         + str(rng.getrandbits(1)),
            "gasLimit": hex(gas_limit),
            "gasUsed": hex(self._gas_used),
            "hash": None,
            "logsBloom": bloom,
            "miner": self.validator,
            "mixHash": _ZERO32,
            "nonce": "0x0000000000000000",
            "number": self.number_hex,
            "parentHash": parent_hash,
            "receiptsRoot": receipts_root,
            "sha3Uncles": EMPTY_UNCLES_HASH,
            "size": hex(size),
            "stateRoot": f"0x{rng.getrandbits(256):064x}",
            "timestamp": self.ts_hex,
            "totalDifficulty": hex(total_difficulty),
            "transactions": tx_hashes,
            "transactionsRoot": tx_root,
            "uncles": [],
        }
        preimage = _PREIMAGE_JSON({k: v for k, v in header.items() if k != "hash"})
        block_hash = "0x" + keccak256(preimage.encode()).hex()
        header["hash"] = block_hash
        for log in self._logs:
            log["blockHash"] = block_hash
        for tx in self._txs:
            tx["blockHash"] = block_hash
        return RecordedBlock(block=header, logs=self._logs, transactions=self._txs)
