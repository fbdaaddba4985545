"""What each mode costs per month, and at how many wallets it hits a plan limit.

Usage per mode is a straight line in the number of wallets, fitted to the measured call
rates (``calls/h = fixed + per_wallet * wallets``; with one wallet count measured, all of
it is counted per wallet, which over-estimates). Polling's explorer calls are per wallet by
design: its line is its highest measured rate per wallet (:func:`explorer_usage`).
Fault-free scenarios are used when the mode has any (steady state); otherwise all
scenarios of the mode.

Polling's explorer usage is *measured* when the polling cost benchmark has written its
results (``benchmarks/results/polling_cost.json``, ``make bench``): calls per hour at each
measured wallet count, interpolated between the points and held at the last one past them
(the client's limiter caps the calls; the poll round stretches instead). The report says
which file the points came from; without the file, the fit above is used as before.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.criteria import CostSettings
from reports.load import Run, ScenarioData

__all__ = [
    "POLLING_COST_FILE",
    "WALLET_GRID",
    "LinearUsage",
    "MeasuredPolling",
    "ModeCost",
    "bench_results_dir",
    "explorer_limit_per_hour",
    "explorer_usage",
    "fit_usage",
    "load_measured_polling",
    "mode_costs",
    "provider_cost_usd",
]

WALLET_GRID = (1, 10, 50, 100, 500, 1000)
POLLING_COST_FILE = "polling_cost.json"  # written by benchmarks/test_polling_cost_bench.py
BENCH_RESULTS_ENV = "REPORTS_BENCH_RESULTS"  # where the benchmark results are read from


def bench_results_dir() -> Path:
    """``$REPORTS_BENCH_RESULTS``, else the repository's ``benchmarks/results``."""
    env = os.environ.get(BENCH_RESULTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@dataclass(frozen=True, slots=True)
class MeasuredPolling:
    """Explorer calls per hour measured against wallets (the polling cost benchmark)."""

    source: str
    created: str
    clock: str
    interval_s: float | None
    keeps_interval_up_to: int | None
    points: tuple[dict[str, Any], ...]  # by wallets; keys as the benchmark writes them

    def explorer_at(self, wallets: float) -> float:
        """Calls per hour at ``wallets``: linear between measured points, proportional
        below the first, held at the last measured rate past the last."""
        pts = [(float(p["wallets"]), float(p["explorer_calls_per_hour"])) for p in self.points]
        if wallets <= pts[0][0]:
            return pts[0][1] * wallets / pts[0][0] if pts[0][0] > 0 else pts[0][1]
        for (w0, c0), (w1, c1) in itertools.pairwise(pts):
            if wallets <= w1:
                return c0 + (c1 - c0) * (wallets - w0) / (w1 - w0)
        return pts[-1][1]

    def wallets_at(self, per_hour: float) -> float | None:
        """The first wallet count whose measured usage reaches ``per_hour``; None if no
        measured point reaches it."""
        prev = (0.0, 0.0)
        for p in self.points:
            w, c = float(p["wallets"]), float(p["explorer_calls_per_hour"])
            if c >= per_hour:
                w0, c0 = prev
                return w0 + (w - w0) * (per_hour - c0) / (c - c0) if c > c0 else w
            prev = (w, c)
        return None

    @property
    def wallets(self) -> tuple[int, ...]:
        return tuple(int(p["wallets"]) for p in self.points)


def load_measured_polling(path: Path | None = None) -> MeasuredPolling | None:
    """The polling cost benchmark's points, or None when the file is absent or unusable."""
    path = path or bench_results_dir() / POLLING_COST_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        points = sorted((p for p in doc["points"]
                         if float(p["wallets"]) > 0
                         and float(p["explorer_calls_per_hour"]) >= 0),
                        key=lambda p: float(p["wallets"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not points:
        return None
    up_to = doc.get("keeps_interval_up_to")
    interval = doc.get("interval_s")
    return MeasuredPolling(
        source=str(path), created=str(doc.get("created") or ""),
        clock=str(doc.get("clock") or ""),
        interval_s=float(interval) if isinstance(interval, int | float) else None,
        keeps_interval_up_to=int(up_to) if isinstance(up_to, int) else None,
        points=tuple(points))


@dataclass(frozen=True, slots=True)
class LinearUsage:
    """Calls per hour = ``fixed + per_wallet * wallets``."""

    fixed: float
    per_wallet: float
    points: int

    def at(self, wallets: float) -> float:
        return self.fixed + self.per_wallet * wallets

    def wallets_at(self, per_hour: float) -> float | None:
        """Wallets at which usage reaches ``per_hour``; None if never (flat usage)."""
        if self.per_wallet <= 0:
            return None if self.fixed < per_hour else 0.0
        return max(0.0, (per_hour - self.fixed) / self.per_wallet)


@dataclass(frozen=True, slots=True)
class ModeCost:
    mode: str
    scenarios: tuple[str, ...]
    measured_wallets: tuple[int, ...]
    explorer: LinearUsage
    rpc: LinearUsage
    explorer_per_month: float  # at the largest measured wallet count
    rpc_per_month: float
    explorer_usd: float | None  # None: usage exceeds the explorer plan
    provider_usd: float
    explorer_limit_wallets: float | None  # None: no limit in reach
    provider_limit_wallets: float | None
    by_wallets: tuple[tuple[int, float, float, float | None, float], ...]
    # (wallets, explorer calls/month, rpc requests/month, explorer usd|None, provider usd)
    measured: MeasuredPolling | None = None  # polling: explorer usage from the benchmark


def explorer_limit_per_hour(cs: CostSettings) -> float:
    """The tighter of the explorer plan's per-second and per-day limits, per hour."""
    limits = []
    if cs.explorer.rate_per_s > 0:
        limits.append(cs.explorer.rate_per_s * 3600.0)
    if cs.explorer.calls_per_day > 0:
        limits.append(cs.explorer.calls_per_day / 24.0)
    return min(limits) if limits else float("inf")


def fit_usage(points: Sequence[tuple[float, float]]) -> LinearUsage:
    """Least squares through ``(wallets, calls_per_hour)``, clamped to be non-negative."""
    pts = [(w, c) for w, c in points if w > 0]
    if not pts:
        return LinearUsage(0.0, 0.0, 0)
    xs = {w for w, _ in pts}
    if len(xs) == 1:
        w = pts[0][0]
        mean = sum(c for _, c in pts) / len(pts)
        return LinearUsage(0.0, mean / w, len(pts))
    n = len(pts)
    mx = sum(w for w, _ in pts) / n
    my = sum(c for _, c in pts) / n
    sxx = sum((w - mx) ** 2 for w, _ in pts)
    sxy = sum((w - mx) * (c - my) for w, c in pts)
    slope = max(0.0, sxy / sxx)
    fixed = my - slope * mx
    if fixed < 0:  # through the origin instead
        slope = sum(w * c for w, c in pts) / sum(w * w for w, _ in pts)
        fixed = 0.0
    return LinearUsage(fixed, slope, n)


def explorer_usage(mode: str, points: Sequence[tuple[float, float]]) -> LinearUsage:
    """A mode's explorer calls per hour against wallets, from ``(wallets, calls_per_hour)``.

    Polling sends explorer requests per wallet every round, so its usage is the highest
    measured rate per wallet times the wallets (its demand): a line fitted through its
    points would mix configurations (15-s and 30-s intervals at the same wallet count) and
    points past the explorer's limiter (the round stretched, the calls capped), and gave
    polling a fixed part it does not have (1,100 calls/h for one wallet instead of ~260).
    Other modes: :func:`fit_usage`."""
    if mode != "polling":
        return fit_usage(points)
    rates = [c / w for w, c in points if w > 0]
    return LinearUsage(0.0, max(rates), len(rates)) if rates else LinearUsage(0.0, 0.0, 0)


def _hours(sc: ScenarioData) -> float:
    return float(sc.summary.get("sim_duration_s") or 0.0) / 3600.0


#: a scenario measured over less than this (simulated s) gives no call rate: the monitor's
#: periodic calls (sweeps every 30 s, head probes, explorer rounds of 15-30 s) fall in or
#: out of a short window by chance (a 30-s quick run of the WebSocket path counted 0 calls,
#: which the fit took for a measured 0 calls/h at 335 wallets)
MIN_RATE_WINDOW_S = 120.0


def _rates(sc: ScenarioData) -> tuple[float, float] | None:
    wallets = float(sc.summary.get("wallets") or 0)
    calls = sc.summary.get("api_calls")
    hours = _hours(sc)
    ex = sc.summary.get("explorer_calls_per_hour")
    if wallets <= 0 or hours * 3600.0 < MIN_RATE_WINDOW_S:
        return None
    if isinstance(calls, dict) and hours > 0:
        rpc = (float(calls.get("rpc_http") or 0) + float(calls.get("rpc_ws") or 0)) / hours
        explorer = float(ex) if ex is not None else float(calls.get("explorer") or 0) / hours
        return explorer, rpc
    if ex is not None:
        return float(ex), 0.0
    return None


def provider_cost_usd(requests_per_month: float, cs: CostSettings) -> float:
    p = cs.provider
    cu = requests_per_month * p.compute_units_per_request
    billable_cu = max(0.0, cu - p.free_compute_units_per_month)
    return (
        billable_cu / 1e6 * p.price_per_million_compute_units_usd
        + requests_per_month / 1e6 * p.price_per_million_requests_usd
    )


def _explorer_usd(calls_per_hour: float, cs: CostSettings) -> float | None:
    return cs.explorer.price_per_month_usd if calls_per_hour <= explorer_limit_per_hour(cs) \
        else None


def _provider_limit(rpc: LinearUsage, cs: CostSettings) -> float | None:
    p = cs.provider
    limits = []
    if p.compute_units_per_month_limit > 0 and p.compute_units_per_request > 0:
        per_hour = p.compute_units_per_month_limit / p.compute_units_per_request
        limits.append(per_hour / cs.hours_per_month)
    if p.requests_per_second_limit > 0:
        limits.append(p.requests_per_second_limit * 3600.0)
    found = [w for w in (rpc.wallets_at(lim) for lim in limits) if w is not None]
    return min(found) if found else None


def mode_costs(run: Run, cs: CostSettings, measured: MeasuredPolling | None = None
               ) -> list[ModeCost]:
    """One :class:`ModeCost` per mode measured (polling first). With ``measured``, polling's
    explorer usage comes from those points, not from the fit (and polling is shown even
    when the run has no polling scenario)."""
    out = []
    modes = {s.mode for s in run.scenarios if s.ok}
    if measured is not None:
        modes.add("polling")
    for mode in sorted(modes, key=lambda m: (m != "polling", m)):
        scs = [s for s in run.scenarios if s.mode == mode and s.ok]
        calm = [s for s in scs if not s.summary.get("faults")]
        used = calm or scs
        pts = [(float(s.summary.get("wallets") or 0), r) for s in used if (r := _rates(s))]
        use_measured = measured if mode == "polling" else None
        if not pts and use_measured is None:
            continue
        explorer = explorer_usage(mode, [(w, r[0]) for w, r in pts])
        rpc = fit_usage([(w, r[1]) for w, r in pts])
        explorer_at = explorer.at if use_measured is None else use_measured.explorer_at
        w_max = max([w for w, _ in pts]
                    + [float(w) for w in (use_measured.wallets if use_measured else ())])
        ex_month = explorer_at(w_max) * cs.hours_per_month
        rpc_month = rpc.at(w_max) * cs.hours_per_month
        grid = []
        for w in WALLET_GRID:
            e_h, r_h = explorer_at(w), rpc.at(w)
            grid.append((w, e_h * cs.hours_per_month, r_h * cs.hours_per_month,
                         _explorer_usd(e_h, cs), provider_cost_usd(r_h * cs.hours_per_month, cs)))
        limit_h = explorer_limit_per_hour(cs)
        out.append(ModeCost(
            mode=mode,
            scenarios=tuple(s.name for s in used),
            measured_wallets=tuple(sorted({int(w) for w, _ in pts}
                                          | set(use_measured.wallets if use_measured else ()))),
            explorer=explorer,
            rpc=rpc,
            explorer_per_month=ex_month,
            rpc_per_month=rpc_month,
            explorer_usd=_explorer_usd(explorer_at(w_max), cs),
            provider_usd=provider_cost_usd(rpc_month, cs),
            explorer_limit_wallets=(explorer.wallets_at(limit_h) if use_measured is None
                                    else use_measured.wallets_at(limit_h)),
            provider_limit_wallets=_provider_limit(rpc, cs),
            by_wallets=tuple(grid),
            measured=use_measured,
        ))
    return out
