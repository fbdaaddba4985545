"""The latency budget at speed 1: where a live trade's time goes, stage by stage.

Pure functions over rows (time as data, no clock, no I/O). The simulator's
``block_published`` rows give when a block was published (``t_ns``) and how long building
and queuing its notifications took (``fanout_ns``); a detection row of a live trade with
``latency_stages`` on carries the monitor's stamps (``stages``, see :mod:`monitor.stages`).
Joined by block hash, each trade's latency splits into :data:`STAGES`, which sum to it::

    serialise  t_ns -> t_ns + fanout_ns       simulator: notifications built and queued
    socket     -> recv_ns                     simulator's write of the due frames (the
                                              replay's, no task switch), kernel loopback,
                                              websockets reader
    parse      -> JSON parsed                 monitor's WebSocket manager
    queue      -> taken by the delivery task  live queue, task switch
    decode     -> its log decoded             (after the logs before it in the batch)
    dedup      -> its dedup decision
    persist    -> the batch's SQLite commit
    deliver    -> the sink's row stamped      (after the trades before it in the batch)

Each stage is given at p50 and p99 of its own distribution, and as a share of the
end-to-end time of the typical trade (the trades ranked 45-55 % by latency) and of the tail
(ranked >= 99 %): shares of one band sum to 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

__all__ = ["STAGES", "TradeStages", "budget", "overheads", "quantile", "trade_stages"]

STAGES = ("serialise", "socket", "parse", "queue", "decode", "dedup", "persist", "deliver")
_MONITOR = ("parse", "queue", "decode", "dedup", "persist", "deliver")
_NS_PER_MS = 1e6


@dataclass(frozen=True, slots=True)
class TradeStages:
    """One live trade: ns spent in each of :data:`STAGES` (sum = ``e2e_ns``)."""

    trade_id: str
    e2e_ns: int
    stages: tuple[int, ...]


def quantile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank quantile of sorted ``xs`` (the benchmarks' convention)."""
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def _published(sim_rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for r in sim_rows:
        if r.get("event") == "block_published" and "fanout_ns" in r:
            out.setdefault(str(r["hash"]).lower(), (int(r["t_ns"]), int(r["fanout_ns"])))
    return out


def trade_stages(sim_rows: Iterable[Mapping[str, Any]],
                 detection_rows: Iterable[Mapping[str, Any]]) -> list[TradeStages]:
    """Every detection row that carries ``stages`` and whose block the simulator published
    with ``fanout_ns``, split into :data:`STAGES`. Others are left out."""
    published = _published(sim_rows)
    out: list[TradeStages] = []
    for r in detection_rows:
        st = r.get("stages")
        trade = r.get("trade")
        if r.get("kind") != "trade" or not isinstance(st, dict) or not isinstance(trade, dict):
            continue
        pub = published.get(str(trade.get("block_hash", "")).lower())
        if pub is None:
            continue
        t_pub, fanout = pub
        recv = int(st["recv_ns"])
        marks = [t_pub, t_pub + fanout, recv, *(recv + int(st[k]) for k in _MONITOR)]
        out.append(TradeStages(str(trade.get("id")), marks[-1] - t_pub,
                               tuple(b - a for a, b in pairwise(marks))))
    return out


def _shares(band: Sequence[TradeStages]) -> list[float]:
    total = sum(t.e2e_ns for t in band)
    if total <= 0:
        return [0.0] * len(STAGES)
    return [sum(t.stages[i] for t in band) / total for i in range(len(STAGES))]


def budget(trades: Sequence[TradeStages]) -> dict[str, Any] | None:
    """``{"trades", "e2e_p50_ms", "e2e_p99_ms", "stages": [{"stage", "p50_ms", "p99_ms",
    "share_p50", "share_p99"}]}``, or None without trades."""
    if not trades:
        return None
    ranked = sorted(trades, key=lambda t: t.e2e_ns)
    n = len(ranked)
    lo, hi = int(0.45 * n), max(int(0.55 * n), int(0.45 * n) + 1)
    typical = ranked[lo:hi]
    tail = ranked[min(int(0.99 * n), n - 1):]
    share50, share99 = _shares(typical), _shares(tail)
    e2e = [t.e2e_ns for t in ranked]
    rows = []
    for i, name in enumerate(STAGES):
        xs = sorted(t.stages[i] for t in ranked)
        rows.append({"stage": name, "p50_ms": quantile(xs, 0.5) / _NS_PER_MS,
                     "p99_ms": quantile(xs, 0.99) / _NS_PER_MS,
                     "share_p50": share50[i], "share_p99": share99[i]})
    return {"trades": n, "e2e_p50_ms": quantile(e2e, 0.5) / _NS_PER_MS,
            "e2e_p99_ms": quantile(e2e, 0.99) / _NS_PER_MS, "stages": rows}


def overheads(sim_rows: Iterable[Mapping[str, Any]],
              monitor_rows: Iterable[Mapping[str, Any]],
              resources: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """What the measuring harness adds, each its own line (``{"name", "p50_ms", "p99_ms",
    "note"}``; a null where not measured): the simulator's ``block_published`` rows (off
    the path since the replay writes a block's frames before its rows; before, inside
    socket), the monitor's ``delivered`` rows
    (on the path of the later trades of a batch), the runner's sampling (its own CPU)."""
    out: list[dict[str, Any]] = []
    sim_stop = next((r for r in sim_rows if r.get("event") == "stop"), None)
    hw = (sim_stop or {}).get("history_write_ns")
    if isinstance(hw, dict) and hw.get("blocks"):
        out.append({"name": "simulator history write (per block, after its frames)",
                    "p50_ms": hw["p50"] / _NS_PER_MS, "p99_ms": hw["p99"] / _NS_PER_MS,
                    "note": f"{hw['blocks']} blocks, max {hw['max'] / _NS_PER_MS:.3g} ms"})
    mon_stop = next((r for r in monitor_rows if r.get("event") == "stop"), None)
    pipe = ((mon_stop or {}).get("metrics") or {}).get("pipeline") or {}
    if pipe.get("history_writes"):
        mean = pipe["history_write_ns"] / pipe["history_writes"] / _NS_PER_MS
        out.append({"name": "monitor history write (per delivered row, inside deliver)",
                    "p50_ms": mean, "p99_ms": None,
                    "note": f"mean of {pipe['history_writes']} rows"})
    res = resources or {}
    if res.get("runner_cpu_s") is not None and res.get("runner_wall_s"):
        share = res["runner_cpu_s"] / res["runner_wall_s"]
        out.append({"name": "runner sampling (psutil + detections tail, its own process)",
                    "p50_ms": None, "p99_ms": None,
                    "note": f"{res['runner_cpu_s']:.2f} CPU s over {res['runner_wall_s']:.0f} s "
                            f"({share:.1%} of a core, every {res.get('sample_interval_s')} s)"})
    return out
