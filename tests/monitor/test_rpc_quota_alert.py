"""The HTTP node's provider says its quota is spent (Alchemy's "Monthly capacity limit
exceeded" at HTTP 429): backfill cannot go on until a human raises the plan or changes the
key, so the operator is alerted (``quota_exhausted``), once an episode, with no key in it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, Raw
from test_reliability import first_sync, run_monitor, until

from monitor.alerts import LogAlerter
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

QUOTA = json.dumps({"jsonrpc": "2.0", "id": None, "error": {
    "code": 429, "message": "Monthly capacity limit exceeded. Visit "
                            "https://dashboard.alchemy.com/settings/billing to upgrade."}})


def test_a_spent_rpc_quota_alerts_the_operator_once(tmp_path: Path) -> None:
    asked: list[int] = []

    def spent(_params: list[Any]) -> Any:
        asked.append(1)
        return Raw((429, QUOTA))

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.rpc["eth_getLogs"] = node.rpc["eth_blockNumber"] = spent
                await node.new_head(110)  # a gap: a backfill the node refuses
                assert isinstance(mon.alerts, LogAlerter)
                alerts = mon.alerts

                def quota_alerts() -> list[Any]:
                    return [a for a in alerts.sent if a.kind == "quota_exhausted"]
                await until(lambda: len(quota_alerts()) == 1, "the quota alert")
                await until(lambda: len(asked) >= 3, "the backfill asked again")
                assert len(quota_alerts()) == 1  # once an episode, not a call
                text = quota_alerts()[0].text
                assert "EXHAUSTED" in text and "Monthly capacity limit exceeded" in text
                assert "rpc-secret-key" not in text
            await run_monitor(node, tmp_path, body,
                              rpc_url=node.rpc_url + "?apikey=rpc-secret-key")
    asyncio.run(go())
