"""``reconcile_interval = 0``, a quota fill: a head that finds the cursor behind while
``_swept_to`` is below it makes the sweep due, whose refusal has the explorer read from
``_swept_to`` (e537fdf: for blocks a head moved the cursor over and no one read). The
fill's cursor is the explorer's head less the overlap, so with an overlap over 2 every
head finds it behind; and ``_swept_to`` stays below it while the explorer's index head is
not known anew (its probe failing: what the poller reads counts only up to the last one
known). Every pass of the sync loop (each refused sync) then rewound the cursors and
opened a gap: the fill polled every interval, not once every ``QUOTA_FILL_IDLE_S``, each
round re-reading the growing range from the last index head known - for as long as the
quota stays spent. Only a head that moved the cursor during the fill makes it due now."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hostile_node import HostileNode, explorer_from_logs, spend_quota
from test_reliability import first_sync, run_monitor, until

from monitor import wallet_monitor
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


@pytest.mark.slow  # (~2.5 s: ten passes of the sync loop's back-off)
def test_heads_in_a_fill_do_not_rewind_the_cursors_each_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wallet_monitor, "QUOTA_FILL_IDLE_S", 1000.0)
    spent = {"on": False}
    refused: list[int] = []
    probes = {"n": 0}
    out: dict[str, int] = {}

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent, refused=refused)
            explorer_from_logs(node)
            logs_of = node.explorer

            def explorer(q: dict[str, str]) -> str:
                if q.get("action") == "txlist":  # the index probe: once, then failing
                    probes["n"] += 1
                    if probes["n"] == 1:
                        return json.dumps({"status": "1", "message": "OK", "result": [
                            {"blockNumber": str(node.head), "confirmations": "1"}]})
                    return json.dumps({"status": "0", "message": "NOTOK",
                                       "result": "Query Timeout occured"})
                return logs_of(q)
            node.explorer = explorer

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                spent["on"] = True
                node.head = 120
                await node.new_head(120)  # a gap: refused, the explorer fills
                await until(lambda: shard._poller is not None, "the quota fill")
                await until(lambda: probes["n"] >= 1, "the index head known")
                node.head = 130
                await node.new_head(130)  # a gap: a round, the probe failing
                await until(lambda: probes["n"] >= 2, "the probe failing")
                await until(lambda: (shard.cursor() or 0) >= 126, "the gap read")
                before = shard.counters["quota_fill_sweep_rewinds"]
                polls = shard._poller.polls
                for n in range(131, 141):  # a head, then a pass of the sync loop
                    node.head = n
                    await node.new_head(n)
                    was = len(refused)
                    await until(lambda was=was: len(refused) > was, f"a pass after {n}")
                out["rewinds"] = shard.counters["quota_fill_sweep_rewinds"] - before
                out["probes"] = probes["n"]
                assert shard._poller is not None
                out["polls"] = shard._poller.polls - polls
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=4, head_jump_slack=1000,
                              block_interval=60.0, speed=100.0)
    asyncio.run(go())
    assert out["rewinds"] <= 1, out  # not one every other pass (5 before)
