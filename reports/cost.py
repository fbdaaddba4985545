"""What each mode costs per month, and at how many wallets it hits a plan limit.

Usage per mode is a straight line in the number of wallets, fitted to the measured call
rates (``calls/h = fixed + per_wallet * wallets``; with one wallet count measured, all of
it is counted per wallet, which over-estimates). Fault-free scenarios are used when the
mode has any (steady state); otherwise all scenarios of the mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reports.criteria import CostSettings
from reports.load import Run, ScenarioData

__all__ = [
    "WALLET_GRID",
    "LinearUsage",
    "ModeCost",
    "explorer_limit_per_hour",
    "fit_usage",
    "mode_costs",
    "provider_cost_usd",
]

WALLET_GRID = (1, 10, 50, 100, 500, 1000)


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


def _hours(sc: ScenarioData) -> float:
    return float(sc.summary.get("sim_duration_s") or 0.0) / 3600.0


def _rates(sc: ScenarioData) -> tuple[float, float] | None:
    wallets = float(sc.summary.get("wallets") or 0)
    calls = sc.summary.get("api_calls")
    hours = _hours(sc)
    ex = sc.summary.get("explorer_calls_per_hour")
    if wallets <= 0:
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


def mode_costs(run: Run, cs: CostSettings) -> list[ModeCost]:
    """One :class:`ModeCost` per mode measured (polling first)."""
    out = []
    modes = sorted({s.mode for s in run.scenarios if s.ok}, key=lambda m: (m != "polling", m))
    for mode in modes:
        scs = [s for s in run.scenarios if s.mode == mode and s.ok]
        calm = [s for s in scs if not s.summary.get("faults")]
        used = calm or scs
        pts = [(float(s.summary.get("wallets") or 0), r) for s in used if (r := _rates(s))]
        if not pts:
            continue
        explorer = fit_usage([(w, r[0]) for w, r in pts])
        rpc = fit_usage([(w, r[1]) for w, r in pts])
        w_max = max(w for w, _ in pts)
        ex_month = explorer.at(w_max) * cs.hours_per_month
        rpc_month = rpc.at(w_max) * cs.hours_per_month
        grid = []
        for w in WALLET_GRID:
            e_h, r_h = explorer.at(w), rpc.at(w)
            grid.append((w, e_h * cs.hours_per_month, r_h * cs.hours_per_month,
                         _explorer_usd(e_h, cs), provider_cost_usd(r_h * cs.hours_per_month, cs)))
        out.append(ModeCost(
            mode=mode,
            scenarios=tuple(s.name for s in used),
            measured_wallets=tuple(sorted({int(w) for w, _ in pts})),
            explorer=explorer,
            rpc=rpc,
            explorer_per_month=ex_month,
            rpc_per_month=rpc_month,
            explorer_usd=_explorer_usd(explorer.at(w_max), cs),
            provider_usd=provider_cost_usd(rpc_month, cs),
            explorer_limit_wallets=explorer.wallets_at(explorer_limit_per_hour(cs)),
            provider_limit_wallets=_provider_limit(rpc, cs),
            by_wallets=tuple(grid),
        ))
    return out
