"""OwedDrain (monitor.departed) without I/O: how it groups the removed wallets, and what
it delivers and stores for each, with a fake source."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from monitor.clock import SystemClock
from monitor.departed import OwedDrain
from monitor.history import History


def _wallet(i: int) -> str:
    return f"0x{i:040x}"


def _fill(wallet: str, block: int) -> dict[str, Any]:
    return {"topics": ["0x" + "00" * 32, "0x" + "00" * 32, "0x" + "00" * 12 + wallet[2:]],
            "blockNumber": hex(block), "id": f"{wallet}:{block}"}


class Source:
    """Every wallet trades in every block; the fetches are counted."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []  # (wallets, first, last)
        self.delivered: list[str] = []
        self.cursors: dict[str, int] = {}
        self.forgotten: list[str] = []
        self.crash_once_at: int | None = None

    async def fetch(self, wallets: Sequence[str], a: int, b: int) -> list[dict[str, Any]]:
        self.calls.append((len(wallets), a, b))
        return [_fill(w, n) for w in wallets for n in range(a, b + 1)]

    async def deliver(self, logs: list[dict[str, Any]], wallets: frozenset[str]) -> None:
        if self.crash_once_at is not None and len(self.calls) == self.crash_once_at:
            self.crash_once_at = None
            raise RuntimeError("crash mid-drain")
        self.delivered.extend(lg["id"] for lg in logs)

    def advance(self, wallets: list[str], block: int) -> None:
        for w in wallets:  # as Store.set_cursors: forward only
            self.cursors[w] = max(self.cursors.get(w, -1), block)

    def forget(self, wallets: list[str]) -> None:
        self.forgotten.extend(wallets)


def _drain(src: Source, owed: dict[str, int], top: int, tmp: Any) -> OwedDrain:
    return OwedDrain(owed, top, fetch=src.fetch, deliver=src.deliver, advance=src.advance,
                     forget=src.forget, chunk=100, group_size=500, retry_s=0.01,
                     clock=SystemClock(), history=History(tmp / "h.jsonl"))


def test_wallets_with_distinct_cursors_share_a_call_not_one_each(tmp_path: Any) -> None:
    """1,000 removed wallets with 50 distinct first blocks (polled wallets keep a cursor
    each; at 100,000 wallets as many): before, one group per distinct first block - 50
    eth_getLogs calls for 100 blocks of a filter that takes 500 wallets, a call per wallet
    and chunk when every cursor differs; now 2 groups of 500. Each wallet still gets
    exactly its own blocks, from its own first one."""
    src = Source()
    owed = {_wallet(i): 1000 + i % 50 for i in range(1000)}
    drain = _drain(src, owed, 1099, tmp_path)
    asyncio.run(drain.run())
    assert len(src.calls) <= 4
    assert all(n <= 500 for n, _a, _b in src.calls)
    want = sorted(f"{w}:{n}" for w, first in owed.items() for n in range(first, 1100))
    assert sorted(src.delivered) == want
    assert sorted(src.forgotten) == sorted(owed)
    assert not drain.owed


def test_a_crash_mid_drain_resumes_without_a_block_below_a_wallet_s_first(
        tmp_path: Any) -> None:
    """A crash after the first range (the supervisor runs the same drain again): each
    wallet resumes at its own first block or after what was delivered; a wallet whose
    first block is above a range already read is never moved below it."""
    src = Source()
    owed = {_wallet(1): 1000, _wallet(2): 1150}
    src.crash_once_at = 2
    drain = _drain(src, owed, 1299, tmp_path)
    with pytest.raises(RuntimeError):
        asyncio.run(drain.run())
    assert drain.owed[_wallet(2)] == 1150
    assert src.cursors.get(_wallet(2), 0) < 1150
    asyncio.run(drain.run())
    got = set(src.delivered)
    assert got == {f"{w}:{n}" for w, first in owed.items() for n in range(first, 1300)}
