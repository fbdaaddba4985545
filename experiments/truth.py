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

A wallet counts only while it is watched. A restart that changes the wallet list (a
scenario's ``[[restarts]]`` ``add_wallets`` / ``remove_wallets``) says so on its
``fault_stop`` row, as the harness saw the simulator (:func:`watch_changes`): a wallet
added there is the bot's in the blocks after ``launch_block`` (the head as the restarted
monitor started: its launch point), a wallet removed up to ``started_block`` (the head
once the new monitor had started, which reads what the old one owed the wallet up to its
own start: :mod:`monitor.departed`). A trade outside its wallet's interval (by the block that
holds it: its canonical one, else the last) is no trade of the truth: never expected,
and a delivery of it is a phantom, as any unwatched wallet's. The blocks published while
the new monitor started (after ``launch_block`` up to ``started_block``: the monitor
reads its own launch point in that time) or the old one stopped (after ``stop_block``,
the head as it was taken down, up to ``started_block``) are not judged: their trades get
``in_window = False``, not expected, and their deliveries ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = [
    "TRUTH_COLUMNS",
    "TruthError",
    "WatchInterval",
    "build_truth",
    "sim_start",
    "watch_changes",
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


@dataclass(frozen=True, slots=True)
class WatchInterval:
    """The blocks a wallet was watched in: after ``after_block`` (None: from the run's
    start) up to ``until_block`` (None: to its end)."""

    after_block: int | None = None
    until_block: int | None = None
    #: judged only after this block (None: after ``after_block``) and up to that one
    #: (None: up to ``until_block``): the blocks between are neither expected nor not
    judged_after: int | None = None
    judged_until: int | None = None

    def holds(self, block: int) -> bool:
        """Whether a trade in ``block`` may be the bot's (else a delivery is a phantom)."""
        return ((self.after_block is None or block > self.after_block)
                and (self.until_block is None or block <= self.until_block))

    def judged(self, block: int) -> bool:
        """Whether a trade in ``block`` (that :meth:`holds`) is judged."""
        return ((self.judged_after is None or block > self.judged_after)
                and (self.judged_until is None or block <= self.judged_until))


def _wallet_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise TruthError(f"{what} is not a list of wallets")
    return [w.lower() for w in value]


def _block(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TruthError(f"{what} is not a block number")
    return value


def watch_changes(row: Mapping[str, Any], i: int = 0
                  ) -> tuple[list[str], list[str], WatchInterval, WatchInterval] | None:
    """A restart's wallet changes on its ``fault_stop`` row: (added, removed, the added
    wallets' interval, the removed wallets' bounds), None when the row changes none.
    ``started_block`` and ``stop_block`` may be left out (no block unjudged). Raises
    :class:`TruthError` on a malformed one."""
    if row.get("event") != "fault_stop" or not ("added_wallets" in row
                                                  or "removed_wallets" in row):
        return None
    where = f"simulator history row {i + 1}"
    heads = {k: _block(row.get(k), f"{where}: {k}") for k in ("launch_block", "removed_block")}
    for key, base in (("started_block", "launch_block"), ("stop_block", "removed_block")):
        heads[key] = _block(row.get(key, heads[base]), f"{where}: {key}")
    return (_wallet_list(row.get("added_wallets", []), f"{where}: added_wallets"),
            _wallet_list(row.get("removed_wallets", []), f"{where}: removed_wallets"),
            WatchInterval(heads["launch_block"], judged_after=heads["started_block"]),
            WatchInterval(until_block=heads["started_block"],
                          judged_until=heads["stop_block"]))


def build_truth(sim_rows: Iterable[Mapping[str, Any]], wallets: Iterable[str], *,
                window: tuple[int, int] | None = None) -> pd.DataFrame:
    """One row per trade of a watched wallet that any published block held.

    ``window`` = ``(start_ns, end_ns)``: trades first visible outside it get
    ``in_window = False``. ``wallets``: every wallet watched at some time of the run (a
    wallet a restart added is watched from then on even when not given). Only a trade
    inside its wallet's watch interval is one (see the module's docstring). Raises
    :class:`TruthError` on a malformed history.
    """
    watched = {w.lower(): w.lower() for w in wallets}  # each wallet one string
    intervals: dict[str, WatchInterval] = {}
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
            changes = watch_changes(row, i)
            if changes is not None:
                added, removed, start, end = changes
                for w in removed:
                    old = intervals.get(w, WatchInterval())
                    intervals[w] = WatchInterval(old.after_block, end.until_block,
                                                 old.judged_after, end.judged_until)
                for w in added:
                    watched.setdefault(w, w)
                    intervals[w] = start
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
        interval = intervals.get(wallet_of[tid]) if intervals else None
        if interval is not None and not interval.holds(block_number[bhash]):
            continue  # mined while its wallet was not watched: no trade of the bot's
        in_window = window is None or window[0] <= t_ns <= window[1]
        if interval is not None and not interval.judged(block_number[bhash]):
            in_window = False  # mined while a monitor started or stopped around a change
        records.append((tid, wallet_of[tid], block_number[bhash], bhash, t_ns,
                        tid in canonical_block, in_window))
    frame = pd.DataFrame.from_records(records, columns=TRUTH_COLUMNS)
    return frame.astype({"trade_id": "string", "wallet": "string", "block_number": "int64",
                         "block_hash": "string", "visible_t_ns": "int64", "canonical": "bool",
                         "in_window": "bool"}).sort_values(
        ["visible_t_ns", "trade_id"], kind="stable").reset_index(drop=True)
