"""Ground truth: which trades of the watched wallets happened, and when they became visible.

The simulator's history says what the node did. Every ``block_published`` row lists the
``OrderFilled`` logs of its block as ``[trade_id, maker]`` (any exchange in the default
set). The final canonical chain is the last ``block_published`` per height. A trade of a
watched wallet (maker == wallet) is:

- *canonical* when some block of the final chain holds it: it must be delivered;
- *orphaned* when only reorged-out blocks held it: it must not stand (never delivered, or
  delivered and retracted).

``visible_t_ns`` is the first time any published block held the trade (the node first
made it visible). Only trades that became visible inside the measurement window count;
the others are marked ``in_window = False`` and the checker ignores their deliveries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

__all__ = [
    "TRUTH_COLUMNS",
    "TruthError",
    "build_truth",
    "sim_start",
]

TRUTH_COLUMNS = ["trade_id", "wallet", "block_number", "block_hash", "visible_t_ns",
                 "canonical", "in_window"]


class TruthError(ValueError):
    """The simulator history cannot give a truth (missing rows, bad fields)."""


def sim_start(sim_rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The simulator's ``start`` row (``t0_ns``, ``speed``, ...)."""
    for row in sim_rows:
        if row.get("event") == "start":
            return row
    raise TruthError("simulator history has no 'start' row")


def build_truth(sim_rows: Iterable[Mapping[str, Any]], wallets: Iterable[str], *,
                window: tuple[int, int] | None = None) -> pd.DataFrame:
    """One row per trade of a watched wallet that any published block held.

    ``window`` = ``(start_ns, end_ns)``: trades first visible outside it get
    ``in_window = False``. Raises :class:`TruthError` on a malformed history.
    """
    watched = {w.lower(): w.lower() for w in wallets}  # each wallet one string
    final_block: dict[int, str] = {}          # height -> hash of the last published block
    # hash -> the watched trades its last publication listed (none: no entry), and the
    # height it was last published at (only hashes that ever listed one: the others are
    # never looked up). A simulated week publishes ~270,000 blocks
    block_trades: dict[str, list[str]] = {}
    block_number: dict[str, int] = {}
    first_seen: dict[str, int] = {}           # trade id -> first t_ns visible
    last_block: dict[str, str] = {}           # trade id -> last block hash that held it
    wallet_of: dict[str, str] = {}
    published = 0
    for i, row in enumerate(sim_rows):
        if row.get("event") != "block_published":
            continue
        try:
            t_ns = int(row["t_ns"])
            number = int(row["number"])
            bhash = str(row["hash"]).lower()
            fills = row.get("order_filled") or []
        except (KeyError, TypeError, ValueError) as exc:
            raise TruthError(f"simulator history row {i + 1}: bad block_published ({exc})") \
                from None
        published += 1
        final_block[number] = bhash
        mine: list[str] = []
        for fill in fills:
            if not isinstance(fill, (list, tuple)) or len(fill) != 2:
                raise TruthError(f"simulator history row {i + 1}: order_filled entry "
                                 f"{fill!r} is not [trade_id, maker]")
            maker = watched.get(str(fill[1]).lower())
            if maker is None:
                continue
            tid = str(fill[0]).lower()
            mine.append(tid)
            if tid not in first_seen:
                first_seen[tid] = t_ns
            last_block[tid] = bhash
            wallet_of[tid] = maker
        if mine:
            block_trades[bhash] = mine
            block_number[bhash] = number
        else:
            block_trades.pop(bhash, None)
            if bhash in block_number:
                block_number[bhash] = number
    if published == 0:
        raise TruthError("simulator history has no block_published rows")
    canonical_block: dict[str, str] = {}
    for _number, bhash in sorted(final_block.items()):
        for tid in block_trades.get(bhash, []):
            canonical_block[tid] = bhash
    records = []
    for tid, t_ns in first_seen.items():
        bhash = canonical_block.get(tid, last_block[tid])
        in_window = window is None or window[0] <= t_ns <= window[1]
        records.append((tid, wallet_of[tid], block_number[bhash], bhash, t_ns,
                        tid in canonical_block, in_window))
    frame = pd.DataFrame.from_records(records, columns=TRUTH_COLUMNS)
    return frame.astype({"trade_id": "string", "wallet": "string", "block_number": "int64",
                         "block_hash": "string", "visible_t_ns": "int64", "canonical": "bool",
                         "in_window": "bool"}).sort_values(
        ["visible_t_ns", "trade_id"], kind="stable").reset_index(drop=True)
