"""Hand-made Polymarket logs for tests (no simulator)."""

from __future__ import annotations

from typing import Any

from polyvocab import CTF_EXCHANGE_V1, CTF_EXCHANGE_V2, ORDER_FILLED_V1, ORDER_FILLED_V2

WALLET = "0x1111111111111111111111111111111111111111"
OTHER = "0x2222222222222222222222222222222222222222"


def topic(addr: str) -> str:
    return "0x" + "0" * 24 + addr.lower().removeprefix("0x")


def word(n: int) -> str:
    return f"{n:064x}"


def order_filled(*, version: int = 2, wallet: str = WALLET, block: int = 100, tx: int = 1,
                 log_index: int = 0, block_hash: str | None = None, side: int = 0,
                 token: int = 12345, maker_amount: int = 5_000_000,
                 taker_amount: int = 10_000_000, fee: int = 0,
                 removed: bool = False) -> dict[str, Any]:
    if version == 1:
        assets = (0, token) if side == 0 else (token, 0)
        data = "0x" + "".join(word(x) for x in (*assets, maker_amount, taker_amount, fee))
        t0, addr = ORDER_FILLED_V1, CTF_EXCHANGE_V1
    else:
        data = "0x" + "".join(word(x) for x in (side, token, maker_amount, taker_amount, fee,
                                                 7, 9))
        t0, addr = ORDER_FILLED_V2, CTF_EXCHANGE_V2
    return {
        "address": addr,
        "topics": [t0, "0x" + word(tx * 7 + 3), topic(wallet), topic(addr)],
        "data": data,
        "blockNumber": hex(block),
        "blockHash": block_hash or "0x" + word(block),
        "blockTimestamp": hex(1_700_000_000 + block * 2),
        "transactionHash": "0x" + word(tx),
        "transactionIndex": "0x0",
        "logIndex": hex(log_index),
        "removed": removed,
    }
