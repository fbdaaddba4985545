"""The outbox round (``Pipeline.redeliver``, every ``outbox_retry_interval``) writes up to
three times: the outbox's prune (a commit), the WAL checkpoint (a copy and an fsync) and the
dedup prune. It did all three in one stretch of the event loop, and at 100,000 wallets the
live batches waited 15-54 ms behind it (``benchmarks/test_wallets_bench.py``). The loop now
runs between them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor_helpers import WALLET, order_filled

from monitor.pipeline import Pipeline
from monitor.sinks import MemorySink
from monitor.store import Store


def test_the_loop_runs_between_the_outbox_rounds_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    pipe = Pipeline(store, MemorySink(), wallets=[WALLET], dedup_retention_blocks=10)
    order: list[str] = []
    prune, checkpoint, prune_delivered = (store.prune_outbox, store.checkpoint_if_due,
                                          store.prune_delivered)

    def traced(name: str, fn):  # type: ignore[no-untyped-def]
        def call(*a, **k):  # type: ignore[no-untyped-def]
            order.append(name)
            return fn(*a, **k)
        return call

    store.prune_outbox = traced("prune", prune)  # type: ignore[method-assign]
    store.checkpoint_if_due = traced("checkpoint",  # type: ignore[method-assign]
                                     lambda *a, **k: checkpoint(0))
    store.prune_delivered = traced("prune_delivered", prune_delivered)  # type: ignore[method-assign]

    async def go() -> None:
        await pipe.on_logs([order_filled(block=100 + i, tx=i + 1) for i in range(5)], "ws")
        pipe.OUTBOX_PRUNE_ROWS = 1  # every write below is due now
        await pipe.on_logs([order_filled(block=200, tx=99)], "ws")  # marks the first sent
        loop = asyncio.get_running_loop()
        order.clear()

        def live() -> None:  # a live batch's turn, each time the loop runs
            order.append("live")
            if len(order) < 20:
                loop.call_soon(live)

        loop.call_soon(live)
        await pipe.redeliver()

    asyncio.run(go())
    writes = [x for x in order if x != "live"]
    assert writes == ["prune", "checkpoint", "prune_delivered"], order
    # a turn for the live side between each two writes (before: all three in one stretch)
    assert "live" in order[order.index("prune"):order.index("checkpoint")], order
    assert "live" in order[order.index("checkpoint"):order.index("prune_delivered")], order
