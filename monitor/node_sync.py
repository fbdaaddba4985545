"""Whether a JSON-RPC node is still catching up with the chain (``eth_syncing``).

A self-hosted bor, geth or erigon that is syncing answers ``eth_blockNumber`` with a block
of the chain's past, and its ``newHeads`` are the old blocks it imports. A start point
taken from it (the pilot's start block, the monitor's launch point) is stored for good:
both would watch from there, fetching and delivering every trade since as new."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from monitor.bounds import quantity
from monitor.errors import MonitorError

__all__ = ["SYNC_SLACK_BLOCKS", "node_sync_gap"]

log = logging.getLogger("monitor.node_sync")

#: blocks a node may be behind the chain by its own ``eth_syncing`` when its head is taken
#: for a start point (a node catching up after a restart is a few behind)
SYNC_SLACK_BLOCKS = 64


class _Caller(Protocol):
    async def call(self, method: str, params: list[Any]) -> Any: ...


async def node_sync_gap(client: _Caller) -> tuple[int, int] | None:
    """``(current, highest)`` block when the node's ``eth_syncing`` says it is more than
    :data:`SYNC_SLACK_BLOCKS` behind the chain; None when it is synced (``false``) or
    cannot say (an error, a provider without the method, garbage)."""
    try:
        state = await client.call("eth_syncing", [])
    except MonitorError as exc:
        log.debug("eth_syncing: %s", exc.message)
        return None
    if not isinstance(state, dict):
        return None
    try:
        current = quantity(state.get("currentBlock"), "currentBlock")
        highest = quantity(state.get("highestBlock"), "highestBlock")
    except (TypeError, ValueError):
        return None
    return (current, highest) if highest - current > SYNC_SLACK_BLOCKS else None
