"""``Store.standing_in_range`` takes a shard's wallets as a set as they are: a firehose
shard's 100,000 were copied into a list and hashed into a new set at every sync (6 ms on the
event loop, a stretch live deliveries waited behind). Same answer as from a list, in the
one-scan path (many wallets) and the ``IN (...)`` path (a few)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

from monitor_helpers import OTHER, WALLET, order_filled

from monitor.pipeline import Pipeline
from monitor.sinks import MemorySink
from monitor.store import Store


class _NoIter(frozenset[str]):
    """A wallet set that must not be walked (only looked up in)."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the wallet set was copied")


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "s.db")
    pipe = Pipeline(store, MemorySink(), wallets=[WALLET, OTHER])
    logs = [order_filled(block=100 + i, tx=i + 1, wallet=WALLET if i % 2 else OTHER)
            for i in range(10)]
    asyncio.run(pipe.on_logs(logs, "ws"))
    return store


def test_many_wallets_as_a_set_are_looked_up_in_not_copied(tmp_path: Path) -> None:
    store = _store(tmp_path)
    many = [f"0x{i:040x}" for i in range(1, 2000)] + [WALLET]
    want = store.standing_in_range(many, 102, 107)
    got = store.standing_in_range(_NoIter(many), 102, 107)  # before: AssertionError
    assert got == want and sorted(n for _, n, _ in got) == [103, 105, 107]


def test_a_few_wallets_as_a_set_give_what_a_list_gives(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for ws in ([WALLET], [WALLET, OTHER], [OTHER]):
        assert store.standing_in_range(frozenset(ws), 100, 109) == \
            store.standing_in_range(list(ws), 100, 109)
        assert store.standing_in_range(set(ws), 100, 109) == \
            store.standing_in_range(list(ws), 100, 109)
