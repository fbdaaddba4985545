"""Shared vocabulary: Polymarket contract addresses, event topics and trade identity on Polygon.

Everything here comes from REFERENCE.md (chain 137). The monitor, the simulator and the
experiments all stand on this package and on nothing of each other, so the simulator's ground
truth never runs the code it judges. It imports nothing from the project (an import-linter
contract in ``pyproject.toml`` keeps it so).

Beside the vocabulary, the one implementation of each thing every part shares: client
policies (:mod:`polyvocab.policies`: token bucket, backoff, Retry-After, provider texts),
the service error tree (:mod:`polyvocab.errors`), bounds on network input
(:mod:`polyvocab.bounds`), secret redaction (:mod:`polyvocab.redact`) - all without I/O -
and the one JSON-RPC over HTTP client (:mod:`polyvocab.jsonrpc_http`, with
:mod:`polyvocab.http_read`), the only modules here that touch the network.
"""

from __future__ import annotations

import re

__all__ = [
    "CHAIN_ID",
    "CONDITIONAL_TOKENS",
    "CTF_EXCHANGE_V1",
    "CTF_EXCHANGE_V2",
    "DEFAULT_EXCHANGES",
    "EXCHANGE_V3",
    "NEG_RISK_EXCHANGE_V1",
    "NEG_RISK_EXCHANGE_V2",
    "ORDERS_MATCHED_V1",
    "ORDERS_MATCHED_V2",
    "ORDER_FILLED_TOPICS",
    "ORDER_FILLED_V1",
    "ORDER_FILLED_V2",
    "PUSD",
    "SIGNATURES",
    "TRANSFER",
    "TRANSFER_SINGLE",
    "USDC_E",
    "V1_EXCHANGES",
    "V2_EXCHANGES",
    "address_topic",
    "is_address",
    "topic_address",
    "trade_id",
]

CHAIN_ID = 137

# Contract addresses, lower-case (logs and filters compare lower-case hex).
CTF_EXCHANGE_V1 = "0x4bfb41d5b3570defd03c39a9a4d8de6bd8b8982e"
NEG_RISK_EXCHANGE_V1 = "0xc5d563a36ae78145c45a50134d48a1215220f80a"
CTF_EXCHANGE_V2 = "0xe111180000d2663c0091e4f400237545b87b996b"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310f59"
EXCHANGE_V3 = "0xe3333700ca9d93003f00f0f71f8515005f6c00aa"  # event layout UNCONFIRMED
CONDITIONAL_TOKENS = "0x4d97dcd97ec945f40cf65f87097ace5ea0476045"
USDC_E = "0x2791bca1f2de4661ed88a30c99a7a9449aa84174"
PUSD = "0xc011a7e12a19f7b1f670d46f03b03f3342e82dfb"

V1_EXCHANGES = (CTF_EXCHANGE_V1, NEG_RISK_EXCHANGE_V1)
V2_EXCHANGES = (CTF_EXCHANGE_V2, NEG_RISK_EXCHANGE_V2)
DEFAULT_EXCHANGES = V1_EXCHANGES + V2_EXCHANGES

# topic0 = keccak256(canonical signature); checked against eth-utils in the tests.
ORDER_FILLED_V1 = "0xd0a08e8c493f9c94f29311604c9de1b4e8c8d4c06bd0c789af57f2d65bfec0f6"
ORDER_FILLED_V2 = "0xd543adfd945773f1a62f74f0ee55a5e3b9b1a28262980ba90b1a89f2ea84d8ee"
ORDERS_MATCHED_V1 = "0x63bf4d16b7fa898ef4c4b2b6d90fd201e9c56313b65638af6088d149d2ce956c"
ORDERS_MATCHED_V2 = "0x174b3811690657c217184f89418266767c87e4805d09680c39fc9c031c0cab7c"
TRANSFER_SINGLE = "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62"
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ORDER_FILLED_TOPICS = (ORDER_FILLED_V1, ORDER_FILLED_V2)

SIGNATURES = {
    ORDER_FILLED_V1: "OrderFilled(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)",
    ORDER_FILLED_V2: (
        "OrderFilled(bytes32,address,address,uint8,uint256,uint256,uint256,uint256,bytes32,bytes32)"
    ),
    ORDERS_MATCHED_V1: "OrdersMatched(bytes32,address,uint256,uint256,uint256,uint256)",
    ORDERS_MATCHED_V2: "OrdersMatched(bytes32,address,uint8,uint256,uint256,uint256)",
    TRANSFER_SINGLE: "TransferSingle(address,address,address,uint256,uint256)",
    TRANSFER: "Transfer(address,address,uint256)",
}


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def is_address(text: str) -> bool:
    """Is ``text`` a 20-byte hex address as written on chain (``0x`` + 40 hex digits)?"""
    return _ADDRESS.fullmatch(text) is not None


def address_topic(address: str) -> str:
    """An address as a 32-byte indexed topic: ``0x`` + 24 zeros + 40 hex digits, lower-case."""
    body = address.lower().removeprefix("0x")
    if not _ADDRESS.fullmatch("0x" + body):  # int(body, 16) took "_", a sign, other digits
        raise ValueError(f"not a 20-byte address: {address!r}")
    return "0x" + "0" * 24 + body


def topic_address(topic: str) -> str:
    """The address held in a 32-byte indexed topic (the inverse of :func:`address_topic`)."""
    body = topic.lower().removeprefix("0x")
    if len(body) != 64:
        raise ValueError(f"not a 32-byte topic: {topic!r}")
    return "0x" + body[24:]


def trade_id(tx_hash: str, log_index: int) -> str:
    """The identity of a fill: ``<tx hash lower-case>:<log index decimal>``."""
    return f"{tx_hash.lower()}:{log_index}"
